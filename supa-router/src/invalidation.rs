//! Listening on Redis channel `supa:invalidate`, where the tenant manager
//! announces revoked keys and deleted or changed projects.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;

use crate::{Gateway, RedisDirectory};

/// The channel the tenant manager publishes on.
pub const CHANNEL: &str = "supa:invalidate";

/// Follows `supa:invalidate` for as long as the process runs, reconnecting
/// after failures. Each message drops the Redis entry first, then this
/// gateway's memory, so a refill cannot come back from a stale Redis entry.
pub fn follow_invalidations(url: &str, gateway: Arc<Gateway>, l2: Option<Arc<RedisDirectory>>) {
    let url = url.to_owned();
    tokio::spawn(async move {
        loop {
            let subscribed = async {
                supa_core::http::install_tls_provider();
                let client = redis::Client::open(url.as_str())?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(CHANNEL).await?;
                Ok::<_, redis::RedisError>(pubsub)
            }
            .await;
            match subscribed {
                Ok(mut pubsub) => {
                    tracing::info!("following {CHANNEL}");
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(text) = message.get_payload::<String>() else {
                            continue;
                        };
                        if let Some(l2) = &l2 {
                            l2.forget(&text).await;
                        }
                        gateway.invalidate(&text).await;
                    }
                    tracing::warn!("lost the {CHANNEL} subscription; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to {CHANNEL}; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}
