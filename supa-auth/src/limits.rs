//! Rate limits as Supabase Auth applies them: token buckets per client
//! IP (a burst of 30, refilled at the project's configured rate), and a
//! least interval between two e-mails to one address. Kept in the
//! process, as GoTrue keeps them: each gateway counts its own clients.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use supa_core::ProjectRef;

use crate::Error;

/// What a bucket limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Bucket {
    /// `/token`: `rate_limit_token_refresh` per 5 minutes.
    Token,
    /// `/verify`: `rate_limit_verify` per 5 minutes.
    Verify,
    /// `/otp`, `/magiclink`, `/recover`, `/resend`: `rate_limit_otp` per hour.
    Otp,
    /// Anonymous sign-ins: `rate_limit_anonymous_users` per hour, the
    /// burst as large as the rate.
    Anonymous,
    /// MFA challenges and verifications: 15 per minute.
    Mfa,
}

impl Bucket {
    /// `(capacity, refill per second)` for `s`.
    fn shape(self, s: &supa_core::AuthSettings) -> (f64, f64) {
        let per = |n: i64, secs: f64| (30.0, n as f64 / secs);
        match self {
            Self::Token => per(s.rate_limit_token_refresh, 300.0),
            Self::Verify => per(s.rate_limit_verify, 300.0),
            Self::Otp => per(s.rate_limit_otp, 3600.0),
            Self::Mfa => per(15, 60.0),
            Self::Anonymous => (
                s.rate_limit_anonymous_users as f64,
                s.rate_limit_anonymous_users as f64 / 3600.0,
            ),
        }
    }
}

#[derive(Debug)]
struct State {
    tokens: f64,
    last: Instant,
}

type Key = (ProjectRef, Bucket, String);

/// Every bucket and address window of the process.
#[derive(Clone)]
pub(crate) struct Limits {
    buckets: moka::sync::Cache<Key, Arc<Mutex<State>>>,
    addresses: moka::sync::Cache<(ProjectRef, String), Instant>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("buckets", &self.buckets.entry_count())
            .finish()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // A bucket idle for an hour is full again: forgetting it is
            // the same.
            buckets: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            addresses: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(Duration::from_secs(86_400))
                .build(),
        }
    }
}

impl Limits {
    /// Takes one request from `ip`'s bucket; 429 when it is empty.
    pub(crate) fn take(
        &self,
        project: &crate::AuthProject,
        bucket: Bucket,
        ip: &ClientIp,
    ) -> Result<(), Error> {
        let (capacity, rate) = bucket.shape(&project.settings);
        let state = self
            .buckets
            .get_with((project.project_ref, bucket, ip.0.clone()), || {
                Arc::new(Mutex::new(State {
                    tokens: capacity,
                    last: Instant::now(),
                }))
            });
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        s.tokens = (s.tokens + now.duration_since(s.last).as_secs_f64() * rate).min(capacity);
        s.last = now;
        if s.tokens < 1.0 {
            return Err(Error::new(
                429,
                "over_request_rate_limit",
                "Request rate limit reached",
            ));
        }
        s.tokens -= 1.0;
        Ok(())
    }

    /// One e-mail to `address` per `smtp_max_frequency` seconds, whether
    /// or not a user has it (the answer tells nothing about that).
    pub(crate) fn mail_to(&self, project: &crate::AuthProject, address: &str) -> Result<(), Error> {
        let every = Duration::from_secs(project.settings.smtp_max_frequency.max(0) as u64);
        let key = (project.project_ref, address.to_lowercase());
        let now = Instant::now();
        let entry = self
            .addresses
            .entry(key)
            .or_insert_with_if(|| now, |last| now.duration_since(*last) >= every);
        if entry.is_fresh() || every.is_zero() {
            return Ok(());
        }
        let wait = every.saturating_sub(now.duration_since(*entry.value()));
        Err(Error::new(
            429,
            "over_email_send_rate_limit",
            format!(
                "For security purposes, you can only request this after {} seconds.",
                wait.as_secs().max(1)
            ),
        ))
    }
}

/// The client's address: the last hop of `X-Forwarded-For` (what the
/// gateway in front saw), else the peer of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientIp(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
            .map(str::to_owned);
        let ip = forwarded
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Ok(Self(ip))
    }
}
