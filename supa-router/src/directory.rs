//! Directories a gateway can use besides the in-process control plane:
//! the remote tenant manager's internal API, and a Redis layer (L2) shared
//! by gateway replicas in front of any directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use supa_core::{
    BoxFuture, DirectoryError, KeyRecord, ProjectConfig, ProjectDirectory, ProjectRef, Secret,
};

use crate::metrics::Metrics;
use crate::upstream::http_client;

/// The internal directory API of a remote tenant manager.
#[derive(Debug, Clone)]
pub struct HttpDirectory {
    http: reqwest::Client,
    base: String,
    token: Secret<String>,
}

impl HttpDirectory {
    /// A directory at `base` (`http://tenant-manager:8001`) using the
    /// service token.
    pub fn new(base: &str, token: Secret<String>) -> Self {
        Self {
            http: http_client(Duration::from_secs(5)),
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: String,
    ) -> Result<Option<T>, DirectoryError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| DirectoryError(format!("tenant manager unreachable: {e}")))?;
        match response.status().as_u16() {
            200 => response
                .json()
                .await
                .map(Some)
                .map_err(|e| DirectoryError(format!("bad answer from the tenant manager: {e}"))),
            404 => Ok(None),
            status => Err(DirectoryError(format!("tenant manager answered {status}"))),
        }
    }
}

impl ProjectDirectory for HttpDirectory {
    fn project_config<'a>(
        &'a self,
        project_ref: &'a ProjectRef,
    ) -> BoxFuture<'a, Result<Option<ProjectConfig>, DirectoryError>> {
        Box::pin(self.get(format!("/internal/v1/projects/{project_ref}/config")))
    }

    fn lookup_key<'a>(
        &'a self,
        hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<KeyRecord>, DirectoryError>> {
        Box::pin(self.get(format!("/internal/v1/keys/{}", hex::encode(hash))))
    }
}

/// Gateways fetch function bundles and report function logs through the
/// same internal API.
impl supa_functions::FunctionStore for HttpDirectory {
    fn bundle<'a>(
        &'a self,
        project: &'a ProjectRef,
        slug: &'a str,
        version: u32,
    ) -> BoxFuture<'a, Result<Option<supa_functions::Bundle>, DirectoryError>> {
        Box::pin(self.get(format!(
            "/internal/v1/projects/{project}/functions/{slug}/versions/{version}/bundle"
        )))
    }

    fn record(
        &self,
        events: Vec<supa_functions::LogEvent>,
    ) -> BoxFuture<'_, Result<(), DirectoryError>> {
        Box::pin(async move {
            let response = self
                .http
                .post(format!("{}/internal/v1/functions/logs", self.base))
                .bearer_auth(self.token.expose())
                .json(&events)
                .send()
                .await
                .map_err(|e| DirectoryError(format!("tenant manager unreachable: {e}")))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(DirectoryError(format!(
                    "tenant manager answered {}",
                    response.status()
                )))
            }
        })
    }
}

/// How long Redis is skipped after it failed.
const BREAKER_OPEN_SECS: i64 = 5;

/// Redis in front of another directory (L2 between the gateways' memory
/// and the tenant manager).
///
/// Entries are sealed with AES-256-GCM under a key derived from the service
/// token (which every gateway holds), bound to their Redis key, so Redis
/// never holds a JWT secret or a database password in clear. Any Redis
/// failure opens a breaker: for 5 s the layer is skipped and requests go
/// straight to the directory behind it; failures are never cached.
pub struct RedisDirectory {
    inner: Arc<dyn ProjectDirectory>,
    redis: redis::aio::ConnectionManager,
    cipher: Aes256Gcm,
    ttl: Duration,
    negative_ttl: Duration,
    open_until: AtomicI64,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RedisDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDirectory").finish_non_exhaustive()
    }
}

/// Redis key of a project's config.
fn config_key(r: &ProjectRef) -> String {
    format!("supa:cfg:{r}")
}

/// Redis key of a key record, by the key's hex SHA-256.
fn key_key(hash_hex: &str) -> String {
    format!("supa:key:{hash_hex}")
}

impl RedisDirectory {
    /// Connects lazily to `url`; `secret` derives the sealing key.
    pub fn new(
        url: &str,
        secret: &Secret<String>,
        inner: Arc<dyn ProjectDirectory>,
        ttl: Duration,
        negative_ttl: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DirectoryError> {
        supa_core::http::install_tls_provider();
        let client =
            redis::Client::open(url).map_err(|e| DirectoryError(format!("bad Redis URL: {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(0);
        let redis = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| DirectoryError(format!("Redis: {e}")))?;
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC takes keys of any length");
        mac.update(b"supa gateway L2 cache v1");
        let key: [u8; 32] = mac.finalize().into_bytes().into();
        Ok(Self {
            inner,
            redis,
            cipher: Aes256Gcm::new(&key.into()),
            ttl,
            negative_ttl: negative_ttl.min(Duration::from_secs(5)),
            open_until: AtomicI64::new(0),
            metrics,
        })
    }

    fn available(&self) -> bool {
        supa_keys::unix_now() >= self.open_until.load(Ordering::Relaxed)
    }

    fn trip(&self, e: &redis::RedisError) {
        if self.available() {
            tracing::warn!(error = %e, "Redis failed; skipping it for {BREAKER_OPEN_SECS} s");
        }
        self.open_until
            .store(supa_keys::unix_now() + BREAKER_OPEN_SECS, Ordering::Relaxed);
    }

    fn seal(&self, key: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: key.as_bytes(),
                },
            )
            .expect("AES-GCM encryption does not fail for small inputs");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    fn open(&self, key: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: key.as_bytes(),
                },
            )
            .ok()
    }

    /// The cached value of `key`, or `fetch`'s (cached for next time).
    async fn cached<T>(
        &self,
        key: String,
        fetch: BoxFuture<'_, Result<Option<T>, DirectoryError>>,
    ) -> Result<Option<T>, DirectoryError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        if self.available() {
            let mut conn = self.redis.clone();
            let got: redis::RedisResult<Option<String>> =
                redis::cmd("GET").arg(&key).query_async(&mut conn).await;
            match got {
                Ok(Some(sealed)) => {
                    if let Some(v) = self
                        .open(&key, &sealed)
                        .and_then(|p| serde_json::from_slice(&p).ok())
                    {
                        self.metrics.l2_hits.fetch_add(1, Ordering::Relaxed);
                        return Ok(v);
                    }
                }
                Ok(None) => {}
                Err(e) => self.trip(&e),
            }
        }
        self.metrics.l2_misses.fetch_add(1, Ordering::Relaxed);
        let value = fetch.await?;
        if self.available() {
            let ttl = if value.is_some() {
                self.ttl
            } else {
                self.negative_ttl
            };
            // Serializing our own types cannot fail.
            let plain = serde_json::to_vec(&value).unwrap_or_default();
            let mut conn = self.redis.clone();
            let set: redis::RedisResult<()> = redis::cmd("SET")
                .arg(&key)
                .arg(self.seal(&key, &plain))
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .query_async(&mut conn)
                .await;
            if let Err(e) = set {
                self.trip(&e);
            }
        }
        Ok(value)
    }

    /// Drops what an invalidation message names from Redis.
    pub async fn forget(&self, message: &str) {
        if !self.available() {
            return;
        }
        let key = match ProjectRef::parse(message) {
            Ok(r) => config_key(&r),
            Err(_) => key_key(message),
        };
        let mut conn = self.redis.clone();
        let deleted: redis::RedisResult<i64> =
            redis::cmd("DEL").arg(&key).query_async(&mut conn).await;
        if let Err(e) = deleted {
            self.trip(&e);
        }
    }
}

impl ProjectDirectory for RedisDirectory {
    fn project_config<'a>(
        &'a self,
        project_ref: &'a ProjectRef,
    ) -> BoxFuture<'a, Result<Option<ProjectConfig>, DirectoryError>> {
        Box::pin(self.cached(
            config_key(project_ref),
            self.inner.project_config(project_ref),
        ))
    }

    fn lookup_key<'a>(
        &'a self,
        hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<KeyRecord>, DirectoryError>> {
        Box::pin(self.cached(key_key(&hex::encode(hash)), self.inner.lookup_key(hash)))
    }
}
