//! Social sign-in through external OAuth 2.0 / OpenID Connect providers,
//! as GoTrue does it: `GET /authorize?provider=...` sends the browser to
//! the provider, `GET /callback` takes its code back, exchanges it (with
//! the app's client secret and a PKCE verifier of our own), reads who the
//! user is, finds or creates the user and their identity, and redirects
//! to the app with a session (implicit flow) or a code for
//! `exchangeCodeForSession` (PKCE flow).
//!
//! The `state` parameter is a short-lived JWT signed with the project's
//! secret; the PKCE verifier sent to the provider is derived from it with
//! that secret, so it never travels through the browser.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use crate::api::{self, Result};
use crate::links::{self, Pkce};
use crate::store;
use crate::{Auth, AuthProject, Error, Project};

/// How long a sign-in may stay at the provider.
const STATE_TTL: i64 = 600;

/// A provider's endpoints.
#[derive(Debug)]
pub(crate) struct Endpoints {
    authorize: String,
    token: String,
    userinfo: String,
}

pub(crate) fn discovery_cache() -> moka::sync::Cache<String, Arc<Endpoints>> {
    moka::sync::Cache::builder()
        .max_capacity(1_000)
        .time_to_live(Duration::from_secs(3600))
        .build()
}

pub(crate) fn routes(router: Router<Auth>) -> Router<Auth> {
    router
        .route("/authorize", get(authorize))
        .route("/callback", get(callback).post(callback_form))
}

/// A provider as a project configured it.
struct Provider {
    name: &'static str,
    client_id: String,
    secret: String,
    scopes: &'static str,
    /// GitHub's REST API (its user and e-mails), or OpenID's userinfo.
    github_api: Option<String>,
    /// GitHub's endpoints, or the issuer whose discovery has them.
    github_base: Option<String>,
    issuer: Option<String>,
}

fn provider(p: &AuthProject, name: &str) -> Result<Provider> {
    let unsupported = || {
        Error::validation(format!(
            "Unsupported provider: provider {name} could not be found"
        ))
    };
    let name = supa_core::OAUTH_PROVIDERS
        .into_iter()
        .find(|n| *n == name)
        .ok_or_else(unsupported)?;
    let Some((true, Some(client_id), url)) = p.settings.provider(name) else {
        return Err(Error::new(
            400,
            "provider_disabled",
            "Unsupported provider: Provider is not enabled",
        ));
    };
    let secret = p
        .auth_secrets
        .get(&format!("external_{name}_secret"))
        .map(|s| s.expose().clone())
        .unwrap_or_default();
    let url = url.map(|u| u.trim_end_matches('/').to_owned());
    Ok(match name {
        "github" => Provider {
            name,
            client_id: client_id.to_owned(),
            secret,
            scopes: "user:email",
            // GitHub Enterprise serves its API under /api/v3.
            github_api: Some(url.as_ref().map_or_else(
                || "https://api.github.com".to_owned(),
                |u| format!("{u}/api/v3"),
            )),
            github_base: Some(url.unwrap_or_else(|| "https://github.com".into())),
            issuer: None,
        },
        _ => Provider {
            name,
            client_id: client_id.to_owned(),
            secret,
            scopes: "openid email profile",
            github_api: None,
            github_base: None,
            issuer: Some(url.unwrap_or_else(|| "https://accounts.google.com".into())),
        },
    })
}

impl Provider {
    async fn endpoints(&self, auth: &Auth) -> Result<Arc<Endpoints>> {
        if let Some(base) = &self.github_base {
            return Ok(Arc::new(Endpoints {
                authorize: format!("{base}/login/oauth/authorize"),
                token: format!("{base}/login/oauth/access_token"),
                userinfo: format!("{}/user", self.github_api.as_deref().unwrap_or(base)),
            }));
        }
        let issuer = self.issuer.clone().unwrap_or_default();
        if let Some(found) = auth.discovery.get(&issuer) {
            return Ok(found);
        }
        let url = format!("{issuer}/.well-known/openid-configuration");
        let doc: Value = auth
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| provider_error(format!("discovery at {url}: {e}")))?
            .json()
            .await
            .map_err(|e| provider_error(format!("discovery at {url}: {e}")))?;
        let field = |k: &str| {
            doc[k]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| provider_error(format!("discovery at {url} has no {k}")))
        };
        let endpoints = Arc::new(Endpoints {
            authorize: field("authorization_endpoint")?,
            token: field("token_endpoint")?,
            userinfo: field("userinfo_endpoint")?,
        });
        auth.discovery.insert(issuer, endpoints.clone());
        Ok(endpoints)
    }
}

/// A provider that failed to answer: logged, and a 500-free error for
/// the user.
fn provider_error(cause: String) -> Error {
    crate::error::log(&cause);
    Error::new(
        502,
        "unexpected_failure",
        "Error communicating with the OAuth provider",
    )
}

/// The PKCE verifier sent to the provider for the sign-in of `nonce`.
fn provider_verifier(p: &AuthProject, nonce: &str) -> String {
    URL_SAFE_NO_PAD.encode(p.jwt_key.derive(format!("oauth-pkce:{nonce}").as_bytes()))
}

#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    provider: Option<String>,
    redirect_to: Option<String>,
    scopes: Option<String>,
    #[serde(flatten)]
    pkce: Pkce,
}

/// `GET /authorize`: off to the provider.
async fn authorize(
    State(auth): State<Auth>,
    p: Project,
    Query(q): Query<AuthorizeQuery>,
) -> Result<Response> {
    let name = q.provider.unwrap_or_default();
    let provider = provider(&p, &name)?;
    let redirect_to = links::redirect_target(&p, q.redirect_to.as_deref());
    let flow = match q.pkce.get()? {
        Some((challenge, method)) => {
            let client = auth.client(&p).await?;
            let (id, _) = store::insert_flow_state(
                &client,
                None,
                &challenge,
                &method,
                provider.name,
                "oauth",
            )
            .await?;
            Some(id)
        }
        None => None,
    };
    let endpoints = provider.endpoints(&auth).await?;
    let nonce = api::random_token();
    let mut claims = Map::new();
    claims.insert("exp".into(), json!(supa_keys::unix_now() + STATE_TTL));
    claims.insert("provider".into(), json!(provider.name));
    claims.insert("referrer".into(), json!(redirect_to));
    claims.insert("flow_state_id".into(), json!(flow));
    claims.insert("nonce".into(), json!(nonce));
    let state = supa_keys::sign_claims(&p.jwt_key, &claims);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(
        provider_verifier(&p, &nonce).as_bytes(),
    ));
    let scopes = match q.scopes.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(extra) => format!("{} {extra}", provider.scopes),
        None => provider.scopes.to_owned(),
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &provider.client_id)
        .append_pair("redirect_uri", &p.callback_url)
        .append_pair("response_type", "code")
        .append_pair("scope", &scopes)
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let sep = if endpoints.authorize.contains('?') {
        '&'
    } else {
        '?'
    };
    let location = format!("{}{sep}{query}", endpoints.authorize);
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

#[derive(Debug, Default, Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Providers that answer with `response_mode=form_post` (Apple) POST the
/// same parameters as a form.
async fn callback_form(State(auth): State<Auth>, p: Project, body: axum::body::Bytes) -> Response {
    let mut params = CallbackParams::default();
    for (k, v) in form_urlencoded::parse(&body).into_owned() {
        match k.as_str() {
            "code" => params.code = Some(v),
            "state" => params.state = Some(v),
            "error" => params.error = Some(v),
            "error_description" => params.error_description = Some(v),
            _ => {}
        }
    }
    finish(auth, p, params).await
}

async fn callback(
    State(auth): State<Auth>,
    p: Project,
    Query(params): Query<CallbackParams>,
) -> Response {
    finish(auth, p, params).await
}

/// What a sign-in ends with, before it becomes a redirect.
enum Outcome {
    Session(Value),
    Code(String),
}

/// `/callback`: always a redirect (to the app, or to the site with the
/// error), never a page of JSON the browser would show.
async fn finish(auth: Auth, p: Project, params: CallbackParams) -> Response {
    let state = params
        .state
        .as_deref()
        .and_then(|s| supa_keys::verify(&p.jwt_key, s, supa_keys::unix_now()).ok());
    let Some(state) = state else {
        let e = Error::new(400, "bad_oauth_state", "OAuth callback with invalid state");
        return redirect_error(&p.settings.site_url, &e, false);
    };
    let referrer = state
        .get("referrer")
        .and_then(Value::as_str)
        .map_or_else(|| p.settings.site_url.clone(), str::to_owned);
    let pkce = state.get("flow_state_id").is_some_and(|f| !f.is_null());
    if let Some(error) = params.error {
        let description = params.error_description.unwrap_or_else(|| error.clone());
        let e = Error::new(400, "oauth_provider_error", description);
        return redirect_error(&referrer, &e, pkce);
    }
    match sign_in(&auth, &p, &state, params.code.unwrap_or_default()).await {
        Ok(Outcome::Session(session)) => {
            let mut fragment = form_urlencoded::Serializer::new(String::new());
            for key in [
                "access_token",
                "expires_at",
                "expires_in",
                "provider_token",
                "refresh_token",
                "token_type",
            ] {
                let value = match &session[key] {
                    Value::String(v) => v.clone(),
                    Value::Null => continue,
                    other => other.to_string(),
                };
                fragment.append_pair(key, &value);
            }
            let base = referrer
                .split_once('#')
                .map_or(referrer.as_str(), |(u, _)| u);
            redirect(format!("{base}#{}", fragment.finish()))
        }
        Ok(Outcome::Code(code)) => {
            let base = referrer
                .split_once('#')
                .map_or(referrer.as_str(), |(u, _)| u);
            let sep = if base.contains('?') { '&' } else { '?' };
            let pair = form_urlencoded::Serializer::new(String::new())
                .append_pair("code", &code)
                .finish();
            redirect(format!("{base}{sep}{pair}"))
        }
        Err(e) => redirect_error(&referrer, &e, pkce),
    }
}

fn redirect(location: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// GoTrue's error redirect: in the fragment for the implicit flow, in the
/// query for PKCE.
fn redirect_error(target: &str, e: &Error, pkce: bool) -> Response {
    let error = if e.status >= 500 {
        "server_error"
    } else {
        "access_denied"
    };
    let pairs = form_urlencoded::Serializer::new(String::new())
        .append_pair("error", error)
        .append_pair("error_code", e.code)
        .append_pair("error_description", &e.msg)
        .finish();
    let base = target.split_once('#').map_or(target, |(u, _)| u);
    if pkce {
        let sep = if base.contains('?') { '&' } else { '?' };
        redirect(format!("{base}{sep}{pairs}"))
    } else {
        redirect(format!("{base}#{pairs}"))
    }
}

/// Who the provider says the user is.
struct ProviderUser {
    id: String,
    email: Option<String>,
    email_verified: bool,
    /// GoTrue's identity data.
    data: Value,
}

async fn sign_in(
    auth: &Auth,
    p: &Project,
    state: &supa_keys::Claims,
    code: String,
) -> Result<Outcome> {
    let name = state.get("provider").and_then(Value::as_str).unwrap_or("");
    let provider = provider(p, name)?;
    if code.is_empty() {
        return Err(Error::new(
            400,
            "bad_oauth_callback",
            "OAuth callback without a code",
        ));
    }
    let endpoints = provider.endpoints(auth).await?;
    let nonce = state.get("nonce").and_then(Value::as_str).unwrap_or("");
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", &p.callback_url)
        .append_pair("client_id", &provider.client_id)
        .append_pair("client_secret", &provider.secret)
        .append_pair("code_verifier", &provider_verifier(p, nonce))
        .finish();
    let answer: Value = auth
        .http
        .post(&endpoints.token)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .map_err(|e| provider_error(format!("{} token endpoint: {e}", provider.name)))?
        .json()
        .await
        .map_err(|e| provider_error(format!("{} token endpoint: {e}", provider.name)))?;
    let Some(access_token) = answer["access_token"].as_str().map(str::to_owned) else {
        // The provider refused the code (expired, replayed, wrong secret).
        let why = answer["error_description"]
            .as_str()
            .or_else(|| answer["error"].as_str())
            .unwrap_or("no access token");
        return Err(Error::new(
            400,
            "oauth_provider_error",
            format!(
                "Error getting the user's token from {}: {why}",
                provider.name
            ),
        ));
    };
    let who = user_info(auth, &provider, &endpoints, &access_token).await?;
    let mut client = auth.client(p).await?;
    let tx = client.transaction().await?;
    let user = match store::identity_user(&tx, provider.name, &who.id).await? {
        Some(user) => user,
        None => {
            // A verified address the project knows: the same person.
            let existing = match (&who.email, who.email_verified) {
                (Some(email), true) => store::user_by_email(&tx, email).await?,
                _ => None,
            };
            match existing {
                Some(u) => u.id,
                None => {
                    if p.settings.disable_signup {
                        return Err(api::signup_disabled());
                    }
                    let new = store::NewUser {
                        email: who.email.as_deref(),
                        phone: None,
                        password_hash: None,
                        user_metadata: &who.data,
                        confirmed: who.email_verified || p.settings.mailer_autoconfirm,
                        anonymous: false,
                        provider: Some((provider.name, &who.id, &who.data)),
                    };
                    store::insert_user(&tx, &new).await?.id
                }
            }
        }
    };
    store::link_identity(&tx, &user, provider.name, &who.id, &who.data).await?;
    let row = store::user_by_id(&tx, &user)
        .await?
        .ok_or_else(api::user_not_found)?;
    if row.banned {
        return Err(Error::new(403, "user_banned", "User is banned"));
    }
    if !row.confirmed && who.email.is_some() {
        return Err(Error::new(
            403,
            "provider_email_needs_verification",
            format!(
                "Unverified email with {}. Verify the email with {} first",
                provider.name, provider.name
            ),
        ));
    }
    let flow = state.get("flow_state_id").and_then(Value::as_str);
    let outcome = match flow {
        Some(flow) => Outcome::Code(
            store::complete_flow(&tx, flow, &user, &access_token)
                .await?
                .ok_or_else(|| {
                    Error::new(
                        404,
                        "flow_state_not_found",
                        "invalid flow state, no valid flow state found",
                    )
                })?,
        ),
        None => {
            let mut session = api::signed_in(&tx, p, &user, "oauth").await?;
            session["provider_token"] = json!(access_token);
            Outcome::Session(session)
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

async fn get_json(auth: &Auth, provider: &Provider, url: &str, token: &str) -> Result<Value> {
    auth.http
        .get(url)
        .bearer_auth(token)
        .header(header::ACCEPT, "application/json")
        // GitHub refuses requests without one.
        .header(header::USER_AGENT, "supa-auth")
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| provider_error(format!("{} {url}: {e}", provider.name)))?
        .json()
        .await
        .map_err(|e| provider_error(format!("{} {url}: {e}", provider.name)))
}

async fn user_info(
    auth: &Auth,
    provider: &Provider,
    endpoints: &Endpoints,
    token: &str,
) -> Result<ProviderUser> {
    let info = get_json(auth, provider, &endpoints.userinfo, token).await?;
    let text = |v: &Value| v.as_str().map(str::to_owned);
    if let Some(api) = &provider.github_api {
        let id = match &info["id"] {
            Value::Number(n) => n.to_string(),
            v => text(v).unwrap_or_default(),
        };
        // The primary verified address, from the e-mails API.
        let emails = get_json(auth, provider, &format!("{api}/user/emails"), token).await?;
        let primary = emails.as_array().and_then(|list| {
            list.iter()
                .find(|e| e["primary"] == json!(true) && e["verified"] == json!(true))
                .or_else(|| list.iter().find(|e| e["verified"] == json!(true)))
        });
        let email = primary
            .and_then(|e| text(&e["email"]))
            .or_else(|| text(&info["email"]));
        let verified = primary.is_some();
        let data = json!({
            "iss": api, "sub": id, "provider_id": id,
            "name": info["name"], "full_name": info["name"],
            "user_name": info["login"], "preferred_username": info["login"],
            "avatar_url": info["avatar_url"],
            "email": email, "email_verified": verified, "phone_verified": false,
        });
        return Ok(ProviderUser {
            id,
            email,
            email_verified: verified,
            data,
        });
    }
    let id = text(&info["sub"])
        .filter(|s| !s.is_empty())
        .ok_or_else(|| provider_error(format!("{} userinfo has no sub", provider.name)))?;
    let email = text(&info["email"]).filter(|e| !e.is_empty());
    let verified = matches!(&info["email_verified"], Value::Bool(true))
        || info["email_verified"].as_str() == Some("true");
    let data = json!({
        "iss": provider.issuer, "sub": id, "provider_id": id,
        "name": info["name"], "full_name": info["name"],
        "preferred_username": info["preferred_username"],
        "avatar_url": info["picture"], "picture": info["picture"],
        "email": email, "email_verified": verified, "phone_verified": false,
    });
    Ok(ProviderUser {
        id,
        email,
        email_verified: verified,
        data,
    })
}
