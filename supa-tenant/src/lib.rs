//! Supa's control plane, beside the gateway in the crate graph (over
//! `supa-core`, `supa-keys` and the services whose schemas and settings it
//! provisions).
//!
//! It owns the management database (`supa_admin`, migrated with sqlx) and
//! everything recorded there: worker clusters, projects and their lifecycle,
//! API keys and secrets, all secret material encrypted with AES-256-GCM under
//! the platform [`MasterKey`]. It also runs a private PostgreSQL cluster from
//! the system's binaries ([`embedded`]) for the all-in-one `supa up` and for
//! the test kit. What a project database is built with is data
//! ([`bootstrap`]), executed as listed.

#![forbid(unsafe_code)]

mod auth_config;
mod backups;
pub mod bootstrap;
mod crypto;
mod error;
mod files;
mod functions;
mod keys;
mod meta;
mod projects;
mod s3_credentials;
mod secrets;
mod sql;
mod sql_editor;
mod tenant;
mod usage;
mod workers;

pub mod api;
pub mod client;
pub mod embedded;
pub mod platform;

/// Parses a status stored as its serde name (`"ACTIVE_HEALTHY"`, `"active"`).
pub(crate) fn from_name<T: serde::de::DeserializeOwned>(name: String) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name)).ok()
}

pub use backups::{Backup, BackupSchedule};
pub use crypto::MasterKey;
pub use error::Error;
pub use functions::{DeployMetadata, Function, FunctionPatch, MAX_LOG_EVENTS, validate_slug};
pub use keys::{ApiKeyInfo, NewApiKey};
pub use projects::{
    CreateOptions, CreateProject, CreateStep, CreatedProject, Placement, PostgrestPatch, Project,
    ServicesPatch,
};
pub use secrets::{SecretDigest, SecretInput, validate_secret_name};
pub use sql::DEFAULT_STATEMENT_TIMEOUT;
pub use sql_editor::{HISTORY_KEPT, HistoryEntry, Snippet};
pub use tenant::{ADMIN_DATABASE, INVALIDATE_CHANNEL, Invalidation, Tenant};
pub use usage::UsageSource;
pub use workers::{NewWorker, Worker, WorkerPatch, WorkerStatus};
