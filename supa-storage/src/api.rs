//! The HTTP API: Supabase Storage's routes, request and response shapes.
//!
//! Handlers take the project from the request (the gateway's
//! `Arc<ProjectConfig>` extension) and the caller from its bearer token,
//! check names, then work in a transaction that acts as the caller.
//! Uploads stream the body to a fresh version key before the row that
//! names it is written; the bytes of a failed write and of a replaced or
//! deleted version are removed after the transaction ends.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use bytes::Bytes;
use deadpool_postgres::GenericClient as _;
use futures_util::StreamExt as _;
use object_store::GetRange;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};
use supa_core::ProjectConfig;

use crate::backend::{Backend, Written};
use crate::error::Result;
use crate::names::{self, bucket_name, object_key};
use crate::store::{self, Caller, Reader, iso, owner_uuid};
use crate::{Error, Storage, StorageProject};

/// Largest JSON request body.
const JSON_LIMIT: usize = 1024 * 1024;

/// How long a signed upload URL lasts (Supabase's two hours).
const SIGNED_UPLOAD_TTL: i64 = 2 * 60 * 60;

/// Supabase Storage's API, serving every project the gateway routes to it.
pub fn router(storage: Storage) -> Router {
    Router::new()
        .route("/bucket", get(list_buckets).post(create_bucket))
        .route(
            "/bucket/{id}",
            get(get_bucket).put(update_bucket).delete(delete_bucket),
        )
        .route("/bucket/{id}/empty", post(empty_bucket))
        .route("/object/list/{bucket}", post(list_objects))
        .route("/object/list-v2/{bucket}", post(list_v2))
        .route("/object/move", post(move_object))
        .route("/object/copy", post(copy_object))
        .route("/object/sign/{bucket}", post(sign_many))
        .route(
            "/object/sign/{bucket}/{*name}",
            post(sign_one).get(download_signed),
        )
        .route(
            "/object/upload/sign/{bucket}/{*name}",
            post(sign_upload).put(upload_signed),
        )
        .route("/object/public/{bucket}/{*name}", get(download_public))
        .route(
            "/object/authenticated/{bucket}/{*name}",
            get(download_authenticated),
        )
        .route("/object/info/public/{bucket}/{*name}", get(info_public))
        .route(
            "/render/image/public/{bucket}/{*name}",
            get(crate::render::render_public),
        )
        .route(
            "/render/image/authenticated/{bucket}/{*name}",
            get(crate::render::render_authenticated),
        )
        .route(
            "/render/image/sign/{bucket}/{*name}",
            get(crate::render::render_signed),
        )
        .route(
            "/object/info/authenticated/{bucket}/{*name}",
            get(info_authenticated),
        )
        .route("/object/info/{bucket}/{*name}", get(info_authenticated))
        .route("/object/{bucket}", delete(delete_many))
        .route(
            "/object/{bucket}/{*name}",
            post(upload)
                .put(update)
                .get(download_authenticated)
                .delete(delete_one),
        )
        .route("/status", get(|| async { StatusCode::OK }))
        .merge(crate::tus::routes())
        .merge(crate::s3::routes())
        .fallback(|| async { Error::new(404, "NotFound", "Route not found").with_http_status(404) })
        .method_not_allowed_fallback(|| async {
            Error::new(405, "MethodNotAllowed", "Method not allowed for this route")
                .with_http_status(405)
        })
        // Bodies stream to the backend under the project's own limit.
        .layer(DefaultBodyLimit::disable())
        .with_state(storage)
}

/// The project of a request.
pub(crate) struct Project(pub Arc<StorageProject>);

impl<S: Send + Sync> FromRequestParts<S> for Project {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self> {
        let config = parts
            .extensions
            .get::<Arc<ProjectConfig>>()
            .ok_or_else(|| Error::new(400, "TenantNotFound", "Invalid tenant id"))?;
        Ok(Self(Arc::new(StorageProject::from_config(config)?)))
    }
}

/// The verified caller of a request that needs one.
pub(crate) struct Auth(pub Arc<StorageProject>, pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self> {
        let Project(project) = Project::from_request_parts(parts, state).await?;
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.get(..7)
                    .filter(|p| p.eq_ignore_ascii_case("bearer "))
                    .map(|_| &v[7..])
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::invalid_jwt("headers must have required property 'authorization'")
            })?;
        let caller = caller_of(&project, token)?;
        Ok(Self(project, caller))
    }
}

/// The caller a JWT of the project names.
pub(crate) fn caller_of(project: &StorageProject, token: &str) -> Result<Caller> {
    let claims =
        supa_keys::verify(&project.jwt_key, token, supa_keys::unix_now()).map_err(jwt_error)?;
    let role = claims
        .role()
        .ok_or_else(|| Error::invalid_jwt("the token has no role"))?
        .to_owned();
    let sub = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
    Ok(Caller {
        role,
        claims: claims.to_json(),
        sub,
    })
}

/// An object's `/{bucket}/{*name}` path, both names checked.
pub(crate) struct ObjectPath {
    pub bucket: String,
    pub name: String,
}

impl<S: Send + Sync> FromRequestParts<S> for ObjectPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self> {
        let Path((bucket, name)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::invalid_request(e.body_text()))?;
        bucket_name(&bucket)?;
        object_key(&name)?;
        Ok(Self { bucket, name })
    }
}

pub(crate) fn jwt_error(e: supa_keys::Error) -> Error {
    match e {
        supa_keys::Error::Expired => Error::invalid_jwt("jwt expired"),
        supa_keys::Error::BadSignature => Error::invalid_jwt("invalid signature"),
        other => Error::invalid_jwt(other.to_string()),
    }
}

/// A JSON body of at most [`JSON_LIMIT`] bytes.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(body: Body) -> Result<T> {
    let bytes = axum::body::to_bytes(body, JSON_LIMIT)
        .await
        .map_err(|_| Error::invalid_request("The request body is too large or was interrupted"))?;
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        bytes
    };
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            Error::invalid_request(format!("body {}", e.inner()))
        } else {
            Error::invalid_request(format!("body/{path} {}", e.inner()))
        }
    })
}

/// A number that clients send as a JSON number or a numeric string
/// (storage3 sends `expiresIn` as a string).
#[derive(Debug, Clone, Copy)]
struct Number(i64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map(Number)
                .ok_or_else(|| serde::de::Error::custom("must be an integer")),
            Value::String(s) => s
                .trim()
                .parse()
                .map(Number)
                .map_err(|_| serde::de::Error::custom("must be an integer")),
            _ => Err(serde::de::Error::custom("must be an integer")),
        }
    }
}

pub(crate) fn ok_json(value: Value) -> Response {
    axum::Json(value).into_response()
}

/// A JSON value built by the database, sent as it is.
fn json_text(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}

fn message(text: &str) -> Response {
    ok_json(json!({ "message": text }))
}

// ---------------------------------------------------------------- buckets

/// A bucket row as Supabase Storage's JSON has it.
fn bucket_json() -> String {
    format!(
        "json_build_object('id', id, 'name', name, 'owner', coalesce(owner_id, owner::text, ''),
           'public', coalesce(public, false), 'type', 'STANDARD', 'file_size_limit', file_size_limit,
           'allowed_mime_types', allowed_mime_types, 'created_at', {}, 'updated_at', {})",
        iso("created_at"),
        iso("updated_at")
    )
}

async fn list_buckets(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
) -> Result<Response> {
    let mut client = storage.client(&project).await?;
    let tx = store::begin_as(&mut client, &caller).await?;
    let sql = format!(
        "SELECT coalesce(json_agg({} ORDER BY name), '[]')::text FROM storage.buckets",
        bucket_json()
    );
    let text: String = tx.query_one(&sql, &[]).await?.get(0);
    tx.commit().await?;
    Ok(json_text(text))
}

async fn get_bucket(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let mut client = storage.client(&project).await?;
    let tx = store::begin_as(&mut client, &caller).await?;
    let sql = format!(
        "SELECT {}::text FROM storage.buckets WHERE id = $1",
        bucket_json()
    );
    let row = tx
        .query_opt(&sql, &[&id])
        .await?
        .ok_or_else(Error::no_such_bucket)?;
    tx.commit().await?;
    Ok(json_text(row.get(0)))
}

/// A bucket's settings in a create or update request; absent fields keep
/// their value on update.
#[derive(Debug, Default, Deserialize)]
struct BucketBody {
    id: Option<String>,
    name: Option<String>,
    public: Option<bool>,
    #[serde(default, deserialize_with = "some")]
    file_size_limit: Option<Option<Value>>,
    #[serde(default, deserialize_with = "some")]
    allowed_mime_types: Option<Option<Vec<String>>>,
}

/// Tells a present `null` from an absent field.
fn some<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A size limit as a number of bytes or a string with a unit (`20MB`).
fn parse_size(value: &Value) -> Result<Option<i64>> {
    let invalid =
        || Error::invalid_request("Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B");
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_i64().filter(|n| *n >= 0).map(Some).ok_or_else(invalid),
        Value::String(s) => {
            let s = s.trim().to_ascii_uppercase();
            let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let unit = s[digits.len()..].trim();
            let n: f64 = digits.trim().parse().map_err(|_| invalid())?;
            let factor: f64 = match unit {
                "" | "B" => 1.0,
                "KB" => 1e3,
                "MB" => 1e6,
                "GB" => 1e9,
                _ => return Err(invalid()),
            };
            let bytes = n * factor;
            if !(0.0..=9.0e15).contains(&bytes) {
                return Err(invalid());
            }
            Ok(Some(bytes as i64))
        }
        _ => Err(invalid()),
    }
}

/// A bucket's checked limits; `None` leaves a field as it is, `Some(None)`
/// clears it.
struct BucketChange {
    size: Option<Option<i64>>,
    types: Option<Option<Vec<String>>>,
}

fn check_bucket_settings(project: &StorageProject, body: &BucketBody) -> Result<BucketChange> {
    let limit = match &body.file_size_limit {
        Some(v) => {
            let limit = parse_size(v.as_ref().unwrap_or(&Value::Null))?;
            if limit.is_some_and(|l| l > project.settings.file_size_limit) {
                return Err(Error::invalid_request(
                    "file_size_limit exceeds the project's upload limit (fileSizeLimit)",
                ));
            }
            Some(limit)
        }
        None => None,
    };
    if let Some(Some(types)) = &body.allowed_mime_types
        && let Some(bad) = types.iter().find(|t| !names::valid_mime_pattern(t))
    {
        return Err(Error::invalid_request(format!(
            "Invalid mime type pattern: {bad}"
        )));
    }
    Ok(BucketChange {
        size: limit,
        types: body.allowed_mime_types.clone(),
    })
}

async fn create_bucket(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    body: Body,
) -> Result<Response> {
    let body: BucketBody = json_body(body).await?;
    let name = body
        .name
        .clone()
        .ok_or_else(|| Error::invalid_request("body must have required property 'name'"))?;
    let id = body.id.clone().unwrap_or_else(|| name.clone());
    bucket_name(&id)?;
    bucket_name(&name)?;
    let BucketChange { size: limit, types } = check_bucket_settings(&project, &body)?;
    let mut client = storage.client(&project).await?;
    let tx = store::begin_as(&mut client, &caller).await?;
    store::insert_bucket(
        &tx,
        store::NewBucket {
            id: &id,
            name: &name,
            owner: &caller.sub,
            public: body.public.unwrap_or(false),
            file_size_limit: limit.flatten(),
            allowed_mime_types: types.flatten(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ok_json(json!({ "name": id })))
}

async fn update_bucket(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response> {
    let body: BucketBody = json_body(body).await?;
    let BucketChange { size: limit, types } = check_bucket_settings(&project, &body)?;
    let mut client = storage.client(&project).await?;
    let tx = store::begin_as(&mut client, &caller).await?;
    let updated = tx
        .execute(
            "UPDATE storage.buckets SET
               public = coalesce($2, public),
               file_size_limit = CASE WHEN $3 THEN $4 ELSE file_size_limit END,
               allowed_mime_types = CASE WHEN $5 THEN $6 ELSE allowed_mime_types END,
               updated_at = now()
             WHERE id = $1",
            &[
                &id,
                &body.public,
                &limit.is_some(),
                &limit.flatten(),
                &types.is_some(),
                &types.flatten(),
            ],
        )
        .await?;
    if updated == 0 {
        return Err(Error::no_such_bucket());
    }
    tx.commit().await?;
    Ok(message("Successfully updated"))
}

async fn empty_bucket(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let mut client = storage.client(&project).await?;
    let tx = store::begin_as(&mut client, &caller).await?;
    if tx
        .query_opt("SELECT 1 FROM storage.buckets WHERE id = $1", &[&id])
        .await?
        .is_none()
    {
        return Err(Error::no_such_bucket());
    }
    let rows = tx
        .query(
            "DELETE FROM storage.objects WHERE bucket_id = $1 RETURNING name, version",
            &[&id],
        )
        .await?;
    tx.commit().await?;
    let prefix = storage.prefix(&project.project_ref);
    for row in rows {
        let key = Backend::key(&prefix, &id, row.get(0), row.get(1));
        storage.backend().remove(&key).await;
    }
    Ok(message("Successfully emptied"))
}

async fn delete_bucket(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let mut client = storage.client(&project).await?;
    let tx = store::begin_as(&mut client, &caller).await?;
    store::delete_bucket(&tx, &id).await?;
    tx.commit().await?;
    Ok(message("Successfully deleted"))
}

// ---------------------------------------------------------------- uploads

/// How an upload treats an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `POST`: a new object; an existing one is a conflict.
    Create,
    /// `POST` with `x-upsert: true`: create or replace.
    Upsert,
    /// `PUT`: replace an existing object.
    Update,
}

/// Who writes an object: a caller's role, or the server itself on behalf
/// of a signed upload URL's owner.
#[derive(Debug, Clone)]
pub(crate) enum Writer {
    Caller(Caller),
    Signed { owner: Option<String> },
}

impl Writer {
    pub(crate) fn owner(&self) -> Option<String> {
        match self {
            Writer::Caller(c) => c.sub.clone(),
            Writer::Signed { owner } => owner.clone(),
        }
    }
}

/// What an upload carries besides its bytes.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    pub mime: String,
    pub cache_control: String,
    pub user_metadata: Option<Value>,
    pub declared_length: Option<u64>,
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `3600` becomes `max-age=3600`, as Supabase stores it.
pub(crate) fn cache_control(value: Option<&str>, default: &str) -> String {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) if v.chars().all(|c| c.is_ascii_digit()) => format!("max-age={v}"),
        Some(v) => v.to_owned(),
        None => default.to_owned(),
    }
}

pub(crate) fn parse_user_metadata(text: &str) -> Result<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Error::invalid_request("metadata must be a JSON object")),
    }
}

pub(crate) fn is_upsert(headers: &HeaderMap) -> bool {
    header_str(headers, "x-upsert").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

async fn upload(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    ObjectPath { bucket, name }: ObjectPath,
    request: Request,
) -> Result<Response> {
    let mode = if is_upsert(request.headers()) {
        Mode::Upsert
    } else {
        Mode::Create
    };
    receive(
        &storage,
        &project,
        Writer::Caller(caller),
        &bucket,
        &name,
        mode,
        request,
    )
    .await
}

async fn update(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    ObjectPath { bucket, name }: ObjectPath,
    request: Request,
) -> Result<Response> {
    receive(
        &storage,
        &project,
        Writer::Caller(caller),
        &bucket,
        &name,
        Mode::Update,
        request,
    )
    .await
}

/// Takes an upload's body, raw or as a multipart form (`file` with the
/// fields `cacheControl` and `metadata` before it, as the clients send).
async fn receive(
    storage: &Storage,
    project: &StorageProject,
    writer: Writer,
    bucket: &str,
    name: &str,
    mode: Mode,
    request: Request,
) -> Result<Response> {
    let headers = request.headers().clone();
    let declared_length = header_str(&headers, "content-length").and_then(|v| v.parse().ok());
    let content_type = header_str(&headers, "content-type").unwrap_or("");
    if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let (incoming, field) = form_file(request).await?;
        let body = field.map(|c| c.map_err(|e| e.to_string()));
        return store_object(
            storage, project, &writer, bucket, name, mode, incoming, body,
        )
        .await;
    }
    let user_metadata = match header_str(&headers, "x-metadata") {
        Some(encoded) => {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| Error::invalid_request("x-metadata must be base64 JSON"))?;
            Some(parse_user_metadata(&String::from_utf8_lossy(&raw))?)
        }
        None => None,
    };
    let incoming = Incoming {
        mime: if content_type.is_empty() {
            "application/octet-stream".to_owned()
        } else {
            content_type.to_owned()
        },
        cache_control: cache_control(header_str(&headers, "cache-control"), "no-cache"),
        user_metadata,
        declared_length,
    };
    let body = request.into_body().into_data_stream();
    store_object(
        storage, project, &writer, bucket, name, mode, incoming, body,
    )
    .await
}

/// Reads a multipart upload up to its file: the fields `cacheControl` and
/// `metadata` before it (as the clients send them), then the first part
/// that is a file (a file name, or the name `file` or none). What to store,
/// and the file's part to stream.
pub(crate) async fn form_file(request: Request) -> Result<(Incoming, multer::Field<'static>)> {
    let refused = |e: multer::Error| Error::invalid_request(format!("bad multipart form: {e}"));
    let boundary =
        multer::parse_boundary(header_str(request.headers(), "content-type").unwrap_or(""))
            .map_err(refused)?;
    // multer's parts own their share of the body: the file part streams
    // on after this returns (axum's wrapper would borrow the form).
    let mut form = multer::Multipart::new(request.into_body().into_data_stream(), boundary);
    let mut cache = None;
    let mut user_metadata = None;
    while let Some(field) = form.next_field().await.map_err(refused)? {
        match field.name() {
            Some("cacheControl") => cache = Some(field.text().await.map_err(refused)?),
            Some("metadata") => {
                user_metadata = Some(parse_user_metadata(&field.text().await.map_err(refused)?)?);
            }
            _ if field.file_name().is_some()
                || field.name() == Some("file")
                || field.name() == Some("") =>
            {
                let incoming = Incoming {
                    mime: field
                        .content_type()
                        .map_or("application/octet-stream".to_owned(), ToString::to_string),
                    cache_control: cache_control(cache.as_deref(), "max-age=3600"),
                    user_metadata,
                    // The form's length is not the file's.
                    declared_length: None,
                };
                return Ok((incoming, field));
            }
            _ => {}
        }
    }
    Err(Error::invalid_request("No content provided"))
}

/// An object row as an upload, a copy or a signed upload writes it.
struct Row<'a> {
    bucket: &'a str,
    name: &'a str,
    owner: &'a Option<String>,
    version: &'a str,
    metadata: &'a Value,
    user_metadata: &'a Option<Value>,
}

/// The row write of an upload, run first as a test (rolled back, so a
/// caller RLS refuses never sends bytes anywhere) and then for real.
async fn write_row(
    tx: &deadpool_postgres::Transaction<'_>,
    mode: Mode,
    row: Row<'_>,
) -> Result<String> {
    let owner_sql = owner_uuid(3);
    let sql = match mode {
        Mode::Update => format!(
            "UPDATE storage.objects SET owner = {owner_sql}, owner_id = $3, version = $4,
               metadata = $5, user_metadata = $6, updated_at = now(), last_accessed_at = now()
             WHERE bucket_id = $1 AND name = $2 RETURNING id::text"
        ),
        Mode::Create | Mode::Upsert => {
            let conflict = if mode == Mode::Upsert {
                "ON CONFLICT (bucket_id, name) DO UPDATE SET owner = EXCLUDED.owner,
                   owner_id = EXCLUDED.owner_id, version = EXCLUDED.version,
                   metadata = EXCLUDED.metadata, user_metadata = EXCLUDED.user_metadata,
                   updated_at = now(), last_accessed_at = now()"
            } else {
                ""
            };
            format!(
                "INSERT INTO storage.objects (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
                 VALUES ($1, $2, {owner_sql}, $3, $4, $5, $6) {conflict} RETURNING id::text"
            )
        }
    };
    let statement = tx.prepare_cached(&sql).await?;
    tx.query_opt(
        &statement,
        &[
            &row.bucket,
            &row.name,
            row.owner,
            &row.version,
            row.metadata,
            row.user_metadata,
        ],
    )
    .await?
    .map(|r| r.get(0))
    .ok_or_else(Error::no_such_key)
}

pub(crate) fn new_version() -> String {
    supa_core::random_uuid()
}

/// An upload on its way in: where it goes, who writes it and how.
pub(crate) struct Upload<'a> {
    pub storage: &'a Storage,
    pub project: &'a StorageProject,
    pub writer: &'a Writer,
    pub bucket: &'a str,
    pub name: &'a str,
    pub mode: Mode,
    pub incoming: &'a Incoming,
    /// The version key the bytes go to.
    pub version: String,
}

impl Upload<'_> {
    fn row<'r>(&'r self, owner: &'r Option<String>, metadata: &'r Value) -> Row<'r> {
        Row {
            bucket: self.bucket,
            name: self.name,
            owner,
            version: &self.version,
            metadata,
            user_metadata: &self.incoming.user_metadata,
        }
    }

    /// The key of this version's bytes.
    pub(crate) fn key(&self) -> object_store::path::Path {
        let prefix = self.storage.prefix(&self.project.project_ref);
        Backend::key(&prefix, self.bucket, self.name, Some(&self.version))
    }

    /// Checks the upload before any byte is stored: the size and type
    /// limits, and whether the writer may write the row (asked, then
    /// rolled back). Gives the size limit for the bytes.
    pub(crate) async fn admit(&self) -> Result<u64> {
        let limits =
            store::bucket_limits(&self.storage.client(self.project).await?, self.bucket).await?;
        let project_limit = self.project.settings.file_size_limit;
        let limit = limits
            .file_size_limit
            .map_or(project_limit, |l| l.min(project_limit))
            .max(0) as u64;
        if self.incoming.declared_length.is_some_and(|n| n > limit) {
            return Err(Error::too_large());
        }
        if !names::mime_allowed(&self.incoming.mime, limits.allowed_mime_types.as_deref()) {
            return Err(Error::invalid_mime_type(&self.incoming.mime));
        }
        let owner = self.writer.owner();
        let probe = json!({
            "size": self.incoming.declared_length.unwrap_or(0),
            "mimetype": self.incoming.mime,
        });
        write_as(self, self.row(&owner, &probe), false).await?;
        Ok(limit)
    }

    /// Writes the row naming the stored bytes, then removes the version it
    /// replaced; when the row cannot be written, removes the new bytes.
    /// Gives the object's id.
    pub(crate) async fn commit(&self, written: &Written) -> Result<String> {
        let metadata = json!({
            "eTag": format!("\"{}\"", written.etag),
            "size": written.size,
            "mimetype": self.incoming.mime,
            "cacheControl": self.incoming.cache_control,
            "lastModified": supa_core::time::now_iso8601(),
            "contentLength": written.size,
            "httpStatusCode": 200,
        });
        let owner = self.writer.owner();
        let backend = self.storage.backend();
        match write_as(self, self.row(&owner, &metadata), true).await {
            Ok((id, old)) => {
                if let Some(old) = old.filter(|o| *o != self.version) {
                    let prefix = self.storage.prefix(&self.project.project_ref);
                    backend
                        .remove(&Backend::key(&prefix, self.bucket, self.name, Some(&old)))
                        .await;
                }
                Ok(id)
            }
            Err(e) => {
                backend.remove(&self.key()).await;
                Err(e)
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn store_object<S, E>(
    storage: &Storage,
    project: &StorageProject,
    writer: &Writer,
    bucket: &str,
    name: &str,
    mode: Mode,
    incoming: Incoming,
    body: S,
) -> Result<Response>
where
    S: futures_util::Stream<Item = std::result::Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let upload = Upload {
        storage,
        project,
        writer,
        bucket,
        name,
        mode,
        incoming: &incoming,
        version: new_version(),
    };
    let limit = upload.admit().await?;
    // No database connection is held while the bytes stream in.
    let written = storage.backend().write(&upload.key(), body, limit).await?;
    let id = upload.commit(&written).await?;
    Ok(ok_json(
        json!({ "Id": id, "Key": format!("{bucket}/{name}") }),
    ))
}

/// Writes an upload's row as its writer: committed, with the version it
/// replaced (read and locked before acting as the caller), or rolled back
/// (`commit` false: only asking whether the write is allowed).
async fn write_as(
    upload: &Upload<'_>,
    row: Row<'_>,
    commit: bool,
) -> Result<(String, Option<String>)> {
    let mut client = upload.storage.client(upload.project).await?;
    let tx = client.transaction().await?;
    let old = if commit {
        store::lock_version(&tx, row.bucket, row.name).await?
    } else {
        None
    };
    if let Writer::Caller(caller) = upload.writer {
        store::set_caller(&tx, caller).await?;
    }
    let id = write_row(&tx, upload.mode, row).await?;
    if commit {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok((id, old))
}

// --------------------------------------------------------------- downloads

#[derive(Debug, Default, Deserialize)]
struct DownloadQuery {
    download: Option<String>,
    token: Option<String>,
}

async fn download_authenticated(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    ObjectPath { bucket, name }: ObjectPath,
    Query(query): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let client = storage.client(&project).await?;
    let row = store::find_as(client, Reader::Caller(&caller), &bucket, &name).await?;
    serve(
        &storage,
        &project,
        &bucket,
        &name,
        row,
        &headers,
        query.download,
    )
    .await
}

async fn download_public(
    State(storage): State<Storage>,
    Project(project): Project,
    ObjectPath { bucket, name }: ObjectPath,
    Query(query): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let client = storage.client(&project).await?;
    let row = store::find_as(client, Reader::Public, &bucket, &name).await?;
    serve(
        &storage,
        &project,
        &bucket,
        &name,
        row,
        &headers,
        query.download,
    )
    .await
}

async fn download_signed(
    State(storage): State<Storage>,
    Project(project): Project,
    ObjectPath { bucket, name }: ObjectPath,
    Query(query): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let token = query
        .token
        .as_deref()
        .ok_or_else(|| Error::invalid_signature("Missing token"))?;
    signed_claims(&project, token, &bucket, &name)?;
    let client = storage.client(&project).await?;
    let row = store::find_as(client, Reader::Signed, &bucket, &name).await?;
    serve(
        &storage,
        &project,
        &bucket,
        &name,
        row,
        &headers,
        query.download,
    )
    .await
}

/// A byte range a client asked for, as the backend takes it.
pub(crate) fn requested_range(headers: &HeaderMap) -> Option<GetRange> {
    let spec = header_str(headers, "range")?
        .trim()
        .strip_prefix("bytes=")?;
    // Several ranges are served whole (as S3 does).
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    match (start.is_empty(), end.is_empty()) {
        (true, false) => end.parse().ok().map(GetRange::Suffix),
        (false, true) => start.parse().ok().map(GetRange::Offset),
        (false, false) => {
            let (s, e): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
            (s <= e).then(|| GetRange::Bounded(s..e.saturating_add(1)))
        }
        (true, true) => None,
    }
}

fn same_etag(header: &str, etag: &str) -> bool {
    let bare = |t: &str| {
        t.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_owned()
    };
    header
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// Streams an object's bytes with Supabase's headers.
pub(crate) async fn serve(
    storage: &Storage,
    project: &StorageProject,
    bucket: &str,
    name: &str,
    row: store::ObjectRow,
    headers: &HeaderMap,
    download: Option<String>,
) -> Result<Response> {
    let meta = &row.metadata;
    let text = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_owned);
    let etag = text("eTag");
    let mut builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CACHE_CONTROL,
            text("cacheControl").unwrap_or_else(|| "no-cache".into()),
        );
    if let Some(etag) = &etag {
        builder = builder.header(header::ETAG, etag);
    }
    if let Some(modified) = &row.last_modified {
        builder = builder.header(header::LAST_MODIFIED, modified);
    }
    if let (Some(etag), Some(wanted)) = (&etag, header_str(headers, "if-none-match"))
        && same_etag(wanted, etag)
    {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(Error::internal);
    }
    let prefix = storage.prefix(&project.project_ref);
    let key = Backend::key(&prefix, bucket, name, row.version.as_deref());
    let range = requested_range(headers);
    let partial = range.is_some();
    let size = meta.get("size").and_then(Value::as_u64).unwrap_or(0);
    let satisfiable = match &range {
        Some(GetRange::Bounded(r)) => r.start < size,
        Some(GetRange::Offset(start)) => *start < size,
        Some(GetRange::Suffix(n)) => *n > 0 && size > 0,
        None => true,
    };
    if !satisfiable {
        let e = Error::invalid_range();
        return Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            axum::Json(e.body()),
        )
            .into_response());
    }
    let reading = storage.backend().read(&key, range).await?;
    builder = builder
        .header(
            header::CONTENT_TYPE,
            text("mimetype").unwrap_or_else(|| "application/octet-stream".into()),
        )
        .header(
            header::CONTENT_LENGTH,
            reading.range.end - reading.range.start,
        );
    if partial {
        builder = builder.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{}",
                reading.range.start,
                reading.range.end.saturating_sub(1),
                reading.size
            ),
        );
    }
    if let Some(download) = download {
        let file = if download.is_empty() {
            name.rsplit('/').next().unwrap_or(name).to_owned()
        } else {
            download
        };
        let ascii: String = file
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        builder = builder.header(
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
                utf8_percent_encode(&file, ATTR_CHAR)
            ),
        );
    }
    builder
        .body(Body::from_stream(reading.body))
        .map_err(Error::internal)
}

// ------------------------------------------------------------------- info

fn info_sql() -> String {
    format!(
        "SELECT json_build_object('id', id, 'version', version, 'name', name, 'bucket_id', bucket_id,
           'created_at', {}, 'updated_at', {}, 'last_accessed_at', {},
           'size', (metadata->>'size')::bigint, 'content_type', metadata->>'mimetype',
           'cache_control', metadata->>'cacheControl', 'etag', metadata->>'eTag',
           'last_modified', metadata->>'lastModified', 'metadata', coalesce(user_metadata, '{{}}'::jsonb))::text
         FROM storage.objects WHERE bucket_id = $1 AND name = $2",
        iso("created_at"),
        iso("updated_at"),
        iso("last_accessed_at")
    )
}

async fn info_authenticated(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    ObjectPath { bucket, name }: ObjectPath,
) -> Result<Response> {
    let mut client = storage.client(&project).await?;
    let tx = store::begin_as(&mut client, &caller).await?;
    let row = tx
        .query_opt(&info_sql(), &[&bucket, &name])
        .await?
        .ok_or_else(Error::no_such_key)?;
    tx.commit().await?;
    Ok(json_text(row.get(0)))
}

async fn info_public(
    State(storage): State<Storage>,
    Project(project): Project,
    ObjectPath { bucket, name }: ObjectPath,
) -> Result<Response> {
    let client = storage.client(&project).await?;
    if !store::bucket_limits(&client, &bucket).await?.public {
        return Err(Error::no_such_bucket());
    }
    let row = client
        .query_opt(&info_sql(), &[&bucket, &name])
        .await?
        .ok_or_else(Error::no_such_key)?;
    Ok(json_text(row.get(0)))
}

// ---------------------------------------------------------------- listing

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SortBy {
    column: Option<String>,
    order: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListBody {
    prefix: Option<String>,
    limit: Option<Number>,
    offset: Option<Number>,
    search: Option<String>,
    #[serde(rename = "sortBy")]
    sort_by: Option<SortBy>,
}

async fn list_objects(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    Path(bucket): Path<String>,
    body: Body,
) -> Result<Response> {
    let body: ListBody = json_body(body).await?;
    let mut prefix = body.prefix.unwrap_or_default();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let levels = prefix.split('/').count() as i32;
    let limit = body.limit.map_or(100, |n| n.0).clamp(1, 10_000) as i32;
    let offset = body.offset.map_or(0, |n| n.0).max(0) as i32;
    let sort = body.sort_by.unwrap_or_default();
    let mut client = storage.client(&project).await?;
    let tx = store::begin_as(&mut client, &caller).await?;
    let sql = format!(
        "SELECT coalesce(json_agg(json_build_object('name', s.name, 'id', s.id,
           'updated_at', {}, 'created_at', {}, 'last_accessed_at', {}, 'metadata', s.metadata)), '[]')::text
         FROM storage.search($1, $2, $3, $4, $5, $6, $7, $8) s",
        iso("s.updated_at"),
        iso("s.created_at"),
        iso("s.last_accessed_at")
    );
    let text: String = tx
        .query_one(
            &sql,
            &[
                &prefix,
                &bucket,
                &limit,
                &levels,
                &offset,
                &body.search.unwrap_or_default(),
                &sort.column.unwrap_or_else(|| "name".into()),
                &sort.order.unwrap_or_else(|| "asc".into()),
            ],
        )
        .await?
        .get(0);
    tx.commit().await?;
    Ok(json_text(text))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListV2Body {
    prefix: Option<String>,
    cursor: Option<String>,
    limit: Option<Number>,
    with_delimiter: Option<bool>,
    #[serde(rename = "sortBy")]
    sort_by: Option<SortBy>,
}

async fn list_v2(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    Path(bucket): Path<String>,
    body: Body,
) -> Result<Response> {
    let body: ListV2Body = json_body(body).await?;
    let prefix = body.prefix.unwrap_or_default();
    let limit = body.limit.map_or(1000, |n| n.0).clamp(1, 1000);
    let delimiter = body.with_delimiter.unwrap_or(false);
    let descending = body
        .sort_by
        .and_then(|s| s.order)
        .is_some_and(|o| o.eq_ignore_ascii_case("desc"));
    let mut client = storage.client(&project).await?;
    let tx = store::begin_as(&mut client, &caller).await?;
    let page = store::list_page(
        &tx,
        &bucket,
        &prefix,
        body.cursor.as_deref(),
        delimiter.then_some("/"),
        descending,
        limit,
    )
    .await?;
    tx.commit().await?;
    let has_next = page.len() as i64 > limit;
    let mut folders = Vec::new();
    let mut objects = Vec::new();
    let mut last = None;
    for entry in page.into_iter().take(limit as usize) {
        if entry.folder {
            folders.push(json!({ "key": entry.key, "name": entry.key }));
        } else {
            objects.push(json!({
                "id": entry.id,
                "key": entry.key,
                "name": entry.key,
                "updated_at": entry.updated_at,
                "created_at": entry.created_at,
                "metadata": entry.metadata,
            }));
        }
        last = Some(entry.key);
    }
    let mut answer = json!({ "hasNext": has_next, "folders": folders, "objects": objects });
    if has_next {
        answer["nextCursor"] = json!(last);
    }
    Ok(ok_json(answer))
}

// ------------------------------------------------------ move, copy, delete

#[derive(Debug, Deserialize)]
struct MoveBody {
    #[serde(rename = "bucketId")]
    bucket_id: String,
    #[serde(rename = "sourceKey")]
    source_key: String,
    #[serde(rename = "destinationKey")]
    destination_key: String,
    #[serde(rename = "destinationBucket")]
    destination_bucket: Option<String>,
}

impl MoveBody {
    fn checked(&self) -> Result<(&str, &str, &str, &str)> {
        let to_bucket = self
            .destination_bucket
            .as_deref()
            .unwrap_or(&self.bucket_id);
        Ok((
            bucket_name(&self.bucket_id)?,
            object_key(&self.source_key)?,
            bucket_name(to_bucket)?,
            object_key(&self.destination_key)?,
        ))
    }
}

async fn move_object(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    body: Body,
) -> Result<Response> {
    let body: MoveBody = json_body(body).await?;
    let (from_bucket, from, to_bucket, to) = body.checked()?;
    let mut client = storage.client(&project).await?;
    let tx = store::begin_as(&mut client, &caller).await?;
    let source = store::find_object(&tx, from_bucket, from).await?;
    let prefix = storage.prefix(&project.project_ref);
    let version = new_version();
    let old_key = Backend::key(&prefix, from_bucket, from, source.version.as_deref());
    let new_key = Backend::key(&prefix, to_bucket, to, Some(&version));
    storage.backend().copy(&old_key, &new_key).await?;
    let moved: Result<()> = async {
        let updated = tx
            .execute(
                "UPDATE storage.objects SET bucket_id = $3, name = $4, version = $5, updated_at = now()
                 WHERE bucket_id = $1 AND name = $2",
                &[&from_bucket, &from, &to_bucket, &to, &version],
            )
            .await?;
        if updated == 0 {
            return Err(Error::no_such_key());
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    match moved {
        Ok(()) => {
            storage.backend().remove(&old_key).await;
            Ok(message("Successfully moved"))
        }
        Err(e) => {
            storage.backend().remove(&new_key).await;
            Err(e)
        }
    }
}

async fn copy_object(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    request: Request,
) -> Result<Response> {
    let mode = if is_upsert(request.headers()) {
        Mode::Upsert
    } else {
        Mode::Create
    };
    let body: MoveBody = json_body(request.into_body()).await?;
    let (from_bucket, from, to_bucket, to) = body.checked()?;
    let copied = copy_as(
        &storage,
        &project,
        &caller,
        (from_bucket, from),
        (to_bucket, to),
        mode,
    )
    .await?;
    Ok(ok_json(
        json!({ "Id": copied.id, "Key": format!("{to_bucket}/{to}") }),
    ))
}

/// What a copy made.
pub(crate) struct Copied {
    pub id: String,
    /// The copy's metadata (the source's: size, type, ETag).
    pub metadata: Value,
}

/// Copies an object as `caller` (who must be allowed to read the source
/// and write the destination); a replaced destination's bytes are removed
/// after commit, the copy's bytes when the row is refused.
pub(crate) async fn copy_as(
    storage: &Storage,
    project: &StorageProject,
    caller: &Caller,
    (from_bucket, from): (&str, &str),
    (to_bucket, to): (&str, &str),
    mode: Mode,
) -> Result<Copied> {
    let mut client = storage.client(project).await?;
    let tx = client.transaction().await?;
    let replaced = store::lock_version(&tx, to_bucket, to).await?;
    store::set_caller(&tx, caller).await?;
    let source = tx
        .query_opt(
            "SELECT version, metadata, user_metadata FROM storage.objects WHERE bucket_id = $1 AND name = $2",
            &[&from_bucket, &from],
        )
        .await?
        .ok_or_else(Error::no_such_key)?;
    let (source_version, metadata, user_metadata): (Option<String>, Option<Value>, Option<Value>) =
        (source.get(0), source.get(1), source.get(2));
    let metadata = metadata.unwrap_or_else(|| json!({}));
    let prefix = storage.prefix(&project.project_ref);
    let version = new_version();
    let old_key = Backend::key(&prefix, from_bucket, from, source_version.as_deref());
    let new_key = Backend::key(&prefix, to_bucket, to, Some(&version));
    storage.backend().copy(&old_key, &new_key).await?;
    let copied: Result<String> = async {
        let id = write_row(
            &tx,
            mode,
            Row {
                bucket: to_bucket,
                name: to,
                owner: &caller.sub,
                version: &version,
                metadata: &metadata,
                user_metadata: &user_metadata,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }
    .await;
    match copied {
        Ok(id) => {
            if let Some(replaced) = replaced {
                storage
                    .backend()
                    .remove(&Backend::key(&prefix, to_bucket, to, Some(&replaced)))
                    .await;
            }
            Ok(Copied { id, metadata })
        }
        Err(e) => {
            storage.backend().remove(&new_key).await;
            Err(e)
        }
    }
}

fn deleted_json() -> String {
    format!(
        "json_build_object('bucket_id', bucket_id, 'name', name, 'id', id, 'owner', owner,
           'owner_id', owner_id, 'version', version, 'created_at', {}, 'updated_at', {},
           'last_accessed_at', {}, 'metadata', metadata)::text",
        iso("created_at"),
        iso("updated_at"),
        iso("last_accessed_at")
    )
}

async fn delete_one(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    ObjectPath { bucket, name }: ObjectPath,
) -> Result<Response> {
    if delete_as(&storage, &project, &caller, &bucket, &[name])
        .await?
        .is_empty()
    {
        return Err(Error::no_such_key());
    }
    Ok(message("Successfully deleted"))
}

/// Deletes the objects `names` of `bucket` that `caller` may delete, then
/// their bytes; gives each deleted object's name and row as JSON.
pub(crate) async fn delete_as(
    storage: &Storage,
    project: &StorageProject,
    caller: &Caller,
    bucket: &str,
    names: &[String],
) -> Result<Vec<(String, String)>> {
    let mut client = storage.client(project).await?;
    let tx = store::begin_as(&mut client, caller).await?;
    let sql = format!(
        "DELETE FROM storage.objects WHERE bucket_id = $1 AND name = ANY($2)
         RETURNING name, version, {}",
        deleted_json()
    );
    let rows = tx.query(&sql, &[&bucket, &names]).await?;
    tx.commit().await?;
    let prefix = storage.prefix(&project.project_ref);
    let mut deleted = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.get(0);
        let key = Backend::key(
            &prefix,
            bucket,
            &name,
            row.get::<_, Option<String>>(1).as_deref(),
        );
        storage.backend().remove(&key).await;
        deleted.push((name, row.get::<_, String>(2)));
    }
    Ok(deleted)
}

#[derive(Debug, Deserialize)]
struct DeleteManyBody {
    prefixes: Vec<String>,
}

async fn delete_many(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    Path(bucket): Path<String>,
    body: Body,
) -> Result<Response> {
    let body: DeleteManyBody = json_body(body).await?;
    bucket_name(&bucket)?;
    if body.prefixes.is_empty() || body.prefixes.len() > 1000 {
        return Err(Error::invalid_request(
            "body/prefixes must have between 1 and 1000 items",
        ));
    }
    let deleted = delete_as(&storage, &project, &caller, &bucket, &body.prefixes).await?;
    let rows: Vec<String> = deleted.into_iter().map(|(_, row)| row).collect();
    Ok(json_text(format!("[{}]", rows.join(","))))
}

// ------------------------------------------------------------ signed URLs

fn encode_path(bucket: &str, name: &str) -> String {
    std::iter::once(bucket)
        .chain(name.split('/'))
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// What RFC 8187 keeps unescaped in `filename*`.
const ATTR_CHAR: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// What a path segment keeps unescaped in a signed URL.
const SEGMENT: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn sign(project: &StorageProject, claims: Value) -> String {
    let Value::Object(map) = claims else {
        unreachable!("signed URL claims are an object")
    };
    supa_keys::sign_claims(&project.jwt_key, &map)
}

/// The claims of a signed URL's token for `bucket/name`.
pub(crate) fn signed_claims(
    project: &StorageProject,
    token: &str,
    bucket: &str,
    name: &str,
) -> Result<supa_keys::Claims> {
    let now = supa_keys::unix_now();
    let claims = supa_keys::verify(&project.jwt_key, token, now).map_err(jwt_error)?;
    // Signed URLs expire exactly (no clock leeway).
    if claims.exp() <= now {
        return Err(Error::invalid_jwt("jwt expired"));
    }
    if claims.get("url").and_then(Value::as_str) != Some(&format!("{bucket}/{name}")) {
        return Err(Error::invalid_signature("url mismatch"));
    }
    Ok(claims)
}

#[derive(Debug, Deserialize)]
struct SignBody {
    #[serde(rename = "expiresIn")]
    expires_in: Number,
    #[serde(default)]
    paths: Vec<String>,
    /// Image transformation options of a signed rendition.
    #[serde(default)]
    transform: Option<Value>,
}

fn expiry(n: Number) -> Result<i64> {
    if n.0 < 1 {
        return Err(Error::invalid_request("body/expiresIn must be >= 1"));
    }
    Ok(supa_keys::unix_now().saturating_add(n.0))
}

async fn sign_one(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    ObjectPath { bucket, name }: ObjectPath,
    body: Body,
) -> Result<Response> {
    let body: SignBody = json_body(body).await?;
    let exp = expiry(body.expires_in)?;
    // A transformation rides in the token, and the URL renders it.
    let transform = body
        .transform
        .as_ref()
        .map(crate::render::Transform::from_json)
        .transpose()?;
    let mut client = storage.client(&project).await?;
    let tx = store::begin_as(&mut client, &caller).await?;
    store::find_object(&tx, &bucket, &name).await?;
    tx.commit().await?;
    let mut claims =
        json!({"url": format!("{bucket}/{name}"), "iat": supa_keys::unix_now(), "exp": exp});
    let route = match &transform {
        Some(t) => {
            claims["transformations"] = json!(t.canonical());
            "render/image/sign"
        }
        None => "object/sign",
    };
    let token = sign(&project, claims);
    Ok(ok_json(json!({
        "signedURL": format!("/{route}/{}?token={token}", encode_path(&bucket, &name))
    })))
}

async fn sign_many(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    Path(bucket): Path<String>,
    body: Body,
) -> Result<Response> {
    let body: SignBody = json_body(body).await?;
    bucket_name(&bucket)?;
    if body.paths.is_empty() || body.paths.len() > 1000 {
        return Err(Error::invalid_request(
            "body/paths must have between 1 and 1000 items",
        ));
    }
    let exp = expiry(body.expires_in)?;
    let mut client = storage.client(&project).await?;
    let tx = store::begin_as(&mut client, &caller).await?;
    let found: Vec<String> = tx
        .query(
            "SELECT name FROM storage.objects WHERE bucket_id = $1 AND name = ANY($2)",
            &[&bucket, &body.paths],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    tx.commit().await?;
    let now = supa_keys::unix_now();
    let answer: Vec<Value> = body
        .paths
        .iter()
        .map(|path| {
            if found.contains(path) {
                let token = sign(
                    &project,
                    json!({"url": format!("{bucket}/{path}"), "iat": now, "exp": exp}),
                );
                json!({
                    "error": null,
                    "path": path,
                    "signedURL": format!("/object/sign/{}?token={token}", encode_path(&bucket, path)),
                })
            } else {
                json!({
                    "error": "Either the object does not exist or you do not have access to it",
                    "path": path,
                    "signedURL": null,
                })
            }
        })
        .collect();
    Ok(ok_json(Value::Array(answer)))
}

async fn sign_upload(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    ObjectPath { bucket, name }: ObjectPath,
    headers: HeaderMap,
) -> Result<Response> {
    let upsert = is_upsert(&headers);
    let mode = if upsert { Mode::Upsert } else { Mode::Create };
    let mut client = storage.client(&project).await?;
    store::bucket_limits(&client, &bucket).await?;
    // The caller must be allowed to upload it now (rolled back).
    let tx = store::begin_as(&mut client, &caller).await?;
    write_row(
        &tx,
        mode,
        Row {
            bucket: &bucket,
            name: &name,
            owner: &caller.sub,
            version: &new_version(),
            metadata: &json!({}),
            user_metadata: &None,
        },
    )
    .await?;
    tx.rollback().await?;
    let now = supa_keys::unix_now();
    let token = sign(
        &project,
        json!({
            "owner": caller.sub,
            "url": format!("{bucket}/{name}"),
            "upsert": upsert,
            "iat": now,
            "exp": now + SIGNED_UPLOAD_TTL,
        }),
    );
    Ok(ok_json(json!({
        "url": format!("/object/upload/sign/{}?token={token}", encode_path(&bucket, &name)),
        "token": token,
    })))
}

async fn upload_signed(
    State(storage): State<Storage>,
    Project(project): Project,
    ObjectPath { bucket, name }: ObjectPath,
    Query(query): Query<DownloadQuery>,
    request: Request,
) -> Result<Response> {
    let token = query
        .token
        .as_deref()
        .ok_or_else(|| Error::invalid_signature("Missing token"))?;
    let claims = signed_claims(&project, token, &bucket, &name)?;
    let owner = claims
        .get("owner")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mode = if claims.get("upsert").and_then(Value::as_bool) == Some(true) {
        Mode::Upsert
    } else {
        Mode::Create
    };
    receive(
        &storage,
        &project,
        Writer::Signed { owner },
        &bucket,
        &name,
        mode,
        request,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert("range", HeaderValue::from_str(v).unwrap());
            requested_range(&m)
        };
        assert_eq!(h("bytes=0-9"), Some(GetRange::Bounded(0..10)));
        assert_eq!(h("bytes=5-"), Some(GetRange::Offset(5)));
        assert_eq!(h("bytes=-3"), Some(GetRange::Suffix(3)));
        assert_eq!(h("bytes=9-1"), None);
        assert_eq!(h("bytes=0-1,4-5"), None);
        assert_eq!(h("items=0-1"), None);
    }

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size(&json!(1024)).unwrap(), Some(1024));
        assert_eq!(parse_size(&json!("20MB")).unwrap(), Some(20_000_000));
        assert_eq!(parse_size(&json!("3 kb")).unwrap(), Some(3_000));
        assert_eq!(parse_size(&json!(null)).unwrap(), None);
        assert!(parse_size(&json!("lots")).is_err());
        assert!(parse_size(&json!(-1)).is_err());
    }

    #[test]
    fn etags_compare_without_quotes_or_weakness() {
        assert!(same_etag("\"abc\"", "\"abc\""));
        assert!(same_etag("W/\"abc\", \"x\"", "\"abc\""));
        assert!(same_etag("*", "\"abc\""));
        assert!(!same_etag("\"abd\"", "\"abc\""));
    }

    #[test]
    fn versions_are_v4_uuids() {
        let v = new_version();
        assert_eq!(v.len(), 36);
        assert_eq!(&v[14..15], "4");
        assert_ne!(v, new_version());
    }
}
