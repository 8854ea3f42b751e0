//! Supa's realtime server: Supabase Realtime's `/realtime/v1` for every
//! project, as realtime-py and realtime-js speak to it.
//!
//! `GET /websocket?vsn=1.0.0|2.0.0` upgrades to a Phoenix-channel socket
//! ([`protocol`]: both serializers, heartbeats, `phx_join`/`phx_leave`/
//! `phx_reply`/`phx_error`/`phx_close`, Supabase's `system` messages and
//! the `access_token` message), on which channels named `realtime:{name}`
//! carry broadcasts (`self` and `ack` as the join configures them),
//! presence (`track`/`untrack`, `presence_state` on join, `presence_diff`
//! on changes, cleaned up when a socket dies) and Postgres changes of the
//! tables in the `supabase_realtime` publication, decoded from the
//! project's replication slot and checked against each subscriber's row
//! level security in the database. Private channels are authorized by
//! the project's policies on `realtime.messages`. `POST /api/broadcast`
//! sends a batch of broadcasts from the server side, `realtime.send` from
//! SQL.
//!
//! [`Realtime`] is the engine: the channels of every project in this
//! process, the feeds from their databases, and (with Redis) the link to
//! the other servers, so channels span them and one server at a time
//! reads each slot. The gateway checks the API key (the `apikey` query
//! parameter of the WebSocket) and puts the project's `Arc<ProjectConfig>`
//! and a token of the key's role in the request, as for every mounted
//! service; [`schema`] is the `realtime` schema the project template
//! holds.

#![forbid(unsafe_code)]

mod changes;
mod feed;
mod hub;
mod limits;
pub mod protocol;
pub mod realtime_env;
mod relay;
pub mod schema;
mod socket;

pub use feed::FeedTiming;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use supa_core::{ProjectConfig, ProjectDatabase, ProjectRef, RealtimeSettings};
use supa_keys::JwtKey;

use crate::hub::{Hub, TopicKey};
use crate::limits::Limits;
use crate::protocol::Vsn;

/// Largest WebSocket message any project may allow; a project's own
/// `max_payload_size_in_kb` is checked per message below it.
pub const MAX_MESSAGE_BYTES: usize = supa_core::MAX_REALTIME_PAYLOAD_KB as usize * 1024;

/// A socket's read and write buffers to start with.
const SOCKET_BUFFER: usize = 4 * 1024;

/// One project as its realtime server needs it.
#[derive(Clone)]
pub struct RealtimeProject {
    /// The project.
    pub project_ref: ProjectRef,
    /// Verifies the tokens channels are joined with.
    pub jwt_key: JwtKey,
    /// Its limits and switches.
    pub settings: RealtimeSettings,
    /// The realtime server's login to its database (Postgres changes,
    /// broadcasts from SQL, private channels); absent for projects made
    /// before it existed.
    pub database: Option<ProjectDatabase>,
}

impl std::fmt::Debug for RealtimeProject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealtimeProject")
            .field("project_ref", &self.project_ref)
            .finish_non_exhaustive()
    }
}

/// The engine: every project's channels in this process, the feeds from
/// their databases, and the link to the other servers; cheap to clone.
#[derive(Debug, Clone)]
pub struct Realtime {
    hub: Hub,
    limits: Limits,
    feeds: feed::Feeds,
    relay: relay::Relay,
    /// Turns true when the server is stopping: every socket holds a
    /// receiver, is told to reconnect elsewhere, and drops it.
    closing: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Realtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Realtime {
    /// A server on its own, its feeds polling and letting go as
    /// [`FeedTiming::default`] says.
    pub fn new() -> Self {
        Self::with_timing(FeedTiming::default())
    }

    /// A server on its own whose feeds poll and let go as `timing` says.
    pub fn with_timing(timing: FeedTiming) -> Self {
        Self::assemble(Hub::default(), relay::Relay::alone(), timing)
    }

    fn assemble(hub: Hub, relay: relay::Relay, timing: FeedTiming) -> Self {
        Self {
            feeds: feed::Feeds::new(hub.clone(), relay.clone(), timing),
            hub,
            limits: Limits::default(),
            relay,
            closing: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// For a graceful stop (SIGTERM): tells every open socket to reconnect
    /// (a close frame, 1001 "going away", which Supabase's clients answer
    /// by reconnecting, through the load balancer to another server),
    /// refuses new sockets with 503, and returns when every socket has
    /// closed or after `timeout`.
    pub async fn drain(&self, timeout: std::time::Duration) {
        self.closing.send_replace(true);
        let deadline = tokio::time::Instant::now() + timeout;
        while self.closing.receiver_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// A server among those sharing the Redis at `url`: channels span
    /// them (broadcasts, presence, Postgres changes), and one of them at a
    /// time reads each project's slot. Needs a Tokio runtime.
    pub fn with_redis(url: &str, timing: FeedTiming) -> Result<Self, String> {
        let hub = Hub::default();
        // The relay hands messages to the engine it is part of; the engine
        // is made after the relay, so the handler finds it through a cell.
        let engine: Arc<std::sync::OnceLock<Realtime>> = Arc::default();
        let handler: relay::Handler = {
            let engine = engine.clone();
            Arc::new(move |project, node, envelope| {
                if let Some(engine) = engine.get() {
                    engine.receive(project, &node, envelope);
                }
            })
        };
        let gone_hub = hub.clone();
        let relay = relay::Relay::redis(
            url,
            handler,
            Arc::new(move |node| gone_hub.forget_node(node)),
        )?;
        let realtime = Self::assemble(hub, relay, timing);
        let _ = engine.set(realtime.clone());
        Ok(realtime)
    }

    /// A server among those sharing `redis_url`, or on its own without one.
    pub fn start(redis_url: Option<&str>, timing: FeedTiming) -> Result<Self, String> {
        match redis_url {
            Some(url) => Self::with_redis(url, timing),
            None => Ok(Self::with_timing(timing)),
        }
    }

    /// What another server says of a project.
    fn receive(&self, project: ProjectRef, node: &Arc<str>, envelope: relay::Envelope) {
        use relay::Envelope::*;
        let key = |topic: String, private: bool| TopicKey {
            project,
            topic,
            private,
        };
        match envelope {
            Broadcast {
                topic,
                private,
                payload,
            } => {
                self.hub.broadcast(&key(topic, private), None, &payload);
            }
            Track {
                topic,
                private,
                tracked,
            } => self.hub.remote_track(&key(topic, private), node, tracked),
            Untrack {
                topic,
                private,
                member,
            } => self.hub.remote_untrack(&key(topic, private), node, member),
            Sync { topic, private } => {
                let k = key(topic, private);
                let tracked = self.hub.local_presence(&k);
                if !tracked.is_empty() {
                    self.relay.publish(
                        &project,
                        State {
                            topic: k.topic,
                            private: k.private,
                            tracked,
                        },
                    );
                }
            }
            State {
                topic,
                private,
                tracked,
            } => {
                let k = key(topic, private);
                for t in tracked {
                    self.hub.remote_track(&k, node, t);
                }
            }
            Changes { deliveries } => self.feeds.deliver_remote(&project, deliveries),
        }
    }
}

/// An error answered as Supabase Realtime's REST API does: `{"message"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// HTTP status.
    pub status: u16,
    /// What went wrong.
    pub message: String,
}

impl Error {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// Whether the client is at fault.
    pub fn is_client_error(&self) -> bool {
        self.status < 500
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(json!({ "message": self.message }))).into_response()
    }
}

/// The project of a request.
struct Project(Arc<RealtimeProject>);

impl<S: Send + Sync> FromRequestParts<S> for Project {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Error> {
        let config = parts
            .extensions
            .get::<Arc<ProjectConfig>>()
            .ok_or_else(|| Error::new(404, "No project"))?;
        let (jwt_key, _) =
            supa_keys::project_keys(config).map_err(|e| Error::new(500, e.to_string()))?;
        Ok(Self(Arc::new(RealtimeProject {
            project_ref: config.project_ref,
            jwt_key,
            settings: config.realtime.clone(),
            database: config.realtime_database.clone(),
        })))
    }
}

/// Supabase Realtime's API, serving every project the gateway routes to it.
pub fn router(realtime: Realtime) -> Router {
    Router::new()
        .route("/websocket", get(websocket))
        .route("/api/broadcast", post(rest_broadcast))
        .route(
            "/api/broadcast/{topic}/events/{event}",
            post(rest_broadcast_one),
        )
        .fallback(|| async { Error::new(404, "Not found") })
        .with_state(realtime)
}

#[derive(Debug, Deserialize)]
struct SocketQuery {
    vsn: Option<String>,
}

/// The caller of a request: its project, and the claims of its token:
/// the bearer token (the gateway puts the API key's role there), else an
/// `apikey` header or query parameter that is a project JWT (what clients
/// send a standalone server).
struct Caller(Arc<RealtimeProject>, Value);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Error> {
        let Project(project) = Project::from_request_parts(parts, state).await?;
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let bearer = header(axum::http::header::AUTHORIZATION.as_str()).and_then(|v| {
            v.get(7..)
                .filter(|_| v[..7].eq_ignore_ascii_case("bearer "))
        });
        let query_key = parts.uri.query().and_then(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == "apikey")
                .map(|(_, v)| v)
        });
        let now = supa_keys::unix_now();
        let claims = [bearer, header("apikey"), query_key]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|t| !t.starts_with("sb_"))
            .find_map(|t| supa_keys::verify(&project.jwt_key, t, now).ok())
            .ok_or_else(|| {
                Error::new(
                    401,
                    "InvalidJWTToken: a valid JWT of the project is required",
                )
            })?;
        Ok(Self(project, Value::Object(claims.as_map().clone())))
    }
}

async fn websocket(
    State(realtime): State<Realtime>,
    Caller(project, claims): Caller,
    Query(query): Query<SocketQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, Error> {
    let vsn = Vsn::parse(query.vsn.as_deref())
        .ok_or_else(|| Error::new(400, "vsn must be 1.0.0 or 2.0.0"))?;
    if *realtime.closing.borrow() {
        return Err(Error::new(
            503,
            "ServerShuttingDown: this server is stopping, connect again",
        ));
    }
    if project.settings.suspend {
        return Err(Error::new(
            403,
            "RealtimeDisabledForTenant: Realtime disabled for this tenant",
        ));
    }
    // Counted from the handshake, so a burst cannot overshoot the limit.
    let usage = realtime
        .limits
        .connect(project.project_ref, project.settings.max_concurrent_users)
        .ok_or_else(|| Error::new(429, "ConnectionRateLimitReached: Too many connected users"))?;
    Ok(upgrade
        // Most sockets sit idle: small buffers that grow for a large
        // message, instead of tungstenite's 128 KiB each.
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |ws| socket::run(ws, realtime, project, claims, usage, vsn)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    messages: Vec<RestMessage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestMessage {
    topic: String,
    event: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    private: bool,
}

#[derive(Debug, Default, Deserialize)]
struct PrivateQuery {
    #[serde(default)]
    private: bool,
}

/// `POST /api/broadcast/{topic}/events/{event}` (`?private=true`): one
/// broadcast whose body is the payload (what `http_send` posts).
async fn rest_broadcast_one(
    State(realtime): State<Realtime>,
    Caller(project, claims): Caller,
    axum::extract::Path((topic, event)): axum::extract::Path<(String, String)>,
    Query(query): Query<PrivateQuery>,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    let payload: Value =
        serde_json::from_slice(&body).map_err(|_| Error::new(415, "the payload must be JSON"))?;
    if query.private {
        may_write(&realtime, &project, &claims, [topic.as_str()]).await?;
    }
    send(&realtime, &project, &topic, &event, payload, query.private)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Checks the caller may broadcast to each private channel of `topics`
/// (their names), as the project's policies on `realtime.messages` say.
async fn may_write<'a>(
    realtime: &Realtime,
    project: &RealtimeProject,
    claims: &Value,
    topics: impl IntoIterator<Item = &'a str>,
) -> Result<(), Error> {
    for topic in topics {
        let allowed = realtime
            .feeds
            .authorize(project, claims, topic)
            .await
            .is_ok_and(|p| p.write_broadcast);
        if !allowed {
            return Err(Error::new(
                401,
                format!(
                    "Unauthorized: You do not have permissions to write to this Channel topic: {topic}"
                ),
            ));
        }
    }
    Ok(())
}

/// Broadcasts `payload` as `event` to channel `topic` (its name).
fn send(
    realtime: &Realtime,
    project: &RealtimeProject,
    topic: &str,
    event: &str,
    payload: Value,
    private: bool,
) -> Result<(), Error> {
    if topic.is_empty() || !payload.is_object() {
        return Err(Error::new(
            400,
            "a broadcast needs a topic and an object payload",
        ));
    }
    let key = TopicKey {
        project: project.project_ref,
        topic: format!("realtime:{topic}"),
        private,
    };
    let payload = json!({"type": "broadcast", "event": event, "payload": payload});
    realtime.hub.broadcast(&key, None, &payload);
    realtime.relay.publish(
        &project.project_ref,
        relay::Envelope::Broadcast {
            topic: key.topic,
            private,
            payload,
        },
    );
    Ok(())
}

/// `POST /api/broadcast`: broadcasts to each message's channel (the
/// channel's name, without `realtime:`), 202 once sent.
async fn rest_broadcast(
    State(realtime): State<Realtime>,
    Caller(project, claims): Caller,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    let body: BroadcastBody =
        serde_json::from_slice(&body).map_err(|e| Error::new(400, format!("invalid body: {e}")))?;
    if body.messages.is_empty() || body.messages.len() > 100 {
        return Err(Error::new(400, "messages must have 1 to 100 items"));
    }
    if body
        .messages
        .iter()
        .any(|m| m.topic.is_empty() || !m.payload.is_object())
    {
        return Err(Error::new(
            400,
            "each message needs a topic and an object payload",
        ));
    }
    let private: std::collections::BTreeSet<&str> = body
        .messages
        .iter()
        .filter(|m| m.private)
        .map(|m| m.topic.as_str())
        .collect();
    may_write(&realtime, &project, &claims, private).await?;
    for m in body.messages {
        send(
            &realtime, &project, &m.topic, &m.event, m.payload, m.private,
        )?;
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
