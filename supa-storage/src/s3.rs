//! The S3 protocol at `/s3`, as Supabase Storage offers it: path-style
//! requests signed with SigV4, answered with S3's XML.
//!
//! A request is signed either with one of the project's S3 access keys
//! (it then acts as the service role) or, as Supabase's "session token"
//! mode has it, with the project ref as access key id, the publishable key
//! as secret and a user's JWT as session token (it then acts as that user,
//! and row level security decides). Objects are the same rows and bytes
//! the REST API serves: every write goes through the same checked upload
//! path. Multipart uploads keep their bookkeeping in
//! `storage.s3_multipart_uploads(_parts)`, written by the server for the
//! caller who started the upload (their right to write the object is asked
//! when it starts and when it completes), and their parts' bytes under
//! `{prefix}/~multipart/{upload id}/`.
//!
//! Bodies are streamed. `x-amz-content-sha256` is honoured: a hex digest is
//! checked against the bytes received (a mismatch stores nothing),
//! `UNSIGNED-PAYLOAD` is taken as is, and `aws-chunked` bodies with an
//! unsigned trailer (what AWS SDKs send over TLS) are decoded; chunks
//! signed one by one are refused with `NotImplemented`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use md5::{Digest as _, Md5};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::api::{
    Incoming, Mode, Upload, Writer, caller_of, copy_as, delete_as, header_str, new_version, serve,
};
use crate::backend::Written;
use crate::error::Result;
use crate::names::{bucket_name, object_key};
use crate::store::{self, Caller, iso};
use crate::{Error, Storage, StorageProject};

/// The folder of a project's multipart uploads in progress (stored as
/// `%7Emultipart`; `~` is not a bucket name character).
pub(crate) const MULTIPART: &str = "~multipart";

/// S3's smallest part, but for the last.
const MIN_PART: i64 = 5 * 1024 * 1024;

/// Largest XML request body.
const XML_LIMIT: usize = 1024 * 1024;

pub(crate) fn routes() -> Router<Storage> {
    Router::new()
        .route("/s3", any(handle))
        .route("/s3/", any(handle))
        .route("/s3/{*path}", any(handle))
}

async fn handle(State(storage): State<Storage>, request: Request) -> Response {
    let resource = request
        .uri()
        .path()
        .strip_prefix("/s3")
        .unwrap_or("/")
        .to_owned();
    match dispatch(&storage, request).await {
        Ok(response) => response,
        Err(e) => error_response(&e, &resource),
    }
}

// ------------------------------------------------------------------ errors

/// S3's name for an error of this crate.
fn s3_code(e: &Error) -> &'static str {
    match e.code {
        "ResourceNotEmpty" => "BucketNotEmpty",
        "InvalidJWT" => "InvalidToken",
        "KeyAlreadyExists" => "PreconditionFailed",
        "DatabaseConnectionLimit" => "SlowDown",
        code => code,
    }
}

fn error_response(e: &Error, resource: &str) -> Response {
    let status = if e.status >= 500 {
        e.http_status()
    } else {
        e.status
    };
    let mut body = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = write!(
        body,
        "<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource></Error>",
        s3_code(e),
        escape(&e.message),
        escape(resource)
    );
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}

fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

fn xml(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml")],
        format!(r#"<?xml version="1.0" encoding="UTF-8"?>{body}"#),
    )
        .into_response()
}

fn signature_error(e: supa_keys::Error) -> Error {
    match e {
        supa_keys::Error::SignatureMismatch => Error::new(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        ),
        supa_keys::Error::SignatureExpired => {
            Error::new(403, "AccessDenied", "Request has expired")
        }
        supa_keys::Error::RequestTimeSkewed => Error::new(
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the server's time is too large.",
        ),
        other => Error::new(400, "AuthorizationHeaderMalformed", other.to_string()),
    }
}

// ---------------------------------------------------------- authentication

/// Who signed the request, checked against the project's keys (read from
/// its config only here, not copied for every storage request).
fn authenticate(
    config: &supa_core::ProjectConfig,
    project: &StorageProject,
    request: &Request,
) -> Result<Caller> {
    let headers = request.headers();
    // The path and host the client signed: behind the gateway, the prefix
    // and host it was reached at.
    let prefix = header_str(headers, "x-forwarded-prefix").unwrap_or("");
    let path = format!("{prefix}{}", request.uri().path());
    let host = header_str(headers, "x-forwarded-host").or_else(|| header_str(headers, "host"));
    let mut pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(name, _)| *name != header::HOST)
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    if let Some(host) = host {
        pairs.push(("host", host));
    }
    let received = supa_keys::ReceivedRequest {
        method: request.method().as_str(),
        path: &path,
        query: request.uri().query().unwrap_or(""),
        headers: &pairs,
    };
    let signature = supa_keys::S3Signature::parse(&received)
        .map_err(signature_error)?
        .ok_or_else(|| {
            Error::new(
                403,
                "AccessDenied",
                "Missing S3 access key or session token signature",
            )
        })?;
    let now = supa_keys::unix_now();
    if let Some(token) = &signature.session_token {
        // Session mode: the project ref signs with the publishable key, and
        // the token says who the caller is.
        let key = config
            .publishable_key
            .as_deref()
            .filter(|_| signature.access_key_id == project.project_ref.as_str())
            .ok_or_else(invalid_access_key)?;
        signature
            .verify(&received, key, now)
            .map_err(signature_error)?;
        return caller_of(project, token);
    }
    let secret = config
        .s3_credentials
        .get(&signature.access_key_id)
        .ok_or_else(invalid_access_key)?;
    signature
        .verify(&received, secret.expose(), now)
        .map_err(signature_error)?;
    Ok(Caller {
        role: "service_role".into(),
        claims: json!({"role": "service_role"}).to_string(),
        sub: None,
    })
}

fn invalid_access_key() -> Error {
    Error::new(
        403,
        "InvalidAccessKeyId",
        "The Access Key Id you provided does not exist in our records.",
    )
}

// ---------------------------------------------------------------- dispatch

/// The query's parameters, decoded.
fn params(request: &Request) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// What `encoding-type=url` leaves as it is in listed keys.
const KEY_CHARS: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

async fn dispatch(storage: &Storage, request: Request) -> Result<Response> {
    let config = request
        .extensions()
        .get::<Arc<supa_core::ProjectConfig>>()
        .ok_or_else(|| Error::new(400, "TenantNotFound", "Invalid tenant id"))?;
    let project = StorageProject::from_config(config)?;
    if !project.settings.features.s3_protocol.enabled {
        return Err(Error::new(
            403,
            "AccessDenied",
            "The S3 protocol is disabled for this project",
        ));
    }
    let caller = authenticate(config, &project, &request)?;
    let path = request.uri().path().strip_prefix("/s3").unwrap_or("");
    let path = percent_encoding::percent_decode_str(path.trim_start_matches('/'))
        .decode_utf8()
        .map_err(|_| Error::invalid_request("the path is not UTF-8"))?
        .into_owned();
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) if !k.is_empty() => (b.to_owned(), Some(k.to_owned())),
        Some((b, _)) => (b.to_owned(), None),
        None => (path.clone(), None),
    };
    let q = params(&request);
    let method = request.method().clone();
    let s = S3 {
        storage,
        project: &project,
        caller,
    };
    if bucket.is_empty() {
        return match method {
            Method::GET => s.list_buckets().await,
            _ => Err(not_implemented()),
        };
    }
    bucket_name(&bucket)?;
    let Some(key) = key else {
        return match method {
            // One store for every region a client signs for.
            Method::GET if q.contains_key("location") => Ok(xml(
                r#"<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">us-east-1</LocationConstraint>"#
                    .to_owned(),
            )),
            Method::GET if q.contains_key("uploads") => s.list_uploads(&bucket).await,
            Method::GET => s.list_objects(&bucket, &q).await,
            Method::HEAD => s.head_bucket(&bucket).await,
            Method::PUT => s.create_bucket(&bucket, request.headers()).await,
            Method::DELETE => s.delete_bucket(&bucket).await,
            Method::POST if q.contains_key("delete") => s.delete_objects(&bucket, request).await,
            _ => Err(not_implemented()),
        };
    };
    object_key(&key)?;
    let upload_id = q.get("uploadId").cloned();
    match (method, upload_id) {
        (Method::PUT, Some(id)) => {
            let part = q
                .get("partNumber")
                .and_then(|n| n.parse::<i32>().ok())
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| {
                    Error::new(
                        400,
                        "InvalidArgument",
                        "Part number must be an integer between 1 and 10000",
                    )
                })?;
            s.upload_part(&bucket, &key, &id, part, request).await
        }
        (Method::POST, Some(id)) => s.complete_upload(&bucket, &key, &id, request).await,
        (Method::DELETE, Some(id)) => s.abort_upload(&bucket, &key, &id).await,
        (Method::GET, Some(id)) => s.list_parts(&bucket, &key, &id).await,
        (Method::POST, None) if q.contains_key("uploads") => {
            s.create_upload(&bucket, &key, request.headers()).await
        }
        (Method::PUT, None) if request.headers().contains_key("x-amz-copy-source") => {
            s.copy_object(&bucket, &key, request.headers()).await
        }
        (Method::PUT, None) => s.put_object(&bucket, &key, request).await,
        (Method::GET | Method::HEAD, None) => s.get_object(&bucket, &key, request.headers()).await,
        (Method::DELETE, None) => s.delete_object(&bucket, &key).await,
        _ => Err(not_implemented()),
    }
}

fn not_implemented() -> Error {
    Error::new(
        501,
        "NotImplemented",
        "A header or query you provided implies functionality that is not implemented",
    )
    .with_http_status(501)
}

// ----------------------------------------------------------------- bodies

/// A request body as S3 clients frame it.
struct S3Body {
    /// The bytes.
    stream: futures_util::stream::BoxStream<'static, std::result::Result<Bytes, String>>,
    /// Their declared length.
    length: Option<u64>,
    /// What they must hash to, once read.
    check: PayloadCheck,
}

/// The SHA-256 a body was signed with, and the hash of what arrived.
struct PayloadCheck {
    hasher: Arc<Mutex<Option<Sha256>>>,
    expected: Option<String>,
}

impl PayloadCheck {
    /// Whether the bytes that streamed through are what the client signed.
    fn matches(&self) -> bool {
        let Some(expected) = &self.expected else {
            return true;
        };
        let sha = self
            .hasher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        sha.is_some_and(|sha| hex::encode(sha.finalize()) == *expected)
    }
}

/// The body of `request`, decoded and checked as `x-amz-content-sha256`
/// says.
fn object_body(request: Request) -> Result<S3Body> {
    let headers = request.headers();
    let content_sha = header_str(headers, "x-amz-content-sha256").map(str::to_owned);
    let length = header_str(headers, "content-length").and_then(|v| v.parse().ok());
    let decoded_length =
        header_str(headers, "x-amz-decoded-content-length").and_then(|v| v.parse().ok());
    let raw = request
        .into_body()
        .into_data_stream()
        .map(|c| c.map_err(|e| e.to_string()));
    let hasher = Arc::new(Mutex::new(None));
    let unchecked = |stream, length| S3Body {
        stream,
        length,
        check: PayloadCheck {
            hasher: Arc::new(Mutex::new(None)),
            expected: None,
        },
    };
    match content_sha.as_deref() {
        None | Some("UNSIGNED-PAYLOAD") => Ok(unchecked(raw.boxed(), length)),
        Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER") => {
            Ok(unchecked(AwsChunked::new(raw).boxed(), decoded_length))
        }
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            *hasher
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Sha256::new());
            let h = hasher.clone();
            let hashed = raw.map(move |chunk| {
                if let (Ok(bytes), Some(sha)) = (
                    &chunk,
                    h.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .as_mut(),
                ) {
                    sha.update(bytes);
                }
                chunk
            });
            Ok(S3Body {
                stream: hashed.boxed(),
                length,
                check: PayloadCheck {
                    hasher,
                    expected: Some(hex.to_ascii_lowercase()),
                },
            })
        }
        Some(_) => Err(not_implemented()),
    }
}

fn sha_mismatch() -> Error {
    Error::new(
        400,
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    )
}

/// A small body (an XML document), checked like any other.
async fn small_body(request: Request) -> Result<Bytes> {
    let md5 = header_str(request.headers(), "content-md5").map(str::to_owned);
    let mut body = object_body(request)?;
    let mut all = BytesMut::new();
    while let Some(chunk) = body.stream.next().await {
        let chunk = chunk.map_err(|e| Error::invalid_request(format!("body interrupted: {e}")))?;
        if all.len() + chunk.len() > XML_LIMIT {
            return Err(Error::new(
                400,
                "MaxMessageLengthExceeded",
                "The request body is too large",
            ));
        }
        all.extend_from_slice(&chunk);
    }
    if !body.check.matches() {
        return Err(sha_mismatch());
    }
    if let Some(md5) = md5 {
        use base64::Engine as _;
        let actual = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&all));
        if actual != md5.trim() {
            return Err(Error::new(
                400,
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    Ok(all.freeze())
}

fn parse_xml<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    let text = std::str::from_utf8(body).map_err(|_| malformed_xml())?;
    quick_xml::de::from_str(text).map_err(|_| malformed_xml())
}

fn malformed_xml() -> Error {
    Error::new(
        400,
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

/// `aws-chunked` framing with an unsigned trailer: `{hex size}\r\n{bytes}\r\n`
/// chunks, a `0` chunk, then trailer lines and an empty line; yields the
/// bytes.
struct AwsChunked<S> {
    inner: S,
    buffer: BytesMut,
    /// Bytes left in the current chunk, then its `\r\n`.
    left: usize,
    state: ChunkState,
}

#[derive(PartialEq)]
enum ChunkState {
    Size,
    Data,
    DataEnd,
    Trailer,
    Done,
}

impl<S> AwsChunked<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            buffer: BytesMut::new(),
            left: 0,
            state: ChunkState::Size,
        }
    }

    /// The next piece of decoded bytes from the buffer, `Ok(None)` when
    /// more input is needed.
    fn step(&mut self) -> std::result::Result<Option<Bytes>, String> {
        loop {
            match self.state {
                ChunkState::Size | ChunkState::Trailer => {
                    let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") else {
                        if self.buffer.len() > 4096 {
                            return Err("aws-chunked: a line is too long".into());
                        }
                        return Ok(None);
                    };
                    let line = self.buffer.split_to(end + 2);
                    let line = std::str::from_utf8(&line[..end])
                        .map_err(|_| "aws-chunked: a line is not text".to_owned())?;
                    if self.state == ChunkState::Trailer {
                        if line.is_empty() {
                            self.state = ChunkState::Done;
                        }
                        continue;
                    }
                    let size = line.split(';').next().unwrap_or("");
                    let size = usize::from_str_radix(size.trim(), 16)
                        .map_err(|_| format!("aws-chunked: bad chunk size {size:?}"))?;
                    if size == 0 {
                        self.state = ChunkState::Trailer;
                    } else {
                        self.left = size;
                        self.state = ChunkState::Data;
                    }
                }
                ChunkState::Data => {
                    if self.buffer.is_empty() {
                        return Ok(None);
                    }
                    let n = self.left.min(self.buffer.len());
                    self.left -= n;
                    if self.left == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                    return Ok(Some(self.buffer.split_to(n).freeze()));
                }
                ChunkState::DataEnd => {
                    if self.buffer.len() < 2 {
                        return Ok(None);
                    }
                    if &self.buffer[..2] != b"\r\n" {
                        return Err("aws-chunked: a chunk does not end with CRLF".into());
                    }
                    self.buffer.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Done => return Ok(None),
            }
        }
    }
}

impl<S> Stream for AwsChunked<S>
where
    S: Stream<Item = std::result::Result<Bytes, String>> + Unpin,
{
    type Item = std::result::Result<Bytes, String>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        loop {
            match self.step() {
                Err(e) => {
                    self.state = ChunkState::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(Some(bytes)) => return Poll::Ready(Some(Ok(bytes))),
                Ok(None) if self.state == ChunkState::Done => return Poll::Ready(None),
                Ok(None) => {}
            }
            match std::task::ready!(self.inner.poll_next_unpin(cx)) {
                Some(Ok(bytes)) => self.buffer.extend_from_slice(&bytes),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    self.state = ChunkState::Done;
                    return Poll::Ready(Some(Err("aws-chunked: the body ended early".into())));
                }
            }
        }
    }
}

// -------------------------------------------------------------- operations

/// One S3 request's project and caller.
struct S3<'a> {
    storage: &'a Storage,
    project: &'a StorageProject,
    caller: Caller,
}

/// `x-amz-meta-*` headers as an object's user metadata.
fn user_metadata(headers: &HeaderMap) -> Option<Value> {
    let map: serde_json::Map<String, Value> = headers
        .iter()
        .filter_map(|(name, value)| {
            let key = name.as_str().strip_prefix("x-amz-meta-")?;
            Some((
                key.to_owned(),
                Value::String(value.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    (!map.is_empty()).then_some(Value::Object(map))
}

/// What an upload carries, from S3's headers.
fn incoming(headers: &HeaderMap, declared_length: Option<u64>) -> Incoming {
    Incoming {
        mime: header_str(headers, "content-type")
            .filter(|t| !t.is_empty())
            .unwrap_or("application/octet-stream")
            .to_owned(),
        cache_control: header_str(headers, "cache-control")
            .unwrap_or("no-cache")
            .to_owned(),
        user_metadata: user_metadata(headers),
        declared_length,
    }
}

fn etag_of(metadata: &Value) -> String {
    metadata
        .get("eTag")
        .and_then(Value::as_str)
        .unwrap_or("\"\"")
        .to_owned()
}

fn with_etag(etag: &str) -> Response {
    let mut response = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

impl S3<'_> {
    /// An upload (S3 writes replace) of `bucket/key` by this caller.
    fn upsert<'u>(
        &'u self,
        writer: &'u Writer,
        bucket: &'u str,
        key: &'u str,
        incoming: &'u Incoming,
        version: String,
    ) -> Upload<'u> {
        Upload {
            storage: self.storage,
            project: self.project,
            writer,
            bucket,
            name: key,
            mode: Mode::Upsert,
            incoming,
            version,
        }
    }

    async fn client(&self) -> Result<supa_db::Object> {
        self.storage.client(self.project).await
    }

    fn is_service(&self) -> bool {
        self.caller.role == "service_role"
    }

    async fn list_buckets(&self) -> Result<Response> {
        let mut client = self.client().await?;
        let tx = store::begin_as(&mut client, &self.caller).await?;
        let sql = format!(
            "SELECT id, {} FROM storage.buckets ORDER BY id COLLATE \"C\"",
            iso("created_at")
        );
        let rows = tx.query(&sql, &[]).await?;
        tx.commit().await?;
        let owner = self.project.project_ref.as_str();
        let mut body = format!(
            r#"<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>{owner}</ID><DisplayName>{owner}</DisplayName></Owner><Buckets>"#
        );
        for row in rows {
            let _ = write!(
                body,
                "<Bucket><Name>{}</Name><CreationDate>{}</CreationDate></Bucket>",
                escape(row.get(0)),
                row.get::<_, Option<String>>(1).unwrap_or_default()
            );
        }
        body.push_str("</Buckets></ListAllMyBucketsResult>");
        Ok(xml(body))
    }

    async fn head_bucket(&self, bucket: &str) -> Result<Response> {
        let mut client = self.client().await?;
        let tx = store::begin_as(&mut client, &self.caller).await?;
        let seen = tx
            .query_opt("SELECT 1 FROM storage.buckets WHERE id = $1", &[&bucket])
            .await?;
        tx.commit().await?;
        seen.ok_or_else(Error::no_such_bucket)?;
        Ok(StatusCode::OK.into_response())
    }

    async fn create_bucket(&self, bucket: &str, headers: &HeaderMap) -> Result<Response> {
        let public = header_str(headers, "x-amz-acl")
            .is_some_and(|acl| acl == "public-read" || acl == "public-read-write");
        let mut client = self.client().await?;
        let tx = store::begin_as(&mut client, &self.caller).await?;
        store::insert_bucket(
            &tx,
            store::NewBucket {
                id: bucket,
                name: bucket,
                owner: &self.caller.sub,
                public,
                file_size_limit: None,
                allowed_mime_types: None,
            },
        )
        .await?;
        tx.commit().await?;
        let mut response = StatusCode::OK.into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("/{bucket}")) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        Ok(response)
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<Response> {
        let mut client = self.client().await?;
        let tx = store::begin_as(&mut client, &self.caller).await?;
        store::delete_bucket(&tx, bucket).await?;
        tx.commit().await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    /// ListObjectsV2 (`list-type=2`) and the original ListObjects.
    async fn list_objects(&self, bucket: &str, q: &HashMap<String, String>) -> Result<Response> {
        let v2 = q.get("list-type").is_some_and(|t| t == "2");
        let prefix = q.get("prefix").cloned().unwrap_or_default();
        let delimiter = q.get("delimiter").filter(|d| !d.is_empty()).cloned();
        let max_keys: i64 = match q.get("max-keys") {
            Some(n) => n
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    Error::new(
                        400,
                        "InvalidArgument",
                        "max-keys must be a non-negative integer",
                    )
                })?
                .min(1000),
            None => 1000,
        };
        let url_encoded = q.get("encoding-type").is_some_and(|e| e == "url");
        let token = q.get("continuation-token").cloned();
        let cursor = if v2 {
            match &token {
                Some(t) => {
                    use base64::Engine as _;
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(t)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| {
                            Error::new(
                                400,
                                "InvalidArgument",
                                "The continuation token provided is incorrect",
                            )
                        })?;
                    Some(raw)
                }
                None => q.get("start-after").cloned(),
            }
        } else {
            q.get("marker").cloned()
        };
        let mut client = self.client().await?;
        // The bucket must exist, whether or not the caller may see its row.
        store::bucket_limits(&client, bucket).await?;
        let tx = store::begin_as(&mut client, &self.caller).await?;
        let page = if max_keys == 0 {
            Vec::new()
        } else {
            store::list_page(
                &tx,
                bucket,
                &prefix,
                cursor.as_deref(),
                delimiter.as_deref(),
                false,
                max_keys,
            )
            .await?
        };
        tx.commit().await?;
        let truncated = page.len() as i64 > max_keys;
        let shown = &page[..page.len().min(max_keys as usize)];
        let enc = |s: &str| -> String {
            if url_encoded {
                percent_encoding::utf8_percent_encode(s, KEY_CHARS).to_string()
            } else {
                escape(s).into_owned()
            }
        };
        let mut body = format!(
            r#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>{}</Name><Prefix>{}</Prefix><MaxKeys>{max_keys}</MaxKeys><IsTruncated>{truncated}</IsTruncated>"#,
            escape(bucket),
            enc(&prefix)
        );
        if let Some(d) = &delimiter {
            let _ = write!(body, "<Delimiter>{}</Delimiter>", enc(d));
        }
        if url_encoded {
            body.push_str("<EncodingType>url</EncodingType>");
        }
        let last = shown.last().map(|e| e.key.clone());
        if v2 {
            let _ = write!(body, "<KeyCount>{}</KeyCount>", shown.len());
            if let Some(t) = &token {
                let _ = write!(body, "<ContinuationToken>{}</ContinuationToken>", escape(t));
            }
            if let Some(after) = q.get("start-after") {
                let _ = write!(body, "<StartAfter>{}</StartAfter>", enc(after));
            }
            if truncated && let Some(last) = &last {
                use base64::Engine as _;
                let _ = write!(
                    body,
                    "<NextContinuationToken>{}</NextContinuationToken>",
                    base64::engine::general_purpose::STANDARD.encode(last)
                );
            }
        } else {
            let _ = write!(
                body,
                "<Marker>{}</Marker>",
                enc(q.get("marker").map_or("", String::as_str))
            );
            if truncated
                && delimiter.is_some()
                && let Some(last) = &last
            {
                let _ = write!(body, "<NextMarker>{}</NextMarker>", enc(last));
            }
        }
        for entry in shown.iter().filter(|e| !e.folder) {
            let meta = entry.metadata.clone().unwrap_or(Value::Null);
            let _ = write!(
                body,
                "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                enc(&entry.key),
                entry.updated_at.as_deref().unwrap_or(""),
                escape(&etag_of(&meta)),
                meta.get("size").and_then(Value::as_u64).unwrap_or(0)
            );
        }
        for entry in shown.iter().filter(|e| e.folder) {
            let _ = write!(
                body,
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                enc(&entry.key)
            );
        }
        body.push_str("</ListBucketResult>");
        Ok(xml(body))
    }

    /// An upload of one object under `mode`, through the API's checked
    /// path, with the payload checked against its signed digest.
    async fn put_object(&self, bucket: &str, key: &str, request: Request) -> Result<Response> {
        let headers = request.headers().clone();
        let body = object_body(request)?;
        let incoming = incoming(&headers, body.length);
        let writer = Writer::Caller(self.caller.clone());
        let upload = self.upsert(&writer, bucket, key, &incoming, new_version());
        let limit = upload.admit().await?;
        let written = self
            .storage
            .backend()
            .write(&upload.key(), body.stream, limit)
            .await?;
        if !body.check.matches() {
            self.storage.backend().remove(&upload.key()).await;
            return Err(sha_mismatch());
        }
        upload.commit(&written).await?;
        Ok(with_etag(&format!("\"{}\"", written.etag)))
    }

    async fn get_object(&self, bucket: &str, key: &str, headers: &HeaderMap) -> Result<Response> {
        let client = self.client().await?;
        let row = store::find_as(client, store::Reader::Caller(&self.caller), bucket, key).await?;
        let user_meta = row.user_metadata.clone();
        let mut response =
            serve(self.storage, self.project, bucket, key, row, headers, None).await?;
        if response.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            return Err(Error::new(
                416,
                "InvalidRange",
                "The requested range is not satisfiable",
            ));
        }
        if let Some(Value::Object(meta)) = user_meta {
            for (k, v) in meta {
                let value = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                if let (Ok(name), Ok(value)) = (
                    axum::http::HeaderName::from_bytes(format!("x-amz-meta-{k}").as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
        }
        Ok(response)
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<Response> {
        delete_as(
            self.storage,
            self.project,
            &self.caller,
            bucket,
            &[key.to_owned()],
        )
        .await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    async fn delete_objects(&self, bucket: &str, request: Request) -> Result<Response> {
        #[derive(Deserialize)]
        struct Delete {
            #[serde(rename = "Object", default)]
            objects: Vec<ObjectRef>,
            #[serde(rename = "Quiet", default)]
            quiet: bool,
        }
        #[derive(Deserialize)]
        struct ObjectRef {
            #[serde(rename = "Key")]
            key: String,
        }
        let body: Delete = parse_xml(&small_body(request).await?)?;
        if body.objects.is_empty() || body.objects.len() > 1000 {
            return Err(malformed_xml());
        }
        let names: Vec<String> = body.objects.into_iter().map(|o| o.key).collect();
        // S3 reports a key that was not there as deleted too.
        delete_as(self.storage, self.project, &self.caller, bucket, &names).await?;
        let mut out =
            String::from(r#"<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#);
        if !body.quiet {
            for name in &names {
                let _ = write!(out, "<Deleted><Key>{}</Key></Deleted>", escape(name));
            }
        }
        out.push_str("</DeleteResult>");
        Ok(xml(out))
    }

    async fn copy_object(&self, bucket: &str, key: &str, headers: &HeaderMap) -> Result<Response> {
        let source = header_str(headers, "x-amz-copy-source").unwrap_or("");
        let source = source.split('?').next().unwrap_or("");
        let source = percent_encoding::percent_decode_str(source.trim_start_matches('/'))
            .decode_utf8()
            .map_err(|_| Error::invalid_request("x-amz-copy-source is not UTF-8"))?;
        let (from_bucket, from_key) = source.split_once('/').ok_or_else(|| {
            Error::new(
                400,
                "InvalidArgument",
                "x-amz-copy-source must be bucket/key",
            )
        })?;
        bucket_name(from_bucket)?;
        object_key(from_key)?;
        let copied = copy_as(
            self.storage,
            self.project,
            &self.caller,
            (from_bucket, from_key),
            (bucket, key),
            Mode::Upsert,
        )
        .await?;
        Ok(xml(format!(
            "<CopyObjectResult><LastModified>{}</LastModified><ETag>{}</ETag></CopyObjectResult>",
            supa_core::time::now_iso8601(),
            escape(&etag_of(&copied.metadata))
        )))
    }

    // ------------------------------------------------------------ multipart

    fn parts_dir(&self, upload_id: &str) -> object_store::path::Path {
        object_store::path::Path::from_iter([
            self.storage.prefix(&self.project.project_ref).as_str(),
            MULTIPART,
            upload_id,
        ])
    }

    async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        headers: &HeaderMap,
    ) -> Result<Response> {
        let incoming = incoming(headers, None);
        let writer = Writer::Caller(self.caller.clone());
        let upload = self.upsert(&writer, bucket, key, &incoming, new_version());
        upload.admit().await?;
        let id = new_version().replace('-', "");
        // The type and cache control the object will have, kept with the
        // upload until it completes.
        let signature = json!({"mimetype": incoming.mime, "cacheControl": incoming.cache_control});
        self.client()
            .await?
            .execute(
                "INSERT INTO storage.s3_multipart_uploads
                   (id, upload_signature, bucket_id, key, version, owner_id, user_metadata)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &id,
                    &signature.to_string(),
                    &bucket,
                    &key,
                    &upload.version,
                    &self.caller.sub,
                    &incoming.user_metadata,
                ],
            )
            .await?;
        Ok(xml(format!(
            r#"<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>{}</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>"#,
            escape(bucket),
            escape(key)
        )))
    }

    /// The upload `id` of `bucket/key` as this caller may continue it.
    async fn find_upload(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<MultipartRow> {
        let row = client
            .query_opt(
                "SELECT version, owner_id, upload_signature, user_metadata, in_progress_size
                 FROM storage.s3_multipart_uploads WHERE id = $1 AND bucket_id = $2 AND key = $3",
                &[&id, &bucket, &key],
            )
            .await?
            .ok_or_else(no_such_upload)?;
        let owner: Option<String> = row.get(1);
        if !self.is_service() && owner != self.caller.sub {
            return Err(no_such_upload());
        }
        let signature: Value = serde_json::from_str(row.get::<_, &str>(2)).unwrap_or(Value::Null);
        let text = |k: &str| signature.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(MultipartRow {
            version: row.get(0),
            mime: text("mimetype").unwrap_or_else(|| "application/octet-stream".into()),
            cache_control: text("cacheControl").unwrap_or_else(|| "no-cache".into()),
            user_metadata: row.get(3),
            size: row.get(4),
        })
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        part: i32,
        request: Request,
    ) -> Result<Response> {
        let upload = self
            .find_upload(&self.client().await?, bucket, key, id)
            .await?;
        let limit = self.project.settings.file_size_limit.max(0) as u64;
        let body = object_body(request)?;
        let version = new_version();
        let piece = self
            .parts_dir(id)
            .join(format!("{part:05}"))
            .join(version.as_str());
        let written = self
            .storage
            .backend()
            .write(
                &piece,
                body.stream,
                limit.saturating_sub(upload.size.max(0) as u64),
            )
            .await?;
        if !body.check.matches() {
            self.storage.backend().remove(&piece).await;
            return Err(sha_mismatch());
        }
        let etag = format!("\"{}\"", written.etag);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let recorded: Result<Vec<String>> = async {
            // The upload may have been completed or aborted meanwhile.
            tx.query_opt(
                "SELECT 1 FROM storage.s3_multipart_uploads WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
            .ok_or_else(no_such_upload)?;
            let replaced = tx
                .query(
                    "DELETE FROM storage.s3_multipart_uploads_parts WHERE upload_id = $1 AND part_number = $2
                     RETURNING version, size",
                    &[&id, &part],
                )
                .await?;
            let freed: i64 = replaced.iter().map(|r| r.get::<_, i64>(1)).sum();
            tx.execute(
                "INSERT INTO storage.s3_multipart_uploads_parts
                   (upload_id, size, part_number, bucket_id, key, etag, owner_id, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&id, &(written.size as i64), &part, &bucket, &key, &etag, &self.caller.sub, &version],
            )
            .await?;
            tx.execute(
                "UPDATE storage.s3_multipart_uploads SET in_progress_size = in_progress_size + $2 - $3 WHERE id = $1",
                &[&id, &(written.size as i64), &freed],
            )
            .await?;
            Ok(replaced.iter().map(|r| r.get(0)).collect())
        }
        .await;
        match recorded {
            Ok(replaced) => {
                tx.commit().await?;
                for old in replaced {
                    let key = self.parts_dir(id).join(format!("{part:05}")).join(old);
                    self.storage.backend().remove(&key).await;
                }
                Ok(with_etag(&etag))
            }
            Err(e) => {
                drop(tx);
                self.storage.backend().remove(&piece).await;
                Err(e)
            }
        }
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        request: Request,
    ) -> Result<Response> {
        #[derive(Deserialize)]
        struct Complete {
            #[serde(rename = "Part", default)]
            parts: Vec<PartRef>,
        }
        #[derive(Deserialize)]
        struct PartRef {
            #[serde(rename = "PartNumber")]
            number: i32,
            #[serde(rename = "ETag")]
            etag: String,
        }
        let wanted: Complete = parse_xml(&small_body(request).await?)?;
        if wanted.parts.is_empty() {
            return Err(malformed_xml());
        }
        if wanted.parts.windows(2).any(|w| w[0].number >= w[1].number) {
            return Err(Error::new(
                400,
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts must be ordered by part number.",
            ));
        }
        let client = self.client().await?;
        let upload = self.find_upload(&client, bucket, key, id).await?;
        let rows = client
            .query(
                "SELECT part_number, etag, size, version FROM storage.s3_multipart_uploads_parts WHERE upload_id = $1",
                &[&id],
            )
            .await?;
        drop(client);
        let stored: HashMap<i32, (String, i64, String)> = rows
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
            .collect();
        let bare = |t: &str| t.trim().trim_matches('"').to_owned();
        let mut keys = Vec::with_capacity(wanted.parts.len());
        let mut md5s = Md5::new();
        let mut total = 0i64;
        for (i, part) in wanted.parts.iter().enumerate() {
            let invalid = || {
                Error::new(
                    400,
                    "InvalidPart",
                    "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
                )
            };
            let (etag, size, version) = stored.get(&part.number).ok_or_else(invalid)?;
            if bare(etag) != bare(&part.etag) {
                return Err(invalid());
            }
            if i + 1 < wanted.parts.len() && *size < MIN_PART {
                return Err(Error::new(
                    400,
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed object size.",
                ));
            }
            md5s.update(hex::decode(bare(etag)).unwrap_or_default());
            total += size;
            keys.push(
                self.parts_dir(id)
                    .join(format!("{:05}", part.number))
                    .join(version.as_str()),
            );
        }
        let incoming = Incoming {
            mime: upload.mime,
            cache_control: upload.cache_control,
            user_metadata: upload.user_metadata,
            declared_length: Some(total as u64),
        };
        let writer = Writer::Caller(self.caller.clone());
        let object = self.upsert(&writer, bucket, key, &incoming, upload.version);
        // The limits and the caller's right to write, asked again now that
        // the size is known.
        let limit = object.admit().await?;
        let written = self
            .storage
            .backend()
            .concat(&keys, &object.key(), limit)
            .await?;
        let etag = format!("{}-{}", hex::encode(md5s.finalize()), wanted.parts.len());
        object
            .commit(&Written {
                size: written.size,
                etag: etag.clone(),
            })
            .await?;
        self.forget_upload(id).await?;
        Ok(xml(format!(
            r#"<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>/{}/{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>"{etag}"</ETag></CompleteMultipartUploadResult>"#,
            escape(bucket),
            escape(key),
            escape(bucket),
            escape(key)
        )))
    }

    /// Removes an upload's rows, then its parts' bytes.
    async fn forget_upload(&self, id: &str) -> Result<()> {
        self.client()
            .await?
            .execute(
                "DELETE FROM storage.s3_multipart_uploads WHERE id = $1",
                &[&id],
            )
            .await?;
        if let Err(e) = self
            .storage
            .backend()
            .remove_prefix(&self.parts_dir(id))
            .await
        {
            tracing::warn!(error = %e, "removing a multipart upload's parts failed");
        }
        Ok(())
    }

    async fn abort_upload(&self, bucket: &str, key: &str, id: &str) -> Result<Response> {
        self.find_upload(&self.client().await?, bucket, key, id)
            .await?;
        self.forget_upload(id).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    async fn list_parts(&self, bucket: &str, key: &str, id: &str) -> Result<Response> {
        let client = self.client().await?;
        self.find_upload(&client, bucket, key, id).await?;
        let sql = format!(
            "SELECT part_number, etag, size, {} FROM storage.s3_multipart_uploads_parts
             WHERE upload_id = $1 ORDER BY part_number",
            iso("created_at")
        );
        let rows = client.query(&sql, &[&id]).await?;
        let mut body = format!(
            r#"<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId><IsTruncated>false</IsTruncated>"#,
            escape(bucket),
            escape(key),
            escape(id)
        );
        for row in rows {
            let _ = write!(
                body,
                "<Part><PartNumber>{}</PartNumber><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size></Part>",
                row.get::<_, i32>(0),
                row.get::<_, Option<String>>(3).unwrap_or_default(),
                escape(row.get(1)),
                row.get::<_, i64>(2)
            );
        }
        body.push_str("</ListPartsResult>");
        Ok(xml(body))
    }

    async fn list_uploads(&self, bucket: &str) -> Result<Response> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT key, id, {} FROM storage.s3_multipart_uploads
             WHERE bucket_id = $1 AND ($2 OR owner_id IS NOT DISTINCT FROM $3)
             ORDER BY key COLLATE \"C\", created_at LIMIT 1000",
            iso("created_at")
        );
        let rows = client
            .query(&sql, &[&bucket, &self.is_service(), &self.caller.sub])
            .await?;
        let mut body = format!(
            r#"<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>{}</Bucket><IsTruncated>false</IsTruncated>"#,
            escape(bucket)
        );
        for row in rows {
            let _ = write!(
                body,
                "<Upload><Key>{}</Key><UploadId>{}</UploadId><Initiated>{}</Initiated><StorageClass>STANDARD</StorageClass></Upload>",
                escape(row.get(0)),
                escape(row.get(1)),
                row.get::<_, Option<String>>(2).unwrap_or_default()
            );
        }
        body.push_str("</ListMultipartUploadsResult>");
        Ok(xml(body))
    }
}

/// A multipart upload as its completion needs it.
struct MultipartRow {
    version: String,
    mime: String,
    cache_control: String,
    user_metadata: Option<Value>,
    size: i64,
}

fn no_such_upload() -> Error {
    Error::new(
        404,
        "NoSuchUpload",
        "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn decode(body: &[u8], split: usize) -> std::result::Result<Vec<u8>, String> {
        let pieces: Vec<std::result::Result<Bytes, String>> = body
            .chunks(split)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut out = Vec::new();
        let mut s = AwsChunked::new(futures_util::stream::iter(pieces));
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn aws_chunked_bodies_decode_however_they_are_split() {
        let body = b"5\r\nhello\r\n7;chunk-signature=abc\r\n, world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        for split in [1, 2, 3, 7, 100] {
            assert_eq!(
                decode(body, split).await.unwrap(),
                b"hello, world",
                "split {split}"
            );
        }
        assert!(decode(b"5\r\nhello\r\n", 4).await.is_err());
        assert!(decode(b"zz\r\nhello\r\n0\r\n\r\n", 4).await.is_err());
        assert!(decode(b"5\r\nhelloXX0\r\n\r\n", 4).await.is_err());
    }

    #[test]
    fn xml_bodies_parse_with_entities() {
        #[derive(Deserialize)]
        struct Delete {
            #[serde(rename = "Object", default)]
            objects: Vec<ObjectRef>,
        }
        #[derive(Deserialize)]
        struct ObjectRef {
            #[serde(rename = "Key")]
            key: String,
        }
        let d: Delete = parse_xml(
            br#"<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a &amp; b</Key></Object><Object><Key>c&#47;d</Key></Object></Delete>"#,
        )
        .unwrap();
        assert_eq!(
            d.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
            ["a & b", "c/d"]
        );
        assert!(parse_xml::<Delete>(b"<Delete><Object>").is_err());
    }
}
