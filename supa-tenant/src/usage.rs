//! Where Studio reads a project's last hour of requests: the in-process
//! gateway's counts (`supa up` without Redis), or the minutes every gateway
//! adds up in Redis.

use std::sync::Arc;

use supa_core::ProjectRef;
use supa_core::usage::{Counts, MINUTES, Series, Usage, minute_of, redis_key};

use crate::{Error, Tenant};

/// A source of per-project request series.
#[derive(Clone)]
pub enum UsageSource {
    /// The gateway running in this process.
    Local(Arc<Usage>),
    /// Gateways elsewhere, which add their counts up in Redis.
    Redis(Box<redis::Client>),
}

impl UsageSource {
    /// Reads Redis at `url`.
    pub fn redis(url: &str) -> Result<Self, Error> {
        supa_core::http::install_tls_provider();
        redis::Client::open(url)
            .map(|c| Self::Redis(Box::new(c)))
            .map_err(|e| Error::Config(format!("bad Redis URL: {e}")))
    }
}

impl Tenant {
    /// Reads per-project request series from `source` from now on.
    pub fn set_usage_source(&self, source: UsageSource) {
        *self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(source);
    }

    /// The project's last hour; `None` when this control plane has no
    /// source (gateways elsewhere and no Redis to meet them in). Through
    /// Redis the counts lag by the gateways' hand-on period.
    pub async fn project_usage(&self, project: &ProjectRef) -> Result<Option<Series>, Error> {
        let source = self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let now = minute_of(supa_core::time::since_epoch());
        match source {
            None => Ok(None),
            Some(UsageSource::Local(usage)) => Ok(Some(usage.series(project, now))),
            Some(UsageSource::Redis(client)) => {
                let unavailable = |e: redis::RedisError| Error::Unavailable(format!("Redis: {e}"));
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(unavailable)?;
                let first = now.saturating_sub(MINUTES as u64 - 1);
                let mut pipe = redis::pipe();
                for minute in first..=now {
                    pipe.hgetall(redis_key(project, minute));
                }
                let hashes: Vec<Vec<(String, u64)>> =
                    pipe.query_async(&mut conn).await.map_err(unavailable)?;
                Ok(Some(Series::from_fn(now, |minute| {
                    hashes
                        .get((minute - first) as usize)
                        .map(|h| Counts::from_fields(h.iter().map(|(k, n)| (k.as_str(), *n))))
                        .unwrap_or_default()
                })))
            }
        }
    }
}
