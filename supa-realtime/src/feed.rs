//! Each project's feed from its database: the Postgres changes its
//! subscribers asked for and the broadcasts its SQL sent
//! (`realtime.send`), both read from the project's replication slot.
//!
//! A subscription is a row of `realtime.subscription` per binding, so the
//! database knows every subscriber and its claims. While a project has
//! channels joined here, one task polls its slot (wal2json, only the
//! publication's tables and `realtime.messages`), reads the subscriptions,
//! decides in one statement which subscribers may see which rows (their
//! role and claims under row level security, batched by claims, and the
//! filters that need the database's own comparisons), delivers in commit
//! order, and only then advances the slot: a server that dies mid-batch
//! leaves the batch to be delivered again, never lost. When the last
//! channel has been gone for a grace period, the slot is dropped, so an
//! idle project retains no WAL.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use supa_core::{ProjectDatabase, ProjectRef};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;

use crate::RealtimeProject;
use crate::changes::{self, Binding, Change, Filter, Kind, TableColumn};
use crate::hub::{Hub, TopicKey};
use crate::protocol::Frame;
use crate::relay::{Envelope, Relay, RemoteDelivery};

/// Connections a project's joins and checks share.
const POOL_SIZE: usize = 4;
/// Changes (whole transactions) read from the slot at a time.
const BATCH: i32 = 1000;
/// How often the reader removes subscriptions of servers gone.
const SWEEP: Duration = Duration::from_secs(30);
/// How often a server says it has channels of a project.
const INTEREST: Duration = Duration::from_secs(1);
/// A slot with changes this recently is polled every [`BUSY_POLL`].
const BUSY: Duration = Duration::from_secs(1);
const BUSY_POLL: Duration = Duration::from_millis(5);

/// How a feed polls and lets go.
#[derive(Debug, Clone, Copy)]
pub struct FeedTiming {
    /// Between two reads of an idle slot.
    pub poll: Duration,
    /// How long a project keeps its slot after its last channel leaves.
    pub grace: Duration,
}

impl Default for FeedTiming {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(20),
            grace: Duration::from_secs(10),
        }
    }
}

/// Where one binding's changes go: a channel of a socket.
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    pub(crate) tx: mpsc::Sender<Frame>,
    pub(crate) topic: String,
    pub(crate) join_ref: Option<String>,
}

#[derive(Debug)]
struct LocalSub {
    /// The join it belongs to (`realtime.subscription.subscription_id`).
    subscription: Arc<str>,
    binding: u32,
    sink: Sink,
}

#[derive(Debug)]
struct Feed {
    /// None for a project made before the realtime login: no changes nor
    /// broadcasts from SQL, only the relay.
    login: Option<ProjectDatabase>,
    /// Channels joined here.
    channels: usize,
    /// Since when it has had none.
    idle_since: Option<Instant>,
    /// Subscription rows held here, by id.
    subs: HashMap<i64, LocalSub>,
}

/// Every project's feed in this process; cheap to clone.
#[derive(Clone)]
pub(crate) struct Feeds {
    feeds: Arc<Mutex<HashMap<ProjectRef, Feed>>>,
    pools: supa_db::Pools,
    hub: Hub,
    /// The other servers, and this one's name among them (in
    /// `realtime.subscription.node`).
    relay: Relay,
    timing: FeedTiming,
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field("relay", &self.relay)
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

/// What a role may do in a private channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Permissions {
    pub(crate) read: bool,
    pub(crate) write_broadcast: bool,
    pub(crate) write_presence: bool,
}

/// The claims a subscriber's checks act with, and its role.
pub(crate) fn role_of(claims: &Value) -> &str {
    claims["role"].as_str().unwrap_or("anon")
}

impl Feeds {
    pub(crate) fn new(hub: Hub, relay: Relay, timing: FeedTiming) -> Self {
        Self {
            feeds: Arc::default(),
            pools: supa_db::Pools::new(10_000, Duration::from_secs(300)),
            hub,
            relay,
            timing,
        }
    }

    fn node(&self) -> &str {
        self.relay.node()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProjectRef, Feed>> {
        self.feeds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn client(
        &self,
        login: &ProjectDatabase,
        project: &ProjectRef,
    ) -> Result<supa_db::Object, String> {
        let pool = self.pools.get_or_open(project, || {
            supa_db::pool(supa_db::pg_config(login, "supa-realtime"), POOL_SIZE)
        })?;
        pool.get().await.map_err(|e| e.to_string())
    }

    /// A channel of `project` was joined here: its feed runs, and this
    /// server follows what the others say of the project.
    pub(crate) async fn enter(&self, project: &RealtimeProject) {
        let start = {
            let mut feeds = self.lock();
            let mut start = false;
            let feed = feeds.entry(project.project_ref).or_insert_with(|| {
                start = true;
                Feed {
                    login: None,
                    channels: 0,
                    idle_since: None,
                    subs: HashMap::new(),
                }
            });
            feed.login.clone_from(&project.database);
            feed.channels += 1;
            feed.idle_since = None;
            start
        };
        self.relay.watch(&project.project_ref).await;
        if start {
            let feeds = self.clone();
            let project = project.project_ref;
            tokio::spawn(async move { feeds.run(project).await });
        }
    }

    /// A channel of `project` was left here.
    pub(crate) fn exit(&self, project: &ProjectRef) {
        if let Some(feed) = self.lock().get_mut(project) {
            feed.channels = feed.channels.saturating_sub(1);
            if feed.channels == 0 {
                feed.idle_since = Some(Instant::now());
            }
        }
    }

    /// Subscribes a join's bindings: checks each against the catalog,
    /// records them as `realtime.subscription` rows with the subscriber's
    /// claims, and makes sure the slot exists, so every change committed
    /// after this returns is delivered. The error is Supabase's text.
    pub(crate) async fn subscribe(
        &self,
        project: &RealtimeProject,
        claims: &Value,
        bindings: &[Binding],
        sink: Sink,
    ) -> Result<Arc<str>, String> {
        let login = project
            .database
            .as_ref()
            .ok_or("Postgres changes are not available for this project")?;
        let mut client = self
            .client(login, &project.project_ref)
            .await
            .map_err(|e| format!("Unable to reach the database: {e}"))?;
        let subscription: Arc<str> = supa_core::random_uuid().into();
        let mut rows = Vec::new();
        for binding in bindings {
            for entity in entities(&client, binding).await? {
                rows.push((binding, entity));
            }
        }
        let claims_text = claims.to_string();
        let tx = client
            .transaction()
            .await
            .map_err(|e| format!("Unable to subscribe: {e}"))?;
        let mut ids = Vec::new();
        for (binding, entity) in &rows {
            // A binding has at most one filter; the column is an array.
            let (columns, ops, values): (Vec<&str>, Vec<&str>, Vec<String>) = match &binding.filter
            {
                Some(f) => (
                    vec![f.column.as_str()],
                    vec![f.op.as_str()],
                    vec![f.stored_value()],
                ),
                None => Default::default(),
            };
            let row = tx
                .query_one(
                    "INSERT INTO realtime.subscription (subscription_id, entity, filters, claims, action_filter, node)
                     VALUES ($1::text::uuid, $2::oid::regclass,
                             ARRAY(SELECT ROW(c, o::realtime.equality_op, v)::realtime.user_defined_filter
                                   FROM unnest($3::text[], $4::text[], $5::text[]) AS f(c, o, v)),
                             $6::text::jsonb, $7, $8)
                     RETURNING id",
                    &[
                        &&*subscription as &(dyn ToSql + Sync),
                        entity,
                        &columns,
                        &ops,
                        &values,
                        &claims_text,
                        &binding.event.as_str(),
                        &self.node(),
                    ],
                )
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(db) if db.code().code() == "22023" || db.code().code() == "42704" => {
                        format!("Unable to subscribe: the role {:?} does not exist", role_of(claims))
                    }
                    _ => changes::unable(&binding.echo),
                })?;
            ids.push((row.get::<_, i64>(0), binding.id));
        }
        tx.commit()
            .await
            .map_err(|e| format!("Unable to subscribe: {e}"))?;
        if let Some(feed) = self.lock().get_mut(&project.project_ref) {
            for (id, binding) in ids {
                feed.subs.insert(
                    id,
                    LocalSub {
                        subscription: subscription.clone(),
                        binding,
                        sink: sink.clone(),
                    },
                );
            }
        }
        // After the rows: a slot drop that raced them either ran first
        // (and this makes a new slot) or saw them and kept the slot.
        client
            .query_one("SELECT realtime.supa_slot_open()", &[])
            .await
            .map_err(|e| format!("Unable to open the replication slot: {e}"))?;
        Ok(subscription)
    }

    /// A channel's new token: its subscriptions act with `claims`.
    pub(crate) async fn reclaim(
        &self,
        project: &RealtimeProject,
        subscription: &str,
        claims: &Value,
    ) -> Result<(), String> {
        let login = project.database.as_ref().ok_or("no database login")?;
        self.client(login, &project.project_ref)
            .await?
            .execute(
                "UPDATE realtime.subscription SET claims = $1::text::jsonb
                 WHERE subscription_id = $2::text::uuid AND node = $3",
                &[
                    &claims.to_string() as &(dyn ToSql + Sync),
                    &subscription,
                    &self.node(),
                ],
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Forgets a join's subscriptions, here and in the database.
    pub(crate) fn unsubscribe(&self, project: &RealtimeProject, subscription: Arc<str>) {
        if let Some(feed) = self.lock().get_mut(&project.project_ref) {
            feed.subs.retain(|_, s| s.subscription != subscription);
        }
        let Some(login) = project.database.clone() else {
            return;
        };
        let (feeds, project_ref) = (self.clone(), project.project_ref);
        tokio::spawn(async move {
            let removed = match feeds.client(&login, &project_ref).await {
                Ok(client) => client
                    .execute(
                        "DELETE FROM realtime.subscription WHERE subscription_id = $1::text::uuid AND node = $2",
                        &[&&*subscription, &feeds.node()],
                    )
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            if let Err(e) = removed {
                // The next feed of the project removes rows of servers
                // that are gone.
                tracing::warn!(%project_ref, error = %e, "a subscription was left in the database");
            }
        });
    }

    /// What `claims` may do in the private channel `topic` (its name),
    /// as the project's policies on `realtime.messages` decide: a row of
    /// each extension is written (and rolled back) for the role to read,
    /// and the role itself tries to write one.
    pub(crate) async fn authorize(
        &self,
        project: &RealtimeProject,
        claims: &Value,
        topic: &str,
    ) -> Result<Permissions, String> {
        let login = project
            .database
            .as_ref()
            .ok_or("Private channels are not available for this project")?;
        let mut client = self.client(login, &project.project_ref).await?;
        let tx = client.transaction().await.map_err(|e| e.to_string())?;
        let db = |e: tokio_postgres::Error| e.to_string();
        tx.execute("SELECT set_config('realtime.topic', $1, true)", &[&topic])
            .await
            .map_err(db)?;
        let probes = tx
            .query(
                "INSERT INTO realtime.messages (topic, extension, private)
                 VALUES ($1, 'broadcast', true), ($1, 'presence', true) RETURNING id::text",
                &[&topic],
            )
            .await
            .map_err(db)?;
        let probes: Vec<String> = probes.iter().map(|r| r.get(0)).collect();
        let acting = tx
            .execute(
                "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true)",
                &[&role_of(claims) as &(dyn ToSql + Sync), &claims.to_string()],
            )
            .await;
        let mut permissions = Permissions::default();
        if acting.is_ok() {
            permissions.read = tx
                .query_one(
                    "SELECT count(*) > 0 FROM realtime.messages WHERE id = ANY ($1::text[]::uuid[]) AND extension = 'broadcast'",
                    &[&probes],
                )
                .await
                .map(|r| r.get(0))
                .unwrap_or(false);
            for (extension, allowed) in [
                ("broadcast", &mut permissions.write_broadcast),
                ("presence", &mut permissions.write_presence),
            ] {
                let savepoint = format!("SAVEPOINT write_{extension}");
                tx.batch_execute(&savepoint).await.map_err(db)?;
                *allowed = tx
                    .execute(
                        "INSERT INTO realtime.messages (topic, extension, private) VALUES ($1, $2, true)",
                        &[&topic, &extension],
                    )
                    .await
                    .is_ok();
                tx.batch_execute(&format!("ROLLBACK TO SAVEPOINT write_{extension}"))
                    .await
                    .map_err(db)?;
            }
        }
        tx.rollback().await.map_err(db)?;
        Ok(permissions)
    }

    /// Keeps a project's feed while it has channels here: says so to the
    /// other servers, and reads the slot while this server holds its
    /// lease.
    async fn run(self, project: ProjectRef) {
        let mut session: Option<Session> = None;
        let mut told: Option<Instant> = None;
        let mut swept = Instant::now();
        // Doubles while the database cannot be reached (a project being
        // deleted, a worker restarting), up to 30 s.
        let mut backoff = Duration::from_secs(1);
        loop {
            // (login, whether the feed is done)
            let (login, done) = {
                let feeds = self.lock();
                let Some(feed) = feeds.get(&project) else {
                    return;
                };
                let done = feed
                    .idle_since
                    .is_some_and(|t| t.elapsed() >= self.timing.grace)
                    && feed.subs.is_empty();
                (feed.login.clone(), done)
            };
            if done {
                let client = session.take().map(|s| s.client);
                if self.finish(&project, login.as_ref(), client).await {
                    return;
                }
                continue;
            }
            if told.is_none_or(|t| t.elapsed() >= INTEREST) {
                self.relay.interest(&project, true).await;
                told = Some(Instant::now());
            }
            let Some(login) = login else {
                tokio::time::sleep(self.timing.poll.max(Duration::from_millis(500))).await;
                continue;
            };
            if !self.relay.hold(&project).await {
                // Another server reads the slot; be ready to take over.
                session = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if session.is_none() {
                match self.connect(&login).await {
                    Ok(client) => {
                        session = Some(Session {
                            client,
                            advanced: None,
                            subs: None,
                            changed: None,
                        });
                        backoff = Duration::from_secs(1);
                        swept = Instant::now();
                    }
                    Err(e) => {
                        tracing::warn!(%project, error = %e, retry_in = ?backoff, "realtime cannot reach the project database");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        continue;
                    }
                }
            }
            let live = session.as_mut().expect("connected above");
            if swept.elapsed() >= SWEEP {
                swept = Instant::now();
                if let Err(e) = self.sweep(&live.client).await {
                    tracing::warn!(%project, error = %e, "cannot remove subscriptions of servers gone");
                }
            }
            match self.poll(&project, live).await {
                Ok(full) if full => {}
                Ok(_) => {
                    // A slot that just had changes is read again sooner.
                    let busy = live.changed.is_some_and(|t| t.elapsed() < BUSY);
                    let wait = if busy {
                        self.timing.poll.min(BUSY_POLL)
                    } else {
                        self.timing.poll
                    };
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    tracing::warn!(%project, error = %e, "realtime feed failed; reconnecting");
                    session = None;
                }
            }
        }
    }

    /// The project has had no channel here for the grace period: the slot
    /// goes if no server has channels of it, the lease goes back, and this
    /// server stops following it. False if a channel came back meanwhile.
    async fn finish(
        &self,
        project: &ProjectRef,
        login: Option<&ProjectDatabase>,
        session: Option<tokio_postgres::Client>,
    ) -> bool {
        self.relay.interest(project, false).await;
        if let Some(login) = login
            && self.relay.hold(project).await
        {
            if !self.relay.others_interested(project).await {
                self.close(project, login, session).await;
            }
            self.relay.release(project).await;
        }
        self.relay.unwatch(project).await;
        {
            let mut feeds = self.lock();
            let back = feeds
                .get(project)
                .is_some_and(|f| f.channels > 0 || !f.subs.is_empty());
            if !back {
                feeds.remove(project);
                return true;
            }
        }
        self.relay.watch(project).await;
        false
    }

    /// A session of the feed's own, with the slot existing.
    async fn connect(&self, login: &ProjectDatabase) -> Result<tokio_postgres::Client, String> {
        let (client, connection) = supa_db::pg_config(login, "supa-realtime feed")
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        self.sweep(&client).await?;
        client
            .query_one("SELECT realtime.supa_slot_open()", &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok(client)
    }

    /// Removes the subscriptions of servers gone.
    async fn sweep(&self, client: &tokio_postgres::Client) -> Result<(), String> {
        client
            .execute(
                "DELETE FROM realtime.subscription WHERE node <> ALL ($1)",
                &[&self.relay.live_nodes()],
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Drops the project's slot (unless a subscription appeared).
    async fn close(
        &self,
        project: &ProjectRef,
        login: &ProjectDatabase,
        session: Option<tokio_postgres::Client>,
    ) {
        let client = match session {
            Some(c) => Ok(c),
            None => self.connect(login).await,
        };
        let dropped = match client {
            Ok(c) => c
                .query_one("SELECT realtime.supa_slot_drop()", &[])
                .await
                .map(|r| r.get::<_, bool>(0))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match dropped {
            Ok(true) => tracing::debug!(%project, "dropped the project's replication slot"),
            Ok(false) => tracing::debug!(%project, "the project's slot is still subscribed"),
            Err(e) => {
                tracing::warn!(%project, error = %e, "cannot drop the project's replication slot")
            }
        }
    }

    /// Reads, delivers and consumes one batch; true if the batch was full
    /// (read again at once).
    async fn poll(&self, project: &ProjectRef, session: &mut Session) -> Result<bool, String> {
        let rows = session
            .client
            .query(
                "WITH u AS (SELECT pg_current_wal_flush_lsn() AS upto)
                 SELECT u.upto::text, c.lsn::text, c.data
                 FROM u LEFT JOIN LATERAL realtime.supa_slot_changes(u.upto, $1) c ON true",
                &[&BATCH],
            )
            .await
            .map_err(|e| e.to_string())?;
        let upto: String = rows.first().map(|r| r.get(0)).unwrap_or_default();
        let lines: Vec<(String, String)> = rows
            .iter()
            .filter_map(|r| {
                Some((
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .collect();
        let full = lines.len() >= BATCH as usize;
        let decoded = changes::decode(&lines);
        if !decoded.changes.is_empty() {
            session.changed = Some(Instant::now());
            self.deliver(project, session, &decoded.changes).await?;
        }
        // A short batch read everything before `upto`; a full one stops
        // at its last whole transaction.
        let target = if full { decoded.committed } else { Some(upto) };
        if let Some(target) =
            target.filter(|t| Some(t) != session.advanced.as_ref() && !t.is_empty())
        {
            session
                .client
                .execute(
                    "SELECT realtime.supa_slot_advance($1::text::pg_lsn)",
                    &[&target],
                )
                .await
                .map_err(|e| e.to_string())?;
            session.advanced = Some(target);
        }
        Ok(full)
    }

    /// Sends each change to the subscribers that may see it, in order.
    async fn deliver(
        &self,
        project: &ProjectRef,
        session: &mut Session,
        batch: &[Change],
    ) -> Result<(), String> {
        let mut table_changes = Vec::new();
        // What the other servers are told, in order; the slot advances
        // only once Redis has taken it.
        let mut told = Vec::new();
        for change in batch {
            if change.schema == "realtime" && change.table == "messages" {
                if change.kind == Kind::Insert {
                    told.extend(self.broadcast_message(project, change));
                }
            } else {
                table_changes.push(change);
            }
        }
        if table_changes.is_empty() {
            return self.tell(project, told).await;
        }
        let subs = session.subscriptions().await?;
        let client = &session.client;
        let mut plan = Plan::build(&table_changes, &subs);
        let passed: HashSet<i32> = if plan.checks.is_empty() {
            HashSet::new()
        } else {
            let a = plan.arrays();
            let check = async |careful: bool| {
                client
                    .query(
                        "SELECT realtime.supa_check($1, $2, $3, $4::text[]::jsonb[], $5)",
                        &[
                            &a.roles as &(dyn ToSql + Sync),
                            &a.claims,
                            &a.sql,
                            &a.args,
                            &careful,
                        ],
                    )
                    .await
            };
            // Checks rarely fail; when one does, each is run on its own.
            let rows = match check(false).await {
                Ok(rows) => rows,
                Err(_) => check(true).await.map_err(|e| e.to_string())?,
            };
            rows.iter().map(|r| r.get::<_, i32>(0)).collect()
        };
        let mut remote: Vec<RemoteDelivery> = Vec::new();
        {
            let feeds = self.lock();
            let local = feeds.get(project).map(|f| &f.subs);
            for (ci, change) in table_changes.iter().enumerate() {
                // One message per channel here, with the ids of its
                // bindings; one delivery per role and error elsewhere.
                let mut channels: BTreeMap<&str, Delivery<'_>> = BTreeMap::new();
                let mut elsewhere: BTreeMap<(&str, Option<&str>), Elsewhere<'_>> = BTreeMap::new();
                for (si, error) in plan.outcomes(ci, &passed) {
                    let sub = &subs[si];
                    if sub.node != self.node() {
                        elsewhere
                            .entry((&sub.role, error))
                            .or_insert_with(|| Elsewhere {
                                rows: Vec::new(),
                                sub,
                            })
                            .rows
                            .push(sub.id);
                        continue;
                    }
                    let Some(held) = local.and_then(|l| l.get(&sub.id)) else {
                        continue;
                    };
                    let delivery = channels.entry(&held.subscription).or_insert(Delivery {
                        ids: Vec::new(),
                        sink: &held.sink,
                        sub,
                        error,
                    });
                    if !delivery.ids.contains(&held.binding) {
                        delivery.ids.push(held.binding);
                    }
                }
                for d in channels.into_values() {
                    let data =
                        changes::payload_data(change, &d.sub.view.columns, d.sub.view.rls, d.error);
                    send_change(project, d.sink, d.ids, data);
                }
                for ((_, error), e) in elsewhere {
                    remote.push(RemoteDelivery {
                        rows: e.rows,
                        data: changes::payload_data(
                            change,
                            &e.sub.view.columns,
                            e.sub.view.rls,
                            error,
                        ),
                    });
                }
            }
        }
        if !remote.is_empty() {
            told.push(Envelope::Changes { deliveries: remote });
        }
        self.tell(project, told).await
    }

    /// Publishes `envelopes` in order and waits for Redis to take the last
    /// (the relay's one queue sends them in order).
    async fn tell(&self, project: &ProjectRef, mut envelopes: Vec<Envelope>) -> Result<(), String> {
        let Some(last) = envelopes.pop() else {
            return Ok(());
        };
        for envelope in envelopes {
            self.relay.publish(project, envelope);
        }
        self.relay.publish_confirmed(project, last).await
    }

    /// Changes another server read for subscriptions held here.
    pub(crate) fn deliver_remote(&self, project: &ProjectRef, deliveries: Vec<RemoteDelivery>) {
        let feeds = self.lock();
        let Some(feed) = feeds.get(project) else {
            return;
        };
        for delivery in deliveries {
            let mut channels: BTreeMap<&str, (Vec<u32>, &Sink)> = BTreeMap::new();
            for row in &delivery.rows {
                let Some(held) = feed.subs.get(row) else {
                    continue;
                };
                let entry = channels
                    .entry(&held.subscription)
                    .or_insert_with(|| (Vec::new(), &held.sink));
                if !entry.0.contains(&held.binding) {
                    entry.0.push(held.binding);
                }
            }
            for (ids, sink) in channels.into_values() {
                send_change(project, sink, ids, delivery.data.clone());
            }
        }
    }

    /// A row of `realtime.messages` (`realtime.send`): a broadcast to its
    /// channel here, and what to tell the other servers.
    fn broadcast_message(&self, project: &ProjectRef, change: &Change) -> Option<Envelope> {
        let value = |name: &str| change.value_of(name).cloned().unwrap_or(Value::Null);
        if value("extension") != "broadcast" {
            return None;
        }
        let (Value::String(topic), event) = (value("topic"), value("event")) else {
            return None;
        };
        let payload = match value("payload") {
            Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
            other => other,
        };
        let key = TopicKey {
            project: *project,
            topic: format!("realtime:{topic}"),
            private: value("private") == Value::Bool(true),
        };
        let payload = json!({"type": "broadcast", "event": event, "payload": payload});
        self.hub.broadcast(&key, None, &payload);
        Some(Envelope::Broadcast {
            topic: key.topic,
            private: key.private,
            payload,
        })
    }
}

/// A `postgres_changes` message to one channel.
fn send_change(project: &ProjectRef, sink: &Sink, ids: Vec<u32>, data: Value) {
    let frame = Frame {
        join_ref: sink.join_ref.clone(),
        reference: None,
        topic: sink.topic.clone(),
        event: "postgres_changes".into(),
        payload: json!({"ids": ids, "data": data}),
    };
    if sink.tx.try_send(frame).is_err() {
        tracing::debug!(%project, "a socket's queue is full: change dropped");
    }
}

/// The tables a binding names, as `oid`s: its table, or every table of its
/// schema in the publication; its filter is checked against the table.
async fn entities(client: &tokio_postgres::Client, binding: &Binding) -> Result<Vec<u32>, String> {
    let refuse = |_| changes::unable(&binding.echo);
    let oids: Vec<u32> = match &binding.table {
        Some(table) => client
            .query(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                &[&binding.schema, table],
            )
            .await
            .map_err(refuse)?,
        None => client
            .query(
                "SELECT (quote_ident(schemaname) || '.' || quote_ident(tablename))::regclass::oid
                 FROM pg_publication_tables WHERE pubname = 'supabase_realtime' AND schemaname = $1",
                &[&binding.schema],
            )
            .await
            .map_err(refuse)?,
    }
    .iter()
    .map(|r| r.get(0))
    .collect();
    if binding.table.is_some() && oids.is_empty() {
        return Err(changes::unable(&binding.echo));
    }
    if let Some(filter) = &binding.filter {
        for oid in &oids {
            check_filter(client, *oid, filter)
                .await
                .map_err(|()| changes::unable(&binding.echo))?;
        }
    }
    Ok(oids)
}

/// A filter's column exists in the table and its values read as the
/// column's type.
async fn check_filter(
    client: &tokio_postgres::Client,
    oid: u32,
    filter: &Filter,
) -> Result<(), ()> {
    let row = client
        .query_opt(
            "SELECT atttypid::regtype::text FROM pg_attribute
             WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            &[&oid as &(dyn ToSql + Sync), &filter.column],
        )
        .await
        .map_err(|_| ())?
        .ok_or(())?;
    let cast: String = row.get(0);
    // The type's name comes from the catalog, quoted by it.
    let statement = format!("SELECT $1::text::{cast}");
    for value in &filter.values {
        client
            .query_one(&statement, &[value])
            .await
            .map_err(|_| ())?;
    }
    Ok(())
}

/// One change for one channel: the ids of its bindings that match.
struct Delivery<'a> {
    ids: Vec<u32>,
    sink: &'a Sink,
    /// One of the channel's subscriptions (they share role and claims).
    sub: &'a SubRow,
    error: Option<&'static str>,
}

/// One change for subscriptions held by other servers, who see it as the
/// same role.
struct Elsewhere<'a> {
    rows: Vec<i64>,
    sub: &'a SubRow,
}

/// A table as a role sees it.
#[derive(Debug)]
struct TableView {
    schema: String,
    table: String,
    qualified: String,
    /// Row level security is on.
    rls: bool,
    /// The role bypasses it.
    bypass: bool,
    can_select: bool,
    columns: Vec<TableColumn>,
}

/// A subscription as the feed reads it.
#[derive(Debug)]
struct SubRow {
    id: i64,
    /// The server holding the subscriber.
    node: String,
    action: String,
    claims: String,
    role: String,
    filters: Vec<Filter>,
    view: Arc<TableView>,
}

/// The feed's own connection, and what it remembers between batches.
struct Session {
    client: tokio_postgres::Client,
    /// Where the slot was last advanced to.
    advanced: Option<String>,
    /// The subscriptions last read: when, and the fingerprint they had.
    subs: Option<(String, Instant, Arc<Vec<SubRow>>)>,
    /// When the slot last had changes.
    changed: Option<Instant>,
}

/// How long read subscriptions are trusted while their fingerprint holds
/// (what it cannot see, such as a role's `BYPASSRLS`, is read again by
/// then).
const SUBS_TTL: Duration = Duration::from_secs(10);

impl Session {
    /// The subscriptions, read again only when they or their tables'
    /// catalog rows changed: the fingerprint is the rows' count, newest id
    /// and newest row version (`xmin`: a token's new claims update a
    /// row), and the row versions of the tables and columns they name,
    /// which ALTER TABLE, GRANT and REVOKE replace.
    async fn subscriptions(&mut self) -> Result<Arc<Vec<SubRow>>, String> {
        let fingerprint: String = self
            .client
            .query_one(
                "SELECT count(*) || ':' || coalesce(max(s.id), 0) || ':' ||
                        coalesce(max(s.xmin::text::bigint), 0) || ':' || coalesce((
                   SELECT string_agg(c.oid || '@' || c.xmin || '/' ||
                            (SELECT max(a.xmin::text::bigint) FROM pg_attribute a WHERE a.attrelid = c.oid),
                          ',' ORDER BY c.oid)
                   FROM pg_class c WHERE c.oid IN (SELECT entity FROM realtime.subscription)), '')
                 FROM realtime.subscription s",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        if let Some((known, at, subs)) = &self.subs
            && *known == fingerprint
            && at.elapsed() < SUBS_TTL
        {
            return Ok(subs.clone());
        }
        let subs = Arc::new(load_subscriptions(&self.client).await?);
        self.subs = Some((fingerprint, Instant::now(), subs.clone()));
        Ok(subs)
    }
}

/// Every subscription with what its role may see of its table. What
/// depends on the table and role (privileges, columns, row security) is
/// computed once per pair, not per subscription, in the same snapshot.
async fn load_subscriptions(client: &tokio_postgres::Client) -> Result<Vec<SubRow>, String> {
    let rows = client
        .query(
            "WITH s AS (SELECT * FROM realtime.subscription),
             m AS MATERIALIZED (
               SELECT p.entity, p.claims_role, n.nspname::text AS schema, c.relname::text AS tbl,
                      c.oid::regclass::text AS qualified, c.relrowsecurity AS rls,
                      r.rolsuper OR r.rolbypassrls AS bypass,
                      has_table_privilege(p.claims_role, p.entity, 'SELECT') AS can_select,
                      (SELECT jsonb_agg(jsonb_build_object(
                                'name', a.attname, 'type', t.typname, 'cast', a.atttypid::regtype::text,
                                'pk', coalesce(a.attnum = ANY (i.indkey), false),
                                'selectable', has_column_privilege(p.claims_role, p.entity, a.attnum, 'SELECT'))
                              ORDER BY a.attnum)
                       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                       LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
                       WHERE a.attrelid = p.entity AND a.attnum > 0 AND NOT a.attisdropped)::text AS columns
               FROM (SELECT DISTINCT entity, claims_role FROM s) p
               JOIN pg_class c ON c.oid = p.entity
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_roles r ON r.oid = p.claims_role)
             SELECT s.id, s.node, coalesce(s.action_filter, '*'), s.claims::text, s.claims_role::text,
                    to_jsonb(s.filters)::text, s.entity::oid, s.claims_role::oid,
                    m.schema, m.tbl, m.qualified, m.rls, m.bypass, m.can_select, m.columns
             FROM s JOIN m ON m.entity = s.entity AND m.claims_role = s.claims_role",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut tables: HashMap<(u32, u32), Arc<TableView>> = HashMap::new();
    Ok(rows
        .iter()
        .map(|r| {
            let filters: Vec<Value> = serde_json::from_str(r.get::<_, &str>(5)).unwrap_or_default();
            let view = tables
                .entry((r.get(6), r.get(7)))
                .or_insert_with(|| {
                    Arc::new(TableView {
                        schema: r.get(8),
                        table: r.get(9),
                        qualified: r.get(10),
                        rls: r.get(11),
                        bypass: r.get(12),
                        can_select: r.get(13),
                        columns: r
                            .get::<_, Option<&str>>(14)
                            .and_then(|c| serde_json::from_str(c).ok())
                            .unwrap_or_default(),
                    })
                })
                .clone();
            SubRow {
                id: r.get(0),
                node: r.get(1),
                action: r.get(2),
                claims: r.get(3),
                role: r.get(4),
                filters: filters
                    .iter()
                    .filter_map(|f| {
                        Filter::from_stored(
                            f["column_name"].as_str()?,
                            f["op"].as_str()?,
                            f["value"].as_str()?,
                        )
                    })
                    .collect(),
                view,
            }
        })
        .collect())
}

/// Whether a subscriber gets a change, as far as the feed can tell alone.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Delivered once every check listed holds.
    Checks(Vec<usize>),
    /// Delivered with records replaced by this error.
    Error(&'static str),
}

/// A query of one boolean the database answers for a batch.
#[derive(Debug, Clone)]
struct Check {
    /// The role (and claims) it runs as; none: as the feed.
    role: Option<String>,
    claims: Option<String>,
    sql: String,
    arg: Value,
}

/// [`Check`]s as `realtime.supa_check`'s arrays.
struct CheckArrays {
    roles: Vec<Option<String>>,
    claims: Vec<Option<String>>,
    sql: Vec<String>,
    args: Vec<String>,
}

/// The checks one batch needs from the database, and what each
/// (change, subscriber) pair waits for.
#[derive(Debug, Default)]
struct Plan {
    checks: Vec<Check>,
    /// (change, subscriber) -> outcome.
    pairs: Vec<(usize, usize, Outcome)>,
}

impl Plan {
    fn build(batch: &[&Change], subs: &[SubRow]) -> Self {
        let mut plan = Self::default();
        // Row checks shared by subscribers with the same claims.
        let mut shared: HashMap<(usize, &str, &str), usize> = HashMap::new();
        for (ci, change) in batch.iter().enumerate() {
            for (si, sub) in subs.iter().enumerate() {
                let view = &sub.view;
                if view.schema != change.schema
                    || view.table != change.table
                    || !change.kind.taken_by(&sub.action)
                {
                    continue;
                }
                if !view.can_select {
                    plan.pairs
                        .push((ci, si, Outcome::Error("Error 401: Unauthorized")));
                    continue;
                }
                let mut needs = Vec::new();
                let mut holds = true;
                for filter in &sub.filters {
                    let Some(column) = view.columns.iter().find(|c| c.name == filter.column) else {
                        holds = false;
                        break;
                    };
                    let Some(value) = change.value_of(&filter.column) else {
                        // Not in the old record of a DELETE: not matched.
                        holds = false;
                        break;
                    };
                    match changes::filter_holds(filter, &column.type_name, value) {
                        Some(true) => {}
                        Some(false) => {
                            holds = false;
                            break;
                        }
                        None => {
                            let (sql, arg) = changes::filter_check(filter, &column.cast, value);
                            plan.checks.push(Check {
                                role: None,
                                claims: None,
                                sql,
                                arg,
                            });
                            needs.push(plan.checks.len() - 1);
                        }
                    }
                }
                if !holds {
                    continue;
                }
                // Row level security applies to what a row is now visible
                // as; a deleted row cannot be checked (nor is on Supabase).
                if change.kind != Kind::Delete && view.rls && !view.bypass {
                    let key = (ci, sub.role.as_str(), sub.claims.as_str());
                    if let Some(&i) = shared.get(&key) {
                        needs.push(i);
                    } else {
                        match changes::visibility_check(&view.qualified, &view.columns, change) {
                            Some((sql, arg)) => {
                                plan.checks.push(Check {
                                    role: Some(sub.role.clone()),
                                    claims: Some(sub.claims.clone()),
                                    sql,
                                    arg,
                                });
                                let i = plan.checks.len() - 1;
                                shared.insert(key, i);
                                needs.push(i);
                            }
                            None => {
                                plan.pairs.push((
                                    ci,
                                    si,
                                    Outcome::Error("Error 400: Bad Request, no primary key"),
                                ));
                                continue;
                            }
                        }
                    }
                }
                plan.pairs.push((ci, si, Outcome::Checks(needs)));
            }
        }
        plan
    }

    /// The checks as `realtime.supa_check`'s arrays: the feed's own first,
    /// then grouped by role and claims so each is set once.
    fn arrays(&mut self) -> CheckArrays {
        let mut order: Vec<usize> = (0..self.checks.len()).collect();
        order.sort_by(|&a, &b| {
            let key = |i: usize| (&self.checks[i].role, &self.checks[i].claims);
            key(a).cmp(&key(b))
        });
        // Positions move: pairs refer to checks by their new place.
        let mut moved = vec![0; order.len()];
        for (new, &old) in order.iter().enumerate() {
            moved[old] = new;
        }
        for (_, _, outcome) in &mut self.pairs {
            if let Outcome::Checks(needs) = outcome {
                for n in needs.iter_mut() {
                    *n = moved[*n];
                }
            }
        }
        self.checks = order.iter().map(|&i| self.checks[i].clone()).collect();
        CheckArrays {
            roles: self.checks.iter().map(|c| c.role.clone()).collect(),
            claims: self.checks.iter().map(|c| c.claims.clone()).collect(),
            sql: self.checks.iter().map(|c| c.sql.clone()).collect(),
            args: self.checks.iter().map(|c| c.arg.to_string()).collect(),
        }
    }

    /// The subscribers that get change `ci`, with the error they get
    /// instead of records, if any. `passed` holds the 1-based positions of
    /// the checks that held.
    fn outcomes<'a>(
        &'a self,
        ci: usize,
        passed: &'a HashSet<i32>,
    ) -> impl Iterator<Item = (usize, Option<&'static str>)> + 'a {
        self.pairs
            .iter()
            .filter(move |p| p.0 == ci)
            .filter_map(move |(_, si, outcome)| match outcome {
                Outcome::Error(e) => Some((*si, Some(*e))),
                Outcome::Checks(needs) => needs
                    .iter()
                    .all(|n| passed.contains(&(*n as i32 + 1)))
                    .then_some((*si, None)),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::Column;

    fn sub(id: i64, role: &str, sub: &str, filters: &[&str]) -> SubRow {
        SubRow {
            id,
            node: "here".into(),
            action: "*".into(),
            claims: format!(r#"{{"role":"{role}","sub":"{sub}"}}"#),
            role: role.into(),
            filters: filters.iter().map(|f| Filter::parse(f).unwrap()).collect(),
            view: Arc::new(TableView {
                schema: "public".into(),
                table: "t".into(),
                qualified: "t".into(),
                rls: true,
                bypass: role == "service_role",
                can_select: true,
                columns: vec![
                    TableColumn {
                        name: "id".into(),
                        type_name: "int4".into(),
                        cast: "integer".into(),
                        pk: true,
                        selectable: true,
                    },
                    TableColumn {
                        name: "at".into(),
                        type_name: "timestamptz".into(),
                        cast: "timestamp with time zone".into(),
                        pk: false,
                        selectable: true,
                    },
                ],
            }),
        }
    }

    fn change(kind: Kind, id: i64) -> Change {
        let row = vec![
            Column {
                name: "id".into(),
                value: json!(id),
            },
            Column {
                name: "at".into(),
                value: json!("2026-01-01 00:00:00+00"),
            },
        ];
        Change {
            kind,
            schema: "public".into(),
            table: "t".into(),
            commit_timestamp: String::new(),
            columns: row.clone(),
            identity: row,
        }
    }

    #[test]
    fn subscribers_sharing_claims_share_one_row_check() {
        let subs = [
            sub(1, "authenticated", "a", &[]),
            sub(2, "authenticated", "a", &["id=eq.1"]),
            sub(3, "authenticated", "b", &[]),
            sub(4, "service_role", "", &[]),
            sub(5, "anon", "", &["id=eq.2"]),
            sub(6, "anon", "", &["at=gt.2025-01-01"]),
        ];
        let insert = change(Kind::Insert, 1);
        let delete = change(Kind::Delete, 1);
        let mut plan = Plan::build(&[&insert, &delete], &subs);
        // Sub 6's timestamp filter is the database's to compare, for both
        // changes; row checks for the insert only: a's (shared by subs 1
        // and 2), b's and anon's. Deletes are not checked; service_role
        // bypasses row security.
        let a = plan.arrays();
        assert_eq!(a.sql.len(), 5, "{:?}", a.sql);
        assert_eq!(
            a.roles[..2],
            [None, None],
            "the feed's own checks come first"
        );
        assert!(a.sql[0].contains(" > "), "{}", a.sql[0]);
        assert_eq!(
            a.roles
                .iter()
                .flatten()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["anon", "authenticated", "authenticated"]
        );
        // Everything but b's row check holds (positions are 1-based).
        let b = a
            .claims
            .iter()
            .position(|c| c.as_deref().is_some_and(|c| c.contains("\"b\"")))
            .unwrap();
        let passed: HashSet<i32> = (1..=5).filter(|&i| i as usize != b + 1).collect();
        let got: Vec<usize> = plan
            .outcomes(0, &passed)
            .map(|(si, _)| subs[si].id as usize)
            .collect();
        assert_eq!(got, [1, 2, 4, 6]);
        let got: Vec<usize> = plan
            .outcomes(1, &passed)
            .map(|(si, _)| subs[si].id as usize)
            .collect();
        assert_eq!(
            got,
            [1, 2, 3, 4, 6],
            "a delete reaches every matching subscriber"
        );
    }
}
