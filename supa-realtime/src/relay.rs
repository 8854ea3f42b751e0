//! What realtime servers sharing a Redis tell each other, so clients on
//! different servers share a channel: broadcasts, presence (with a
//! catch-up when a server first hosts a topic, and clean-up when a server
//! stops answering), and Postgres changes for subscribers held elsewhere;
//! and the leases that let exactly one server read each project's slot.
//!
//! Messages go on Redis channel `supa:realtime:{ref}`, to which a server
//! subscribes while it has channels of that project. Each server renews
//! its entry in `supa:realtime:nodes` every second; one missing for
//! [`NODE_TTL`] is gone, and its presences and subscriptions with it. A
//! slot's reader holds `supa:realtime:lease:{ref}` for [`LEASE_TTL`],
//! renewing it as it reads, so another server takes over within that time
//! when it dies. Without Redis, this server is the only one.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use supa_core::ProjectRef;

use crate::hub::Tracked;

/// How long a slot's lease lasts without renewal.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(3);
/// How long a server stays known without renewing its entry.
pub(crate) const NODE_TTL: Duration = Duration::from_secs(5);
/// How often a server renews its entry and looks for servers gone.
const HEARTBEAT: Duration = Duration::from_secs(1);

const NODES: &str = "supa:realtime:nodes";

/// Takes the lease if it is free, renews it if it is ours.
const LEASE_SCRIPT: &str = "local v = redis.call('get', KEYS[1])
if v == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0";

/// Gives the lease back if it is ours.
const RELEASE_SCRIPT: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0";

/// A message between servers about one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Envelope {
    /// A broadcast to a channel (`{"type","event","payload"}`).
    Broadcast {
        topic: String,
        private: bool,
        payload: Value,
    },
    /// A member tracks a presence.
    Track {
        topic: String,
        private: bool,
        tracked: Tracked,
    },
    /// A member stopped tracking (or left).
    Untrack {
        topic: String,
        private: bool,
        member: u64,
    },
    /// A server now hosts a topic: who tracks what in it?
    Sync { topic: String, private: bool },
    /// The answer: what the sender's members track.
    State {
        topic: String,
        private: bool,
        tracked: Vec<Tracked>,
    },
    /// Postgres changes for subscriptions, in commit order.
    Changes { deliveries: Vec<RemoteDelivery> },
}

/// One change for some subscriptions (`realtime.subscription` ids).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RemoteDelivery {
    pub(crate) rows: Vec<i64>,
    pub(crate) data: Value,
}

#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    node: String,
    #[serde(flatten)]
    envelope: Envelope,
}

fn channel(project: &ProjectRef) -> String {
    format!("supa:realtime:{project}")
}

fn interest_key(project: &ProjectRef) -> String {
    format!("supa:realtime:interest:{project}")
}

fn lease_key(project: &ProjectRef) -> String {
    format!("supa:realtime:lease:{project}")
}

fn now_ms() -> u64 {
    u64::try_from(supa_core::time::since_epoch().as_millis()).unwrap_or(u64::MAX)
}

/// What a server does with messages from the others.
pub(crate) type Handler = Arc<dyn Fn(ProjectRef, Arc<str>, Envelope) + Send + Sync>;

/// A message waiting to be published.
struct Outgoing {
    channel: String,
    message: String,
    /// Told whether Redis took it.
    done: Option<tokio::sync::oneshot::Sender<bool>>,
}

/// Messages waiting for Redis at most, and sent in one pipeline.
const OUTBOX: usize = 10_000;
const PUBLISH_BATCH: usize = 100;

struct Redis {
    client: redis::Client,
    conn: redis::aio::ConnectionManager,
    outbox: tokio::sync::mpsc::Sender<Outgoing>,
    /// Subscribes and unsubscribes; None while reconnecting.
    sink: tokio::sync::Mutex<Option<redis::aio::PubSubSink>>,
    /// Projects whose channel this server follows.
    watched: Mutex<HashSet<ProjectRef>>,
    /// Servers seen alive at the last heartbeat (this one included).
    live: Mutex<HashSet<Arc<str>>>,
    /// When each lease we hold was last renewed.
    leases: Mutex<std::collections::HashMap<ProjectRef, Instant>>,
}

/// This server's link to the others; cheap to clone.
#[derive(Clone)]
pub(crate) struct Relay {
    node: Arc<str>,
    redis: Option<Arc<Redis>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("node", &self.node)
            .field("redis", &self.redis.is_some())
            .finish()
    }
}

impl Relay {
    /// A server on its own.
    pub(crate) fn alone() -> Self {
        Self {
            node: supa_core::random_uuid().into(),
            redis: None,
        }
    }

    /// A server among those sharing the Redis at `url`; messages from the
    /// others go to `handler`, and servers gone to `gone`.
    pub(crate) fn redis(
        url: &str,
        handler: Handler,
        gone: Arc<dyn Fn(&str) + Send + Sync>,
    ) -> Result<Self, String> {
        supa_core::http::install_tls_provider();
        let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| format!("Redis: {e}"))?;
        let (outbox, queue) = tokio::sync::mpsc::channel(OUTBOX);
        tokio::spawn(Self::send_queued(conn.clone(), queue));
        let relay = Self {
            node: supa_core::random_uuid().into(),
            redis: Some(Arc::new(Redis {
                client,
                conn,
                outbox,
                sink: tokio::sync::Mutex::new(None),
                watched: Mutex::default(),
                live: Mutex::default(),
                leases: Mutex::default(),
            })),
        };
        tokio::spawn(relay.clone().listen(handler));
        tokio::spawn(relay.clone().heartbeat(gone));
        Ok(relay)
    }

    /// This server's name among the others.
    pub(crate) fn node(&self) -> &Arc<str> {
        &self.node
    }

    /// Tells the other servers following `project`, in the order this
    /// server says things (one queue); dropped, with a warning, if Redis
    /// has fallen far behind.
    pub(crate) fn publish(&self, project: &ProjectRef, envelope: Envelope) {
        if let Some((redis, outgoing)) = self.outgoing(project, envelope, None)
            && redis.outbox.try_send(outgoing).is_err()
        {
            tracing::warn!(%project, "the realtime relay's queue is full: a message was dropped");
        }
    }

    /// [`Relay::publish`], returning once Redis has taken the message: a
    /// slot is advanced past changes only after the servers holding their
    /// subscribers can hear of them.
    pub(crate) async fn publish_confirmed(
        &self,
        project: &ProjectRef,
        envelope: Envelope,
    ) -> Result<(), String> {
        let (done, confirmed) = tokio::sync::oneshot::channel();
        let Some((redis, outgoing)) = self.outgoing(project, envelope, Some(done)) else {
            return Ok(());
        };
        redis
            .outbox
            .send(outgoing)
            .await
            .map_err(|_| "the realtime relay has stopped".to_owned())?;
        match confirmed.await {
            Ok(true) => Ok(()),
            _ => Err("Redis did not take the message".into()),
        }
    }

    fn outgoing(
        &self,
        project: &ProjectRef,
        envelope: Envelope,
        done: Option<tokio::sync::oneshot::Sender<bool>>,
    ) -> Option<(&Arc<Redis>, Outgoing)> {
        let redis = self.redis.as_ref()?;
        let message = serde_json::to_string(&Wire {
            node: self.node.to_string(),
            envelope,
        })
        .ok()?;
        Some((
            redis,
            Outgoing {
                channel: channel(project),
                message,
                done,
            },
        ))
    }

    /// Sends the queue's messages in order, as many as are waiting in one
    /// pipeline.
    async fn send_queued(
        mut conn: redis::aio::ConnectionManager,
        mut queue: tokio::sync::mpsc::Receiver<Outgoing>,
    ) {
        let mut batch = Vec::new();
        while queue.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
            let mut pipe = redis::pipe();
            for o in &batch {
                pipe.cmd("PUBLISH").arg(&o.channel).arg(&o.message).ignore();
            }
            let sent: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
            if let Err(e) = &sent {
                tracing::warn!(error = %e, messages = batch.len(), "cannot relay realtime messages");
            }
            for o in batch.drain(..) {
                if let Some(done) = o.done {
                    let _ = done.send(sent.is_ok());
                }
            }
        }
    }

    /// Follows `project`'s messages from now on (awaits Redis's
    /// confirmation, so nothing sent after this returns is missed).
    pub(crate) async fn watch(&self, project: &ProjectRef) {
        self.follow(project, true).await;
    }

    /// Stops following `project`'s messages.
    pub(crate) async fn unwatch(&self, project: &ProjectRef) {
        self.follow(project, false).await;
    }

    async fn follow(&self, project: &ProjectRef, on: bool) {
        let Some(redis) = &self.redis else {
            return;
        };
        let changed = {
            let mut watched = redis.watched.lock().unwrap_or_else(PoisonError::into_inner);
            if on {
                watched.insert(*project)
            } else {
                watched.remove(project)
            }
        };
        if !changed {
            return;
        }
        // Without a sink (starting, reconnecting), the connection being
        // made subscribes the watched set as it is then: a new watch waits
        // for it (a little), so the join it serves misses nothing.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(sink) = redis.sink.lock().await.as_mut() {
                let done = if on {
                    sink.subscribe(channel(project)).await
                } else {
                    sink.unsubscribe(channel(project)).await
                };
                if let Err(e) = done {
                    tracing::warn!(%project, error = %e, "cannot change the realtime relay's subscriptions");
                }
                return;
            }
            if !on || Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Subscribes to the watched projects and hands their messages on,
    /// reconnecting for as long as the process runs.
    async fn listen(self, handler: Handler) {
        let redis = self.redis.clone().expect("listen runs with Redis");
        loop {
            match redis.client.get_async_pubsub().await {
                Ok(pubsub) => {
                    let (mut sink, mut stream) = pubsub.split();
                    // Held while subscribing: a project watched meanwhile
                    // waits for the sink, then subscribes through it.
                    let mut slot = redis.sink.lock().await;
                    let watched: Vec<String> = redis
                        .watched
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .iter()
                        .map(channel)
                        .collect();
                    let subscribed = if watched.is_empty() {
                        Ok(())
                    } else {
                        sink.subscribe(&watched).await
                    };
                    if subscribed.is_ok() {
                        *slot = Some(sink);
                        drop(slot);
                        while let Some(message) = stream.next().await {
                            self.receive(&message, &handler);
                        }
                        *redis.sink.lock().await = None;
                    }
                    tracing::warn!("lost the realtime relay's Redis subscription; reconnecting");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot subscribe to the realtime relay; retrying")
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn receive(&self, message: &redis::Msg, handler: &Handler) {
        let Some(project) = message
            .get_channel_name()
            .strip_prefix("supa:realtime:")
            .and_then(|r| ProjectRef::parse(r).ok())
        else {
            return;
        };
        let Ok(text) = message.get_payload::<String>() else {
            return;
        };
        match serde_json::from_str::<Wire>(&text) {
            Ok(wire) if *wire.node != *self.node => {
                handler(project, wire.node.into(), wire.envelope);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%project, error = %e, "an unreadable realtime relay message"),
        }
    }

    /// Renews this server's entry every second and forgets servers gone.
    async fn heartbeat(self, gone: Arc<dyn Fn(&str) + Send + Sync>) {
        let redis = self.redis.clone().expect("heartbeat runs with Redis");
        let mut known: HashSet<Arc<str>> = HashSet::new();
        loop {
            let mut conn = redis.conn.clone();
            let now = now_ms();
            let alive: redis::RedisResult<Vec<String>> = async {
                redis::cmd("ZADD")
                    .arg(NODES)
                    .arg(now + NODE_TTL.as_millis() as u64)
                    .arg(&*self.node)
                    .query_async::<()>(&mut conn)
                    .await?;
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(NODES)
                    .arg("-inf")
                    .arg(now)
                    .query_async::<()>(&mut conn)
                    .await?;
                redis::cmd("ZRANGE")
                    .arg(NODES)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
            }
            .await;
            match alive {
                Ok(nodes) => {
                    let live: HashSet<Arc<str>> = nodes.into_iter().map(Arc::from).collect();
                    for node in known.difference(&live) {
                        tracing::info!(%node, "a realtime server is gone");
                        gone(node);
                    }
                    known.clone_from(&live);
                    *redis.live.lock().unwrap_or_else(PoisonError::into_inner) = live;
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew this realtime server's entry"),
            }
            tokio::time::sleep(HEARTBEAT).await;
        }
    }

    /// The servers alive (this one always).
    pub(crate) fn live_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = match &self.redis {
            Some(redis) => redis
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|n| n.to_string())
                .collect(),
            None => Vec::new(),
        };
        if !nodes.iter().any(|n| **n == *self.node) {
            nodes.push(self.node.to_string());
        }
        nodes
    }

    /// Whether this server may read `project`'s slot now: it holds the
    /// lease (taken or renewed here). Alone, always.
    pub(crate) async fn hold(&self, project: &ProjectRef) -> bool {
        let Some(redis) = &self.redis else {
            return true;
        };
        let renewed = redis
            .leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(project)
            .copied();
        // Renewed often enough that a lease never lapses while held, but
        // not on every poll.
        if renewed.is_some_and(|t| t.elapsed() < LEASE_TTL / 6) {
            return true;
        }
        let mut conn = redis.conn.clone();
        let held: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg(LEASE_SCRIPT)
            .arg(1)
            .arg(lease_key(project))
            .arg(&*self.node)
            .arg(LEASE_TTL.as_millis() as u64)
            .query_async(&mut conn)
            .await;
        let mut leases = redis.leases.lock().unwrap_or_else(PoisonError::into_inner);
        match held {
            Ok(1) => {
                leases.insert(*project, Instant::now());
                true
            }
            Ok(_) => {
                leases.remove(project);
                false
            }
            // Redis cannot say: keep reading only while the last renewal
            // still stands, so two servers never read at once.
            Err(e) => {
                tracing::warn!(%project, error = %e, "cannot renew a realtime lease");
                let still = renewed.is_some_and(|t| t.elapsed() < LEASE_TTL * 2 / 3);
                if !still {
                    leases.remove(project);
                }
                still
            }
        }
    }

    /// Gives `project`'s lease back, if held.
    pub(crate) async fn release(&self, project: &ProjectRef) {
        let Some(redis) = &self.redis else {
            return;
        };
        let held = redis
            .leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(project)
            .is_some();
        if held {
            let mut conn = redis.conn.clone();
            let _: redis::RedisResult<i64> = redis::cmd("EVAL")
                .arg(RELEASE_SCRIPT)
                .arg(1)
                .arg(lease_key(project))
                .arg(&*self.node)
                .query_async(&mut conn)
                .await;
        }
    }

    /// Marks (or, `interested` false, unmarks) this server as having
    /// channels of `project`, for the slot's reader to know.
    pub(crate) async fn interest(&self, project: &ProjectRef, interested: bool) {
        let Some(redis) = &self.redis else {
            return;
        };
        let mut conn = redis.conn.clone();
        let key = interest_key(project);
        let done: redis::RedisResult<()> = if interested {
            redis::cmd("ZADD")
                .arg(&key)
                .arg(now_ms() + NODE_TTL.as_millis() as u64)
                .arg(&*self.node)
                .query_async(&mut conn)
                .await
        } else {
            redis::cmd("ZREM")
                .arg(&key)
                .arg(&*self.node)
                .query_async(&mut conn)
                .await
        };
        if let Err(e) = done {
            tracing::warn!(%project, error = %e, "cannot mark realtime interest");
        }
    }

    /// Whether another server has channels of `project`. When Redis cannot
    /// say, yes: a slot is kept rather than dropped under a subscriber.
    pub(crate) async fn others_interested(&self, project: &ProjectRef) -> bool {
        let Some(redis) = &self.redis else {
            return false;
        };
        let mut conn = redis.conn.clone();
        let nodes: redis::RedisResult<Vec<String>> = redis::cmd("ZRANGEBYSCORE")
            .arg(interest_key(project))
            .arg(now_ms())
            .arg("+inf")
            .query_async(&mut conn)
            .await;
        match nodes {
            Ok(nodes) => nodes.iter().any(|n| **n != *self.node),
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_travel_as_tagged_json() {
        let wire = Wire {
            node: "n1".into(),
            envelope: Envelope::Untrack {
                topic: "realtime:room".into(),
                private: false,
                member: 7,
            },
        };
        let text = serde_json::to_string(&wire).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"node": "n1", "kind": "untrack", "topic": "realtime:room", "private": false, "member": 7})
        );
        let back: Wire = serde_json::from_str(&text).unwrap();
        assert_eq!(back.envelope, wire.envelope);
    }
}
