//! Supa's storage server: Supabase Storage's `/storage/v1` for every
//! project, as storage3 (supabase-py) and storage-js call it.
//!
//! Metadata lives where Supabase keeps it, in the `storage` schema of each
//! project database ([`schema::SCHEMA_SQL`]: `storage.buckets`,
//! `storage.objects`, the S3 multipart tables and the helper functions
//! policies use), and every read and write of it on behalf of a caller
//! runs as the caller's API role with its JWT claims, so row level
//! security policies written for Supabase Storage decide here too. Bytes
//! live in a [`Backend`] (`object_store`: the local filesystem or any
//! S3-compatible service), one key per object version, so replacing an
//! object is atomic for readers.
//!
//! [`Storage`] is the multi-project engine (a small pool per project,
//! bounded in number, closed when idle, and the backend); [`router`] is
//! its axum `Router`, which finds the project of each request in the
//! request's extensions as an `Arc<ProjectConfig>` (the gateway puts it
//! there, the standalone binary too).

#![forbid(unsafe_code)]

mod api;
#[cfg(feature = "clap")]
mod args;
mod backend;
mod error;
#[cfg(test)]
mod fuzz_tests;
mod names;
mod render;
mod s3;
pub mod schema;
pub mod storage_env;
mod store;
mod sweep;
mod tus;

use std::sync::Arc;
use std::time::Duration;

pub use api::router;
#[cfg(feature = "clap")]
pub use args::StorageArgs;
pub use backend::{Backend, BackendConfig, FileEtag, S3Config};
pub use error::Error;
/// Keys of the object store, as [`Backend`] takes them.
pub use object_store::path::Path as ObjectPath;
use supa_core::{ProjectConfig, ProjectDatabase, ProjectRef, StorageSettings};
use supa_keys::JwtKey;
pub use sweep::{SWEEP_GRACE, SWEEP_INTERVAL, Swept};

/// How long a resumable upload may take by default (Supabase's upload
/// URLs last up to 24 hours).
pub const DEFAULT_UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// Connections per project, opened on demand.
pub const POOL_SIZE: usize = 10;

/// One project as its storage server needs it.
#[derive(Clone)]
pub struct StorageProject {
    /// The project (the first segment of its object keys).
    pub project_ref: ProjectRef,
    /// Verifies callers' tokens and signs URL tokens.
    pub jwt_key: JwtKey,
    /// Its limits and features.
    pub settings: StorageSettings,
    /// The storage server's login to its database.
    pub database: ProjectDatabase,
}

impl std::fmt::Debug for StorageProject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageProject")
            .field("project_ref", &self.project_ref)
            .finish_non_exhaustive()
    }
}

impl StorageProject {
    /// The project of `config`; a 503 when it has no storage login (made
    /// before the storage server).
    pub fn from_config(config: &ProjectConfig) -> Result<Self, Error> {
        let database = config.storage_database.clone().ok_or_else(|| {
            Error::new(
                503,
                "FeatureNotEnabled",
                "Storage is not available for this project",
            )
            .with_http_status(503)
        })?;
        let (jwt_key, _) = supa_keys::project_keys(config).map_err(Error::internal)?;
        Ok(Self {
            project_ref: config.project_ref,
            jwt_key,
            settings: config.storage.clone(),
            database,
        })
    }
}

/// The engine: a pool per project database and the bytes' backend; cheap
/// to clone.
#[derive(Clone)]
pub struct Storage {
    pools: supa_db::Pools,
    backend: Backend,
    /// The first segment of object keys when it is not the project ref
    /// (a standalone server's `TENANT_ID`).
    tenant: Option<Arc<str>>,
    /// How long a resumable upload may take.
    upload_expiry: Duration,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("backend", &self.backend.describe())
            .field("open_pools", &self.pools.open())
            .finish()
    }
}

impl Storage {
    /// At most `max_projects` pools of [`POOL_SIZE`] connections, each
    /// closed after `idle` without a request.
    pub fn new(backend: Backend, max_projects: u64, idle: Duration) -> Self {
        Self {
            pools: supa_db::Pools::new(max_projects, idle),
            backend,
            tenant: None,
            upload_expiry: DEFAULT_UPLOAD_EXPIRY,
        }
    }

    /// The engine of one database served standalone: its pool of `max`
    /// connections, made from `config`, stays open; object keys start
    /// with `tenant`.
    pub fn single(
        project: ProjectRef,
        tenant: &str,
        mut config: tokio_postgres::Config,
        max: usize,
        backend: Backend,
    ) -> Result<Self, Error> {
        config.application_name("supa-storage");
        let pool = supa_db::pool(config, max).map_err(Error::internal)?;
        Ok(Self {
            pools: supa_db::Pools::single(project, pool),
            backend,
            tenant: Some(tenant.into()),
            upload_expiry: DEFAULT_UPLOAD_EXPIRY,
        })
    }

    /// Creates the storage schema of a standalone database that has none.
    pub async fn migrate(&self, project: ProjectRef) -> Result<(), Error> {
        let pool = self
            .pools
            .get(&project)
            .ok_or_else(|| Error::internal("no database"))?;
        let mut client = pool.get().await?;
        schema::migrate(&mut client).await.map_err(Error::from)
    }

    /// Resumable uploads expire `expiry` after they were created.
    pub fn with_upload_expiry(mut self, expiry: Duration) -> Self {
        self.upload_expiry = expiry;
        self
    }

    /// How long a resumable upload may take.
    pub fn upload_expiry(&self) -> Duration {
        self.upload_expiry
    }

    /// Where the bytes are.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Forgets a project's pool (deleted, login rotated).
    pub fn evict(&self, project: &ProjectRef) {
        self.pools.evict(project);
    }

    /// Removes every byte of a deleted project; the number of keys removed.
    pub async fn delete_project(&self, project: &ProjectRef) -> Result<u64, Error> {
        self.evict(project);
        let prefix = object_store::path::Path::from(self.prefix(project));
        self.backend.remove_prefix(&prefix).await
    }

    /// The first segment of a project's object keys.
    pub(crate) fn prefix(&self, project: &ProjectRef) -> String {
        match &self.tenant {
            Some(t) => t.to_string(),
            None => project.to_string(),
        }
    }

    /// A connection to the project's database, acting as
    /// `supabase_storage_admin`.
    pub(crate) async fn client(&self, project: &StorageProject) -> Result<supa_db::Object, Error> {
        let pool = self
            .pools
            .get_or_open(&project.project_ref, || {
                supa_db::pool(
                    supa_db::pg_config(&project.database, "supa-storage"),
                    POOL_SIZE,
                )
            })
            .map_err(Error::internal)?;
        Ok(pool.get().await?)
    }
}
