//! Resumable uploads: TUS 1.0.0 at `/upload/resumable`, as Supabase
//! Storage serves it to tus-js-client and Uppy for large files.
//!
//! An upload is created with its length and its metadata (`bucketName`,
//! `objectName`, `contentType`, `cacheControl`, `metadata`) and checked as
//! any upload is (size and type limits, the caller's right to write the
//! row, asked and rolled back). Its state lives beside the bytes, in the
//! backend, so any server sharing the backend can continue it:
//! `{prefix}/~uploads/{id}/info` and one piece per `PATCH`, named by its
//! offset. A `PATCH` cut short keeps the bytes that arrived, so the client
//! resumes from the offset `HEAD` reports. The last piece turns the pieces
//! into the object's version key and writes its row as the caller.
//! Abandoned uploads expire (`410`), and the sweeper removes them.
//!
//! `~` is not a bucket name character, so `~uploads` (stored as
//! `%7Euploads`: object_store escapes `~`) never meets a bucket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use object_store::path::Path as Key;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{
    Auth, Incoming, Mode, Upload, Writer, cache_control, header_str, is_upsert, new_version,
    parse_user_metadata,
};
use crate::error::Result;
use crate::names::{bucket_name, object_key};
use crate::{Error, Storage, StorageProject};

const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,termination,expiration";

/// The folder of a project's uploads in progress.
pub(crate) const UPLOADS: &str = "~uploads";

/// What a resumable upload is, kept in its `info` blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadState {
    bucket: String,
    name: String,
    version: String,
    length: u64,
    mime: String,
    cache_control: String,
    user_metadata: Option<Value>,
    upsert: bool,
    /// The creator's `sub`: only they (or the service role) continue it.
    owner: Option<String>,
    /// Unix milliseconds after which the upload is gone.
    expires_ms: u64,
}

/// TUS's routes, under the storage router.
pub(crate) fn routes() -> Router<Storage> {
    Router::new()
        .route("/upload/resumable", post(create).options(options))
        .route(
            "/upload/resumable/{id}",
            axum::routing::head(offset)
                .patch(append)
                .delete(terminate)
                .options(options),
        )
}

/// Errors keep their own status here: TUS clients act on it (404 and 410
/// start over, 409 asks for the offset again), where storage-js reads the
/// body of a 400.
fn respond(result: Result<Response>) -> Response {
    let mut response = match result {
        Ok(r) => r,
        Err(e) if e.status < 500 => {
            let status = e.status;
            e.with_http_status(status).into_response()
        }
        Err(e) => e.into_response(),
    };
    response
        .headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    response
}

/// `Tus-Resumable` must name the version served (412 otherwise).
fn check_version(headers: &HeaderMap) -> Result<()> {
    if header_str(headers, "tus-resumable") == Some(TUS_VERSION) {
        Ok(())
    } else {
        Err(Error::new(
            412,
            "InvalidRequest",
            "Unsupported version: Tus-Resumable must be 1.0.0",
        ))
    }
}

/// A non-negative integer header.
pub(crate) fn number(headers: &HeaderMap, name: &str) -> Result<u64> {
    header_str(headers, &name.to_ascii_lowercase())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::invalid_request(format!("{name} must be a non-negative integer")))
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs.
pub(crate) fn metadata(headers: &HeaderMap) -> Result<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::new();
    for pair in header_str(headers, "upload-metadata")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let value = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(|| {
                Error::invalid_request(format!("Upload-Metadata {key} is not base64"))
            })?;
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

/// An upload's id: its bucket, name and version, base64url (Supabase's
/// shape), so the id names the object it becomes.
pub(crate) fn upload_id(bucket: &str, name: &str, version: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{bucket}/{name}/{version}"))
}

/// The bucket, name and version upload `id` stands for, if it decodes to
/// a valid bucket, name and version.
pub(crate) fn upload_parts(id: &str) -> Option<(String, String, String)> {
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .ok()
        .and_then(|v| String::from_utf8(v).ok())?;
    let (bucket, rest) = decoded.split_once('/')?;
    let (name, version) = rest.rsplit_once('/')?;
    if bucket_name(bucket).is_err() || object_key(name).is_err() || version.len() != 36 {
        return None;
    }
    Some((bucket.to_owned(), name.to_owned(), version.to_owned()))
}

/// The folder of upload `id` (checked: it decodes to a valid bucket, name
/// and version).
fn folder(storage: &Storage, project: &StorageProject, id: &str) -> Result<Key> {
    upload_parts(id).ok_or_else(Error::no_such_upload)?;
    Ok(Key::from_iter([
        storage.prefix(&project.project_ref).as_str(),
        UPLOADS,
        id,
    ]))
}

/// The upload `id` as `caller` may continue it: 404 when it does not
/// exist or is someone else's, 410 when it expired.
async fn load(
    storage: &Storage,
    project: &StorageProject,
    caller: &crate::store::Caller,
    id: &str,
) -> Result<(Key, UploadState)> {
    let dir = folder(storage, project, id)?;
    let blob = storage
        .backend()
        .get_small(&dir.clone().join("info"))
        .await?
        .ok_or_else(Error::no_such_upload)?;
    let state: UploadState = serde_json::from_slice(&blob).map_err(Error::internal)?;
    if caller.role != "service_role" && caller.sub != state.owner {
        return Err(Error::no_such_upload());
    }
    if state.expires_ms < supa_core::time::since_epoch().as_millis() as u64 {
        return Err(Error::new(410, "NoSuchUpload", "The upload has expired"));
    }
    Ok((dir, state))
}

/// The pieces that make the upload's first bytes without a gap, and the
/// offset they reach. Pieces are named `{offset:020}-{random}`; two pieces
/// at one offset (a retried `PATCH`) give the longer one.
async fn pieces(storage: &Storage, dir: &Key) -> Result<(Vec<Key>, u64)> {
    let mut at: Vec<(u64, u64, Key)> = storage
        .backend()
        .list(dir)
        .await?
        .into_iter()
        .filter_map(|l| {
            let start = l.key.filename()?.split('-').next()?.parse().ok()?;
            Some((start, l.size, l.key))
        })
        .collect();
    at.sort_by_key(|(start, size, _)| (*start, std::cmp::Reverse(*size)));
    let mut chain = Vec::new();
    let mut end = 0u64;
    for (start, size, key) in at {
        if start == end && size > 0 {
            end += size;
            chain.push(key);
        }
    }
    Ok((chain, end))
}

fn expires_header(state: &UploadState) -> HeaderValue {
    HeaderValue::from_str(&supa_core::time::http_date(state.expires_ms / 1000))
        .expect("an HTTP date is a header value")
}

async fn options(request: Request) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    if let Some(config) = request.extensions().get::<Arc<supa_core::ProjectConfig>>() {
        h.insert(
            "tus-max-size",
            HeaderValue::from(config.storage.file_size_limit.max(0) as u64),
        );
    }
    respond(Ok(response))
}

async fn create(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    request: Request,
) -> Response {
    respond(create_upload(&storage, &project, caller, request).await)
}

/// Creates an upload; a body sent with the creation request (TUS's
/// `creation-with-upload`, as Supabase's documented client setup does) is
/// its first piece.
async fn create_upload(
    storage: &Storage,
    project: &StorageProject,
    caller: crate::store::Caller,
    request: Request,
) -> Result<Response> {
    let headers = &request.headers().clone();
    check_version(headers)?;
    if headers.contains_key("upload-defer-length") {
        return Err(Error::invalid_request(
            "Upload-Defer-Length is not supported: send Upload-Length",
        ));
    }
    let length = number(headers, "Upload-Length")?;
    let meta = metadata(headers)?;
    let field = |name: &str| {
        meta.get(name)
            .cloned()
            .ok_or_else(|| Error::invalid_request(format!("Upload-Metadata must have {name}")))
    };
    let bucket = field("bucketName")?;
    let name = field("objectName")?;
    bucket_name(&bucket)?;
    object_key(&name)?;
    let incoming = Incoming {
        mime: meta
            .get("contentType")
            .filter(|t| !t.is_empty())
            .cloned()
            .unwrap_or_else(|| "application/octet-stream".into()),
        cache_control: cache_control(meta.get("cacheControl").map(String::as_str), "max-age=3600"),
        user_metadata: meta
            .get("metadata")
            .map(|m| parse_user_metadata(m))
            .transpose()?,
        declared_length: Some(length),
    };
    let upsert = is_upsert(headers);
    let writer = Writer::Caller(caller.clone());
    let upload = Upload {
        storage,
        project,
        writer: &writer,
        bucket: &bucket,
        name: &name,
        mode: if upsert { Mode::Upsert } else { Mode::Create },
        incoming: &incoming,
        version: new_version(),
    };
    upload.admit().await?;
    let id = upload_id(&bucket, &name, &upload.version);
    let state = UploadState {
        bucket: bucket.clone(),
        name: name.clone(),
        version: upload.version.clone(),
        length,
        mime: incoming.mime.clone(),
        cache_control: incoming.cache_control.clone(),
        user_metadata: incoming.user_metadata.clone(),
        upsert,
        owner: writer.owner(),
        expires_ms: (supa_core::time::since_epoch() + storage.upload_expiry()).as_millis() as u64,
    };
    let dir = folder(storage, project, &id)?;
    let blob = serde_json::to_vec(&state).map_err(Error::internal)?;
    storage
        .backend()
        .put_small(&dir.clone().join("info"), Bytes::from(blob))
        .await?;
    // Served standalone, the API is at the root (Supabase's proxy strips
    // `/storage/v1`); behind the gateway the prefix is forwarded.
    let base = supa_core::public_base_url(|n| header_str(headers, n), "");
    let location = format!("{base}/upload/resumable/{id}");
    let reached = if is_piece(headers) {
        write_piece(storage, project, caller, &dir, &state, 0, request).await?
    } else {
        if length == 0 {
            // Nothing to send: the upload is complete as created.
            finish(storage, project, caller, &dir, &state).await?;
        }
        0
    };
    let mut response = StatusCode::CREATED.into_response();
    let h = response.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(Error::internal)?,
    );
    h.insert("upload-expires", expires_header(&state));
    h.insert("upload-offset", HeaderValue::from(reached));
    Ok(response)
}

/// Whether a request carries upload bytes.
fn is_piece(headers: &HeaderMap) -> bool {
    header_str(headers, "content-type") == Some("application/offset+octet-stream")
}

async fn offset(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            check_version(&headers)?;
            let (dir, state) = load(&storage, &project, &caller, &id).await?;
            let (_, offset) = pieces(&storage, &dir).await?;
            let mut response = StatusCode::OK.into_response();
            let h = response.headers_mut();
            h.insert("upload-offset", HeaderValue::from(offset));
            h.insert("upload-length", HeaderValue::from(state.length));
            h.insert("upload-expires", expires_header(&state));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
        .await,
    )
}

async fn append(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    respond(append_piece(&storage, &project, caller, &id, request).await)
}

async fn append_piece(
    storage: &Storage,
    project: &StorageProject,
    caller: crate::store::Caller,
    id: &str,
    request: Request,
) -> Result<Response> {
    let headers = request.headers().clone();
    check_version(&headers)?;
    if !is_piece(&headers) {
        return Err(Error::new(
            415,
            "InvalidRequest",
            "Content-Type must be application/offset+octet-stream",
        ));
    }
    let claimed = number(&headers, "Upload-Offset")?;
    let (dir, state) = load(storage, project, &caller, id).await?;
    let (_, offset) = pieces(storage, &dir).await?;
    if claimed != offset {
        return Err(Error::new(
            409,
            "InvalidRequest",
            format!("Upload-Offset is {claimed} but the upload is at {offset}"),
        ));
    }
    let reached = write_piece(storage, project, caller, &dir, &state, offset, request).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert("upload-offset", HeaderValue::from(reached));
    h.insert("upload-expires", expires_header(&state));
    Ok(response)
}

/// Stores a request's body as the piece at `offset`, and finishes the
/// upload when it is complete; gives the offset reached.
async fn write_piece(
    storage: &Storage,
    project: &StorageProject,
    caller: crate::store::Caller,
    dir: &Key,
    state: &UploadState,
    offset: u64,
    request: Request,
) -> Result<u64> {
    let room = state.length - offset;
    if header_str(request.headers(), "content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > room)
    {
        return Err(Error::too_large());
    }
    // A body cut short keeps what arrived: the stream ends at the error,
    // the piece is stored, and the client resumes from the new offset.
    let cut = Arc::new(AtomicBool::new(false));
    let body = UntilError {
        inner: request.into_body().into_data_stream(),
        cut: cut.clone(),
    };
    let piece = dir
        .clone()
        .join(format!("{offset:020}-{}", &new_version()[..8]));
    let written = storage.backend().write(&piece, body, room).await?;
    let reached = offset + written.size;
    if cut.load(Ordering::Relaxed) {
        return Err(Error::invalid_request(format!(
            "The upload was interrupted at offset {reached}; resume from there"
        )));
    }
    if reached == state.length {
        finish(storage, project, caller, dir, state).await?;
    }
    Ok(reached)
}

/// A body that ends at its first error, noting that it was cut.
struct UntilError<S> {
    inner: S,
    cut: Arc<AtomicBool>,
}

impl<S, E> futures_util::Stream for UntilError<S>
where
    S: futures_util::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
{
    type Item = std::result::Result<Bytes, std::convert::Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.cut.load(Ordering::Relaxed) {
            return std::task::Poll::Ready(None);
        }
        std::task::Poll::Ready(match std::task::ready!(self.inner.poll_next_unpin(cx)) {
            Some(Ok(chunk)) => Some(Ok(chunk)),
            Some(Err(_)) => {
                self.cut.store(true, Ordering::Relaxed);
                None
            }
            None => None,
        })
    }
}

/// Joins the pieces into the object's version and writes its row as the
/// caller. The upload is gone afterwards either way: a finished upload is
/// an object, and one whose row was refused cannot become one.
async fn finish(
    storage: &Storage,
    project: &StorageProject,
    caller: crate::store::Caller,
    dir: &Key,
    state: &UploadState,
) -> Result<()> {
    let (chain, _) = pieces(storage, dir).await?;
    let writer = Writer::Caller(caller);
    let incoming = Incoming {
        mime: state.mime.clone(),
        cache_control: state.cache_control.clone(),
        user_metadata: state.user_metadata.clone(),
        declared_length: Some(state.length),
    };
    let upload = Upload {
        storage,
        project,
        writer: &writer,
        bucket: &state.bucket,
        name: &state.name,
        mode: if state.upsert {
            Mode::Upsert
        } else {
            Mode::Create
        },
        incoming: &incoming,
        version: state.version.clone(),
    };
    let outcome = async {
        let written = storage
            .backend()
            .concat(&chain, &upload.key(), state.length)
            .await?;
        upload.commit(&written).await
    }
    .await;
    if let Err(e) = storage.backend().remove_prefix(dir).await {
        tracing::warn!(error = %e, "removing a finished upload's pieces failed");
    }
    outcome.map(|_| ())
}

async fn terminate(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            check_version(&headers)?;
            let (dir, _) = load(&storage, &project, &caller, &id).await?;
            storage.backend().remove_prefix(&dir).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_decode() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "upload-metadata",
            HeaderValue::from_static("bucketName YXZhdGFycw==,objectName YS9iLnBuZw==, empty"),
        );
        let meta = metadata(&headers).unwrap();
        assert_eq!(meta["bucketName"], "avatars");
        assert_eq!(meta["objectName"], "a/b.png");
        assert_eq!(meta["empty"], "");
        headers.insert("upload-metadata", HeaderValue::from_static("bucketName !!"));
        assert_eq!(metadata(&headers).unwrap_err().code, "InvalidRequest");
    }

    #[test]
    fn ids_name_their_object() {
        let id = upload_id("b", "a/ü.txt", "0bd1c7ae-51e0-4f3f-8a5c-4f0b1e0c6f3a");
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&id)
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "b/a/ü.txt/0bd1c7ae-51e0-4f3f-8a5c-4f0b1e0c6f3a"
        );
        assert!(!id.contains('/') && !id.contains('+'));
    }
}
