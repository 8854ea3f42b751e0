//! Every `SUPA_*` environment variable, named once.
//!
//! Binaries read settings through these constants (clap's `env = ...`), and
//! [`ALL`] feeds the documentation, so a variable cannot be spelled two ways.

/// Data directory for the embedded PostgreSQL cluster and the generated
/// master key (default `./.supa`).
pub const DATA_DIR: &str = "SUPA_DATA_DIR";
/// Master key (32 bytes, base64) that encrypts secrets at rest; generated into
/// the data dir with mode 0600 when unset.
pub const MASTER_KEY: &str = "SUPA_MASTER_KEY";
/// Connection URL of the management database; when unset `supa up` starts an
/// embedded cluster in the data dir.
pub const DATABASE_URL: &str = "SUPA_DATABASE_URL";
/// Bearer token of the Management API.
pub const ADMIN_TOKEN: &str = "SUPA_ADMIN_TOKEN";
/// Bearer token of the internal directory API that gateways call.
pub const SERVICE_TOKEN: &str = "SUPA_SERVICE_TOKEN";
/// Base URL of a remote tenant manager's internal API, for `supa-gateway`.
pub const TENANT_URL: &str = "SUPA_TENANT_URL";
/// Redis URL for the shared config cache and invalidation channel (optional).
pub const REDIS_URL: &str = "SUPA_REDIS_URL";
/// Domain under which `{ref}.{domain}` hosts resolve to projects.
pub const BASE_DOMAIN: &str = "SUPA_BASE_DOMAIN";
/// Port of the public gateway (default 8000).
pub const GATEWAY_PORT: &str = "SUPA_GATEWAY_PORT";
/// Port of the Management API and `/metrics` (default 8001).
pub const API_PORT: &str = "SUPA_API_PORT";
/// Address the servers listen on (default `127.0.0.1`).
pub const BIND: &str = "SUPA_BIND";
/// Base URL of the Management API the CLI talks to (default
/// `http://127.0.0.1:8001`).
pub const API_URL: &str = "SUPA_API_URL";
/// How new projects are spread over workers: `least-databases` (default)
/// or `round-robin`.
pub const PLACEMENT: &str = "SUPA_PLACEMENT";
/// Path of an optional TOML config file.
pub const CONFIG: &str = "SUPA_CONFIG";
/// Log filter in `tracing` syntax (default `info`).
pub const LOG: &str = "SUPA_LOG";

/// Every variable with a one-line description, for docs and `--help`.
pub const ALL: &[(&str, &str)] = &[
    (
        DATA_DIR,
        "data directory for the embedded cluster and master key (default ./.supa)",
    ),
    (
        MASTER_KEY,
        "base64 master key encrypting secrets at rest (generated when unset)",
    ),
    (
        DATABASE_URL,
        "management database URL (embedded cluster when unset)",
    ),
    (ADMIN_TOKEN, "bearer token of the Management API"),
    (SERVICE_TOKEN, "bearer token of the internal directory API"),
    (
        TENANT_URL,
        "remote tenant manager base URL, for supa-gateway",
    ),
    (
        REDIS_URL,
        "Redis URL for the shared cache and invalidation (optional)",
    ),
    (
        BASE_DOMAIN,
        "domain under which {ref}.{domain} resolves to a project",
    ),
    (GATEWAY_PORT, "public gateway port (default 8000)"),
    (API_PORT, "Management API and metrics port (default 8001)"),
    (BIND, "address the servers listen on (default 127.0.0.1)"),
    (
        API_URL,
        "Management API base URL for the CLI (default http://127.0.0.1:8001)",
    ),
    (
        PLACEMENT,
        "worker placement: least-databases (default) or round-robin",
    ),
    (CONFIG, "path of an optional TOML config file"),
    (LOG, "log filter in tracing syntax (default info)"),
];

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names: Vec<_> = ALL.iter().map(|(n, _)| *n).collect();
        assert!(names.iter().all(|n| n.starts_with("SUPA_")));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
