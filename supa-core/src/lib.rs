//! Shared vocabulary of Supa, the bottom of the crate graph.
//!
//! Every other crate (keys, data plane, gateway, control plane) speaks in these
//! types: a validated [`ProjectRef`], the three API [`Role`]s, the two
//! [`KeyKind`]s, the masking [`Secret`] newtype, the [`ProjectConfig`] a gateway
//! needs to route a request, the two error bodies clients see
//! ([`GatewayErrorBody`] and [`PostgrestErrorBody`]), and the names of every
//! `SUPA_*` environment variable ([`env`]). Nothing here performs I/O beyond
//! drawing random bytes from the operating system.

#![forbid(unsafe_code)]

mod auth_settings;
mod config;
mod error;
mod error_body;
mod functions_settings;
mod project_ref;
mod public_url;
mod realtime_settings;
mod role;
mod secret;
mod storage_settings;
mod uuid;

pub mod directory;
pub mod env;
#[cfg(feature = "fuzz")]
pub mod fuzz;
#[cfg(feature = "http")]
pub mod http;
pub mod profile;
#[cfg(feature = "serve")]
pub mod serve;
#[cfg(feature = "signal")]
pub mod signal;
pub mod time;
pub mod usage;

pub use auth_settings::{AUTH_SECRET_FIELDS, AuthSettings, JWT_SIGNING_KEYS, OAUTH_PROVIDERS};
pub use config::{
    KeyRecord, PostgrestSettings, ProjectConfig, ProjectDatabase, ProjectStatus, Service,
    ServiceUpstreams, Upstream,
};
pub use directory::{BoxFuture, DirectoryError, ProjectDirectory};
pub use error::Error;
pub use error_body::{GatewayErrorBody, PostgrestErrorBody};
pub use functions_settings::{FunctionDeployment, FunctionsConfig};
pub use profile::Profile;
pub use project_ref::ProjectRef;
pub use public_url::public_base_url;
pub use realtime_settings::{MAX_REALTIME_PAYLOAD_KB, RealtimeSettings};
pub use role::{KeyKind, Role};
pub use secret::{Secret, serialize_exposed};
pub use storage_settings::{
    DEFAULT_FILE_SIZE_LIMIT, Feature, MAX_FILE_SIZE_LIMIT, StorageFeatures, StorageSettings,
};
pub use uuid::random_uuid;

/// The token of an `Authorization: Bearer <token>` value (the scheme in
/// any case), trimmed; `None` for another scheme.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `name` as a quoted SQL identifier: every identifier a service builds
/// into SQL text goes through here.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bearer_tokens_take_the_scheme_in_any_case() {
        assert_eq!(super::bearer_token("Bearer abc "), Some("abc"));
        assert_eq!(super::bearer_token("bearer abc"), Some("abc"));
        assert_eq!(super::bearer_token("Basic abc"), None);
        assert_eq!(super::bearer_token("Bearer"), None);
    }
}
