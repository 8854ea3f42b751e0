//! Supa's edge functions: TypeScript/JavaScript functions that call
//! `Deno.serve` (Supabase's convention), each run in Deno worker
//! processes per (project, function, version), reached over a Unix
//! socket.
//!
//! [`Runtime`] starts no process for a function until its first request;
//! under concurrent load it starts more, up to a limit per function, and
//! a worker idle for [`RuntimeConfig::idle`] exits, so a thousand deployed,
//! idle functions cost no process. Requests that arrive while a worker
//! starts wait for it. Each worker may only reach the network, read its
//! own folder and socket, and read the environment variables it is given;
//! its V8 heap is bounded, and a request that outlives the wall-clock
//! limit, uses more than its CPU time, or whose worker dies under it, is
//! answered as Supabase answers (`546`, `WORKER_LIMIT`), its worker
//! replaced by the next request.

#![forbid(unsafe_code)]

mod bundle;
mod folder;
mod runtime;
mod service;

pub use bundle::{
    BUNDLE_FILE, Builder, Bundle, MAX_FILES, MAX_SOURCE_BYTES, SourceFile, is_bundle,
    multipart_body, normalize_path, read_folder,
};
pub use folder::{EdgeEnv, FolderFunctions, STANDALONE_REF, edge_env};
pub use runtime::{ExecutionId, FunctionKey, FunctionSpec, Runtime, RuntimeConfig};
pub use service::{FunctionStore, Functions, LogEvent};

/// Where the npm package the bootstrap script installs keeps Deno,
/// relative to the source tree.
const INSTALLED_DENO: &str = "runtime/deno/node_modules/@deno/linux-x64-glibc/deno";

/// The `deno` to use: `explicit` when given, else the one the bootstrap
/// installed (beside the binary's source tree, or under the working
/// directory), else `deno` on `PATH`.
pub fn find_deno(explicit: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_owned());
    }
    let from_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join(INSTALLED_DENO)));
    let from_cwd = std::env::current_dir().ok().map(|d| d.join(INSTALLED_DENO));
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("deno"))
            .find(|p| p.is_file())
    });
    [from_exe, from_cwd, on_path]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
}

/// Where a process's edge functions live: the `deno` that bundles and
/// runs them, and a folder holding the workers' bundles and sockets
/// (`runtime/`), the npm cache of builds (`cache/`) and builds in
/// progress (`scratch/`).
#[derive(Debug, Clone)]
pub struct FunctionsDir {
    /// The `deno` binary.
    pub deno: std::path::PathBuf,
    /// The folder.
    pub dir: std::path::PathBuf,
}

impl FunctionsDir {
    /// The worker runtime's settings in this folder, idle workers exiting
    /// after `idle`.
    pub fn runtime(&self, idle: std::time::Duration) -> RuntimeConfig {
        let mut config = RuntimeConfig::new(self.deno.clone(), self.dir.join("runtime"));
        config.idle = idle;
        config
    }

    /// A builder whose npm cache and builds are in this folder.
    pub fn builder(&self) -> Result<Builder, String> {
        Builder::new(
            self.deno.clone(),
            self.dir.join("cache"),
            self.dir.join("scratch"),
        )
    }
}

/// The bootstrap every worker runs: it points the function's
/// `Deno.serve` at the worker's socket and provides `EdgeRuntime`.
pub const BOOTSTRAP_JS: &str = include_str!("bootstrap.js");

/// An error answered as Supabase's edge runtime answers it:
/// `{"code","message"}` with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// HTTP status.
    pub status: u16,
    /// `BOOT_ERROR`, `WORKER_LIMIT`, ...
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
}

impl Error {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The function did not start (Supabase's 503).
    fn boot(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(%detail, "a function worker did not start");
        Self::new(
            503,
            "BOOT_ERROR",
            "Function failed to start (please check logs)",
        )
    }

    /// A limit was exceeded (Supabase's 546).
    fn limit(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(%detail, "a function worker hit a limit");
        Self::new(546, "WORKER_LIMIT", "Function exceeded a resource limit")
    }

    /// Whether the caller is at fault.
    pub fn is_client_error(&self) -> bool {
        self.status < 500
    }

    /// The response Supabase's edge runtime gives.
    pub fn into_response(self) -> axum::response::Response {
        let status = axum::http::StatusCode::from_u16(self.status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            axum::Json(serde_json::json!({"code": self.code, "message": self.message})),
        )
            .into_response()
    }
}

use axum::response::IntoResponse as _;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for Error {}
