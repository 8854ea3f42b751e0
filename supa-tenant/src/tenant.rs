use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use supa_core::ProjectRef;

use crate::Error;
use crate::crypto::MasterKey;
use crate::error::has_sqlstate;
use crate::projects::Placement;

/// Name of the management database.
pub const ADMIN_DATABASE: &str = "supa_admin";

/// The Redis pub/sub channel carrying invalidations: each message is a
/// project ref or the hex SHA-256 of a key.
pub const INVALIDATE_CHANNEL: &str = "supa:invalidate";

/// Invalidations kept while Redis cannot be reached.
const MAX_UNPUBLISHED: usize = 10_000;

/// Something gateways must forget, announced on revocation and deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Every cached entry of a project (deleted, paused, secret rotated).
    Project(ProjectRef),
    /// One key, by the hex SHA-256 of the whole key.
    Key(String),
}

impl Invalidation {
    /// The message published on `supa:invalidate`: a ref or a key hash.
    pub fn message(&self) -> String {
        match self {
            Invalidation::Project(r) => r.to_string(),
            Invalidation::Key(hash) => hash.clone(),
        }
    }
}

type Hook = Arc<dyn Fn(&Invalidation) + Send + Sync>;

/// The control plane: the management database, the master key, a pool per
/// worker, and the invalidation hooks gateways in this process registered.
#[derive(Clone)]
pub struct Tenant {
    pub(crate) db: PgPool,
    pub(crate) key: MasterKey,
    pub(crate) worker_pools: Arc<Mutex<HashMap<String, PgPool>>>,
    pub(crate) placement: Placement,
    pub(crate) round_robin: Arc<AtomicUsize>,
    hooks: Arc<Mutex<Vec<Hook>>>,
    /// Where projects' object bytes live, so deleting a project removes
    /// them.
    pub(crate) objects: Option<supa_storage::Backend>,
    /// Where backups are kept; without it backups are refused.
    pub(crate) backups: Option<supa_storage::Backend>,
    /// Bundles deployed functions; without it deploys are refused.
    pub(crate) builder: Option<supa_functions::Builder>,
    /// Log batches stored, to prune old events now and then.
    pub(crate) log_batches: Arc<std::sync::atomic::AtomicU64>,
    /// Where per-project request series come from, if anywhere.
    pub(crate) usage: Arc<Mutex<Option<crate::usage::UsageSource>>>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant").finish_non_exhaustive()
    }
}

impl Tenant {
    /// Connects to the management database at `url` (creating the database
    /// through the same server when it does not exist yet) and migrates it.
    pub async fn connect(url: &str, key: MasterKey) -> Result<Self, Error> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| Error::Config(format!("bad management database URL: {e}")))?;
        let database = options.get_database().unwrap_or(ADMIN_DATABASE).to_owned();
        create_database_if_missing(&options, &database).await?;
        let db = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.database(&database))
            .await?;
        sqlx::migrate!("./migrations")
            .run(&db)
            .await
            .map_err(|e| Error::Config(format!("cannot migrate the management database: {e}")))?;
        Ok(Self {
            db,
            key,
            worker_pools: Arc::default(),
            placement: Placement::default(),
            round_robin: Arc::default(),
            hooks: Arc::default(),
            objects: None,
            backups: None,
            builder: None,
            log_batches: Arc::default(),
            usage: Arc::default(),
        })
    }

    /// Closes the management pool and every worker pool.
    pub async fn close(&self) {
        let pools: Vec<PgPool> = self
            .worker_pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, pool)| pool)
            .collect();
        for pool in pools {
            pool.close().await;
        }
        self.db.close().await;
    }

    /// Where projects' object bytes live: deleting a project removes its
    /// bytes there.
    pub fn with_object_store(mut self, backend: supa_storage::Backend) -> Self {
        self.objects = Some(backend);
        self
    }

    /// Keeps backups in `backend` (a directory or an S3 bucket of their
    /// own); without one, backups are refused.
    pub fn with_backup_store(mut self, backend: supa_storage::Backend) -> Self {
        self.backups = Some(backend);
        self
    }

    /// Bundles deployed functions with `builder` (Deno); without one,
    /// deploys are refused.
    pub fn with_function_builder(mut self, builder: supa_functions::Builder) -> Self {
        self.builder = Some(builder);
        self
    }

    /// Chooses how new projects are spread over workers.
    pub fn with_placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// The management database pool.
    pub fn pool(&self) -> &PgPool {
        &self.db
    }

    /// Registers an in-process callback run on every revocation and deletion
    /// (the embedded gateway evicts its caches through it).
    pub fn on_invalidate(&self, hook: impl Fn(&Invalidation) + Send + Sync + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(hook));
    }

    /// Publishes every invalidation from now on to Redis channel
    /// [`INVALIDATE_CHANNEL`], where gateways in other processes listen.
    ///
    /// Publishing never blocks the caller: messages go through a queue to a
    /// task that connects (and reconnects) on demand. While Redis is down
    /// or restarting, messages wait (up to 10,000, oldest
    /// dropped first) and are published, in order, once it answers again:
    /// a revocation made just after a Redis restart still reaches the
    /// gateways, instead of waiting out their cache.
    pub fn publish_to_redis(&self, url: &str) -> Result<(), Error> {
        supa_core::http::install_tls_provider();
        let client =
            redis::Client::open(url).map_err(|e| Error::Config(format!("bad Redis URL: {e}")))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(1)))
                .set_number_of_retries(1);
            let mut connection: Option<redis::aio::ConnectionManager> = None;
            let mut pending = std::collections::VecDeque::<String>::new();
            loop {
                // The next message; with some waiting, a retry each second.
                let next = if pending.is_empty() {
                    rx.recv().await
                } else {
                    tokio::select! {
                        next = rx.recv() => next,
                        () = tokio::time::sleep(Duration::from_secs(1)) => Some(String::new()),
                    }
                };
                match next {
                    None => return,
                    Some(m) if m.is_empty() => {}
                    Some(m) => pending.push_back(m),
                }
                while let Ok(m) = rx.try_recv() {
                    pending.push_back(m);
                }
                if pending.len() > MAX_UNPUBLISHED {
                    let dropped = pending.len() - MAX_UNPUBLISHED;
                    pending.drain(..dropped);
                    tracing::warn!(dropped, "Redis down too long; oldest invalidations dropped");
                }
                if connection.is_none() {
                    match redis::aio::ConnectionManager::new_with_config(
                        client.clone(),
                        config.clone(),
                    )
                    .await
                    {
                        Ok(c) => connection = Some(c),
                        Err(e) => {
                            tracing::warn!(error = %e, waiting = pending.len(), "Redis unreachable; invalidations wait");
                            continue;
                        }
                    }
                }
                let Some(c) = connection.as_mut() else {
                    continue;
                };
                while let Some(message) = pending.front() {
                    let publish = redis::cmd("PUBLISH")
                        .arg(INVALIDATE_CHANNEL)
                        .arg(message)
                        .clone();
                    // The first command after a Redis restart fails on the
                    // dead connection and has the manager reconnect: once
                    // more at once.
                    let mut published: redis::RedisResult<i64> = publish.query_async(c).await;
                    if published.is_err() {
                        published = publish.query_async(c).await;
                    }
                    match published {
                        Ok(_) => {
                            pending.pop_front();
                        }
                        Err(e) => {
                            // The manager reconnects; the next round retries.
                            tracing::warn!(error = %e, waiting = pending.len(), "invalidation not published to Redis yet");
                            break;
                        }
                    }
                }
            }
        });
        self.on_invalidate(move |what| {
            // The receiver lives as long as the runtime; a send after
            // shutdown has nobody left to tell.
            let _ = tx.send(what.message());
        });
        Ok(())
    }

    pub(crate) fn invalidate(&self, what: Invalidation) {
        let hooks = self
            .hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for hook in hooks {
            hook(&what);
        }
    }
}

async fn create_database_if_missing(options: &PgConnectOptions, name: &str) -> Result<(), Error> {
    let mut conn = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let statement: String = sqlx::query_scalar("SELECT format('CREATE DATABASE %I', $1::text)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
        match conn.execute(AssertSqlSafe(statement)).await {
            Ok(_) => {}
            // Another process created it between the check and now.
            Err(e) if has_sqlstate(&e, "42P04") => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// The control plane as the gateway's directory, in process.
impl supa_core::ProjectDirectory for Tenant {
    fn project_config<'a>(
        &'a self,
        project_ref: &'a ProjectRef,
    ) -> supa_core::BoxFuture<'a, Result<Option<supa_core::ProjectConfig>, supa_core::DirectoryError>>
    {
        Box::pin(async move {
            match Tenant::project_config(self, project_ref).await {
                Ok(c) => Ok(Some(c)),
                Err(Error::NotFound(_)) => Ok(None),
                Err(e) => Err(supa_core::DirectoryError(e.to_string())),
            }
        })
    }

    fn lookup_key<'a>(
        &'a self,
        hash: &'a [u8; 32],
    ) -> supa_core::BoxFuture<'a, Result<Option<supa_core::KeyRecord>, supa_core::DirectoryError>>
    {
        Box::pin(async move {
            Tenant::lookup_key(self, hash)
                .await
                .map_err(|e| supa_core::DirectoryError(e.to_string()))
        })
    }
}
