use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use supa_core::ProjectRef;

use crate::Error;
use crate::crypto::MasterKey;
use crate::error::has_sqlstate;

/// Name of the management database.
pub const ADMIN_DATABASE: &str = "supa_admin";

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
    hooks: Arc<Mutex<Vec<Hook>>>,
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
            hooks: Arc::default(),
        })
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
