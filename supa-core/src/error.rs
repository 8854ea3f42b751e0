use thiserror::Error;

/// Everything that can go wrong while parsing supa-core's vocabulary types.
///
/// Each variant carries a sentence meant for the person who typed the value,
/// so a CLI or an HTTP handler can show it as it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// A project ref that is not exactly 20 characters of `[a-z]`.
    #[error("invalid project ref: {0}")]
    InvalidProjectRef(String),
    /// A role name other than `anon`, `authenticated` or `service_role`.
    #[error("invalid role {0:?}: expected anon, authenticated or service_role")]
    InvalidRole(String),
    /// A key kind other than `publishable` or `secret`.
    #[error("invalid key kind {0:?}: expected publishable or secret")]
    InvalidKeyKind(String),
    /// An upstream whose URL or region cannot be used.
    #[error("invalid upstream: {0}")]
    InvalidUpstream(String),
    /// A config file that cannot be used.
    #[error("invalid config file: {0}")]
    Config(String),
    /// A data plane setting out of range; the field is named.
    #[error("{field}: {reason}")]
    InvalidSetting {
        /// The setting (`max_rows`, `db_schema`, ...).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// The name of the input field at fault, for an API error that names it
    /// (`"ref"`, `"role"`, `"kind"`, `"upstream"`).
    pub fn field(&self) -> &'static str {
        match self {
            Error::InvalidProjectRef(_) => "ref",
            Error::InvalidRole(_) => "role",
            Error::InvalidKeyKind(_) => "kind",
            Error::InvalidUpstream(_) => "upstream",
            Error::Config(_) => "config",
            Error::InvalidSetting { field, .. } => field,
        }
    }
}
