//! The channels of every project in this process: who has joined each
//! topic, and the presence each member tracks.
//!
//! A topic is keyed by project, name and privacy (a private channel and a
//! public one of the same name are different channels, as on Supabase).
//! Messages go to each member's bounded queue; a member whose queue is
//! full (a socket that stopped reading) misses the message rather than
//! holding up the others.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value, json};
use supa_core::ProjectRef;
use tokio::sync::mpsc;

use crate::protocol::Frame;

/// A member of a topic: one channel of one socket.
pub(crate) type MemberId = u64;

/// Where a member's messages go.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The socket's outgoing queue.
    pub(crate) tx: mpsc::Sender<Frame>,
    /// The join this membership came from.
    pub(crate) join_ref: Option<String>,
    /// Whether the member's own broadcasts come back to it.
    pub(crate) self_broadcast: bool,
}

/// Who tracks a presence: a member here, or one on another server
/// (told through the relay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Local(MemberId),
    Remote(Arc<str>, MemberId),
}

#[derive(Debug, Clone)]
struct Meta {
    origin: Origin,
    phx_ref: String,
    payload: Value,
}

/// A presence tracked here, as the relay tells other servers of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Tracked {
    pub(crate) member: MemberId,
    pub(crate) key: String,
    pub(crate) phx_ref: String,
    pub(crate) payload: Value,
}

#[derive(Debug, Default)]
struct Topic {
    members: HashMap<MemberId, Member>,
    /// Presence key -> what each member tracks under it.
    presence: BTreeMap<String, Vec<Meta>>,
}

/// A topic's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TopicKey {
    pub(crate) project: ProjectRef,
    /// `realtime:{name}`.
    pub(crate) topic: String,
    pub(crate) private: bool,
}

/// Every project's topics; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hub {
    topics: Arc<Mutex<HashMap<TopicKey, Topic>>>,
    next: Arc<AtomicU64>,
}

/// `{key: {"metas": [...]}}` of `entries`, each meta with its `phx_ref`.
fn presence_map<'a>(entries: impl IntoIterator<Item = (&'a String, &'a [Meta])>) -> Value {
    let mut map = Map::new();
    for (key, metas) in entries {
        if metas.is_empty() {
            continue;
        }
        let list: Vec<Value> = metas
            .iter()
            .map(|m| {
                let mut entry = match &m.payload {
                    Value::Object(o) => o.clone(),
                    _ => Map::new(),
                };
                entry.insert("phx_ref".into(), Value::String(m.phx_ref.clone()));
                Value::Object(entry)
            })
            .collect();
        map.insert(key.clone(), json!({ "metas": list }));
    }
    Value::Object(map)
}

/// [`presence_map`] of owned entries.
fn presence_of(entries: &[(String, Vec<Meta>)]) -> Value {
    presence_map(entries.iter().map(|(k, metas)| (k, metas.as_slice())))
}

fn random_ref() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes)
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TopicKey, Topic>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new member id.
    pub(crate) fn member_id(&self) -> MemberId {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a member, sending it the topic's `presence_state` first when
    /// `presence` (under the lock, so no diff overtakes it: the clients
    /// replace their state with it); true if the topic is new here (other
    /// servers are then asked for theirs).
    pub(crate) fn join(
        &self,
        key: &TopicKey,
        id: MemberId,
        member: Member,
        presence: bool,
    ) -> bool {
        let mut topics = self.lock();
        let created = !topics.contains_key(key);
        let topic = topics.entry(key.clone()).or_default();
        if presence {
            let state = presence_map(
                topic
                    .presence
                    .iter()
                    .map(|(k, metas)| (k, metas.as_slice())),
            );
            let frame = Frame {
                join_ref: member.join_ref.clone(),
                reference: None,
                topic: key.topic.clone(),
                event: "presence_state".into(),
                payload: state,
            };
            if member.tx.try_send(frame).is_err() {
                tracing::debug!(topic = %key.topic, "a socket's queue is full: presence state dropped");
            }
        }
        topic.members.insert(id, member);
        created
    }

    /// Removes a member and what it tracked (the others get the leave);
    /// true if it tracked something.
    pub(crate) fn leave(&self, key: &TopicKey, id: MemberId) -> bool {
        let mut topics = self.lock();
        let Some(topic) = topics.get_mut(key) else {
            return false;
        };
        topic.members.remove(&id);
        let tracked = Self::untrack_in(key, topic, &Origin::Local(id));
        if topic.members.is_empty() {
            topics.remove(key);
        }
        tracked
    }

    /// Takes `origin`'s metas out of the topic's presence.
    fn drop_presence(topic: &mut Topic, origin: &Origin) -> Vec<(String, Vec<Meta>)> {
        let mut leaves = Vec::new();
        topic.presence.retain(|key, metas| {
            let (gone, kept): (Vec<Meta>, Vec<Meta>) =
                metas.drain(..).partition(|m| m.origin == *origin);
            if !gone.is_empty() {
                leaves.push((key.clone(), gone));
            }
            *metas = kept;
            !metas.is_empty()
        });
        leaves
    }

    /// Sends `event` with `payload` to every member but `except`.
    fn send_all(
        key: &TopicKey,
        topic: &Topic,
        except: Option<MemberId>,
        event: &str,
        payload: &Value,
    ) {
        for (id, member) in &topic.members {
            if Some(*id) == except {
                continue;
            }
            let frame = Frame {
                join_ref: member.join_ref.clone(),
                reference: None,
                topic: key.topic.clone(),
                event: event.to_owned(),
                payload: payload.clone(),
            };
            if member.tx.try_send(frame).is_err() {
                tracing::debug!(topic = %key.topic, "a socket's queue is full: message dropped");
            }
        }
    }

    /// A broadcast from `from` (none: the REST API or the database) to
    /// the topic's members; `from` gets it back only if it asked to.
    /// Gives how many members it reached.
    pub(crate) fn broadcast(
        &self,
        key: &TopicKey,
        from: Option<MemberId>,
        payload: &Value,
    ) -> usize {
        let topics = self.lock();
        let Some(topic) = topics.get(key) else {
            return 0;
        };
        let skip = from.filter(|id| topic.members.get(id).is_none_or(|m| !m.self_broadcast));
        Self::send_all(key, topic, skip, "broadcast", payload);
        topic.members.len() - usize::from(skip.is_some())
    }

    /// `id` tracks `payload` under `presence_key`, replacing what it
    /// tracked before; every member gets the diff. Gives the presence's
    /// `phx_ref`.
    pub(crate) fn track(
        &self,
        key: &TopicKey,
        id: MemberId,
        presence_key: &str,
        payload: Value,
    ) -> String {
        let phx_ref = random_ref();
        self.track_as(
            key,
            Origin::Local(id),
            presence_key,
            phx_ref.clone(),
            payload,
        );
        phx_ref
    }

    /// A presence tracked on another server.
    pub(crate) fn remote_track(&self, key: &TopicKey, node: &Arc<str>, tracked: Tracked) {
        self.track_as(
            key,
            Origin::Remote(node.clone(), tracked.member),
            &tracked.key,
            tracked.phx_ref,
            tracked.payload,
        );
    }

    fn track_as(
        &self,
        key: &TopicKey,
        origin: Origin,
        presence_key: &str,
        phx_ref: String,
        payload: Value,
    ) {
        let mut topics = self.lock();
        let Some(topic) = topics.get_mut(key) else {
            return;
        };
        let leaves = Self::drop_presence(topic, &origin);
        let meta = Meta {
            origin,
            phx_ref,
            payload,
        };
        let presence_key = presence_key.to_owned();
        let joins = presence_map([(&presence_key, std::slice::from_ref(&meta))]);
        topic.presence.entry(presence_key).or_default().push(meta);
        let diff = json!({
            "joins": joins,
            "leaves": presence_of(&leaves),
        });
        Self::send_all(key, topic, None, "presence_diff", &diff);
    }

    /// `id` stops tracking; every member gets the diff. True if it
    /// tracked something.
    pub(crate) fn untrack(&self, key: &TopicKey, id: MemberId) -> bool {
        self.untrack_as(key, &Origin::Local(id))
    }

    /// A member of another server stops tracking.
    pub(crate) fn remote_untrack(&self, key: &TopicKey, node: &Arc<str>, member: MemberId) {
        self.untrack_as(key, &Origin::Remote(node.clone(), member));
    }

    fn untrack_as(&self, key: &TopicKey, origin: &Origin) -> bool {
        let mut topics = self.lock();
        let Some(topic) = topics.get_mut(key) else {
            return false;
        };
        Self::untrack_in(key, topic, origin)
    }

    /// Drops what `origin` tracks in `topic`; the members get the leaves.
    fn untrack_in(key: &TopicKey, topic: &mut Topic, origin: &Origin) -> bool {
        let leaves = Self::drop_presence(topic, origin);
        if leaves.is_empty() {
            return false;
        }
        let diff = json!({ "joins": {}, "leaves": presence_of(&leaves) });
        Self::send_all(key, topic, None, "presence_diff", &diff);
        true
    }

    /// Everything a server that is gone tracked, in every topic.
    pub(crate) fn forget_node(&self, node: &str) {
        let mut topics = self.lock();
        for (key, topic) in topics.iter_mut() {
            let origins: Vec<Origin> = topic
                .presence
                .values()
                .flatten()
                .filter(|m| matches!(&m.origin, Origin::Remote(n, _) if &**n == node))
                .map(|m| m.origin.clone())
                .collect();
            for origin in origins {
                Self::untrack_in(key, topic, &origin);
            }
        }
    }

    /// What this server's members track in a topic, for another server
    /// that asks.
    pub(crate) fn local_presence(&self, key: &TopicKey) -> Vec<Tracked> {
        let topics = self.lock();
        let Some(topic) = topics.get(key) else {
            return Vec::new();
        };
        topic
            .presence
            .iter()
            .flat_map(|(k, metas)| metas.iter().map(move |m| (k, m)))
            .filter_map(|(k, m)| match m.origin {
                Origin::Local(member) => Some(Tracked {
                    member,
                    key: k.clone(),
                    phx_ref: m.phx_ref.clone(),
                    payload: m.payload.clone(),
                }),
                Origin::Remote(..) => None,
            })
            .collect()
    }

    /// Topics with members.
    #[cfg(test)]
    pub(crate) fn topics(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TopicKey {
        TopicKey {
            project: ProjectRef::parse("hubhubhubhubhubhubhu").unwrap(),
            topic: "realtime:room".into(),
            private: false,
        }
    }

    fn member(hub: &Hub, self_broadcast: bool) -> (MemberId, mpsc::Receiver<Frame>, Member) {
        let (tx, rx) = mpsc::channel(16);
        let m = Member {
            tx,
            join_ref: Some("1".into()),
            self_broadcast,
        };
        (hub.member_id(), rx, m)
    }

    #[test]
    fn broadcasts_skip_the_sender_unless_asked_and_presence_diffs_reach_all() {
        let hub = Hub::default();
        let k = key();
        let (a, mut ra, ma) = member(&hub, false);
        let (b, mut rb, mb) = member(&hub, true);
        assert!(hub.join(&k, a, ma, false), "a new topic");
        assert!(!hub.join(&k, b, mb, false));
        assert_eq!(hub.broadcast(&k, Some(a), &json!({"event": "x"})), 1);
        assert!(ra.try_recv().is_err());
        assert_eq!(rb.try_recv().unwrap().event, "broadcast");
        assert_eq!(hub.broadcast(&k, Some(b), &json!({"event": "y"})), 2);
        assert_eq!(rb.try_recv().unwrap().payload["event"], "y");

        ra.try_recv().unwrap();
        hub.track(&k, a, "ann", json!({"online": true}));
        let diff = rb.try_recv().unwrap();
        assert_eq!(diff.event, "presence_diff");
        assert_eq!(diff.payload["joins"]["ann"]["metas"][0]["online"], true);
        let (c, mut rc, mc) = member(&hub, false);
        hub.join(&k, c, mc, true);
        let state = rc.try_recv().unwrap();
        assert_eq!(state.event, "presence_state");
        assert_eq!(state.payload["ann"]["metas"].as_array().unwrap().len(), 1);

        assert!(hub.leave(&k, a));
        let diff = rb.try_recv().unwrap();
        assert_eq!(diff.payload["leaves"]["ann"]["metas"][0]["online"], true);
        assert_eq!(diff.payload["joins"], json!({}));
        hub.leave(&k, b);
        assert_eq!(hub.topics(), 1);
    }

    #[test]
    fn presences_of_other_servers_join_leave_and_go_with_their_server() {
        let hub = Hub::default();
        let k = key();
        let (a, mut ra, ma) = member(&hub, false);
        hub.join(&k, a, ma, false);
        let node: Arc<str> = "other".into();
        let tracked = |member, key: &str| Tracked {
            member,
            key: key.into(),
            phx_ref: format!("ref-{member}"),
            payload: json!({"m": member}),
        };
        hub.remote_track(&k, &node, tracked(1, "bob"));
        hub.remote_track(&k, &node, tracked(2, "cy"));
        let diff = ra.try_recv().unwrap();
        assert_eq!(diff.payload["joins"]["bob"]["metas"][0]["phx_ref"], "ref-1");
        ra.try_recv().unwrap();
        // What this server tells others holds only its own members.
        hub.track(&k, a, "ann", json!({}));
        ra.try_recv().unwrap();
        let local = hub.local_presence(&k);
        assert_eq!(local.len(), 1);
        assert_eq!((local[0].member, local[0].key.as_str()), (a, "ann"));
        hub.remote_untrack(&k, &node, 1);
        assert_eq!(
            ra.try_recv().unwrap().payload["leaves"]["bob"]["metas"][0]["m"],
            1
        );
        // The other server is gone: what it tracked leaves.
        hub.forget_node("other");
        assert_eq!(
            ra.try_recv().unwrap().payload["leaves"]["cy"]["metas"][0]["m"],
            2
        );
        assert!(ra.try_recv().is_err());
        // Nothing is kept for a topic with no members here.
        let elsewhere = TopicKey {
            topic: "realtime:none".into(),
            ..k
        };
        hub.remote_track(&elsewhere, &node, tracked(3, "dee"));
        assert_eq!(hub.topics(), 1);
    }
}
