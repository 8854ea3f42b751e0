//! The project directory: where a gateway learns a project's config and
//! what a key belongs to. The control plane implements it in process; an
//! HTTP client implements it against a remote tenant manager's internal API.

use std::future::Future;
use std::pin::Pin;

use crate::{KeyRecord, ProjectConfig, ProjectRef};

/// A boxed, sendable future (keeps the trait usable as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The directory could not answer (never "not found": that is `Ok(None)`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("project directory unavailable: {0}")]
pub struct DirectoryError(pub String);

/// Looks projects and keys up for a gateway.
pub trait ProjectDirectory: Send + Sync + 'static {
    /// The config of `project_ref`, or `None` when there is no such project.
    fn project_config<'a>(
        &'a self,
        project_ref: &'a ProjectRef,
    ) -> BoxFuture<'a, Result<Option<ProjectConfig>, DirectoryError>>;

    /// The live key whose SHA-256 is `hash`, or `None`.
    fn lookup_key<'a>(
        &'a self,
        hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<KeyRecord>, DirectoryError>>;
}
