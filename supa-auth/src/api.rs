//! The endpoints, with GoTrue's request and response shapes.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::limits::{Bucket, ClientIp};
use crate::store::{self, UserRow};
use crate::{Auth, Error, Project};

/// GoTrue's bcrypt cost.
const BCRYPT_COST: u32 = 10;

/// A bcrypt hash no password matches, checked when an address is unknown
/// so that answering takes as long as for a known one.
const DUMMY_HASH: &str = "$2a$10$CwTycUXWue0Thq9StjUM0uJ8.mHoZ6aM8HHhVNc2ReMCYm2bS6P7y";

/// The router; every request must carry its project's
/// `Arc<ProjectConfig>` in its extensions.
pub fn router(auth: Auth) -> Router {
    crate::oauth_server::routes(crate::oauth::routes(crate::mfa::routes(
        crate::links::routes(Router::new()),
    )))
    .route("/health", get(health))
    .route("/settings", get(settings))
    .route("/signup", post(signup))
    .route("/token", post(token))
    .route("/user", get(user).put(update_user))
    .route("/logout", post(logout))
    .route(
        "/admin/users",
        get(admin_list_users).post(admin_create_user),
    )
    .route(
        "/admin/users/{id}",
        get(admin_get_user)
            .put(admin_update_user)
            .delete(admin_delete_user),
    )
    .route("/.well-known/jwks.json", get(jwks))
    .route("/sso", post(saml_disabled))
    .route("/sso/saml/{*rest}", get(saml_disabled).post(saml_disabled))
    .fallback(not_found)
    .layer(axum::middleware::from_fn(api_version))
    .with_state(auth)
}

/// GoTrue names its API version on every answer, and answers errors in
/// the shape of the version a client sends.
async fn api_version(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let versioned = request
        .headers()
        .get("x-supabase-api-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= crate::error::API_VERSION);
    let mut response = next.run(request).await;
    if versioned && let Some(e) = response.extensions_mut().remove::<Error>() {
        let status = response.status();
        response = (status, Json(e.body(true))).into_response();
    }
    response.headers_mut().insert(
        "x-supabase-api-version",
        axum::http::HeaderValue::from_static(crate::error::API_VERSION),
    );
    response
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// A JSON body; anything else (missing, malformed, the wrong shape) is
/// GoTrue's 400 `bad_json` in its own body, never the framework's text.
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = Error;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> std::result::Result<Self, Error> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|_| bad_json())?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text).map(Body).map_err(|e| {
            Error::new(
                400,
                "bad_json",
                format!("Could not parse request body as JSON: {e}"),
            )
        })
    }
}

/// The public keys of the project's asymmetric signing keys: none while
/// access tokens are HS256, as GoTrue answers then.
async fn jwks(p: Project) -> Json<Value> {
    let keys: Vec<Value> = p.signing_keys.iter().map(|k| k.public().jwk()).collect();
    Json(json!({ "keys": keys }))
}

/// SAML single sign-on is not offered: GoTrue's answer when it is off.
async fn saml_disabled() -> Error {
    Error::new(404, "saml_provider_disabled", "SAML 2.0 is disabled")
}

/// A path GoTrue does not serve (yet): its 404.
async fn not_found() -> Error {
    Error::new(404, "not_found", "Not Found")
}

async fn health() -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "name": "GoTrue",
        "description": "GoTrue is a user registration and authentication API",
    }))
}

async fn settings(p: Project) -> Json<Value> {
    let s = &p.settings;
    Json(json!({
        "external": {
            "anonymous_users": s.external_anonymous_users_enabled,
            "email": s.external_email_enabled,
            "phone": s.external_phone_enabled,
            "github": s.external_github_enabled, "google": s.external_google_enabled,
            "keycloak": s.external_keycloak_enabled,
            "apple": false, "azure": false,
            "bitbucket": false, "discord": false, "facebook": false, "figma": false,
            "gitlab": false, "kakao": false, "linkedin_oidc": false,
            "notion": false, "slack_oidc": false, "spotify": false, "twitch": false,
            "twitter": false, "workos": false, "zoom": false,
        },
        "disable_signup": s.disable_signup,
        "mailer_autoconfirm": s.mailer_autoconfirm,
        "phone_autoconfirm": s.sms_autoconfirm,
        "sms_provider": "",
        "saml_enabled": false,
    }))
}

pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// bcrypt off the async threads (about 50 ms at cost 10).
pub(crate) async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, BCRYPT_COST))
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)
}

async fn password_matches(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .unwrap_or(false)
}

pub(crate) fn check_password(p: &Project, password: &str) -> Result<()> {
    let min = usize::try_from(p.settings.password_min_length).unwrap_or(6);
    if password.chars().count() < min {
        let mut e = Error::new(
            422,
            "weak_password",
            format!("Password should be at least {min} characters."),
        );
        e.reasons = vec!["length"];
        return Err(e);
    }
    // bcrypt reads 72 bytes; GoTrue refuses longer passwords.
    if password.len() > 72 {
        return Err(Error::validation(
            "Password cannot be longer than 72 characters",
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct SignupBody {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(flatten)]
    pkce: crate::links::Pkce,
}

async fn signup(
    State(auth): State<Auth>,
    p: Project,
    ip: ClientIp,
    Query(q): Query<crate::links::RedirectQuery>,
    Body(body): Body<SignupBody>,
) -> Result<Response> {
    if p.settings.disable_signup {
        return Err(signup_disabled());
    }
    let metadata = object("data", body.data)?.unwrap_or_else(|| json!({}));
    // No address and no password: `signInAnonymously`.
    if body.email.is_none() && body.phone.is_none() && body.password.is_none() {
        auth.limits.take(&p, Bucket::Anonymous, &ip)?;
        return anonymous_signup(&auth, &p, &metadata).await;
    }
    if let (None, Some(phone)) = (&body.email, &body.phone) {
        return phone_signup(
            &auth,
            &p,
            phone,
            body.password.unwrap_or_default(),
            &metadata,
        )
        .await;
    }
    if !p.settings.external_email_enabled {
        return Err(Error::new(
            422,
            "email_provider_disabled",
            "Email signups are disabled",
        ));
    }
    let email = body
        .email
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .ok_or_else(|| Error::validation("To signup, please provide your email"))?;
    check_email(&email)?;
    let password = body.password.unwrap_or_default();
    check_password(&p, &password)?;
    let flow = body.pkce.get()?;
    let confirmed = p.settings.mailer_autoconfirm;
    if !confirmed {
        auth.limits.mail_to(&p, &email)?;
    }
    let redirect_to = crate::links::redirect_target(&p, q.redirect_to.as_deref());
    let hash = hash_password(password).await?;
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    let existing = store::user_by_email(&tx, &email).await?;
    let user = match existing {
        Some(_) if confirmed => {
            return Err(Error::new(
                422,
                "user_already_exists",
                "User already registered",
            ));
        }
        // A registered address gets the answer a new one gets (no
        // enumeration), and no e-mail.
        Some(u) if u.confirmed => {
            return Ok(Json(store::obfuscated_user(&tx, &email).await?).into_response());
        }
        Some(u) => {
            store::update_user(&tx, &u.id, Some(&metadata), Some(&hash)).await?;
            u
        }
        None => {
            let new = store::NewUser {
                email: Some(&email),
                phone: None,
                password_hash: Some(&hash),
                user_metadata: &metadata,
                confirmed,
                anonymous: false,
                provider: None,
            };
            store::insert_user(&tx, &new).await?
        }
    };
    if confirmed {
        let answer = signed_in(&tx, &p, &user.id, "password").await?;
        tx.commit().await?;
        return Ok(Json(answer).into_response());
    }
    let id = crate::links::send_confirmation(&tx, &p, &user, &email, &redirect_to, flow.as_ref())
        .await?;
    let user = store::user_by_id(&tx, &user.id)
        .await?
        .ok_or_else(user_not_found)?;
    tx.commit().await?;
    crate::mail::deliver(&auth, &p, vec![id]);
    Ok(Json(user.json).into_response())
}

/// GoTrue's refusal when sign-ups are off.
pub(crate) fn signup_disabled() -> Error {
    Error::new(
        422,
        "signup_disabled",
        "Signups not allowed for this instance",
    )
}

fn bad_json() -> Error {
    Error::new(400, "bad_json", "Could not parse request body as JSON")
}

pub(crate) fn check_email(email: &str) -> Result<()> {
    if valid_email(email) {
        Ok(())
    } else {
        Err(Error::new(
            400,
            "email_address_invalid",
            format!("Email address \"{email}\" is invalid"),
        ))
    }
}

/// A new session of `user`, signed in by `method`.
pub(crate) async fn signed_in(
    db: &impl deadpool_postgres::GenericClient,
    p: &Project,
    user: &str,
    method: &str,
) -> Result<Value> {
    let refresh = random_token();
    let session_id = store::start_session(db, user, &refresh, method).await?;
    let user = store::user_by_id(db, user)
        .await?
        .ok_or_else(|| Error::internal("the new user is missing"))?;
    crate::tokens::issue(db, p, &user, &session_id, &refresh).await
}

/// Sign-up with a phone number and password: confirmed at once with
/// `sms_autoconfirm`, else by the code sent through the send-SMS hook.
async fn phone_signup(
    auth: &Auth,
    p: &Project,
    phone: &str,
    password: String,
    metadata: &Value,
) -> Result<Response> {
    crate::sms::require_phone_provider(p)?;
    let phone = crate::sms::normalize(phone)?;
    check_password(p, &password)?;
    let hash = hash_password(password).await?;
    let mut client = auth.client(p).await?;
    let tx = client.transaction().await?;
    if store::user_by_phone(&tx, &phone).await?.is_some() {
        return Err(Error::new(
            422,
            "phone_exists",
            "Phone number already registered by another user",
        ));
    }
    let confirmed = p.settings.sms_autoconfirm;
    let new = store::NewUser {
        email: None,
        phone: Some(&phone),
        password_hash: Some(&hash),
        user_metadata: metadata,
        confirmed,
        anonymous: false,
        provider: None,
    };
    let user = store::insert_user(&tx, &new).await?;
    let answer = if confirmed {
        signed_in(&tx, p, &user.id, "password").await?
    } else {
        crate::sms::send_code(
            &tx,
            auth,
            p,
            &user,
            &phone,
            store::TokenColumn::Confirmation,
        )
        .await?;
        store::user_by_id(&tx, &user.id)
            .await?
            .ok_or_else(user_not_found)?
            .json
    };
    tx.commit().await?;
    Ok(Json(answer).into_response())
}

async fn anonymous_signup(auth: &Auth, p: &Project, metadata: &Value) -> Result<Response> {
    if !p.settings.external_anonymous_users_enabled {
        return Err(Error::new(
            422,
            "anonymous_provider_disabled",
            "Anonymous sign-ins are disabled",
        ));
    }
    let mut client = auth.client(p).await?;
    let tx = client.transaction().await?;
    let new = store::NewUser {
        email: None,
        phone: None,
        password_hash: None,
        user_metadata: metadata,
        confirmed: false,
        anonymous: true,
        provider: None,
    };
    let user = store::insert_user(&tx, &new).await?;
    let answer = signed_in(&tx, p, &user.id, "anonymous").await?;
    tx.commit().await?;
    Ok(Json(answer).into_response())
}

/// A plausible address: something, `@`, a domain with a dot, no spaces.
fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 255
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[derive(Debug, Deserialize)]
struct GrantQuery {
    grant_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    #[serde(flatten)]
    pkce: crate::links::PkceGrant,
}

async fn token(
    State(auth): State<Auth>,
    p: Project,
    ip: ClientIp,
    Query(q): Query<GrantQuery>,
    Body(body): Body<TokenBody>,
) -> Result<Response> {
    auth.limits.take(&p, Bucket::Token, &ip)?;
    match q.grant_type.as_deref() {
        Some("password") => password_grant(&auth, &p, body).await,
        Some("refresh_token") => refresh_grant(&auth, &p, body).await,
        Some("pkce") => crate::links::pkce_grant(&auth, &p, body.pkce).await,
        _ => Err(Error::new(
            400,
            "unsupported_grant_type",
            "unsupported_grant_type",
        )),
    }
}

async fn password_grant(auth: &Auth, p: &Project, body: TokenBody) -> Result<Response> {
    let invalid = || Error::new(400, "invalid_credentials", "Invalid login credentials");
    let Some(password) = body.password else {
        return Err(invalid());
    };
    let mut client = auth.client(p).await?;
    let tx = client.transaction().await?;
    let by_phone = body.email.is_none();
    let user = match (body.email, body.phone) {
        (Some(email), _) => store::user_by_email(&tx, email.trim()).await?,
        (None, Some(phone)) => match crate::sms::normalize(&phone) {
            Ok(phone) => store::user_by_phone(&tx, &phone).await?,
            Err(_) => None,
        },
        (None, None) => return Err(invalid()),
    };
    // Unknown addresses cost a bcrypt check too: no timing tells them apart.
    let hash = user
        .as_ref()
        .and_then(|u| u.encrypted_password.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DUMMY_HASH.to_owned());
    let matches = password_matches(password, hash).await;
    let Some(user) = user.filter(|_| matches) else {
        return Err(invalid());
    };
    if user.banned {
        return Err(Error::new(400, "user_banned", "User is banned"));
    }
    if by_phone && !user.phone_confirmed {
        return Err(Error::new(
            400,
            "phone_not_confirmed",
            "Phone not confirmed",
        ));
    }
    if !by_phone && !user.confirmed {
        return Err(Error::new(
            400,
            "email_not_confirmed",
            "Email not confirmed",
        ));
    }
    let answer = signed_in(&tx, p, &user.id, "password").await?;
    tx.commit().await?;
    Ok(Json(answer).into_response())
}

async fn refresh_grant(auth: &Auth, p: &Project, body: TokenBody) -> Result<Response> {
    let not_found = || {
        Error::new(
            400,
            "refresh_token_not_found",
            "Invalid Refresh Token: Refresh Token Not Found",
        )
    };
    let token = body
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or_else(not_found)?;
    let mut client = auth.client(p).await?;
    let tx = client.transaction().await?;
    let row = store::refresh_token(&tx, &token)
        .await?
        .ok_or_else(not_found)?;
    let session_id = row.session.clone().ok_or_else(not_found)?;
    if !row.session_live {
        return Err(not_found());
    }
    let interval = p.settings.security_refresh_token_reuse_interval as f64;
    let fresh = if row.revoked {
        // A token used again: within the reuse interval (parallel tabs)
        // its child answers; later it is reuse, and the session's tokens
        // are all revoked.
        match store::child_of(&tx, &token).await? {
            Some(child) if row.age <= interval => child,
            _ => {
                store::revoke_session_tokens(&tx, &session_id).await?;
                tx.commit().await?;
                return Err(Error::new(
                    400,
                    "refresh_token_already_used",
                    "Invalid Refresh Token: Already Used",
                ));
            }
        }
    } else {
        let fresh = random_token();
        store::rotate(&tx, &row, &token, &fresh).await?;
        fresh
    };
    let user = store::user_by_id(&tx, &row.user)
        .await?
        .ok_or_else(not_found)?;
    if user.banned {
        return Err(Error::new(400, "user_banned", "User is banned"));
    }
    let answer = crate::tokens::issue(&tx, p, &user, &session_id, &fresh).await?;
    tx.commit().await?;
    Ok(Json(answer).into_response())
}

/// The bearer token's verified claims, as GoTrue's `requireAuthentication`
/// reads them for both user and admin endpoints.
pub(crate) fn bearer_claims(p: &Project, headers: &HeaderMap) -> Result<supa_keys::Claims> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::new(
                401,
                "no_authorization",
                "This endpoint requires a Bearer token",
            )
        })?;
    supa_keys::verify(&p.jwt_key, bearer, supa_keys::unix_now()).map_err(|e| {
        Error::new(
            403,
            "bad_jwt",
            format!("invalid JWT: unable to parse or verify signature, {e}"),
        )
    })
}

/// The caller's verified access token: `(sub, session_id)`.
pub(crate) fn caller(p: &Project, headers: &HeaderMap) -> Result<(String, Option<String>)> {
    let claims = bearer_claims(p, headers)?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::new(403, "bad_jwt", "invalid claim: missing sub claim"))?;
    let session = claims
        .get("session_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((sub.to_owned(), session))
}

/// The user of a verified token, whose session still exists.
pub(crate) async fn current_user(
    db: &impl deadpool_postgres::GenericClient,
    sub: &str,
    session: Option<&str>,
) -> Result<UserRow> {
    if let Some(s) = session
        && !store::session_exists(db, s).await?
    {
        return Err(Error::new(
            403,
            "session_not_found",
            "Session from session_id claim in JWT does not exist",
        ));
    }
    store::user_by_id(db, sub).await?.ok_or_else(|| {
        Error::new(
            403,
            "user_not_found",
            "User from sub claim in JWT does not exist",
        )
    })
}

async fn user(State(auth): State<Auth>, p: Project, headers: HeaderMap) -> Result<Response> {
    let (sub, session) = caller(&p, &headers)?;
    let client = auth.client(&p).await?;
    let user = current_user(&client, &sub, session.as_deref()).await?;
    Ok(Json(user.json).into_response())
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    email: Option<String>,
    password: Option<String>,
    data: Option<Value>,
    nonce: Option<String>,
}

async fn update_user(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Query(q): Query<crate::links::RedirectQuery>,
    Body(body): Body<UpdateBody>,
) -> Result<Response> {
    let (sub, session) = caller(&p, &headers)?;
    let metadata = object("data", body.data)?;
    let hash = optional_hash(&p, body.password).await?;
    let redirect_to = crate::links::redirect_target(&p, q.redirect_to.as_deref());
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    let user = current_user(&tx, &sub, session.as_deref()).await?;
    if let Some(nonce) = body.nonce.as_deref().filter(|n| !n.is_empty()) {
        crate::links::check_nonce(&tx, &p, &user, nonce).await?;
    }
    store::update_user(&tx, &sub, metadata.as_ref(), hash.as_deref()).await?;
    let mut ids = Vec::new();
    if let Some(email) = body
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        ids = crate::links::change_email(&tx, &auth, &p, &user, email, &redirect_to).await?;
    }
    let user = current_user(&tx, &sub, session.as_deref()).await?;
    tx.commit().await?;
    crate::mail::deliver(&auth, &p, ids);
    Ok(Json(user.json).into_response())
}

#[derive(Debug, Deserialize)]
struct LogoutQuery {
    scope: Option<String>,
}

async fn logout(
    State(auth): State<Auth>,
    p: Project,
    Query(q): Query<LogoutQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let (sub, session) = caller(&p, &headers)?;
    let client = auth.client(&p).await?;
    match q.scope.as_deref().unwrap_or("global") {
        "global" => store::end_sessions(&client, &sub, None, false).await?,
        "local" => store::end_sessions(&client, &sub, session.as_deref(), false).await?,
        "others" => {
            if let Some(s) = session.as_deref() {
                store::end_sessions(&client, &sub, Some(s), true).await?
            }
        }
        other => {
            return Err(Error::validation(format!(
                "Unsupported logout scope {other:?}"
            )));
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Admin endpoints answer a `service_role` (or `supabase_admin`) token
/// only: the one the gateway mints for a secret key, or a JWT signed with
/// the project's secret.
pub(crate) fn require_admin(p: &Project, headers: &HeaderMap) -> Result<()> {
    match bearer_claims(p, headers)?.role() {
        Some("service_role" | "supabase_admin") => Ok(()),
        _ => Err(Error::new(403, "not_admin", "User not allowed")),
    }
}

/// `page` and `per_page`, which clients send empty when unset.
#[derive(Debug, Deserialize)]
struct PageQuery {
    page: Option<String>,
    per_page: Option<String>,
}

fn number(v: Option<&str>, default: i64) -> i64 {
    v.and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

async fn admin_list_users(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response> {
    require_admin(&p, &headers)?;
    let page = number(q.page.as_deref(), 1).max(1);
    let per_page = number(q.per_page.as_deref(), 50).clamp(1, 1000);
    let client = auth.client(&p).await?;
    let (users, total) = store::list_users(&client, page, per_page).await?;
    let mut response = Json(json!({"users": users, "aud": "authenticated"})).into_response();
    let h = response.headers_mut();
    h.insert("x-total-count", total.into());
    // GoTrue's pagination links.
    let last = ((total + per_page - 1) / per_page).max(1);
    let mut links = Vec::new();
    if page < last {
        links.push(format!(
            "</admin/users?page={}&per_page={per_page}>; rel=\"next\"",
            page + 1
        ));
    }
    links.push(format!(
        "</admin/users?page={last}&per_page={per_page}>; rel=\"last\""
    ));
    if let Ok(v) = links.join(", ").parse() {
        h.insert(header::LINK, v);
    }
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
struct AdminUserBody {
    email: Option<String>,
    password: Option<String>,
    #[serde(default)]
    email_confirm: bool,
    user_metadata: Option<Value>,
    app_metadata: Option<Value>,
    ban_duration: Option<String>,
    #[serde(default)]
    should_soft_delete: bool,
}

pub(crate) fn object(field: &str, v: Option<Value>) -> Result<Option<Value>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(o @ Value::Object(_)) => Ok(Some(o)),
        Some(_) => Err(Error::validation(format!("{field} must be an object"))),
    }
}

/// A ban duration as GoTrue reads it (Go's `300ms`, `1h30m`, `24h`), in
/// whole seconds; `none` lifts a ban.
fn ban_seconds(d: &str) -> Result<Option<i64>> {
    if d == "none" {
        return Ok(None);
    }
    let invalid = || Error::validation(format!("invalid format for ban duration: {d:?}"));
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = d.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = number.parse().map_err(|_| invalid())?;
        number.clear();
        total += n * match unit.as_str() {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
    }
    if !number.is_empty() || total <= 0.0 {
        return Err(invalid());
    }
    Ok(Some(total.ceil() as i64))
}

/// A user id from a path: a UUID, checked before it reaches a cast.
pub(crate) fn user_id(id: &str) -> Result<&str> {
    let ok = id.len() == 36
        && id.chars().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if ok { Ok(id) } else { Err(user_not_found()) }
}

pub(crate) fn user_not_found() -> Error {
    Error::new(404, "user_not_found", "User not found")
}

pub(crate) fn email_exists() -> Error {
    Error::new(
        422,
        "email_exists",
        "A user with this email address has already been registered",
    )
}

async fn optional_hash(p: &Project, password: Option<String>) -> Result<Option<String>> {
    match password {
        Some(password) => {
            check_password(p, &password)?;
            Ok(Some(hash_password(password).await?))
        }
        None => Ok(None),
    }
}

async fn admin_create_user(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Body(body): Body<AdminUserBody>,
) -> Result<Response> {
    require_admin(&p, &headers)?;
    let email = body
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| Error::validation("Unable to validate email address: invalid format"))?;
    check_email(email)?;
    let hash = optional_hash(&p, body.password).await?;
    let metadata = object("user_metadata", body.user_metadata)?.unwrap_or_else(|| json!({}));
    let app_metadata = object("app_metadata", body.app_metadata)?;
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    if store::user_by_email(&tx, email).await?.is_some() {
        return Err(email_exists());
    }
    let new = store::NewUser {
        email: Some(email),
        phone: None,
        password_hash: hash.as_deref(),
        user_metadata: &metadata,
        confirmed: body.email_confirm,
        anonymous: false,
        provider: None,
    };
    let user = store::insert_user(&tx, &new).await?;
    if app_metadata.is_some() {
        let change = store::AdminChange {
            app_metadata: app_metadata.as_ref(),
            ..store::AdminChange::default()
        };
        store::admin_update(&tx, &user.id, &change).await?;
    }
    let user = store::user_by_id(&tx, &user.id)
        .await?
        .ok_or_else(user_not_found)?;
    tx.commit().await?;
    Ok(Json(user.json).into_response())
}

async fn admin_get_user(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    require_admin(&p, &headers)?;
    let client = auth.client(&p).await?;
    let user = store::user_by_id(&client, user_id(&id)?)
        .await?
        .ok_or_else(user_not_found)?;
    Ok(Json(user.json).into_response())
}

async fn admin_update_user(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body<AdminUserBody>,
) -> Result<Response> {
    require_admin(&p, &headers)?;
    let id = user_id(&id)?;
    if let Some(email) = body.email.as_deref() {
        check_email(email)?;
    }
    let hash = optional_hash(&p, body.password).await?;
    let user_metadata = object("user_metadata", body.user_metadata)?;
    let app_metadata = object("app_metadata", body.app_metadata)?;
    let ban = body.ban_duration.as_deref().map(ban_seconds).transpose()?;
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    store::user_by_id(&tx, id)
        .await?
        .ok_or_else(user_not_found)?;
    if let Some(email) = body.email.as_deref()
        && store::user_by_email(&tx, email)
            .await?
            .is_some_and(|u| u.id != id)
    {
        return Err(email_exists());
    }
    let change = store::AdminChange {
        email: body.email.as_deref(),
        password_hash: hash.as_deref(),
        user_metadata: user_metadata.as_ref(),
        app_metadata: app_metadata.as_ref(),
        confirm_email: body.email_confirm,
        ban_seconds: ban,
    };
    store::admin_update(&tx, id, &change).await?;
    let user = store::user_by_id(&tx, id)
        .await?
        .ok_or_else(user_not_found)?;
    tx.commit().await?;
    Ok(Json(user.json).into_response())
}

async fn admin_delete_user(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body<AdminUserBody>,
) -> Result<Response> {
    require_admin(&p, &headers)?;
    let id = user_id(&id)?;
    let soft = body.should_soft_delete;
    let client = auth.client(&p).await?;
    if !store::delete_user(&client, id, soft).await? {
        return Err(user_not_found());
    }
    Ok(Json(json!({})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_durations_read_as_go_writes_them() {
        assert_eq!(ban_seconds("24h").unwrap(), Some(86_400));
        assert_eq!(ban_seconds("1h30m").unwrap(), Some(5_400));
        assert_eq!(ban_seconds("1500ms").unwrap(), Some(2));
        assert_eq!(ban_seconds("none").unwrap(), None);
        for bad in ["", "10", "3d", "h", "-1h"] {
            assert!(ban_seconds(bad).is_err(), "{bad}");
        }
        assert!(user_id("not-a-uuid").is_err());
        assert!(user_id("123e4567-e89b-12d3-a456-426614174000").is_ok());
    }

    #[test]
    fn addresses() {
        assert!(valid_email("ann@example.com"));
        assert!(!valid_email("ann@localhost"));
        assert!(!valid_email("ann example@x.io"));
        assert!(!valid_email("@x.io"));
    }

    #[test]
    fn the_dummy_hash_is_bcrypt_and_matches_nothing_likely() {
        assert!(!bcrypt::verify("", DUMMY_HASH).unwrap());
        assert!(!bcrypt::verify("password", DUMMY_HASH).unwrap());
    }
}
