//! Settings of one served database, named as PostgREST names them.

use supa_core::Secret;

pub use crate::access_log::LogLevel;
pub use crate::cors::Cors;
pub use crate::openapi::OpenApiMode;

/// `db-tx-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxEnd {
    /// Commit, `Prefer: tx` ignored.
    #[default]
    Commit,
    /// Commit unless `Prefer: tx=rollback`.
    CommitAllowOverride,
    /// Roll back, `Prefer: tx` ignored.
    Rollback,
    /// Roll back unless `Prefer: tx=commit`.
    RollbackAllowOverride,
}

impl std::str::FromStr for TxEnd {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "commit" => TxEnd::Commit,
            "commit-allow-override" => TxEnd::CommitAllowOverride,
            "rollback" => TxEnd::Rollback,
            "rollback-allow-override" => TxEnd::RollbackAllowOverride,
            other => {
                return Err(format!(
                    "invalid db-tx-end {other:?}: expected commit, commit-allow-override, rollback or rollback-allow-override"
                ));
            }
        })
    }
}

impl TxEnd {
    /// Whether the transaction commits, given `Prefer: tx=`.
    pub fn commits(self, preferred: Option<bool>) -> (bool, bool) {
        match (self, preferred) {
            (TxEnd::CommitAllowOverride | TxEnd::RollbackAllowOverride, Some(p)) => (p, true),
            (TxEnd::Commit | TxEnd::CommitAllowOverride, _) => (true, false),
            (TxEnd::Rollback | TxEnd::RollbackAllowOverride, _) => (false, false),
        }
    }
}

/// How requests to one database are served.
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// `db-schemas`: exposed schemas, the first is the default.
    pub schemas: Vec<String>,
    /// `db-extra-search-path`.
    pub extra_search_path: Vec<String>,
    /// `db-anon-role`: the role of requests without a JWT.
    pub anon_role: Option<String>,
    /// `jwt-secret` (HS256).
    pub jwt_secret: Option<Secret<String>>,
    /// `jwt-aud`: the audience tokens must name, if any.
    pub jwt_aud: Option<String>,
    /// `db-max-rows`.
    pub max_rows: Option<i64>,
    /// `db-pre-request`: a function called before every request.
    pub pre_request: Option<String>,
    /// `db-tx-end`.
    pub tx_end: TxEnd,
    /// `db-aggregates-enabled`.
    pub aggregates_enabled: bool,
    /// `db-plan-enabled`.
    pub plan_enabled: bool,
    /// `db-pool`: connections of this database's pool (the engine's
    /// default when absent).
    pub pool_size: Option<usize>,
    /// `openapi-mode`.
    pub openapi_mode: OpenApiMode,
    /// `openapi-security-active`: the document declares the JWT scheme.
    pub openapi_security_active: bool,
    /// `openapi-server-proxy-uri`: where clients reach the API, for the
    /// document's `host` and `basePath` (otherwise the request's
    /// `X-Forwarded-*` or `Host` headers).
    pub openapi_server_proxy_uri: Option<String>,
    /// `db-root-spec`: a function answering `/` instead of the document.
    pub root_spec: Option<String>,
    /// `server-timing-enabled`: a `Server-Timing` header on every answer.
    pub server_timing: bool,
    /// `server-trace-header`: a request header echoed on the answer.
    pub trace_header: Option<String>,
    /// `server-cors-allowed-origins`; `None` leaves CORS to whoever is in
    /// front (the gateway), as the library default.
    pub cors: Option<Cors>,
    /// `log-level` of the access log written to stdout; `None` writes none
    /// (the library default: a gateway logs for itself).
    pub access_log: Option<LogLevel>,
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            schemas: vec!["public".to_owned()],
            extra_search_path: vec!["public".to_owned()],
            anon_role: None,
            jwt_secret: None,
            jwt_aud: None,
            max_rows: None,
            pre_request: None,
            tx_end: TxEnd::Commit,
            aggregates_enabled: false,
            plan_enabled: false,
            pool_size: None,
            openapi_mode: OpenApiMode::default(),
            openapi_security_active: false,
            openapi_server_proxy_uri: None,
            root_spec: None,
            server_timing: false,
            trace_header: None,
            cors: None,
            access_log: None,
        }
    }
}

/// Splits a comma-separated setting, trimming items.
pub fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}
