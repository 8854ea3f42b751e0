//! Everything a one-time token in an e-mail does: sign-up confirmation,
//! recovery, magic links and codes (`/otp`), invitations, e-mail changes
//! and reauthentication, `/verify` that redeems them (a redirect for the
//! link, a session for the code), `/resend`, `/admin/generate_link`, and
//! PKCE flow state for `exchangeCodeForSession`.
//!
//! Tokens are stored hashed as GoTrue stores them (hex SHA-224 of the
//! address and the code), single-use, valid `mailer_otp_exp` seconds; a
//! link carries the hash, a code is hashed again on the way in.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use deadpool_postgres::GenericClient;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::api::{self, Body, Result};
use crate::limits::{Bucket, ClientIp};
use crate::mail::{self, Kind};
use crate::store::{self, TokenColumn, UserRow};
use crate::{Auth, Error, Project};

/// A flow state's code is exchanged within five minutes of its issue.
const FLOW_CODE_TTL: f64 = 300.0;

/// The prefix of a token whose link ends a PKCE flow.
const PKCE_PREFIX: &str = "pkce_";

pub(crate) fn routes(router: Router<Auth>) -> Router<Auth> {
    router
        .route("/verify", get(verify_link).post(verify))
        .route("/recover", post(recover))
        .route("/otp", post(otp))
        .route("/magiclink", post(magiclink))
        .route("/resend", post(resend))
        .route("/reauthenticate", get(reauthenticate))
        .route("/invite", post(invite))
        .route("/admin/generate_link", post(generate_link))
}

/// A one-time code of `len` digits, uniform.
pub(crate) fn code(len: i64) -> String {
    let len = usize::try_from(len).unwrap_or(6).clamp(6, 10);
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).expect("the OS has randomness");
        // 250 is the largest multiple of 10 in a byte: no bias.
        out.extend(
            b.iter()
                .filter(|&&x| x < 250)
                .map(|&x| char::from(b'0' + x % 10)),
        );
    }
    out.truncate(len);
    out
}

/// GoTrue's token hash: hex SHA-224 of the address and the code.
pub(crate) fn token_hash(address: &str, code: &str) -> String {
    hex(&sha2::Sha224::digest(format!(
        "{}{code}",
        address.to_lowercase()
    )))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A PKCE challenge sent with a request that mails a link.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Pkce {
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

impl Pkce {
    /// `(challenge, method)` when the client runs a PKCE flow.
    pub(crate) fn get(&self) -> Result<Option<(String, String)>> {
        match (&self.code_challenge, &self.code_challenge_method) {
            (None, None) => Ok(None),
            (Some(c), Some(m)) if !c.is_empty() => {
                let method = m.to_lowercase();
                if method != "s256" && method != "plain" {
                    return Err(Error::validation(format!(
                        "Unsupported PKCE code challenge method: {m}"
                    )));
                }
                if !(43..=128).contains(&c.len()) {
                    return Err(Error::validation(
                        "code challenge has to be between 43 and 128 characters",
                    ));
                }
                Ok(Some((c.clone(), method)))
            }
            _ => Err(Error::validation(
                "PKCE flow requires code_challenge_method and code_challenge",
            )),
        }
    }
}

/// Where a link may lead: `requested` when it is on the site's host or
/// matches the allow list, the site URL otherwise (no open redirect).
pub(crate) fn redirect_target(p: &Project, requested: Option<&str>) -> String {
    let site = &p.settings.site_url;
    let Some(requested) = requested.map(str::trim).filter(|r| !r.is_empty()) else {
        return site.clone();
    };
    if redirect_allowed(site, &p.settings.uri_allow_list, requested) {
        requested.to_owned()
    } else {
        site.clone()
    }
}

fn redirect_allowed(site: &str, allow_list: &str, requested: &str) -> bool {
    let Ok(url) = url::Url::parse(requested) else {
        return false;
    };
    // A URL with credentials or a strange scheme is never followed.
    if !url.username().is_empty() || url.password().is_some() || url.scheme() == "javascript" {
        return false;
    }
    let same_host = url::Url::parse(site).is_ok_and(|s| {
        s.host_str().is_some() && s.host_str() == url.host_str() && s.scheme() == url.scheme()
    });
    same_host
        || allow_list
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .any(|g| glob(g, requested))
}

/// Supabase's redirect globs: `*` within a host label or path segment,
/// `**` across them, `?` one character.
fn glob(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => (0..=s.len()).any(|i| go(&p[2..], &s[i..])),
            Some(b'*') => {
                for i in 0..=s.len() {
                    if go(&p[1..], &s[i..]) {
                        return true;
                    }
                    if i < s.len() && matches!(s[i], b'.' | b'/') {
                        return false;
                    }
                }
                false
            }
            Some(b'?') => !s.is_empty() && go(&p[1..], &s[1..]),
            Some(c) => s.first() == Some(c) && go(&p[1..], &s[1..]),
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

/// One mailed link: what it is for and where it leads.
pub(crate) struct Link<'a> {
    pub kind: Kind,
    pub column: TokenColumn,
    /// The address it is mailed to (and hashed with).
    pub to: &'a str,
    /// `/verify`'s `type`.
    pub verify_type: &'a str,
    pub redirect_to: &'a str,
    /// A PKCE flow, and its authentication method.
    pub flow: Option<(&'a (String, String), &'a str)>,
    /// The user's current address and the new one, for an e-mail change.
    pub email: &'a str,
    pub new_email: &'a str,
}

impl<'a> Link<'a> {
    /// A link of `kind` mailed to `email` itself, redeemed by `/verify`
    /// with `verify_type`, without a PKCE flow.
    fn to(kind: Kind, email: &'a str, verify_type: &'a str, redirect_to: &'a str) -> Self {
        let column = match kind {
            Kind::Confirmation | Kind::Invite => TokenColumn::Confirmation,
            Kind::Recovery | Kind::MagicLink => TokenColumn::Recovery,
            Kind::EmailChange => TokenColumn::EmailChangeNew,
            Kind::Reauthentication => TokenColumn::Reauthentication,
        };
        Self {
            kind,
            column,
            to: email,
            verify_type,
            redirect_to,
            flow: None,
            email,
            new_email: "",
        }
    }
}

/// The token of a link, stored; its hash, code and action link.
pub(crate) struct Minted {
    pub code: String,
    pub hashed: String,
    pub action_link: String,
}

/// Makes and stores a link's token (with its flow state), in `db`'s
/// transaction.
pub(crate) async fn mint(
    db: &impl GenericClient,
    p: &Project,
    user: &UserRow,
    link: &Link<'_>,
) -> Result<Minted> {
    let code = code(p.settings.mailer_otp_length);
    let mut hashed = token_hash(link.to, &code);
    if let Some(((challenge, method), auth_method)) = link.flow {
        store::insert_flow_state(db, Some(&user.id), challenge, method, "email", auth_method)
            .await?;
        hashed = format!("{PKCE_PREFIX}{hashed}");
    }
    store::set_token(db, &user.id, link.column, &hashed, link.to).await?;
    let action_link = format!(
        "{}?token={hashed}&type={}&redirect_to={}",
        p.verify_url,
        link.verify_type,
        urlencode(link.redirect_to)
    );
    Ok(Minted {
        code,
        hashed,
        action_link,
    })
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Mints a link's token and queues its e-mail; the outbox id is
/// delivered once the transaction commits.
pub(crate) async fn send(
    db: &impl GenericClient,
    p: &Project,
    user: &UserRow,
    link: &Link<'_>,
) -> Result<i64> {
    let minted = mint(db, p, user, link).await?;
    let fields = mail::Fields {
        confirmation_url: minted.action_link,
        token: &minted.code,
        token_hash: &minted.hashed,
        site_url: &p.settings.site_url,
        redirect_to: link.redirect_to,
        email: link.email,
        new_email: link.new_email,
        data: user.json.get("user_metadata"),
    };
    mail::queue(db, p, link.kind, link.to, &fields).await
}

/// The confirmation e-mail of a new (or not yet confirmed) user.
pub(crate) async fn send_confirmation(
    db: &impl GenericClient,
    p: &Project,
    user: &UserRow,
    email: &str,
    redirect_to: &str,
    flow: Option<&(String, String)>,
) -> Result<i64> {
    let link = Link {
        flow: flow.map(|f| (f, "email/signup")),
        ..Link::to(Kind::Confirmation, email, "signup", redirect_to)
    };
    send(db, p, user, &link).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct RedirectQuery {
    pub redirect_to: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RecoverBody {
    email: Option<String>,
    #[serde(flatten)]
    pkce: Pkce,
}

fn address(email: Option<String>) -> Result<String> {
    let email = email
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .ok_or_else(|| Error::validation("Password recovery requires an email"))?;
    api::check_email(&email)?;
    Ok(email)
}

/// `POST /recover`: a recovery link, `{}` whether or not the address has
/// a user.
async fn recover(
    State(auth): State<Auth>,
    p: Project,
    ip: ClientIp,
    Query(q): Query<RedirectQuery>,
    Body(body): Body<RecoverBody>,
) -> Result<Response> {
    auth.limits.take(&p, Bucket::Otp, &ip)?;
    let email = address(body.email)?;
    let flow = body.pkce.get()?;
    auth.limits.mail_to(&p, &email)?;
    let redirect_to = redirect_target(&p, q.redirect_to.as_deref());
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    let Some(user) = store::user_by_email(&tx, &email).await? else {
        return Ok(Json(json!({})).into_response());
    };
    let link = Link {
        flow: flow.as_ref().map(|f| (f, "recovery")),
        ..Link::to(Kind::Recovery, &email, "recovery", &redirect_to)
    };
    let id = send(&tx, &p, &user, &link).await?;
    tx.commit().await?;
    mail::deliver(&auth, &p, vec![id]);
    Ok(Json(json!({})).into_response())
}

#[derive(Debug, Deserialize)]
struct OtpBody {
    email: Option<String>,
    phone: Option<String>,
    #[serde(default = "yes")]
    create_user: bool,
    data: Option<Value>,
    #[serde(flatten)]
    pkce: Pkce,
}

fn yes() -> bool {
    true
}

/// `POST /otp`: a magic link and code by e-mail; a new address gets a
/// user (unless `create_user` is false) and a confirmation e-mail.
async fn otp(
    State(auth): State<Auth>,
    p: Project,
    ip: ClientIp,
    Query(q): Query<RedirectQuery>,
    Body(body): Body<OtpBody>,
) -> Result<Response> {
    if let (Some(phone), None) = (&body.phone, &body.email) {
        auth.limits.take(&p, Bucket::Otp, &ip)?;
        let metadata = api::object("data", body.data.clone())?.unwrap_or_else(|| json!({}));
        return phone_otp(&auth, &p, phone, body.create_user, &metadata).await;
    }
    magic(auth, p, ip, q, body).await
}

/// Whether `/otp` may make a user for an unknown address or number.
fn new_user_allowed(p: &Project, create_user: bool) -> Result<()> {
    if !create_user {
        return Err(Error::new(
            422,
            "otp_disabled",
            "Signups not allowed for otp",
        ));
    }
    if p.settings.disable_signup {
        return Err(api::signup_disabled());
    }
    Ok(())
}

/// `/otp` by phone: a code by SMS; a new number gets a user (unless
/// `create_user` is false).
async fn phone_otp(
    auth: &Auth,
    p: &Project,
    phone: &str,
    create_user: bool,
    metadata: &Value,
) -> Result<Response> {
    crate::sms::require_phone_provider(p)?;
    let phone = crate::sms::normalize(phone)?;
    let mut client = auth.client(p).await?;
    let tx = client.transaction().await?;
    let user = match store::user_by_phone(&tx, &phone).await? {
        Some(user) => user,
        None => {
            new_user_allowed(p, create_user)?;
            let new = store::NewUser {
                email: None,
                phone: Some(&phone),
                password_hash: None,
                user_metadata: metadata,
                confirmed: false,
                anonymous: false,
                provider: None,
            };
            store::insert_user(&tx, &new).await?
        }
    };
    let message_id =
        crate::sms::send_code(&tx, auth, p, &user, &phone, TokenColumn::Confirmation).await?;
    tx.commit().await?;
    Ok(Json(json!({"message_id": message_id})).into_response())
}

/// `POST /magiclink`, GoTrue's older name of `/otp` for e-mail.
async fn magiclink(
    State(auth): State<Auth>,
    p: Project,
    ip: ClientIp,
    Query(q): Query<RedirectQuery>,
    Body(body): Body<OtpBody>,
) -> Result<Response> {
    magic(auth, p, ip, q, body).await
}

async fn magic(
    auth: Auth,
    p: Project,
    ip: ClientIp,
    q: RedirectQuery,
    body: OtpBody,
) -> Result<Response> {
    auth.limits.take(&p, Bucket::Otp, &ip)?;
    if !p.settings.external_email_enabled {
        return Err(Error::new(
            422,
            "email_provider_disabled",
            "Email logins are disabled",
        ));
    }
    let email = address(body.email)?;
    let flow = body.pkce.get()?;
    let metadata = api::object("data", body.data)?.unwrap_or_else(|| json!({}));
    auth.limits.mail_to(&p, &email)?;
    let redirect_to = redirect_target(&p, q.redirect_to.as_deref());
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    let id = match store::user_by_email(&tx, &email).await? {
        Some(user) if user.confirmed => {
            let link = Link {
                flow: flow.as_ref().map(|f| (f, "magiclink")),
                ..Link::to(Kind::MagicLink, &email, "magiclink", &redirect_to)
            };
            send(&tx, &p, &user, &link).await?
        }
        Some(user) => {
            send_confirmation(&tx, &p, &user, &email, &redirect_to, flow.as_ref()).await?
        }
        None => {
            new_user_allowed(&p, body.create_user)?;
            let new = store::NewUser {
                email: Some(&email),
                phone: None,
                password_hash: None,
                user_metadata: &metadata,
                confirmed: false,
                anonymous: false,
                provider: None,
            };
            let user = store::insert_user(&tx, &new).await?;
            send_confirmation(&tx, &p, &user, &email, &redirect_to, flow.as_ref()).await?
        }
    };
    tx.commit().await?;
    mail::deliver(&auth, &p, vec![id]);
    Ok(Json(json!({})).into_response())
}

#[derive(Debug, Deserialize)]
struct ResendBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    #[serde(flatten)]
    pkce: Pkce,
}

/// `POST /resend`: the sign-up confirmation or e-mail change links again;
/// `{}` whether or not there is one to resend.
async fn resend(
    State(auth): State<Auth>,
    p: Project,
    ip: ClientIp,
    Query(q): Query<RedirectQuery>,
    Body(body): Body<ResendBody>,
) -> Result<Response> {
    auth.limits.take(&p, Bucket::Otp, &ip)?;
    let kind = body.kind.unwrap_or_default();
    if kind == "sms" {
        crate::sms::require_phone_provider(&p)?;
        let phone = crate::sms::normalize(body.phone.as_deref().unwrap_or(""))?;
        let mut client = auth.client(&p).await?;
        let tx = client.transaction().await?;
        let mut answer = json!({});
        if let Some(user) = store::user_by_phone(&tx, &phone).await?
            && !user.phone_confirmed
        {
            let id =
                crate::sms::send_code(&tx, &auth, &p, &user, &phone, TokenColumn::Confirmation)
                    .await?;
            answer = json!({"message_id": id});
        }
        tx.commit().await?;
        return Ok(Json(answer).into_response());
    }
    if !matches!(kind.as_str(), "signup" | "email_change") {
        return Err(Error::validation(
            "Missing one of these types: signup, email_change, sms, phone_change",
        ));
    }
    let email = address(body.email)?;
    let flow = body.pkce.get()?;
    auth.limits.mail_to(&p, &email)?;
    let redirect_to = redirect_target(&p, q.redirect_to.as_deref());
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    let mut ids = Vec::new();
    if let Some(user) = store::user_by_email(&tx, &email).await? {
        if kind == "signup" && !user.confirmed {
            ids.push(send_confirmation(&tx, &p, &user, &email, &redirect_to, flow.as_ref()).await?);
        } else if kind == "email_change"
            && let (Some(new), _) = store::email_change(&tx, &user.id).await?
        {
            ids = email_change_links(&tx, &p, &user, &email, &new, &redirect_to).await?;
        }
    }
    tx.commit().await?;
    mail::deliver(&auth, &p, ids);
    Ok(Json(json!({})).into_response())
}

/// The links of an e-mail change: to the new address, and to the
/// current one too when both must confirm.
async fn email_change_links(
    db: &impl GenericClient,
    p: &Project,
    user: &UserRow,
    current: &str,
    new: &str,
    redirect_to: &str,
) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    let mut targets = vec![(TokenColumn::EmailChangeNew, new)];
    if p.settings.mailer_secure_email_change_enabled && !current.is_empty() {
        targets.push((TokenColumn::EmailChangeCurrent, current));
    }
    for (column, to) in targets {
        let link = Link {
            kind: Kind::EmailChange,
            column,
            to,
            verify_type: "email_change",
            redirect_to,
            flow: None,
            email: current,
            new_email: new,
        };
        ids.push(send(db, p, user, &link).await?);
    }
    Ok(ids)
}

/// `PUT /user` with a new address: confirmed by e-mail (at both
/// addresses when secure change is on), applied at once with
/// autoconfirm. Returns the outbox ids to deliver.
pub(crate) async fn change_email(
    db: &impl GenericClient,
    auth: &Auth,
    p: &Project,
    user: &UserRow,
    new: &str,
    redirect_to: &str,
) -> Result<Vec<i64>> {
    api::check_email(new)?;
    let current = user.json["email"].as_str().unwrap_or("").to_owned();
    if current.eq_ignore_ascii_case(new) {
        return Ok(Vec::new());
    }
    if store::user_by_email(db, new)
        .await?
        .is_some_and(|u| u.id != user.id)
    {
        return Err(api::email_exists());
    }
    store::begin_email_change(db, &user.id, new).await?;
    if p.settings.mailer_autoconfirm {
        store::apply_email_change(db, &user.id).await?;
        return Ok(Vec::new());
    }
    auth.limits.mail_to(p, new)?;
    email_change_links(db, p, user, &current, new, redirect_to).await
}

/// Checks a reauthentication code (`nonce`) before a password change.
pub(crate) async fn check_nonce(
    db: &impl GenericClient,
    p: &Project,
    user: &UserRow,
    nonce: &str,
) -> Result<()> {
    let email = user.json["email"].as_str().unwrap_or("");
    let found = store::user_by_token(
        db,
        TokenColumn::Reauthentication,
        &[token_hash(email, nonce)],
    )
    .await?;
    match found {
        Some((u, age, _)) if u.id == user.id && age <= p.settings.mailer_otp_exp as f64 => {
            store::clear_token(db, &user.id, TokenColumn::Reauthentication).await
        }
        _ => Err(Error::new(
            400,
            "reauthentication_not_valid",
            "Verification code not found or has expired",
        )),
    }
}

/// `GET /reauthenticate`: a code to the signed-in user's address.
async fn reauthenticate(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
) -> Result<Response> {
    let (sub, session) = api::caller(&p, &headers)?;
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    let user = api::current_user(&tx, &sub, session.as_deref()).await?;
    let email = user.json["email"].as_str().unwrap_or("").to_owned();
    if email.is_empty() {
        return Err(Error::new(
            422,
            "reauthentication_not_valid",
            "Reauthentication requires the user to have an email or a phone number",
        ));
    }
    auth.limits.mail_to(&p, &email)?;
    let link = Link::to(
        Kind::Reauthentication,
        &email,
        "reauthentication",
        &p.settings.site_url,
    );
    let id = send(&tx, &p, &user, &link).await?;
    tx.commit().await?;
    mail::deliver(&auth, &p, vec![id]);
    Ok(Json(json!({})).into_response())
}

#[derive(Debug, Deserialize)]
struct InviteBody {
    email: Option<String>,
    data: Option<Value>,
}

/// `POST /invite` (admin): a user invited by e-mail, confirmed when they
/// follow the link.
async fn invite(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Query(q): Query<RedirectQuery>,
    Body(body): Body<InviteBody>,
) -> Result<Response> {
    api::require_admin(&p, &headers)?;
    let email = address(body.email)?;
    let metadata = api::object("data", body.data)?.unwrap_or_else(|| json!({}));
    let redirect_to = redirect_target(&p, q.redirect_to.as_deref());
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    let user = invited_user(&tx, &email, &metadata).await?;
    let link = Link::to(Kind::Invite, &email, "invite", &redirect_to);
    let id = send(&tx, &p, &user, &link).await?;
    let user = store::user_by_id(&tx, &user.id)
        .await?
        .ok_or_else(api::user_not_found)?;
    tx.commit().await?;
    mail::deliver(&auth, &p, vec![id]);
    Ok(Json(user.json).into_response())
}

/// The user an invitation is for: new, or invited before and not yet
/// confirmed; a confirmed address is refused.
async fn invited_user(db: &impl GenericClient, email: &str, metadata: &Value) -> Result<UserRow> {
    let user = match store::user_by_email(db, email).await? {
        Some(u) if u.confirmed => return Err(api::email_exists()),
        Some(u) => u,
        None => {
            let new = store::NewUser {
                email: Some(email),
                phone: None,
                password_hash: None,
                user_metadata: metadata,
                confirmed: false,
                anonymous: false,
                provider: None,
            };
            store::insert_user(db, &new).await?
        }
    };
    store::mark_invited(db, &user.id).await?;
    Ok(user)
}

#[derive(Debug, Deserialize)]
struct GenerateLinkBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    email: Option<String>,
    password: Option<String>,
    new_email: Option<String>,
    data: Option<Value>,
    redirect_to: Option<String>,
}

/// `POST /admin/generate_link`: a link and code as the e-mail would carry
/// them, without sending it, with the user.
async fn generate_link(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Query(q): Query<RedirectQuery>,
    Body(body): Body<GenerateLinkBody>,
) -> Result<Response> {
    api::require_admin(&p, &headers)?;
    let kind = body.kind.unwrap_or_default();
    let email = address(body.email)?;
    let metadata = api::object("data", body.data)?.unwrap_or_else(|| json!({}));
    let redirect_to = redirect_target(&p, body.redirect_to.as_deref().or(q.redirect_to.as_deref()));
    let hash = match (&kind[..], body.password) {
        ("signup", Some(password)) => {
            api::check_password(&p, &password)?;
            Some(api::hash_password(password).await?)
        }
        _ => None,
    };
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    let existing = store::user_by_email(&tx, &email).await?;
    let new_email = body.new_email.unwrap_or_default();
    let (user, link) = match kind.as_str() {
        "signup" => {
            if existing.is_some() {
                return Err(api::email_exists());
            }
            let new = store::NewUser {
                email: Some(&email),
                phone: None,
                password_hash: hash.as_deref(),
                user_metadata: &metadata,
                confirmed: false,
                anonymous: false,
                provider: None,
            };
            let user = store::insert_user(&tx, &new).await?;
            (
                user,
                Link::to(Kind::Confirmation, &email, "signup", &redirect_to),
            )
        }
        "invite" => {
            let user = invited_user(&tx, &email, &metadata).await?;
            (user, Link::to(Kind::Invite, &email, "invite", &redirect_to))
        }
        "magiclink" | "recovery" => {
            let user = existing.ok_or_else(api::user_not_found)?;
            let k = if kind == "magiclink" {
                Kind::MagicLink
            } else {
                Kind::Recovery
            };
            (user, Link::to(k, &email, &kind, &redirect_to))
        }
        "email_change_current" | "email_change_new" => {
            let user = existing.ok_or_else(api::user_not_found)?;
            api::check_email(&new_email)?;
            if store::user_by_email(&tx, &new_email).await?.is_some() {
                return Err(api::email_exists());
            }
            if store::email_change(&tx, &user.id).await?.0.as_deref()
                != Some(&new_email.to_lowercase())
            {
                store::begin_email_change(&tx, &user.id, &new_email).await?;
            }
            let (column, to) = if kind == "email_change_new" {
                (TokenColumn::EmailChangeNew, new_email.as_str())
            } else {
                (TokenColumn::EmailChangeCurrent, email.as_str())
            };
            let link = Link {
                kind: Kind::EmailChange,
                column,
                to,
                verify_type: "email_change",
                redirect_to: &redirect_to,
                flow: None,
                email: &email,
                new_email: &new_email,
            };
            (user, link)
        }
        _ => {
            return Err(Error::validation(
                "Invalid email action link type requested: must be one of signup, invite, magiclink, recovery, email_change_current, email_change_new",
            ));
        }
    };
    let minted = mint(&tx, &p, &user, &link).await?;
    let user = store::user_by_id(&tx, &user.id)
        .await?
        .ok_or_else(api::user_not_found)?;
    tx.commit().await?;
    let mut answer = user.json;
    answer["action_link"] = json!(minted.action_link);
    answer["email_otp"] = json!(minted.code);
    answer["hashed_token"] = json!(minted.hashed);
    answer["verification_type"] = json!(link.verify_type);
    answer["redirect_to"] = json!(redirect_to);
    Ok(Json(answer).into_response())
}

#[derive(Debug, Default, Deserialize)]
struct VerifyParams {
    #[serde(rename = "type")]
    kind: Option<String>,
    token: Option<String>,
    token_hash: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    redirect_to: Option<String>,
}

/// What redeeming a token did.
enum Verified {
    /// A session (implicit flow), of this verification type.
    Session(Value),
    /// A PKCE flow's code to exchange.
    Code(String),
    /// The first of two e-mail change confirmations.
    HalfEmailChange,
}

fn otp_expired() -> Error {
    Error::new(403, "otp_expired", "Token has expired or is invalid")
}

/// The columns a verification type may redeem.
fn columns(kind: &str) -> Result<&'static [TokenColumn]> {
    Ok(match kind {
        "signup" | "invite" => &[TokenColumn::Confirmation],
        "recovery" | "magiclink" => &[TokenColumn::Recovery],
        "email" => &[TokenColumn::Confirmation, TokenColumn::Recovery],
        "email_change" => &[TokenColumn::EmailChangeNew, TokenColumn::EmailChangeCurrent],
        "sms" => &[TokenColumn::Confirmation],
        "phone_change" => {
            return Err(Error::new(
                422,
                "phone_change_not_supported",
                "Changing the phone number is not supported",
            ));
        }
        _ => {
            return Err(Error::validation(format!(
                "Verify requires a verification type, got {kind:?}"
            )));
        }
    })
}

/// Redeems a token: `token_hash` (from a link) or `token` with `email`
/// (a code).
async fn redeem(db: &impl GenericClient, p: &Project, v: &VerifyParams) -> Result<Verified> {
    let kind = v.kind.as_deref().unwrap_or("");
    let columns = columns(kind)?;
    let by_phone = kind == "sms";
    // A code is hashed with its address: the e-mail, or the phone number.
    let address = match (&v.email, &v.phone) {
        (_, Some(phone)) if by_phone => Some(crate::sms::normalize(phone)?),
        (Some(e), _) if !by_phone => Some(e.trim().to_owned()),
        _ => None,
    };
    let hashes: Vec<String> = match (&v.token_hash, &v.token, &address) {
        (Some(h), _, _) if !h.is_empty() => vec![h.clone()],
        (_, Some(t), Some(a)) if !t.is_empty() && !a.is_empty() => {
            let h = token_hash(a, t.trim());
            vec![format!("{PKCE_PREFIX}{h}"), h]
        }
        // A link's `token` is the stored hash itself.
        (_, Some(t), None) if !t.is_empty() => vec![t.clone()],
        _ => {
            return Err(Error::validation(
                "Verify requires either a token or a token hash",
            ));
        }
    };
    let mut found = None;
    for &column in columns {
        if let Some(f) = store::user_by_token(db, column, &hashes).await? {
            found = Some((column, f));
            break;
        }
    }
    let Some((column, (user, age, stored))) = found else {
        return Err(otp_expired());
    };
    if age > p.settings.mailer_otp_exp as f64 {
        return Err(otp_expired());
    }
    if user.banned {
        return Err(Error::new(403, "user_banned", "User is banned"));
    }
    store::clear_token(db, &user.id, column).await?;
    let auth_method = match column {
        TokenColumn::Confirmation if by_phone => {
            store::confirm_phone(db, &user.id).await?;
            "sms"
        }
        TokenColumn::Confirmation => {
            store::confirm_email(db, &user.id).await?;
            if kind == "invite" {
                "invite"
            } else {
                "email/signup"
            }
        }
        TokenColumn::Recovery => {
            store::confirm_email(db, &user.id).await?;
            if kind == "recovery" {
                "recovery"
            } else {
                "magiclink"
            }
        }
        TokenColumn::EmailChangeNew | TokenColumn::EmailChangeCurrent => {
            let (_, status) = store::email_change(db, &user.id).await?;
            let other = if column == TokenColumn::EmailChangeNew {
                TokenColumn::EmailChangeCurrent
            } else {
                TokenColumn::EmailChangeNew
            };
            let other_pending = store::token_pending(db, &user.id, other).await?;
            if p.settings.mailer_secure_email_change_enabled && status == 0 && other_pending {
                store::half_confirm_email_change(db, &user.id).await?;
                return Ok(Verified::HalfEmailChange);
            }
            store::apply_email_change(db, &user.id).await?;
            "email_change"
        }
        TokenColumn::Reauthentication => return Err(otp_expired()),
    };
    if stored.starts_with(PKCE_PREFIX)
        && let Some(code) = store::issue_flow_code(db, &user.id, auth_method).await?
    {
        return Ok(Verified::Code(code));
    }
    Ok(Verified::Session(
        api::signed_in(db, p, &user.id, "otp").await?,
    ))
}

/// `POST /verify`: a session for a code or a link's hash.
async fn verify(
    State(auth): State<Auth>,
    p: Project,
    ip: ClientIp,
    Body(v): Body<VerifyParams>,
) -> Result<Response> {
    auth.limits.take(&p, Bucket::Verify, &ip)?;
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    let answer = match redeem(&tx, &p, &v).await? {
        Verified::Session(s) => s,
        Verified::Code(code) => json!({"code": code}),
        Verified::HalfEmailChange => json!({
            "msg": "Confirmation link accepted. Please proceed to confirm link sent to the other email",
            "code": 200,
        }),
    };
    tx.commit().await?;
    Ok(Json(answer).into_response())
}

/// `GET /verify`: a mailed link, answered by a redirect to `redirect_to`
/// (when allowed) with the session in the fragment, a PKCE code in the
/// query, or the error in the fragment.
async fn verify_link(
    State(auth): State<Auth>,
    p: Project,
    ip: ClientIp,
    Query(v): Query<VerifyParams>,
) -> Response {
    let target = redirect_target(&p, v.redirect_to.as_deref());
    let outcome = async {
        auth.limits.take(&p, Bucket::Verify, &ip)?;
        let mut client = auth.client(&p).await?;
        let tx = client.transaction().await?;
        let verified = redeem(&tx, &p, &v).await?;
        tx.commit().await?;
        Ok::<_, Error>(verified)
    }
    .await;
    let kind = v.kind.as_deref().unwrap_or("");
    let location = match outcome {
        Ok(Verified::Session(s)) => {
            let mut fragment = form_urlencoded::Serializer::new(String::new());
            for key in [
                "access_token",
                "expires_at",
                "expires_in",
                "refresh_token",
                "token_type",
            ] {
                let value = match &s[key] {
                    Value::String(v) => v.clone(),
                    other => other.to_string(),
                };
                fragment.append_pair(key, &value);
            }
            fragment.append_pair("type", kind);
            format!("{}#{}", strip_fragment(&target), fragment.finish())
        }
        Ok(Verified::Code(code)) => with_query(&target, "code", &code),
        Ok(Verified::HalfEmailChange) => {
            let message = "Confirmation link accepted. Please proceed to confirm link sent to the other email";
            let fragment = form_urlencoded::Serializer::new(String::new())
                .append_pair("message", message)
                .finish();
            format!("{}#{fragment}", strip_fragment(&target))
        }
        Err(e) => {
            let (code, description) = if e.code == "otp_expired" {
                ("otp_expired", "Email link is invalid or has expired")
            } else {
                (e.code, e.msg.as_str())
            };
            let error = if e.status == 429 || e.status >= 500 {
                "server_error"
            } else {
                "access_denied"
            };
            let fragment = form_urlencoded::Serializer::new(String::new())
                .append_pair("error", error)
                .append_pair("error_code", code)
                .append_pair("error_description", description)
                .finish();
            format!("{}#{fragment}", strip_fragment(&target))
        }
    };
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

fn strip_fragment(url: &str) -> &str {
    url.split_once('#').map_or(url, |(u, _)| u)
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let base = strip_fragment(url);
    let sep = if base.contains('?') { '&' } else { '?' };
    let pair = form_urlencoded::Serializer::new(String::new())
        .append_pair(key, value)
        .finish();
    format!("{base}{sep}{pair}")
}

#[derive(Debug, Deserialize)]
pub(crate) struct PkceGrant {
    auth_code: Option<String>,
    code_verifier: Option<String>,
}

/// `POST /token?grant_type=pkce`: the session of a flow whose code the
/// client exchanges with the verifier of its challenge.
pub(crate) async fn pkce_grant(auth: &Auth, p: &Project, body: PkceGrant) -> Result<Response> {
    let (Some(code), Some(verifier)) = (
        body.auth_code.filter(|c| !c.is_empty()),
        body.code_verifier.filter(|v| !v.is_empty()),
    ) else {
        return Err(Error::validation(
            "invalid request: both auth code and code verifier should be non-empty",
        ));
    };
    if !(43..=128).contains(&verifier.len()) {
        return Err(Error::validation(
            "code verifier should be at least 43 characters and at most 128 characters",
        ));
    }
    let mut client = auth.client(p).await?;
    let tx = client.transaction().await?;
    let Some(flow) = store::take_flow_state(&tx, &code).await? else {
        return Err(Error::new(
            404,
            "flow_state_not_found",
            "invalid flow state, no valid flow state found",
        ));
    };
    // The flow is gone either way: a code is exchanged once.
    let outcome = async {
        if flow.age > FLOW_CODE_TTL {
            return Err(Error::new(
                400,
                "flow_state_expired",
                "invalid flow state, flow state has expired",
            ));
        }
        let expected = match flow.method.as_str() {
            "s256" => base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                sha2::Sha256::digest(verifier.as_bytes()),
            ),
            _ => verifier.clone(),
        };
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            flow.challenge.as_bytes(),
        )) {
            return Err(Error::new(
                403,
                "bad_code_verifier",
                "code challenge does not match previously saved code verifier",
            ));
        }
        let user = flow.user.clone().ok_or_else(|| {
            Error::new(
                404,
                "flow_state_not_found",
                "invalid flow state, no valid flow state found",
            )
        })?;
        let method = match flow.authentication_method.as_str() {
            "email/signup" | "invite" | "magiclink" | "email_change" => "otp",
            other => other,
        };
        let mut session = api::signed_in(&tx, p, &user, method).await?;
        if let Some(token) = &flow.provider_token {
            session["provider_token"] = json!(token);
        }
        Ok(session)
    }
    .await;
    match outcome {
        Ok(session) => {
            tx.commit().await?;
            Ok(Json(session).into_response())
        }
        Err(e) => {
            tx.commit().await?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_digits_of_the_asked_length() {
        for len in [6, 8, 10] {
            let c = code(len);
            assert_eq!(c.len(), len as usize);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(code(10), code(10));
    }

    #[test]
    fn token_hashes_are_sha224_of_address_and_code() {
        // sha224("a@x.io123456"), computed independently.
        let expected = hex(&sha2::Sha224::digest(b"a@x.io123456"));
        assert_eq!(token_hash("A@x.io", "123456"), expected);
        assert_eq!(expected.len(), 56);
    }

    #[test]
    fn redirects_follow_the_site_and_the_allow_list_only() {
        let site = "http://localhost:3000";
        let list = "https://app.example.com/**, https://*.preview.example.com/cb";
        assert!(redirect_allowed(
            site,
            list,
            "http://localhost:3000/welcome"
        ));
        assert!(redirect_allowed(
            site,
            list,
            "https://app.example.com/a/b?c=d"
        ));
        assert!(redirect_allowed(
            site,
            list,
            "https://pr-1.preview.example.com/cb"
        ));
        assert!(!redirect_allowed(
            site,
            list,
            "https://a.b.preview.example.com/cb"
        ));
        assert!(!redirect_allowed(site, list, "https://evil.example.org/"));
        assert!(!redirect_allowed(
            site,
            list,
            "https://app.example.com.evil.org/"
        ));
        assert!(!redirect_allowed(
            site,
            list,
            "http://user:pw@localhost:3000/"
        ));
        assert!(!redirect_allowed(site, list, "//evil.org"));
        assert!(!redirect_allowed(site, "", "javascript:alert(1)"));
    }

    #[test]
    fn pkce_challenges_are_checked() {
        let ok = Pkce {
            code_challenge: Some("a".repeat(43)),
            code_challenge_method: Some("S256".into()),
        };
        assert_eq!(ok.get().unwrap().unwrap().1, "s256");
        assert!(Pkce::default().get().unwrap().is_none());
        let short = Pkce {
            code_challenge: Some("abc".into()),
            code_challenge_method: Some("plain".into()),
        };
        assert!(short.get().is_err());
        let half = Pkce {
            code_challenge: Some("a".repeat(43)),
            code_challenge_method: None,
        };
        assert!(half.get().is_err());
        assert_eq!(
            with_query("http://x/cb#f", "code", "a b"),
            "http://x/cb?code=a+b"
        );
    }
}
