//! Where object bytes live: an `object_store` on the local filesystem (the
//! embedded default, under the data dir) or on any S3-compatible service.
//!
//! Every version of an object has its own key,
//! `{project}/{bucket}/{name}/{version}` (Supabase Storage's layout), so a
//! write never touches bytes a reader may be streaming: the metadata row
//! names the version readers see, and old versions are removed after the
//! row that replaced them commits. Bytes stream both ways in bounded
//! chunks, so memory does not grow with object size.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart,
};
use supa_core::Secret;

use crate::Error;

/// Bytes per part when streaming a large object to the store (S3 needs at
/// least 5 MiB per part); at most two parts are in flight.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Read size when serving a file from the local filesystem.
const READ_CHUNK: usize = 256 * 1024;

/// Where the bytes go.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// A directory of the local filesystem.
    File {
        /// The root directory (created if missing).
        root: PathBuf,
        /// How ETags are made.
        etag: FileEtag,
    },
    /// An S3-compatible service.
    S3(S3Config),
}

/// How the filesystem backend makes an object's ETag (Supabase Storage's
/// `STORAGE_FILE_ETAG_ALGORITHM`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileEtag {
    /// The MD5 of the bytes, as S3 gives it (the default).
    #[default]
    Md5,
    /// The write's time and size: no pass over the bytes, so large
    /// uploads run at the disk's speed; still new for every version.
    Mtime,
}

impl std::str::FromStr for FileEtag {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "md5" => Ok(Self::Md5),
            "mtime" => Ok(Self::Mtime),
            other => Err(format!("the ETag algorithm is md5 or mtime, not {other:?}")),
        }
    }
}

/// An S3-compatible bucket that holds every project's objects.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The service's URL (AWS when absent).
    pub endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// Path-style requests (`{endpoint}/{bucket}/{key}`), as MinIO and most
    /// S3-compatible servers want.
    pub force_path_style: bool,
    /// Access key; from the environment (`AWS_*`) when absent.
    pub access_key_id: Option<String>,
    /// Its secret.
    pub secret_access_key: Option<Secret<String>>,
}

/// A store of object bytes; cheap to clone.
#[derive(Debug, Clone)]
pub struct Backend {
    store: Arc<dyn ObjectStore>,
    description: Arc<str>,
    /// Whether ETags are the bytes' MD5.
    md5: bool,
}

/// What a write stored.
#[derive(Debug, Clone)]
pub struct Written {
    /// Bytes written.
    pub size: u64,
    /// The object's ETag, unquoted: the hex MD5 of the bytes, as S3 gives
    /// it, unless the backend is told otherwise ([`FileEtag`]).
    pub etag: String,
}

/// An object being read.
pub struct Reading {
    /// The bytes of the requested range.
    pub body: futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>>,
    /// The object's whole size.
    pub size: u64,
    /// The range served.
    pub range: Range<u64>,
}

/// A key found by [`Backend::list`].
#[derive(Debug, Clone)]
pub struct Listed {
    /// The key.
    pub key: Path,
    /// Its size in bytes.
    pub size: u64,
    /// When it was written, in Unix seconds.
    pub modified: i64,
}

/// Why a write did not store the object.
#[derive(Debug)]
pub enum WriteError {
    /// The body grew past the limit.
    TooLarge,
    /// The client's body failed (connection closed, bad framing).
    Body(String),
    /// The store failed.
    Store(object_store::Error),
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::TooLarge => Error::too_large(),
            WriteError::Body(m) => Error::invalid_request(format!("upload interrupted: {m}")),
            WriteError::Store(e) => store_failed(e),
        }
    }
}

/// MD5 of a stream. The first MiB is hashed in place (most objects are
/// small, and a thread per upload would cost more than it saves); past it,
/// on a thread of its own while the bytes are written, so hashing (the
/// slowest step of a large upload) overlaps the I/O instead of adding to it.
enum Hasher {
    Inline(Md5, usize),
    Threaded {
        chunks: tokio::sync::mpsc::Sender<Bytes>,
        digest: tokio::task::JoinHandle<String>,
    },
}

/// Bytes hashed in place before the hashing moves to its own thread.
const INLINE_HASH: usize = 1024 * 1024;

impl Hasher {
    fn start() -> Self {
        Self::Inline(Md5::new(), 0)
    }

    async fn update(&mut self, chunk: Bytes) {
        match self {
            Self::Inline(md5, seen) if *seen + chunk.len() <= INLINE_HASH => {
                md5.update(&chunk);
                *seen += chunk.len();
            }
            Self::Inline(md5, _) => {
                // A few chunks in flight bound the memory it holds.
                let (chunks, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
                let mut md5 = std::mem::take(md5);
                let digest = tokio::task::spawn_blocking(move || {
                    while let Some(chunk) = rx.blocking_recv() {
                        md5.update(&chunk);
                    }
                    hex::encode(md5.finalize())
                });
                // The receiver lives until `finish`.
                let _ = chunks.send(chunk).await;
                *self = Self::Threaded { chunks, digest };
            }
            Self::Threaded { chunks, .. } => {
                let _ = chunks.send(chunk).await;
            }
        }
    }

    async fn finish(self) -> String {
        match self {
            Self::Inline(md5, _) => hex::encode(md5.finalize()),
            Self::Threaded { chunks, digest } => {
                drop(chunks);
                digest.await.unwrap_or_default()
            }
        }
    }
}

impl Backend {
    /// Opens the store `config` names.
    pub fn new(config: &BackendConfig) -> Result<Self, String> {
        match config {
            BackendConfig::File { root, etag } => {
                std::fs::create_dir_all(root)
                    .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(root)
                    .map_err(|e| format!("cannot open {}: {e}", root.display()))?;
                Ok(Self {
                    store: Arc::new(store),
                    description: format!("file:{}", root.display()).into(),
                    md5: *etag == FileEtag::Md5,
                })
            }
            BackendConfig::S3(s3) => {
                supa_core::http::install_tls_provider();
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_virtual_hosted_style_request(!s3.force_path_style);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                if let Some(id) = &s3.access_key_id {
                    builder = builder.with_access_key_id(id);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret.expose());
                }
                let store = builder.build().map_err(|e| format!("S3 backend: {e}"))?;
                Ok(Self {
                    store: Arc::new(store),
                    description: format!("s3:{}", s3.bucket).into(),
                    md5: true,
                })
            }
        }
    }

    /// A backend over any `ObjectStore` (another service object_store
    /// speaks to, or a wrapper that injects faults in tests).
    pub fn from_store(store: Arc<dyn ObjectStore>, description: &str) -> Self {
        Self {
            store,
            description: description.into(),
            md5: true,
        }
    }

    /// Where the bytes are (`file:/path`, `s3:bucket`), for logs.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The key of one version of an object (an object written by SQL
    /// alone has no version: its key is its name).
    pub fn key(project: &str, bucket: &str, name: &str, version: Option<&str>) -> Path {
        Path::from_iter(
            [project, bucket]
                .into_iter()
                .chain(name.split('/'))
                .chain(version),
        )
    }

    /// Streams `body` to `key`, refusing more than `limit` bytes. Nothing
    /// is left at `key` when it fails.
    pub async fn write<S, E>(&self, key: &Path, body: S, limit: u64) -> Result<Written, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut body = std::pin::pin!(body);
        let mut md5 = self.md5.then(Hasher::start);
        let mut size = 0u64;
        // Small objects (most of them) are one PUT; a larger one becomes a
        // multipart upload once its first part is full.
        let mut first: Vec<Bytes> = Vec::new();
        let mut buffered = 0usize;
        let mut upload: Option<WriteMultipart> = None;
        let outcome: Result<(), WriteError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| WriteError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(WriteError::TooLarge);
                }
                if let Some(md5) = &mut md5 {
                    md5.update(chunk.clone()).await;
                }
                match upload.as_mut() {
                    Some(upload) => {
                        upload
                            .wait_for_capacity(2)
                            .await
                            .map_err(WriteError::Store)?;
                        upload.put(chunk);
                    }
                    None => {
                        buffered += chunk.len();
                        first.push(chunk);
                        if buffered >= PART_SIZE {
                            let started = self
                                .store
                                .put_multipart(key)
                                .await
                                .map_err(WriteError::Store)?;
                            let mut writer =
                                WriteMultipart::new_with_chunk_size(started, PART_SIZE);
                            for part in first.drain(..) {
                                writer.put(part);
                            }
                            upload = Some(writer);
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        match (outcome, upload) {
            (Ok(()), Some(upload)) => {
                upload.finish().await.map_err(WriteError::Store)?;
            }
            (Ok(()), None) => {
                let payload: PutPayload = first.into_iter().collect();
                self.store
                    .put(key, payload)
                    .await
                    .map_err(WriteError::Store)?;
            }
            (Err(e), Some(upload)) => {
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(%key, error = %abort, "aborting an upload failed");
                }
                return Err(e);
            }
            (Err(e), None) => return Err(e),
        }
        Ok(Written {
            size,
            etag: match md5 {
                Some(md5) => md5.finish().await,
                None => {
                    let now = supa_core::time::since_epoch();
                    format!("{:x}-{size:x}", now.as_micros())
                }
            },
        })
    }

    /// Reads `key`, all of it or `range` (clamped to the object).
    pub async fn read(&self, key: &Path, range: Option<GetRange>) -> Result<Reading, Error> {
        let options = GetOptions {
            range,
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(key, options).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Err(Error::no_such_key()),
            Err(e) => return Err(store_failed(e)),
        };
        let size = result.meta.size;
        let range = result.range.clone();
        let body = match result.payload {
            // Served in larger reads than object_store's own 8 KiB ones.
            // A small range is read in one go on the blocking pool (one
            // hop instead of a seek and a read each).
            GetResultPayload::File(mut file, _) if range.end - range.start <= READ_CHUNK as u64 => {
                let (start, len) = (range.start, (range.end - range.start) as usize);
                let bytes = tokio::task::spawn_blocking(move || {
                    use std::io::{Read as _, Seek as _};
                    file.seek(std::io::SeekFrom::Start(start))?;
                    let mut buf = vec![0u8; len];
                    file.read_exact(&mut buf)?;
                    Ok::<_, std::io::Error>(Bytes::from(buf))
                })
                .await
                .map_err(std::io::Error::other)??;
                futures_util::stream::once(async move { Ok(bytes) }).boxed()
            }
            GetResultPayload::File(file, _) => {
                use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
                let mut file = tokio::fs::File::from_std(file);
                file.seek(std::io::SeekFrom::Start(range.start)).await?;
                tokio_util::io::ReaderStream::with_capacity(
                    file.take(range.end - range.start),
                    READ_CHUNK,
                )
                .boxed()
            }
            GetResultPayload::Stream(stream) => stream.map_err(std::io::Error::other).boxed(),
        };
        Ok(Reading { body, size, range })
    }

    /// Stores a small blob (an upload's state) in one PUT.
    pub async fn put_small(&self, key: &Path, bytes: Bytes) -> Result<(), Error> {
        self.store
            .put(key, bytes.into())
            .await
            .map(|_| ())
            .map_err(store_failed)
    }

    /// Reads a small blob; `None` when it does not exist.
    pub async fn get_small(&self, key: &Path) -> Result<Option<Bytes>, Error> {
        match self.store.get(key).await {
            Ok(result) => result.bytes().await.map(Some).map_err(store_failed),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_failed(e)),
        }
    }

    /// Every key under `prefix` with its size and age (last modified, in
    /// Unix seconds), in key order.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<Listed>, Error> {
        let mut listed: Vec<Listed> = self
            .store
            .list(Some(prefix))
            .map_ok(|meta| Listed {
                key: meta.location,
                size: meta.size,
                modified: meta.last_modified.timestamp(),
            })
            .try_collect()
            .await
            .map_err(store_failed)?;
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }

    /// Writes the concatenation of `parts` to `to`, streaming: the pieces
    /// of a resumable or multipart upload become one object.
    pub async fn concat(&self, parts: &[Path], to: &Path, limit: u64) -> Result<Written, Error> {
        let this = self.clone();
        let parts = parts.to_vec();
        let body = futures_util::stream::iter(parts)
            .then(move |part| {
                let this = this.clone();
                async move { this.read(&part, None).await.map(|r| r.body) }
            })
            .map_ok(|body| body.map_err(|e| Error::internal(format!("io: {e}"))))
            .try_flatten()
            // Boxed: the closures' types would otherwise leak into every
            // caller's future.
            .boxed();
        match self.write(to, body, limit).await {
            Ok(written) => Ok(written),
            // A part that cannot be read is the server's failure.
            Err(WriteError::Body(cause)) => Err(Error::internal(cause)),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies the bytes of one key to another.
    pub async fn copy(&self, from: &Path, to: &Path) -> Result<(), Error> {
        match self.store.copy(from, to).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Err(Error::no_such_key()),
            Err(e) => Err(store_failed(e)),
        }
    }

    /// Removes `key`; a missing key is not an error. Failures are logged:
    /// the sweeper removes what is left.
    pub async fn remove(&self, key: &Path) {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(%key, error = %e, "removing object bytes failed"),
        }
    }

    /// Removes every key under `prefix` (a project's or a bucket's bytes).
    pub async fn remove_prefix(&self, prefix: &Path) -> Result<u64, Error> {
        let locations = self
            .store
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        let mut removed = 0u64;
        let mut deleted = self.store.delete_stream(locations);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) => removed += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_failed(e)),
            }
        }
        Ok(removed)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if out_of_space(&e) {
            return Error::out_of_space(e);
        }
        Error::internal(format!("io: {e}"))
    }
}

/// A store failure as the client sees it: a full disk is the operator's
/// to fix and the client's to retry (507), anything else is internal.
fn store_failed(e: object_store::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && out_of_space(io)
        {
            return Error::out_of_space(&e);
        }
        source = cause.source();
    }
    Error::internal(format!("object store: {e}"))
}

/// ENOSPC or EDQUOT.
fn out_of_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_507_and_other_store_failures_are_500() {
        let full = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::StorageFull)),
        };
        let e = store_failed(full);
        assert_eq!(
            (e.http_status(), e.body()["error"].as_str()),
            (507, Some("InsufficientStorage"))
        );
        let other = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        };
        assert_eq!(store_failed(other).http_status(), 500);
        let quota = Error::from(std::io::Error::from_raw_os_error(122));
        assert_eq!(quota.http_status(), 507);
    }

    #[test]
    fn keys_escape_what_a_path_cannot_hold() {
        let key = Backend::key("proj", "b", "a/ü b/c.txt", Some("v1"));
        assert_eq!(key.parts().count(), 6);
        assert!(key.as_ref().starts_with("proj/b/a/"));
        assert!(key.as_ref().ends_with("/c.txt/v1"));
    }

    #[tokio::test]
    async fn writes_read_back_and_limits_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::new(&BackendConfig::File {
            root: dir.path().to_owned(),
            etag: FileEtag::Md5,
        })
        .unwrap();
        let key = Backend::key("p", "b", "big.bin", Some("v1"));
        // Three parts' worth, in odd-sized chunks.
        let chunk = Bytes::from(vec![7u8; 1_000_003]);
        let chunks = (0..25).map(|_| Ok::<_, std::io::Error>(chunk.clone()));
        let written = backend
            .write(&key, futures_util::stream::iter(chunks), u64::MAX)
            .await
            .unwrap();
        assert_eq!(written.size, 25 * 1_000_003);
        let mut expected = Md5::new();
        for _ in 0..25 {
            expected.update(&chunk);
        }
        assert_eq!(written.etag, hex::encode(expected.finalize()));
        let reading = backend
            .read(&key, Some(GetRange::Bounded(10..20)))
            .await
            .unwrap();
        assert_eq!(reading.size, written.size);
        let bytes: Vec<Bytes> = reading.body.try_collect().await.unwrap();
        assert_eq!(bytes.concat(), vec![7u8; 10]);

        let over = Backend::key("p", "b", "over.bin", Some("v1"));
        let chunks = (0..12).map(|_| Ok::<_, std::io::Error>(chunk.clone()));
        let refused = backend
            .write(&over, futures_util::stream::iter(chunks), 10_000_000)
            .await;
        assert!(matches!(refused, Err(WriteError::TooLarge)));
        assert!(matches!(
            backend.read(&over, None).await,
            Err(e) if e.code == "NoSuchKey"
        ));
        assert_eq!(backend.remove_prefix(&Path::from("p")).await.unwrap(), 1);
    }
}
