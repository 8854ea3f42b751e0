//! The Management API of DESIGN section 6 and the internal directory API,
//! as one axum [`Router`].
//!
//! Every answer is JSON, errors included (`{"message": ...}`); bad input is a
//! 4xx naming what is wrong, and a 500 never carries internals (they go to
//! the log). Two bearer tokens guard it: the admin token for `/v1`,
//! `/api/v1` and `/admin/v1`, and the service token for `/internal/v1`,
//! which only gateways hold. Tokens are compared in constant time.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use supa_core::{ProjectRef, Secret};

use crate::{
    CreateOptions, CreateProject, CreateStep, DEFAULT_STATEMENT_TIMEOUT, Error, Invalidation,
    NewApiKey, NewWorker, SecretInput, Tenant, WorkerPatch,
};

/// The two bearer tokens of the API.
#[derive(Debug, Clone)]
pub struct ApiTokens {
    /// Guards the Management API (`/v1`, `/api/v1`, `/admin/v1`).
    pub admin: Secret<String>,
    /// Guards the internal directory API (`/internal/v1`) gateways call.
    pub service: Secret<String>,
}

/// Which clients a path family answers, and so whose contract it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// `/v1`: Supabase's Management API (the Supabase CLI, Terraform).
    Supabase,
    /// `/api/v1`: the reference deployment's Studio API (its scripts, its
    /// Studio fork and its test suite).
    Studio,
}

/// The metadata engine over `tenant`'s projects (postgres-meta's API):
/// at most 64 projects' pools open, each closed after 5 idle minutes or
/// when its project is deleted.
pub fn meta_engine(tenant: &Tenant) -> supa_meta::Meta {
    // A schema changed through the metadata API reaches the gateways'
    // data planes as the SQL endpoint's changes do.
    let changed = tenant.clone();
    let meta = supa_meta::Meta::new(Arc::new(tenant.clone()), 64, META_IDLE)
        .on_change(move |r| changed.invalidate(Invalidation::Project(*r)));
    let hook = meta.clone();
    tenant.on_invalidate(move |what| {
        if let Invalidation::Project(r) = what {
            hook.evict(r);
        }
    });
    meta
}

/// The Management API and the internal directory API over `tenant`.
pub fn router(tenant: Tenant, tokens: ApiTokens) -> Router {
    let meta = meta_engine(&tenant);
    router_with_meta(tenant, tokens, meta)
}

/// [`router`] with a metadata engine shared with others (the gateway's
/// `/pg`).
pub fn router_with_meta(tenant: Tenant, tokens: ApiTokens, meta: supa_meta::Meta) -> Router {
    let admin = Arc::new(TokenCheck::new(&tokens.admin));
    let service = Arc::new(TokenCheck::new(&tokens.service));
    let meta = MetaRouter(pg_service(tenant.clone(), meta));

    let workers = Router::new()
        .route("/projects/{ref}", axum::routing::patch(patch_project))
        .route("/workers", get(list_workers).post(register_worker))
        .route(
            "/workers/{id}",
            get(get_worker).patch(patch_worker).delete(delete_worker),
        );
    let internal = Router::new()
        .route("/projects/{ref}/config", get(project_config))
        .route("/keys/{sha256}", get(lookup_key))
        .route(
            "/projects/{ref}/functions/{slug}/versions/{version}/bundle",
            get(internal_bundle),
        )
        .route(
            "/functions/logs",
            post(internal_logs).layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024)),
        )
        // Gateways serve `/pg` through this, holding no admin login.
        .route("/projects/{ref}/pg/{*endpoint}", any(pg_meta));
    // The paths Studio itself calls for a project's metadata and SQL.
    let pg_meta = Router::new().route("/{ref}/{*endpoint}", any(pg_meta));

    let guarded_by =
        |check: &Arc<TokenCheck>| middleware::from_fn_with_state(check.clone(), require_token);
    Router::new()
        .nest(
            "/v1",
            management(Family::Supabase).route_layer(guarded_by(&admin)),
        )
        .nest(
            "/api/v1",
            management(Family::Studio).route_layer(guarded_by(&admin)),
        )
        .nest(
            "/api/platform/pg-meta",
            pg_meta.route_layer(guarded_by(&admin)),
        )
        .nest("/admin/v1", workers.route_layer(guarded_by(&admin)))
        .nest("/internal/v1", internal.route_layer(guarded_by(&service)))
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(meta))
        .with_state(tenant)
}

/// postgres-meta's whole API for a gateway's `/pg`: supa-meta's endpoints,
/// and `POST /query` (Studio's SQL editor) through the SQL endpoint, rows
/// with a 200. The project comes from the request's extensions, as for
/// [`supa_meta::router`].
pub fn pg_service(tenant: Tenant, meta: supa_meta::Meta) -> Router {
    Router::new()
        .route("/query", post(pg_query))
        .fallback_service(supa_meta::router(meta))
        .with_state(tenant)
}

/// `POST /query` as postgres-meta answers it: the rows, or `{"error"}`.
async fn pg_query(
    State(tenant): State<Tenant>,
    Extension(project): Extension<ProjectRef>,
    body: Result<JsonBody<QueryBody>, ApiError>,
) -> Response {
    let rows = match body {
        Ok(JsonBody(body)) => query_rows(&tenant, project.as_str(), &body).await,
        Err(e) => Err(e),
    };
    match rows {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => (e.status, Json(json!({ "error": e.message }))).into_response(),
    }
}

/// How long a project's metadata pool stays open without requests.
const META_IDLE: std::time::Duration = std::time::Duration::from_secs(300);

/// postgres-meta's API ([`pg_service`]), shared by every mount point.
#[derive(Clone)]
struct MetaRouter(Router);

fn management(family: Family) -> Router<Tenant> {
    let (keys, query) = match family {
        Family::Supabase => (get(list_keys), post(run_query)),
        Family::Studio => (get(list_keys_studio), post(run_query_ok)),
    };
    Router::new()
        .route("/projects", get(list_projects).post(create_project))
        .route("/projects/{ref}", get(get_project).delete(delete_project))
        .route("/projects/{ref}/pause", post(pause_project))
        .route("/projects/{ref}/restore", post(restore_project))
        .route("/projects/{ref}/api-keys", keys.post(create_key))
        .route("/projects/{ref}/api-keys/{id}", delete(revoke_key))
        .route("/projects/{ref}/database/query", query)
        .route(
            "/projects/{ref}/database/backups",
            get(list_backups).post(create_backup),
        )
        .route(
            "/projects/{ref}/database/backups/schedule",
            get(get_backup_schedule).put(put_backup_schedule),
        )
        .route(
            "/projects/{ref}/database/backups/restore",
            post(restore_backup),
        )
        .route(
            "/projects/{ref}/database/backups/{id}",
            delete(delete_backup),
        )
        .route("/projects/{ref}/database/{*endpoint}", any(pg_meta))
        .route("/projects/{ref}/types/typescript", get(typescript_types))
        .route(
            "/projects/{ref}/postgrest",
            get(get_postgrest).patch(patch_postgrest),
        )
        .route(
            "/projects/{ref}/config/auth",
            get(get_auth_config).patch(patch_auth_config),
        )
        .route("/projects/{ref}/auth/outbox", get(auth_outbox))
        .route(
            "/projects/{ref}/config/storage",
            get(get_storage_config).patch(patch_storage_config),
        )
        .route(
            "/projects/{ref}/config/realtime",
            get(get_realtime_config).patch(patch_realtime_config),
        )
        .route(
            "/projects/{ref}/storage/s3-credentials",
            get(list_s3_credentials).post(create_s3_credential),
        )
        .route(
            "/projects/{ref}/storage/s3-credentials/{id}",
            delete(delete_s3_credential),
        )
        .route(
            "/projects/{ref}/config/auth/signing-keys",
            get(list_signing_keys).post(add_signing_key),
        )
        .route(
            "/projects/{ref}/secrets",
            get(list_secrets).post(set_secrets).delete(unset_secrets),
        )
        .route("/projects/{ref}/functions", get(list_functions))
        .route(
            "/projects/{ref}/functions/deploy",
            post(deploy_function).layer(axum::extract::DefaultBodyLimit::max(MAX_DEPLOY_BODY)),
        )
        .route(
            "/projects/{ref}/functions/{slug}",
            get(get_function)
                .patch(patch_function)
                .delete(delete_function),
        )
        .route("/projects/{ref}/functions/{slug}/body", get(function_body))
        .route("/projects/{ref}/functions/{slug}/logs", get(function_logs))
}

/// A token kept as its SHA-256, so comparing takes the same time whatever
/// the presented token's length or content.
#[derive(Debug)]
struct TokenCheck([u8; 32]);

impl TokenCheck {
    fn new(token: &Secret<String>) -> Self {
        Self(Sha256::digest(token.expose().as_bytes()).into())
    }

    fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(digest.ct_eq(&self.0))
    }
}

async fn require_token(
    State(check): State<Arc<TokenCheck>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(supa_core::bearer_token);
    match presented {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: missing bearer token in the Authorization header",
        )
        .into_response(),
        Some(token) if !check.accepts(token) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized: invalid token").into_response()
        }
        Some(_) => next.run(request).await,
    }
}

/// An error answer: a status and `{"message": ...}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() && !matches!(e, Error::NoCapacity | Error::Unavailable(_)) {
            // The cause (a database error, a decrypt failure) is for the
            // operator's log, not for the caller.
            tracing::error!(error = %e, "Management API request failed");
            let message = if e.is_retryable() {
                "The service is busy; try again shortly"
            } else {
                "Internal error; the tenant manager's log has the cause"
            };
            let status = if e.is_retryable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                status
            };
            return Self::new(status, message);
        }
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "message": self.message }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A JSON body deserialized with the path of the offending field in the
/// error; the content type is not enforced, so `curl -d` works too.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Invalid request body: expected JSON",
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut de)
            .map(JsonBody)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let message = if path == "." {
                    format!("Invalid request body: {inner}")
                } else {
                    format!("Invalid request body: {path}: {inner}")
                };
                ApiError::new(StatusCode::BAD_REQUEST, message)
            })
    }
}

/// A ref from the path; a malformed one cannot exist, so it is a 404.
fn project_ref(raw: &str) -> ApiResult<ProjectRef> {
    ProjectRef::parse(raw).map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("project {raw:?} not found: {e}"),
        )
    })
}

fn flag(query: &HashMap<String, String>, name: &str) -> ApiResult<bool> {
    match query.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{name}: expected true or false, got {other:?}"),
        )),
    }
}

async fn health(State(tenant): State<Tenant>) -> Response {
    match sqlx::query("SELECT 1").execute(tenant.pool()).await {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: management database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"status": "unavailable", "message": "management database unreachable"}),
                ),
            )
                .into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

async fn list_projects(State(tenant): State<Tenant>) -> ApiResult<Response> {
    Ok(Json(tenant.list_projects().await?).into_response())
}

/// The media type asking project creation to stream its progress.
pub const PROGRESS_MEDIA_TYPE: &str = "application/x-ndjson";

/// Creates a project. With `Accept: application/x-ndjson` the answer is a
/// 200 stream of one JSON line per step (`{"step": "create_database"}`)
/// ending in `{"project": {...}}` or `{"error": {"status", "message"}}`;
/// otherwise it is Supabase's 201 with the project.
async fn create_project(
    State(tenant): State<Tenant>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateProject>,
) -> ApiResult<Response> {
    let wants_progress = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(PROGRESS_MEDIA_TYPE));
    if !wants_progress {
        let created = tenant.create_project(body).await?;
        return Ok((StatusCode::CREATED, Json(created)).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    // Creation runs to completion (or full rollback) even if the caller
    // hangs up mid-stream.
    tokio::spawn(async move {
        let steps = tx.clone();
        let progress = move |step: CreateStep| {
            let _ = steps.send(json!({ "step": step }));
        };
        let options = CreateOptions {
            progress: Some(&progress),
            fail_after: None,
        };
        let last = match tenant.create_project_with(body, options).await {
            Ok(created) => json!({ "project": created }),
            Err(e) => {
                let e = ApiError::from(e);
                json!({ "error": { "status": e.status.as_u16(), "message": e.message } })
            }
        };
        let _ = tx.send(last);
    });
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        Some((Ok::<_, Infallible>(format!("{line}\n")), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, PROGRESS_MEDIA_TYPE)],
        Body::from_stream(lines),
    )
        .into_response())
}

async fn get_project(State(tenant): State<Tenant>, Path(r): Path<String>) -> ApiResult<Response> {
    Ok(Json(tenant.get_project(&project_ref(&r)?).await?).into_response())
}

/// `POST /v1/projects/{ref}/pause`, as Supabase spells it.
async fn pause_project(State(tenant): State<Tenant>, Path(r): Path<String>) -> ApiResult<Response> {
    Ok(Json(tenant.pause_project(&project_ref(&r)?).await?).into_response())
}

/// `POST /v1/projects/{ref}/restore`: resumes a paused project.
async fn restore_project(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(tenant.resume_project(&project_ref(&r)?).await?).into_response())
}

/// `GET /v1/projects/{ref}/database/backups`: Supabase's shape (logical
/// backups only: no WAL-G, no point-in-time recovery) with each backup's
/// id and sizes.
async fn list_backups(State(tenant): State<Tenant>, Path(r): Path<String>) -> ApiResult<Response> {
    let backups = tenant.list_backups(&project_ref(&r)?).await?;
    Ok(Json(json!({
        "region": "local",
        "walg_enabled": false,
        "pitr_enabled": false,
        "backups": backups,
    }))
    .into_response())
}

/// `POST /v1/projects/{ref}/database/backups`: a backup now (201).
async fn create_backup(State(tenant): State<Tenant>, Path(r): Path<String>) -> ApiResult<Response> {
    let backup = tenant.backup_project(&project_ref(&r)?, "manual").await?;
    Ok((StatusCode::CREATED, Json(backup)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    backup_id: String,
}

/// `POST /v1/projects/{ref}/database/backups/restore`: restores a backup
/// (of this project or another) into this project.
async fn restore_backup(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(body): JsonBody<RestoreBody>,
) -> ApiResult<Response> {
    let project = tenant
        .restore_backup(&project_ref(&r)?, &body.backup_id)
        .await?;
    Ok(Json(project).into_response())
}

async fn delete_backup(
    State(tenant): State<Tenant>,
    Path((r, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let backup = tenant.get_backup(&id).await?;
    if backup.project_ref != project_ref(&r)?.as_str() {
        return Err(Error::NotFound(format!("backup {id}")).into());
    }
    tenant.delete_backup(&id).await?;
    Ok(Json(json!({"id": id})).into_response())
}

async fn get_backup_schedule(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(tenant.backup_schedule(&project_ref(&r)?).await?).into_response())
}

async fn put_backup_schedule(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(body): JsonBody<crate::BackupSchedule>,
) -> ApiResult<Response> {
    Ok(Json(tenant.set_backup_schedule(&project_ref(&r)?, body).await?).into_response())
}

async fn delete_project(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
) -> ApiResult<Response> {
    let r = project_ref(&r)?;
    let project = tenant.get_project(&r).await?;
    tenant.delete_project(&r).await?;
    Ok(
        Json(json!({"id": project.id, "ref": project.project_ref, "name": project.name}))
            .into_response(),
    )
}

async fn list_keys(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let keys = tenant
        .list_keys(&project_ref(&r)?, flag(&query, "reveal")?)
        .await?;
    Ok(Json(keys).into_response())
}

async fn create_key(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(body): JsonBody<NewApiKey>,
) -> ApiResult<Response> {
    let key = tenant.create_key(&project_ref(&r)?, body).await?;
    Ok((StatusCode::CREATED, Json(key)).into_response())
}

async fn revoke_key(
    State(tenant): State<Tenant>,
    Path((r, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(tenant.revoke_key(&project_ref(&r)?, &id).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    query: String,
}

/// The rows of the last statement of a SQL endpoint call.
async fn query_rows(tenant: &Tenant, r: &str, body: &QueryBody) -> ApiResult<Vec<Value>> {
    Ok(tenant
        .run_sql(&project_ref(r)?, &body.query, DEFAULT_STATEMENT_TIMEOUT)
        .await?)
}

/// Supabase's `POST .../database/query`: the rows with a 201.
async fn run_query(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(body): JsonBody<QueryBody>,
) -> ApiResult<Response> {
    let rows = query_rows(&tenant, &r, &body).await?;
    Ok((StatusCode::CREATED, Json(rows)).into_response())
}

/// The project's data plane settings, in Supabase's shape.
async fn get_postgrest(State(tenant): State<Tenant>, Path(r): Path<String>) -> ApiResult<Response> {
    Ok(Json(tenant.postgrest_settings(&project_ref(&r)?).await?).into_response())
}

/// Changes the data plane settings; every gateway serves with them within
/// a second.
async fn patch_postgrest(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(patch): JsonBody<crate::PostgrestPatch>,
) -> ApiResult<Response> {
    let settings = tenant
        .update_postgrest_settings(&project_ref(&r)?, patch)
        .await?;
    Ok(Json(settings).into_response())
}

/// The project's auth settings, in Supabase's shape (`smtp_pass` null).
async fn get_auth_config(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(tenant.auth_settings(&project_ref(&r)?).await?).into_response())
}

/// The project's storage settings, in Supabase's shape.
async fn get_storage_config(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(tenant.storage_settings(&project_ref(&r)?).await?).into_response())
}

/// Changes the storage settings a body names (nested `features` merge).
async fn patch_storage_config(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(patch): JsonBody<Value>,
) -> ApiResult<Response> {
    let settings = tenant
        .update_storage_settings(&project_ref(&r)?, patch)
        .await?;
    Ok(Json(settings).into_response())
}

/// The project's realtime settings.
async fn get_realtime_config(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(tenant.realtime_settings(&project_ref(&r)?).await?).into_response())
}

/// Changes the realtime settings a body names (merged); every gateway
/// follows within a second.
async fn patch_realtime_config(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(patch): JsonBody<Value>,
) -> ApiResult<Response> {
    let settings = tenant
        .update_realtime_settings(&project_ref(&r)?, patch)
        .await?;
    Ok(Json(settings).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewS3Credential {
    #[serde(default)]
    description: String,
}

/// A new S3 access key; its secret is in this answer only.
async fn create_s3_credential(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(body): JsonBody<NewS3Credential>,
) -> ApiResult<Response> {
    let created = tenant
        .create_s3_credential(&project_ref(&r)?, &body.description)
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// The project's S3 access keys, without secrets.
async fn list_s3_credentials(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(tenant.list_s3_credentials(&project_ref(&r)?).await?).into_response())
}

/// Revokes an S3 access key at once on every gateway.
async fn delete_s3_credential(
    State(tenant): State<Tenant>,
    Path((r, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(tenant.delete_s3_credential(&project_ref(&r)?, &id).await?).into_response())
}

/// The project's JWT signing keys (public halves).
async fn list_signing_keys(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(tenant.signing_keys(&project_ref(&r)?).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSigningKey {
    algorithm: String,
}

/// A new ES256 signing key, in use at once on every gateway.
async fn add_signing_key(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(body): JsonBody<NewSigningKey>,
) -> ApiResult<Response> {
    let key = tenant
        .add_signing_key(&project_ref(&r)?, &body.algorithm)
        .await?;
    Ok((StatusCode::CREATED, Json(key)).into_response())
}

#[derive(Deserialize)]
struct OutboxQuery {
    email: Option<String>,
    limit: Option<i64>,
}

/// The project's auth e-mails, newest first (`?email=` one address's,
/// `?limit=` at most that many, 100 by default).
async fn auth_outbox(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    Query(q): Query<OutboxQuery>,
) -> ApiResult<Response> {
    let mails = tenant
        .auth_outbox(
            &project_ref(&r)?,
            q.email.as_deref(),
            q.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(mails).into_response())
}

/// Changes the auth settings a body names; every gateway has them within
/// a second.
async fn patch_auth_config(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(patch): JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Response> {
    let settings = tenant
        .update_auth_settings(&project_ref(&r)?, patch)
        .await?;
    Ok(Json(settings).into_response())
}

/// The Studio API's `POST .../database/query`: the rows with a 200.
async fn run_query_ok(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(body): JsonBody<QueryBody>,
) -> ApiResult<Response> {
    Ok(Json(query_rows(&tenant, &r, &body).await?).into_response())
}

/// The Studio API's key list: the publishable key named `anon` and the
/// default secret key named `service_role` (the names its scripts look
/// up), every key in full.
async fn list_keys_studio(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
) -> ApiResult<Response> {
    let mut keys = tenant.list_keys(&project_ref(&r)?, true).await?;
    for key in &mut keys {
        match key.kind {
            supa_core::KeyKind::Publishable => key.name = "anon".into(),
            supa_core::KeyKind::Secret if key.name == "default" => key.name = "service_role".into(),
            _ => {}
        }
    }
    Ok(Json(keys).into_response())
}

/// postgres-meta's endpoints for a project: the rest of the path goes to
/// [`pg_service`] as its own path.
async fn pg_meta(
    Extension(MetaRouter(meta)): Extension<MetaRouter>,
    Path(params): Path<HashMap<String, String>>,
    mut request: Request,
) -> ApiResult<Response> {
    let r = project_ref(params.get("ref").map_or("", String::as_str))?;
    // The endpoint as sent (still percent-encoded): what follows the ref,
    // and `database/` (Management API) or `pg/` (internal API).
    let raw = request.uri().path();
    let after_ref = raw
        .split_once(&format!("/{r}/"))
        .map_or("", |(_, rest)| rest);
    let endpoint = after_ref
        .strip_prefix("database/")
        .or_else(|| after_ref.strip_prefix("pg/"))
        .unwrap_or(after_ref);
    let path_and_query = match request.uri().query() {
        Some(q) => format!("/{endpoint}?{q}"),
        None => format!("/{endpoint}"),
    };
    *request.uri_mut() = path_and_query
        .parse()
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "malformed path"))?;
    Ok(supa_meta::serve(meta, r, request).await)
}

/// Supabase's `GET /v1/projects/{ref}/types/typescript`: the project's
/// TypeScript types as `{"types": "..."}`, for `included_schemas`
/// (`public` when not given), printed by the metadata service's generator.
async fn typescript_types(
    Extension(MetaRouter(meta)): Extension<MetaRouter>,
    Path(r): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    let r = project_ref(&r)?;
    let query = request.uri().query().unwrap_or_default();
    let named = query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("included_schemas"));
    let query = match (named, query.is_empty()) {
        (true, _) => query.to_owned(),
        (false, true) => "included_schemas=public".to_owned(),
        (false, false) => format!("{query}&included_schemas=public"),
    };
    let inner = Request::get(format!("/generators/typescript?{query}"))
        .body(Body::empty())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "malformed query"))?;
    let response = supa_meta::serve(meta, r, inner).await;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        // The metadata service's `{"error": ...}`, in this API's shape.
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| text.into_owned());
        return Err(ApiError::new(status, message));
    }
    Ok(Json(json!({ "types": text })).into_response())
}

async fn list_secrets(State(tenant): State<Tenant>, Path(r): Path<String>) -> ApiResult<Response> {
    Ok(Json(tenant.list_secrets(&project_ref(&r)?).await?).into_response())
}

async fn set_secrets(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(body): JsonBody<Vec<SecretInput>>,
) -> ApiResult<Response> {
    let r = project_ref(&r)?;
    tenant.set_secrets(&r, body).await?;
    // Answer with what a later GET would show: names and digests.
    Ok((StatusCode::CREATED, Json(tenant.list_secrets(&r).await?)).into_response())
}

async fn unset_secrets(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(names): JsonBody<Vec<String>>,
) -> ApiResult<Response> {
    let r = project_ref(&r)?;
    tenant.unset_secrets(&r, &names).await?;
    Ok(Json(tenant.list_secrets(&r).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectPatch {
    upstream: Option<supa_core::Upstream>,
    services: Option<crate::ServicesPatch>,
}

/// Platform-level settings of a project (not in Supabase's API): where the
/// gateway sends its `/rest/v1` requests (`upstream`) and those of its
/// other services (`services.auth|storage|functions`).
async fn patch_project(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    JsonBody(body): JsonBody<ProjectPatch>,
) -> ApiResult<Response> {
    let project = tenant
        .set_upstream(&project_ref(&r)?, body.upstream, body.services)
        .await?;
    Ok(Json(project).into_response())
}

async fn list_workers(State(tenant): State<Tenant>) -> ApiResult<Response> {
    Ok(Json(tenant.list_workers().await?).into_response())
}

async fn register_worker(
    State(tenant): State<Tenant>,
    JsonBody(body): JsonBody<NewWorker>,
) -> ApiResult<Response> {
    let worker = tenant.register_worker(body).await?;
    Ok((StatusCode::CREATED, Json(worker)).into_response())
}

async fn get_worker(State(tenant): State<Tenant>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(tenant.get_worker(&id).await?).into_response())
}

async fn patch_worker(
    State(tenant): State<Tenant>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<WorkerPatch>,
) -> ApiResult<Response> {
    Ok(Json(tenant.patch_worker(&id, patch).await?).into_response())
}

async fn delete_worker(
    State(tenant): State<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let worker = tenant.get_worker(&id).await?;
    tenant.delete_worker(&id).await?;
    Ok(Json(worker).into_response())
}

async fn project_config(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(tenant.project_config(&project_ref(&r)?).await?).into_response())
}

async fn lookup_key(
    State(tenant): State<Tenant>,
    Path(digest): Path<String>,
) -> ApiResult<Response> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&digest, &mut hash).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "sha256: expected 64 hex characters",
        )
    })?;
    match tenant.lookup_key(&hash).await? {
        Some(record) => Ok(Json(record).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "API key not found")),
    }
}

/// Bytes a deploy's multipart body may carry: the files and their headers.
const MAX_DEPLOY_BODY: usize = supa_functions::MAX_SOURCE_BYTES + 4 * 1024 * 1024;

#[derive(Deserialize)]
struct DeployQuery {
    slug: Option<String>,
}

/// `POST /v1/projects/{ref}/functions/deploy?slug=...`: Supabase's
/// multipart deploy, a `metadata` part (JSON) and `file` parts.
async fn deploy_function(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
    Query(query): Query<DeployQuery>,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Response> {
    let r = project_ref(&r)?;
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let mut multipart = multipart.map_err(|e| {
        bad(format!(
            "Invalid request body: expected multipart/form-data: {}",
            e.body_text()
        ))
    })?;
    let mut metadata = None;
    let mut files = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(format!("Invalid request body: {}", e.body_text())))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(|e| {
            ApiError::new(
                e.status(),
                format!("Invalid request body: {}", e.body_text()),
            )
        })?;
        match name.as_str() {
            "metadata" => {
                let parsed: crate::DeployMetadata = serde_json::from_slice(&bytes)
                    .map_err(|e| bad(format!("Invalid metadata: {e}")))?;
                metadata = Some(parsed);
            }
            "file" => files.push(supa_functions::SourceFile {
                path: file_name.unwrap_or_default(),
                content: bytes.to_vec(),
            }),
            // Other parts (Supabase's CLI may add some) are not files.
            _ => {}
        }
    }
    let metadata = metadata
        .ok_or_else(|| bad("Invalid request body: the metadata part is required".into()))?;
    let slug = query
        .slug
        .ok_or_else(|| bad("slug: the slug query parameter is required".into()))?;
    let function = tenant.deploy_function(&r, &slug, metadata, files).await?;
    Ok((StatusCode::CREATED, Json(function)).into_response())
}

async fn list_functions(
    State(tenant): State<Tenant>,
    Path(r): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(tenant.list_functions(&project_ref(&r)?).await?).into_response())
}

async fn get_function(
    State(tenant): State<Tenant>,
    Path((r, slug)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(tenant.get_function(&project_ref(&r)?, &slug).await?).into_response())
}

async fn patch_function(
    State(tenant): State<Tenant>,
    Path((r, slug)): Path<(String, String)>,
    JsonBody(patch): JsonBody<crate::FunctionPatch>,
) -> ApiResult<Response> {
    Ok(Json(
        tenant
            .patch_function(&project_ref(&r)?, &slug, patch)
            .await?,
    )
    .into_response())
}

async fn delete_function(
    State(tenant): State<Tenant>,
    Path((r, slug)): Path<(String, String)>,
) -> ApiResult<Response> {
    tenant.delete_function(&project_ref(&r)?, &slug).await?;
    Ok(Json(json!({ "message": format!("Deleted function {slug}") })).into_response())
}

/// `GET .../functions/{slug}/body`: the deployed files as a
/// `multipart/form-data` body, a `metadata` part first, as they were sent.
async fn function_body(
    State(tenant): State<Tenant>,
    Path((r, slug)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (function, files) = tenant.function_body(&project_ref(&r)?, &slug).await?;
    let metadata = json!({
        "entrypoint_path": function.entrypoint_path,
        "import_map_path": function.import_map_path,
        "name": function.name,
        "verify_jwt": function.verify_jwt,
    });
    let (content_type, body) = supa_functions::multipart_body(&metadata, &files);
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

#[derive(Deserialize)]
struct LogsQuery {
    limit: Option<i64>,
    since: Option<i64>,
}

/// `GET .../functions/{slug}/logs?limit=&since=`: the function's log
/// events, newest first.
async fn function_logs(
    State(tenant): State<Tenant>,
    Path((r, slug)): Path<(String, String)>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let events = tenant
        .function_logs(
            &project_ref(&r)?,
            &slug,
            query.limit.unwrap_or(100),
            query.since,
        )
        .await?;
    Ok(Json(json!({ "result": events })).into_response())
}

/// A version's bundle, for gateways (`supa_functions::FunctionStore`).
async fn internal_bundle(
    State(tenant): State<Tenant>,
    Path((r, slug, version)): Path<(String, String, u32)>,
) -> ApiResult<Response> {
    use supa_functions::FunctionStore as _;
    match tenant.bundle(&project_ref(&r)?, &slug, version).await {
        Ok(Some(bundle)) => Ok(Json(bundle).into_response()),
        Ok(None) => Err(ApiError::new(StatusCode::NOT_FOUND, "bundle not found")),
        Err(e) => Err(Error::Transport(e.0).into()),
    }
}

/// Log events gateways report.
async fn internal_logs(
    State(tenant): State<Tenant>,
    JsonBody(events): JsonBody<Vec<supa_functions::LogEvent>>,
) -> ApiResult<Response> {
    tenant.record_function_logs(events).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
