//! The project as an OAuth 2.1 authorization server for third-party
//! apps, as GoTrue offers it when `oauth_server_enabled`: admins register
//! clients (`/admin/oauth/clients`), a client sends the user to
//! `/oauth/authorize` (PKCE S256 required, the redirect URI exactly as
//! registered), the app's consent page (`oauth_server_authorization_path`
//! on the site URL) shows `/oauth/authorizations/{id}` and posts the
//! user's decision to `.../consent`, and the client exchanges the code at
//! `/oauth/token` for a session of that user, its access token naming the
//! client (`client_id`); refresh tokens rotate as any other. Users list
//! and revoke what they granted (`/user/oauth/grants`).
//!
//! Client secrets and codes are kept as SHA-256 hashes and compared in
//! constant time; a code is single-use and lives ten minutes.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use deadpool_postgres::GenericClient;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::api::{self, Body, Result};
use crate::{Auth, Error, Project};

/// An authorization request waits this long for consent and exchange.
const AUTHORIZATION_TTL: i64 = 600;

pub(crate) fn routes(router: Router<Auth>) -> Router<Auth> {
    router
        .route("/admin/oauth/clients", get(admin_list).post(admin_create))
        .route(
            "/admin/oauth/clients/{id}",
            get(admin_get).put(admin_update).delete(admin_delete),
        )
        .route(
            "/admin/oauth/clients/{id}/regenerate_secret",
            post(admin_regenerate),
        )
        .route("/oauth/clients/register", post(register))
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/authorizations/{id}", get(authorization))
        .route("/oauth/authorizations/{id}/consent", post(consent))
        .route("/oauth/token", post(token))
        .route("/user/oauth/grants", get(grants).delete(revoke_grant))
        .route("/.well-known/oauth-authorization-server", get(metadata))
}

fn enabled(p: &Project) -> Result<()> {
    if p.settings.oauth_server_enabled {
        Ok(())
    } else {
        Err(Error::new(
            404,
            "oauth_server_disabled",
            "OAuth 2.1 server is disabled",
        ))
    }
}

fn sha256_hex(s: &str) -> String {
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

const CLIENT_JSON: &str = "jsonb_build_object(
  'client_id', c.id, 'client_name', c.client_name, 'client_type', c.client_type,
  'token_endpoint_auth_method', c.token_endpoint_auth_method,
  'registration_type', c.registration_type, 'client_uri', c.client_uri, 'logo_uri', c.logo_uri,
  'redirect_uris', to_jsonb(c.redirect_uris), 'grant_types', to_jsonb(c.grant_types),
  'response_types', to_jsonb(c.response_types), 'scope', c.scope,
  'created_at', c.created_at, 'updated_at', c.updated_at)::text";

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_default()
}

async fn client_json(db: &impl GenericClient, id: &str) -> Result<Option<Value>> {
    let row = db
        .query_opt(
            &format!(
                "SELECT {CLIENT_JSON} FROM auth.supa_oauth_clients c WHERE c.id = $1::text::uuid"
            ),
            &[&id],
        )
        .await?;
    Ok(row.map(|r| parse(r.get(0))))
}

fn client_not_found() -> Error {
    Error::new(404, "oauth_client_not_found", "OAuth client not found")
}

#[derive(Debug, Default, Deserialize)]
struct ClientBody {
    client_name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
    client_type: Option<String>,
    token_endpoint_auth_method: Option<String>,
}

/// A redirect URI a client may register: absolute, no fragment, HTTPS
/// except on this machine (native apps' loopback, tests).
fn redirect_uri_ok(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.fragment().is_none()
            && match u.scheme() {
                "https" => u.host_str().is_some(),
                "http" => matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
                // Custom schemes of native apps (`com.example.app:/cb`).
                s => s.contains('.'),
            }
    })
}

/// Registers a client; its secret is shown once, in the answer.
async fn create_client(
    auth: &Auth,
    p: &Project,
    body: ClientBody,
    registration: &str,
) -> Result<Response> {
    let redirect_uris = body.redirect_uris.unwrap_or_default();
    if redirect_uris.is_empty() || !redirect_uris.iter().all(|u| redirect_uri_ok(u)) {
        return Err(Error::validation(
            "redirect_uris must be absolute URIs: https, or http on localhost",
        ));
    }
    let grant_types = body
        .grant_types
        .unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]);
    if grant_types
        .iter()
        .any(|g| g != "authorization_code" && g != "refresh_token")
    {
        return Err(Error::validation(
            "grant_types may be authorization_code and refresh_token",
        ));
    }
    let response_types = body.response_types.unwrap_or_else(|| vec!["code".into()]);
    if response_types.iter().any(|r| r != "code") {
        return Err(Error::validation("response_types may only be code"));
    }
    let method = match (
        body.token_endpoint_auth_method.as_deref(),
        body.client_type.as_deref(),
    ) {
        (Some(m @ ("none" | "client_secret_basic" | "client_secret_post")), _) => m,
        (Some(other), _) => {
            return Err(Error::validation(format!(
                "unsupported token_endpoint_auth_method {other:?}"
            )));
        }
        (None, Some("public")) => "none",
        (None, Some("confidential") | None) => "client_secret_basic",
        (None, Some(other)) => {
            return Err(Error::validation(format!(
                "unsupported client_type {other:?}"
            )));
        }
    };
    let client_type = if method == "none" {
        "public"
    } else {
        "confidential"
    };
    let secret = (client_type == "confidential").then(secret);
    let db = auth.client(p).await?;
    let row = db
        .query_one(
            "INSERT INTO auth.supa_oauth_clients (id, client_secret_hash, registration_type, client_type,
                 token_endpoint_auth_method, client_name, client_uri, logo_uri, redirect_uris,
                 grant_types, response_types, scope)
             VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             RETURNING id::text",
            &[
                &secret.as_deref().map(sha256_hex),
                &registration,
                &client_type,
                &method,
                &body.client_name,
                &body.client_uri,
                &body.logo_uri,
                &redirect_uris,
                &grant_types,
                &response_types,
                &body.scope,
            ],
        )
        .await?;
    let id: String = row.get(0);
    let mut client = client_json(&db, &id).await?.ok_or_else(client_not_found)?;
    if let Some(secret) = secret {
        client["client_secret"] = json!(secret);
    }
    Ok((StatusCode::CREATED, Json(client)).into_response())
}

async fn admin_create(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Body(body): Body<ClientBody>,
) -> Result<Response> {
    api::require_admin(&p, &headers)?;
    enabled(&p)?;
    create_client(&auth, &p, body, "manual").await
}

/// RFC 7591 dynamic registration, when the project allows it.
async fn register(
    State(auth): State<Auth>,
    p: Project,
    Body(body): Body<ClientBody>,
) -> Result<Response> {
    enabled(&p)?;
    if !p.settings.oauth_server_allow_dynamic_registration {
        return Err(Error::new(
            403,
            "oauth_dynamic_client_registration_disabled",
            "Dynamic client registration is disabled",
        ));
    }
    create_client(&auth, &p, body, "dynamic").await
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    page: Option<String>,
    per_page: Option<String>,
}

async fn admin_list(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response> {
    api::require_admin(&p, &headers)?;
    enabled(&p)?;
    let page = q
        .page
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(1)
        .max(1);
    let per_page = q
        .per_page
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(50)
        .clamp(1, 1000);
    let db = auth.client(&p).await?;
    let rows = db
        .query(
            &format!(
                "SELECT {CLIENT_JSON} FROM auth.supa_oauth_clients c ORDER BY c.created_at, c.id LIMIT $1 OFFSET $2"
            ),
            &[&per_page, &((page - 1) * per_page)],
        )
        .await?;
    let total: i64 = db
        .query_one("SELECT count(*) FROM auth.supa_oauth_clients", &[])
        .await?
        .get(0);
    let clients: Vec<Value> = rows.iter().map(|r| parse(r.get(0))).collect();
    let mut response = Json(json!({"clients": clients, "aud": "authenticated"})).into_response();
    response.headers_mut().insert("x-total-count", total.into());
    let last = ((total + per_page - 1) / per_page).max(1);
    let mut links = Vec::new();
    if page < last {
        links.push(format!(
            "</admin/oauth/clients?page={}&per_page={per_page}>; rel=\"next\"",
            page + 1
        ));
    }
    links.push(format!(
        "</admin/oauth/clients?page={last}&per_page={per_page}>; rel=\"last\""
    ));
    if let Ok(v) = links.join(", ").parse() {
        response.headers_mut().insert(header::LINK, v);
    }
    Ok(response)
}

async fn admin_get(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    api::require_admin(&p, &headers)?;
    enabled(&p)?;
    let id = api::user_id(&id).map_err(|_| client_not_found())?;
    let db = auth.client(&p).await?;
    Ok(Json(client_json(&db, id).await?.ok_or_else(client_not_found)?).into_response())
}

async fn admin_update(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body<ClientBody>,
) -> Result<Response> {
    api::require_admin(&p, &headers)?;
    enabled(&p)?;
    let id = api::user_id(&id).map_err(|_| client_not_found())?;
    if let Some(uris) = &body.redirect_uris
        && (uris.is_empty() || !uris.iter().all(|u| redirect_uri_ok(u)))
    {
        return Err(Error::validation(
            "redirect_uris must be absolute URIs: https, or http on localhost",
        ));
    }
    let db = auth.client(&p).await?;
    let n = db
        .execute(
            "UPDATE auth.supa_oauth_clients SET
               client_name = coalesce($2, client_name), client_uri = coalesce($3, client_uri),
               logo_uri = coalesce($4, logo_uri), redirect_uris = coalesce($5, redirect_uris),
               grant_types = coalesce($6, grant_types), updated_at = now()
             WHERE id = $1::text::uuid",
            &[
                &id,
                &body.client_name,
                &body.client_uri,
                &body.logo_uri,
                &body.redirect_uris,
                &body.grant_types,
            ],
        )
        .await?;
    if n == 0 {
        return Err(client_not_found());
    }
    Ok(Json(client_json(&db, id).await?.ok_or_else(client_not_found)?).into_response())
}

async fn admin_delete(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    api::require_admin(&p, &headers)?;
    enabled(&p)?;
    let id = api::user_id(&id).map_err(|_| client_not_found())?;
    let db = auth.client(&p).await?;
    // Its sessions end with it.
    db.execute(
        "DELETE FROM auth.sessions WHERE id IN (SELECT session_id FROM auth.supa_oauth_sessions
                                                WHERE client_id = $1::text::uuid)",
        &[&id],
    )
    .await?;
    let n = db
        .execute(
            "DELETE FROM auth.supa_oauth_clients WHERE id = $1::text::uuid",
            &[&id],
        )
        .await?;
    if n == 0 {
        return Err(client_not_found());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn admin_regenerate(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    api::require_admin(&p, &headers)?;
    enabled(&p)?;
    let id = api::user_id(&id).map_err(|_| client_not_found())?;
    let secret = secret();
    let db = auth.client(&p).await?;
    let n = db
        .execute(
            "UPDATE auth.supa_oauth_clients SET client_secret_hash = $2, updated_at = now()
             WHERE id = $1::text::uuid AND client_type = 'confidential'",
            &[&id, &sha256_hex(&secret)],
        )
        .await?;
    if n == 0 {
        return Err(client_not_found());
    }
    let mut client = client_json(&db, id).await?.ok_or_else(client_not_found)?;
    client["client_secret"] = json!(secret);
    Ok(Json(client).into_response())
}

#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

fn with_params(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", query.finish())
}

fn found(location: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// `GET /oauth/authorize`: a valid request goes to the app's consent
/// page; an unknown client or redirect URI is answered here (never
/// redirected to an unverified URI), other errors go back to the client.
async fn authorize(
    State(auth): State<Auth>,
    p: Project,
    Query(q): Query<AuthorizeQuery>,
) -> Result<Response> {
    enabled(&p)?;
    let client_id = q.client_id.as_deref().unwrap_or("");
    let bad_client = || Error::new(400, "invalid_client", "Unknown OAuth client");
    let client_id = api::user_id(client_id).map_err(|_| bad_client())?;
    let db = auth.client(&p).await?;
    let client = client_json(&db, client_id).await?.ok_or_else(bad_client)?;
    let registered: Vec<&str> = client["redirect_uris"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let redirect_uri = match q.redirect_uri.as_deref() {
        Some(uri) if registered.contains(&uri) => uri.to_owned(),
        None if registered.len() == 1 => registered[0].to_owned(),
        _ => {
            return Err(Error::new(
                400,
                "invalid_redirect_uri",
                "redirect_uri is not registered for this client",
            ));
        }
    };
    let state = q.state.clone().unwrap_or_default();
    let refuse = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if !state.is_empty() {
            pairs.push(("state", &state));
        }
        Ok(found(with_params(&redirect_uri, &pairs)))
    };
    if q.response_type.as_deref() != Some("code") {
        return refuse("unsupported_response_type", "response_type must be code");
    }
    let challenge = q.code_challenge.clone().unwrap_or_default();
    if q.code_challenge_method
        .as_deref()
        .map(str::to_uppercase)
        .as_deref()
        != Some("S256")
        || !(43..=128).contains(&challenge.len())
    {
        return refuse(
            "invalid_request",
            "PKCE with code_challenge_method S256 is required",
        );
    }
    let scope = q
        .scope
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "email".into());
    let row = db
        .query_one(
            "INSERT INTO auth.supa_oauth_authorizations (id, client_id, redirect_uri, scope, state, code_challenge)
             VALUES (gen_random_uuid(), $1::text::uuid, $2, $3, $4, $5) RETURNING id::text",
            &[&client_id, &redirect_uri, &scope, &q.state, &challenge],
        )
        .await?;
    let id: String = row.get(0);
    let consent_page = format!(
        "{}{}",
        p.settings.site_url.trim_end_matches('/'),
        p.settings.oauth_server_authorization_path
    );
    Ok(found(with_params(
        &consent_page,
        &[("authorization_id", &id)],
    )))
}

/// A pending authorization, claimed by the signed-in user who first
/// looks at it: `(client_id, redirect_uri, scope, state)`.
async fn pending(
    db: &impl GenericClient,
    id: &str,
    user: &str,
) -> Result<(String, String, String, Option<String>)> {
    let gone = || {
        Error::new(
            404,
            "oauth_authorization_not_found",
            "OAuth authorization not found or expired",
        )
    };
    let id = api::user_id(id).map_err(|_| gone())?;
    let row = db
        .query_opt(
            "UPDATE auth.supa_oauth_authorizations SET user_id = $2::text::uuid
             WHERE id = $1::text::uuid AND status = 'pending'
               AND (user_id IS NULL OR user_id = $2::text::uuid)
               AND created_at > now() - make_interval(secs => $3)
             RETURNING client_id::text, redirect_uri, scope, state",
            &[&id, &user, &(AUTHORIZATION_TTL as f64)],
        )
        .await?
        .ok_or_else(gone)?;
    Ok((row.get(0), row.get(1), row.get(2), row.get(3)))
}

/// Approves an authorization: a single-use code, and the client's URL
/// carrying it.
async fn approve(
    db: &impl GenericClient,
    id: &str,
    user: &str,
    client: &str,
    scope: &str,
    redirect_uri: &str,
    state: Option<&str>,
) -> Result<String> {
    let code = secret();
    db.execute(
        "UPDATE auth.supa_oauth_authorizations SET status = 'approved', code_hash = $2, approved_at = now()
         WHERE id = $1::text::uuid",
        &[&id, &sha256_hex(&code)],
    )
    .await?;
    db.execute(
        "INSERT INTO auth.supa_oauth_consents (user_id, client_id, scopes) VALUES ($1::text::uuid, $2::text::uuid, $3)
         ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = now()",
        &[&user, &client, &scope],
    )
    .await?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = state.filter(|s| !s.is_empty()) {
        pairs.push(("state", state));
    }
    Ok(with_params(redirect_uri, &pairs))
}

/// `GET /oauth/authorizations/{id}`: what the consent page shows, or the
/// client's URL at once when the user already granted these scopes.
async fn authorization(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    enabled(&p)?;
    let (sub, session) = api::caller(&p, &headers)?;
    let mut db = auth.client(&p).await?;
    let tx = db.transaction().await?;
    let user = api::current_user(&tx, &sub, session.as_deref()).await?;
    let (client_id, redirect_uri, scope, state) = pending(&tx, &id, &sub).await?;
    let granted: Option<String> = tx
        .query_opt(
            "SELECT scopes FROM auth.supa_oauth_consents WHERE user_id = $1::text::uuid AND client_id = $2::text::uuid",
            &[&sub, &client_id],
        )
        .await?
        .map(|r| r.get(0));
    let covered = granted.is_some_and(|g| {
        let have: Vec<&str> = g.split_whitespace().collect();
        scope.split_whitespace().all(|s| have.contains(&s))
    });
    let answer = if covered {
        let url = approve(
            &tx,
            &id,
            &sub,
            &client_id,
            &scope,
            &redirect_uri,
            state.as_deref(),
        )
        .await?;
        json!({ "redirect_url": url })
    } else {
        let client = client_json(&tx, &client_id)
            .await?
            .ok_or_else(client_not_found)?;
        json!({
            "authorization_id": id,
            "redirect_uri": redirect_uri,
            "client": {"id": client_id, "name": client["client_name"], "uri": client["client_uri"],
                       "logo_uri": client["logo_uri"]},
            "user": {"id": sub, "email": user.json["email"]},
            "scope": scope,
        })
    };
    tx.commit().await?;
    Ok(Json(answer).into_response())
}

#[derive(Debug, Deserialize)]
struct ConsentBody {
    action: Option<String>,
}

/// `POST /oauth/authorizations/{id}/consent`: the user's decision; the
/// answer is where the browser goes next.
async fn consent(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body<ConsentBody>,
) -> Result<Response> {
    enabled(&p)?;
    let (sub, session) = api::caller(&p, &headers)?;
    let mut db = auth.client(&p).await?;
    let tx = db.transaction().await?;
    api::current_user(&tx, &sub, session.as_deref()).await?;
    let (client_id, redirect_uri, scope, state) = pending(&tx, &id, &sub).await?;
    let url = match body.action.as_deref() {
        Some("approve") => {
            approve(
                &tx,
                &id,
                &sub,
                &client_id,
                &scope,
                &redirect_uri,
                state.as_deref(),
            )
            .await?
        }
        Some("deny") => {
            tx.execute(
                "UPDATE auth.supa_oauth_authorizations SET status = 'denied' WHERE id = $1::text::uuid",
                &[&id],
            )
            .await?;
            let mut pairs = vec![
                ("error", "access_denied"),
                ("error_description", "The user denied the request"),
            ];
            if let Some(state) = state.as_deref().filter(|s| !s.is_empty()) {
                pairs.push(("state", state));
            }
            with_params(&redirect_uri, &pairs)
        }
        _ => return Err(Error::validation("action must be approve or deny")),
    };
    tx.commit().await?;
    Ok(Json(json!({ "redirect_url": url })).into_response())
}

/// The token endpoint's errors, as RFC 6749 shapes them.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `POST /oauth/token`: the code (with its PKCE verifier) or a refresh
/// token for a session, from an authenticated client.
async fn token(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = enabled(&p) {
        return e.into_response();
    }
    // Forms, as RFC 6749 has them; JSON too.
    let form: std::collections::HashMap<String, String> = if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        serde_json::from_slice::<serde_json::Map<String, Value>>(&body)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
            .collect()
    } else {
        form_urlencoded::parse(&body).into_owned().collect()
    };
    match exchange(&auth, &p, &headers, &form).await {
        Ok(answer) => (
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store")],
            Json(answer),
        )
            .into_response(),
        Err((status, error, description)) => oauth_error(status, error, &description),
    }
}

type TokenError = (StatusCode, &'static str, String);

fn internal(e: impl std::fmt::Display) -> TokenError {
    crate::error::log(&e);
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "Unexpected failure".into(),
    )
}

/// Who the client is: `client_secret_basic` or `_post`, or a public
/// client naming itself.
async fn authenticate_client(
    db: &impl GenericClient,
    headers: &HeaderMap,
    form: &std::collections::HashMap<String, String>,
) -> std::result::Result<String, TokenError> {
    let bad = || {
        (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed".to_owned(),
        )
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let decode = |v: &str| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .ok()
            };
            Some((decode(id)?, decode(secret)?))
        });
    let (id, presented) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            form.get("client_id").cloned().ok_or_else(bad)?,
            form.get("client_secret").cloned(),
        ),
    };
    let id = api::user_id(&id).map_err(|_| bad())?.to_owned();
    let row = db
        .query_opt(
            "SELECT client_secret_hash, token_endpoint_auth_method FROM auth.supa_oauth_clients
             WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .map_err(internal)?
        .ok_or_else(bad)?;
    let (hash, registered): (Option<String>, String) = (row.get(0), row.get(1));
    // A public client presents no secret; a confidential one its own.
    let ok = match (registered.as_str(), presented, hash) {
        ("none", None, _) => true,
        ("none", Some(_), _) => false,
        (_, Some(secret), Some(hash)) => bool::from(subtle::ConstantTimeEq::ct_eq(
            sha256_hex(&secret).as_bytes(),
            hash.as_bytes(),
        )),
        _ => false,
    };
    if ok { Ok(id) } else { Err(bad()) }
}

async fn exchange(
    auth: &Auth,
    p: &Project,
    headers: &HeaderMap,
    form: &std::collections::HashMap<String, String>,
) -> std::result::Result<Value, TokenError> {
    let mut db = auth.client(p).await.map_err(internal)?;
    let tx = db.transaction().await.map_err(internal)?;
    let client = authenticate_client(&tx, headers, form).await?;
    let grant = |d: &str| (StatusCode::BAD_REQUEST, "invalid_grant", d.to_owned());
    let (user, session, refresh) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").map(String::as_str).unwrap_or("");
            let row = tx
                .query_opt(
                    "UPDATE auth.supa_oauth_authorizations SET status = 'used', code_hash = NULL
                     WHERE code_hash = $1 AND status = 'approved' AND client_id = $2::text::uuid
                     RETURNING user_id::text, redirect_uri, code_challenge, scope,
                               approved_at > now() - make_interval(secs => $3)",
                    &[&sha256_hex(code), &client, &(AUTHORIZATION_TTL as f64)],
                )
                .await
                .map_err(internal)?
                .ok_or_else(|| grant("The authorization code is invalid or was used"))?;
            let (user, redirect_uri, challenge, fresh): (String, String, String, bool) =
                (row.get(0), row.get(1), row.get(2), row.get(4));
            if !fresh {
                return Err(grant("The authorization code has expired"));
            }
            if form.get("redirect_uri").is_some_and(|r| *r != redirect_uri) {
                return Err(grant(
                    "redirect_uri does not match the authorization request",
                ));
            }
            let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
            let expected = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                expected.as_bytes(),
                challenge.as_bytes(),
            )) {
                return Err(grant("PKCE verification failed"));
            }
            let refresh = api::random_token();
            let session = crate::store::start_session(&tx, &user, &refresh, "oauth")
                .await
                .map_err(internal)?;
            tx.execute(
                "INSERT INTO auth.supa_oauth_sessions (session_id, client_id) VALUES ($1::text::uuid, $2::text::uuid)",
                &[&session, &client],
            )
            .await
            .map_err(internal)?;
            (user, session, refresh)
        }
        Some("refresh_token") => {
            let token = form.get("refresh_token").map(String::as_str).unwrap_or("");
            let row = crate::store::refresh_token(&tx, token)
                .await
                .map_err(internal)?
                .filter(|r| !r.revoked)
                .ok_or_else(|| grant("The refresh token is invalid"))?;
            let session = row
                .session
                .clone()
                .ok_or_else(|| grant("The refresh token is invalid"))?;
            let owner: Option<String> = tx
                .query_opt(
                    "SELECT client_id::text FROM auth.supa_oauth_sessions WHERE session_id = $1::text::uuid",
                    &[&session],
                )
                .await
                .map_err(internal)?
                .map(|r| r.get(0));
            if owner.as_deref() != Some(client.as_str()) {
                return Err(grant("The refresh token was not issued to this client"));
            }
            let fresh = api::random_token();
            crate::store::rotate(&tx, &row, token, &fresh)
                .await
                .map_err(internal)?;
            (row.user.clone(), session, fresh)
        }
        _ => {
            return Err((
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token".into(),
            ));
        }
    };
    let user = crate::store::user_by_id(&tx, &user)
        .await
        .map_err(internal)?
        .ok_or_else(|| grant("The user no longer exists"))?;
    let answer = crate::tokens::issue(&tx, p, &user, &session, &refresh)
        .await
        .map_err(|e| (StatusCode::BAD_REQUEST, "invalid_request", e.msg))?;
    tx.commit().await.map_err(internal)?;
    Ok(answer)
}

/// `GET /user/oauth/grants`: the clients the user granted access.
async fn grants(State(auth): State<Auth>, p: Project, headers: HeaderMap) -> Result<Response> {
    enabled(&p)?;
    let (sub, session) = api::caller(&p, &headers)?;
    let db = auth.client(&p).await?;
    api::current_user(&db, &sub, session.as_deref()).await?;
    let rows = db
        .query(
            "SELECT jsonb_build_object(
               'client', jsonb_build_object('id', c.id, 'name', c.client_name, 'uri', c.client_uri,
                                            'logo_uri', c.logo_uri),
               'scopes', to_jsonb(string_to_array(g.scopes, ' ')), 'granted_at', g.granted_at)::text
             FROM auth.supa_oauth_consents g JOIN auth.supa_oauth_clients c ON c.id = g.client_id
             WHERE g.user_id = $1::text::uuid ORDER BY g.granted_at",
            &[&sub],
        )
        .await?;
    Ok(Json(rows.iter().map(|r| parse(r.get(0))).collect::<Vec<_>>()).into_response())
}

#[derive(Debug, Deserialize)]
struct RevokeQuery {
    client_id: Option<String>,
}

/// `DELETE /user/oauth/grants?client_id=`: the grant goes, and the
/// client's sessions of this user with it.
async fn revoke_grant(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Query(q): Query<RevokeQuery>,
) -> Result<Response> {
    enabled(&p)?;
    let (sub, session) = api::caller(&p, &headers)?;
    let client = q.client_id.unwrap_or_default();
    let client = api::user_id(&client).map_err(|_| client_not_found())?;
    let db = auth.client(&p).await?;
    api::current_user(&db, &sub, session.as_deref()).await?;
    db.execute(
        "DELETE FROM auth.sessions s USING auth.supa_oauth_sessions o
         WHERE o.session_id = s.id AND o.client_id = $2::text::uuid AND s.user_id = $1::text::uuid",
        &[&sub, &client],
    )
    .await?;
    db.execute(
        "DELETE FROM auth.supa_oauth_consents WHERE user_id = $1::text::uuid AND client_id = $2::text::uuid",
        &[&sub, &client],
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// RFC 8414's server metadata.
async fn metadata(p: Project) -> Result<Response> {
    enabled(&p)?;
    let issuer = &p.issuer;
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
    });
    if p.settings.oauth_server_allow_dynamic_registration {
        doc["registration_endpoint"] = json!(format!("{issuer}/oauth/clients/register"));
    }
    Ok(Json(doc).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_safe() {
        assert!(redirect_uri_ok("https://app.example.com/cb"));
        assert!(redirect_uri_ok("http://localhost:8080/cb"));
        assert!(redirect_uri_ok("com.example.app:/oauth"));
        assert!(!redirect_uri_ok("http://app.example.com/cb"));
        assert!(!redirect_uri_ok("https://app.example.com/cb#frag"));
        assert!(!redirect_uri_ok("javascript:alert(1)"));
        assert!(!redirect_uri_ok("/relative"));
        assert_eq!(
            with_params("https://a.io/cb?x=1", &[("code", "a b")]),
            "https://a.io/cb?x=1&code=a+b"
        );
    }
}
