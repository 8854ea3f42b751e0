//! One WebSocket: its channels, what it may do in each, and Supabase's
//! answers.
//!
//! A reader loop takes the client's frames in order; everything the
//! socket sends (replies, and what other members broadcast) goes through
//! one bounded queue to a writer task, serialized in the socket's `vsn`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::changes::Binding;
use crate::feed::{Permissions, Sink};
use crate::hub::{Member, MemberId, TopicKey, Tracked};
use crate::limits::Usage;
use crate::protocol::{Frame, Vsn};
use crate::relay::Envelope;
use crate::{Realtime, RealtimeProject};

/// Frames waiting for a slow client before it misses messages.
const QUEUE: usize = 1024;

/// A socket that sends nothing (not even a heartbeat) this long is gone
/// (Phoenix's default).
const IDLE: Duration = Duration::from_secs(60);

/// A channel this socket has joined.
struct Joined {
    key: TopicKey,
    member: MemberId,
    join_ref: Option<String>,
    ack: bool,
    presence_key: String,
    /// What the channel's token lets it do (everything in a public one).
    permissions: Permissions,
    /// Its Postgres changes subscription, if it has bindings.
    subscription: Option<Arc<str>>,
}

struct Socket {
    realtime: Realtime,
    project: Arc<RealtimeProject>,
    /// The connection's claims (the API key's role), for channels joined
    /// without a token of their own.
    claims: Value,
    /// The project's counters (and this socket's place in them).
    usage: Usage,
    tx: mpsc::Sender<Frame>,
    channels: HashMap<String, Joined>,
}

/// Serves one upgraded connection until it closes.
pub(crate) async fn run(
    ws: WebSocket,
    realtime: Realtime,
    project: Arc<RealtimeProject>,
    claims: Value,
    usage: Usage,
    vsn: Vsn,
) {
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Frame>(QUEUE);
    let mut closing = realtime.closing.subscribe();
    let going_away = closing.clone();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink
                .send(Message::Text(frame.encode(vsn).into()))
                .await
                .is_err()
            {
                break;
            }
        }
        if *going_away.borrow() {
            // The server is stopping: the client reconnects on this.
            let _ = sink
                .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: axum::extract::ws::close_code::AWAY,
                    reason: "server stopping, reconnect".into(),
                })))
                .await;
        }
        let _ = sink.close().await;
        drop(going_away);
    });
    let mut socket = Socket {
        realtime,
        project,
        claims,
        usage,
        tx,
        channels: HashMap::new(),
    };
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(IDLE, stream.next()) => match next {
                Ok(Some(Ok(message))) => message,
                // Timed out, closed, or broken.
                _ => break,
            },
            // The server is stopping (or already was when this began).
            _ = closing.wait_for(|c| *c) => break,
        };
        let size = match &next {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 0,
        };
        if size > socket.project.settings.max_payload_size_in_kb as usize * 1024 {
            socket.send(socket_error(&format!(
                "PayloadTooLarge: the message is larger than {} KB",
                socket.project.settings.max_payload_size_in_kb
            )));
            continue;
        }
        match next {
            Message::Text(text) => match Frame::decode(&text, vsn) {
                Ok(frame) => socket.handle(frame).await,
                Err(e) => socket.send(socket_error(&format!("malformed message: {}", e.0))),
            },
            Message::Binary(bytes) => match (vsn, Frame::decode_binary(&bytes)) {
                (Vsn::V2, Ok(frame)) => socket.handle(frame).await,
                (Vsn::V2, Err(e)) => {
                    socket.send(socket_error(&format!("malformed message: {}", e.0)));
                }
                (Vsn::V1, _) => socket.send(socket_error("binary messages need vsn 2.0.0")),
            },
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    // A socket that dies leaves every channel: its presence and its
    // subscriptions go with it.
    for (_, joined) in std::mem::take(&mut socket.channels) {
        socket.part(joined);
    }
    drop(socket);
    drop(closing);
    let _ = writer.await;
}

/// A `phx_error` about the socket itself (a frame that cannot be read).
fn socket_error(reason: &str) -> Frame {
    Frame {
        join_ref: None,
        reference: None,
        topic: "phoenix".into(),
        event: "phx_error".into(),
        payload: json!({ "reason": reason }),
    }
}

/// The reason a token is refused, in Supabase's words.
fn token_refusal(project: &RealtimeProject, e: &supa_keys::Error, now: i64, token: &str) -> String {
    match e {
        supa_keys::Error::Expired => {
            let ago = supa_keys::verify_signature(&project.jwt_key, token)
                .ok()
                .and_then(|c| c.get("exp").and_then(Value::as_i64))
                .map_or(0, |exp| (now - exp).max(0));
            format!("Token has expired {ago} seconds ago")
        }
        other => format!("Invalid token: {other}"),
    }
}

impl Socket {
    /// Tells the other servers.
    fn relay(&self, envelope: Envelope) {
        self.realtime
            .relay
            .publish(&self.project.project_ref, envelope);
    }

    /// Leaves a channel this socket had joined.
    fn part(&self, joined: Joined) {
        if self.realtime.hub.leave(&joined.key, joined.member) {
            self.relay(Envelope::Untrack {
                topic: joined.key.topic.clone(),
                private: joined.key.private,
                member: joined.member,
            });
        }
        if let Some(subscription) = joined.subscription {
            self.realtime.feeds.unsubscribe(&self.project, subscription);
        }
        self.realtime.feeds.exit(&self.project.project_ref);
    }

    fn send(&self, frame: Frame) {
        if self.tx.try_send(frame).is_err() {
            tracing::debug!("a socket's queue is full: reply dropped");
        }
    }

    fn system(
        &self,
        topic: &str,
        join_ref: Option<String>,
        status: &str,
        extension: &str,
        message: &str,
    ) {
        let channel = topic.strip_prefix("realtime:").unwrap_or(topic);
        self.send(Frame {
            join_ref,
            reference: None,
            topic: topic.to_owned(),
            event: "system".into(),
            payload: json!({
                "status": status, "extension": extension, "message": message, "channel": channel,
            }),
        });
    }

    async fn handle(&mut self, frame: Frame) {
        match (frame.topic.as_str(), frame.event.as_str()) {
            ("phoenix", "heartbeat") => self.send(frame.reply("ok", json!({}))),
            // Boxed: a join may wait on the database, and its state would
            // otherwise size every idle socket's task.
            (_, "phx_join") => Box::pin(self.join(frame)).await,
            (topic, _) if !self.channels.contains_key(topic) => {
                self.send(frame.reply("error", json!({ "reason": "unmatched topic" })));
            }
            (_, "phx_leave") => {
                if let Some(joined) = self.channels.remove(&frame.topic) {
                    self.part(joined);
                }
                self.send(frame.reply("ok", json!({})));
                self.send(Frame {
                    event: "phx_close".into(),
                    reference: None,
                    payload: json!({}),
                    ..frame
                });
            }
            (_, "broadcast") => self.broadcast(frame),
            (_, "presence") => self.presence(frame),
            (_, "access_token") => Box::pin(self.access_token(frame)).await,
            _ => self.send(frame.reply("error", json!({ "reason": "unknown event" }))),
        }
    }

    /// The claims a channel acts with: its `access_token`'s, which must be
    /// the project's and current; an API key (or none) leaves the
    /// connection's, which the gateway checked.
    fn check_token(&self, token: Option<&str>) -> Result<Value, String> {
        match token {
            None | Some("") => Ok(self.claims.clone()),
            Some(t) if t.starts_with("sb_") => Ok(self.claims.clone()),
            Some(t) => {
                let now = supa_keys::unix_now();
                supa_keys::verify(&self.project.jwt_key, t, now)
                    .map(|c| Value::Object(c.as_map().clone()))
                    .map_err(|e| token_refusal(&self.project, &e, now, t))
            }
        }
    }

    /// What `claims` may do in channel `name`: everything in a public one;
    /// in a private one, what the project's policies allow.
    async fn permissions(
        &self,
        name: &str,
        private: bool,
        claims: &Value,
    ) -> Result<Permissions, String> {
        if !private {
            return Ok(Permissions {
                read: true,
                write_broadcast: true,
                write_presence: true,
            });
        }
        let unauthorized = || {
            format!(
                "Unauthorized: You do not have permissions to read from this Channel topic: {name}"
            )
        };
        match self
            .realtime
            .feeds
            .authorize(&self.project, claims, name)
            .await
        {
            Ok(p) if p.read => Ok(p),
            Ok(_) => Err(unauthorized()),
            Err(e) => {
                tracing::warn!(project = %self.project.project_ref, error = %e, "cannot authorize a private channel");
                Err(unauthorized())
            }
        }
    }

    async fn join(&mut self, frame: Frame) {
        let Some(name) = frame
            .topic
            .strip_prefix("realtime:")
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
        else {
            self.send(frame.reply("error", json!({ "reason": "unmatched topic" })));
            return;
        };
        let config = &frame.payload["config"];
        let private = config["private"].as_bool().unwrap_or(false);
        let settings = &self.project.settings;
        let refusal = if !self.channels.contains_key(&frame.topic)
            && self.channels.len() >= settings.max_channels_per_client as usize
        {
            Some("ChannelRateLimitReached: Too many channels")
        } else if !self
            .usage
            .counters
            .joins
            .allow(settings.max_joins_per_second)
        {
            Some("ClientJoinRateLimitReached: Too many joins per second")
        } else if settings.private_only && !private {
            Some("PrivateOnly: This project only allows private channels")
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.send(frame.reply("error", json!({ "reason": reason })));
            return;
        }
        let claims = match self.check_token(frame.payload["access_token"].as_str()) {
            Ok(claims) => claims,
            Err(reason) => {
                self.send(frame.reply(
                    "error",
                    json!({ "reason": format!("InvalidJWTToken: {reason}") }),
                ));
                return;
            }
        };
        let bindings = match Binding::parse_all(&config["postgres_changes"]) {
            Ok(b) => b,
            Err(reason) => {
                self.send(frame.reply("error", json!({ "reason": reason })));
                return;
            }
        };
        let permissions = match self.permissions(&name, private, &claims).await {
            Ok(p) => p,
            Err(reason) => {
                self.send(frame.reply("error", json!({ "reason": reason })));
                return;
            }
        };
        // A second join of the same topic replaces the first (Phoenix).
        if let Some(old) = self.channels.remove(&frame.topic) {
            self.part(old);
        }
        // The feed runs from the first channel: broadcasts from SQL reach
        // every channel, changes reach the subscribed ones.
        self.realtime.feeds.enter(&self.project).await;
        let subscription = if bindings.is_empty() {
            None
        } else {
            let sink = Sink {
                tx: self.tx.clone(),
                topic: frame.topic.clone(),
                join_ref: frame.join_ref.clone(),
            };
            match self
                .realtime
                .feeds
                .subscribe(&self.project, &claims, &bindings, sink)
                .await
            {
                Ok(s) => Some(s),
                Err(reason) => {
                    self.realtime.feeds.exit(&self.project.project_ref);
                    self.send(frame.reply("error", json!({ "reason": reason })));
                    return;
                }
            }
        };
        let key = TopicKey {
            project: self.project.project_ref,
            topic: frame.topic.clone(),
            private,
        };
        let member = self.realtime.hub.member_id();
        let presence_key = match config["presence"]["key"].as_str() {
            Some(k) if !k.is_empty() => k.to_owned(),
            _ => supa_core::random_uuid(),
        };
        let presence_enabled = config["presence"]["enabled"].as_bool().unwrap_or(false);
        let changes: Vec<Value> = bindings.iter().map(|b| b.echo.clone()).collect();
        self.send(frame.reply("ok", json!({ "postgres_changes": changes })));
        if subscription.is_some() {
            self.system(
                &frame.topic,
                frame.join_ref.clone(),
                "ok",
                "postgres_changes",
                "Subscribed to PostgreSQL",
            );
        }
        let created = self.realtime.hub.join(
            &key,
            member,
            Member {
                tx: self.tx.clone(),
                join_ref: frame.join_ref.clone(),
                self_broadcast: config["broadcast"]["self"].as_bool().unwrap_or(false),
            },
            presence_enabled,
        );
        if created {
            // Members elsewhere tell what they track.
            self.relay(Envelope::Sync {
                topic: key.topic.clone(),
                private,
            });
        }
        self.channels.insert(
            frame.topic.clone(),
            Joined {
                key,
                member,
                join_ref: frame.join_ref,
                ack: config["broadcast"]["ack"].as_bool().unwrap_or(false),
                presence_key,
                permissions,
                subscription,
            },
        );
    }

    /// Counts a message against the project's rate; false (and the
    /// sender told, when it waits for a reply) when over it.
    fn within_rate(&self, frame: &Frame, presence: bool) -> bool {
        let settings = &self.project.settings;
        let counters = &self.usage.counters;
        let allowed = counters.events.allow(settings.max_events_per_second)
            && (!presence
                || counters
                    .presence
                    .allow(settings.max_presence_events_per_second));
        if !allowed && frame.reference.is_some() {
            self.send(frame.reply(
                "error",
                json!({
                    "reason": "MessagePerSecondRateLimitReached: Too many messages per second"
                }),
            ));
        }
        allowed
    }

    /// Tells a sender waiting for a reply that the channel's policies do
    /// not let it write; false then.
    fn may_write(&self, frame: &Frame, allowed: bool) -> bool {
        if !allowed && frame.reference.is_some() {
            self.send(frame.reply(
                "error",
                json!({ "reason": "Unauthorized: You do not have permissions to write to this Channel topic" }),
            ));
        }
        allowed
    }

    fn broadcast(&mut self, frame: Frame) {
        if !self.within_rate(&frame, false) {
            return;
        }
        let joined = &self.channels[&frame.topic];
        if !self.may_write(&frame, joined.permissions.write_broadcast) {
            return;
        }
        let payload = json!({
            "type": "broadcast",
            "event": frame.payload["event"].clone(),
            "payload": frame.payload.get("payload").cloned().unwrap_or_else(|| json!({})),
        });
        self.realtime
            .hub
            .broadcast(&joined.key, Some(joined.member), &payload);
        self.relay(Envelope::Broadcast {
            topic: joined.key.topic.clone(),
            private: joined.key.private,
            payload,
        });
        if joined.ack {
            self.send(frame.reply("ok", json!({})));
        }
    }

    fn presence(&mut self, frame: Frame) {
        if !self.within_rate(&frame, true) {
            return;
        }
        let joined = &self.channels[&frame.topic];
        if !self.may_write(&frame, joined.permissions.write_presence) {
            return;
        }
        match frame.payload["event"].as_str() {
            Some("track") => {
                let payload = frame
                    .payload
                    .get("payload")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                if !payload.is_object() {
                    self.send(frame.reply(
                        "error",
                        json!({ "reason": "presence payload must be an object" }),
                    ));
                    return;
                }
                let phx_ref = self.realtime.hub.track(
                    &joined.key,
                    joined.member,
                    &joined.presence_key,
                    payload.clone(),
                );
                self.relay(Envelope::Track {
                    topic: joined.key.topic.clone(),
                    private: joined.key.private,
                    tracked: Tracked {
                        member: joined.member,
                        key: joined.presence_key.clone(),
                        phx_ref,
                        payload,
                    },
                });
            }
            Some("untrack") => {
                if self.realtime.hub.untrack(&joined.key, joined.member) {
                    self.relay(Envelope::Untrack {
                        topic: joined.key.topic.clone(),
                        private: joined.key.private,
                        member: joined.member,
                    });
                }
            }
            _ => {
                self.send(frame.reply(
                    "error",
                    json!({ "reason": "presence event must be track or untrack" }),
                ));
                return;
            }
        }
        self.send(frame.reply("ok", json!({})));
    }

    /// A new token for a channel; a bad or expired one, or one the
    /// private channel's policies no longer let read, closes it with
    /// Supabase's system message.
    async fn access_token(&mut self, frame: Frame) {
        let joined = &self.channels[&frame.topic];
        let private = joined.key.private;
        let subscription = joined.subscription.clone();
        let reason = match self.check_token(frame.payload["access_token"].as_str()) {
            Ok(claims) => {
                let name = frame
                    .topic
                    .strip_prefix("realtime:")
                    .unwrap_or(&frame.topic);
                match self.permissions(name, private, &claims).await {
                    Ok(p) => {
                        if let Some(joined) = self.channels.get_mut(&frame.topic) {
                            joined.permissions = p;
                        }
                        // Changes are checked with the new claims from now on.
                        if let Some(subscription) = subscription
                            && let Err(e) = self
                                .realtime
                                .feeds
                                .reclaim(&self.project, &subscription, &claims)
                                .await
                        {
                            tracing::warn!(project = %self.project.project_ref, error = %e, "cannot update a subscription's claims");
                        }
                        return;
                    }
                    Err(reason) => reason,
                }
            }
            Err(reason) => reason,
        };
        let Some(joined) = self.channels.remove(&frame.topic) else {
            return;
        };
        let join_ref = joined.join_ref.clone();
        self.part(joined);
        self.system(&frame.topic, join_ref.clone(), "error", "system", &reason);
        self.send(Frame {
            join_ref,
            reference: None,
            topic: frame.topic,
            event: "phx_close".into(),
            payload: json!({}),
        });
    }
}
