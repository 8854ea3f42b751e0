//! Handing per-project counts to Redis every few seconds, where the minutes
//! of every gateway add up for the control plane's dashboard.

use std::sync::Arc;
use std::time::Duration;

use supa_core::usage::{REDIS_TTL_SECS, Usage, minute_of, redis_key};

/// How often new counts are handed on: how far Redis lags behind.
const EVERY: Duration = Duration::from_secs(10);

/// Adds what `usage` counted into Redis at `url` every [`EVERY`], for as
/// long as the process runs. While Redis is down what was taken is
/// dropped: the dashboard shows a dip, the request path never waits.
pub fn hand_usage_to_redis(url: &str, usage: Arc<Usage>) -> Result<(), redis::RedisError> {
    supa_core::http::install_tls_provider();
    let client = redis::Client::open(url)?;
    tokio::spawn(async move {
        // A Redis that stops answering delays the counts, never stalls
        // the hand-on for good.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let mut connection: Option<redis::aio::MultiplexedConnection> = None;
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let new = usage.take_new(minute_of(supa_core::time::since_epoch()));
            if new.is_empty() {
                continue;
            }
            // All or nothing, so a retry cannot add a part twice.
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (project, minute, counts) in &new {
                let key = redis_key(project, *minute);
                for (field, n) in counts.fields() {
                    pipe.hincr(&key, field, n).ignore();
                }
                pipe.expire(&key, REDIS_TTL_SECS as i64).ignore();
            }
            // A connection from before a Redis restart fails once: the
            // same counts go again on a new one before they are dropped.
            let mut sent = Ok(());
            for _ in 0..2 {
                if connection.is_none() {
                    connection = client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                        .ok();
                }
                sent = match connection.as_mut() {
                    Some(c) => pipe.query_async::<()>(c).await,
                    None => Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "cannot connect",
                    ))),
                };
                if sent.is_ok() {
                    break;
                }
                connection = None;
            }
            if let Err(e) = sent {
                tracing::warn!(error = %e, minutes = new.len(), "request counts not handed to Redis");
            }
        }
    });
    Ok(())
}
