//! uniffi bindings for Python, the top of the crate graph: the key, JWT and
//! SigV4 primitives of `supa-keys`, the tenant bootstrap of `supa-tenant`
//! as data, and (in [`management`]) its Management API client.
//!
//! Every function converts strings into `supa-core` types, calls one
//! function below and converts back; failures become the flat
//! [`SupaError`], which Python raises as an exception carrying the reason.
//! No logic lives here.

// uniffi's generated scaffolding is `extern "C"` glue that needs `unsafe`.
#![allow(unsafe_code)]

use std::collections::HashMap;

use supa_core::{KeyKind, ProjectRef, Role, Secret};
use supa_keys::{Credentials, JwtKey, Payload, SigV4Signer, SigningRequest, Validation};

uniffi::setup_scaffolding!();

pub mod management;

/// The one error Python sees; the message is the reason.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum SupaError {
    /// An argument could not be parsed (a ref, a role, a kind, a secret).
    #[error("{0}")]
    InvalidArgument(String),
    /// An API key was rejected.
    #[error("{0}")]
    InvalidKey(String),
    /// A JWT was rejected.
    #[error("{0}")]
    InvalidJwt(String),
    /// A request could not be signed.
    #[error("{0}")]
    Unsignable(String),
}

impl From<supa_core::Error> for SupaError {
    fn from(e: supa_core::Error) -> Self {
        SupaError::InvalidArgument(e.to_string())
    }
}

impl From<supa_keys::Error> for SupaError {
    fn from(e: supa_keys::Error) -> Self {
        if e.is_key_error() {
            SupaError::InvalidKey(e.to_string())
        } else if e.is_jwt_error() {
            SupaError::InvalidJwt(e.to_string())
        } else if matches!(e, supa_keys::Error::Unsignable(_)) {
            SupaError::Unsignable(e.to_string())
        } else {
            SupaError::InvalidArgument(e.to_string())
        }
    }
}

/// The outcome of `validate_key` for an accepted key.
#[derive(Debug, uniffi::Record)]
pub struct KeyValidation {
    /// `publishable` or `secret`.
    pub kind: String,
    /// True when the checksum matched the project; false for a key of the
    /// older format, which only a hash lookup can validate.
    pub checksum_verified: bool,
}

/// Verified JWT claims.
#[derive(Debug, uniffi::Record)]
pub struct JwtClaims {
    /// The `role` claim.
    pub role: Option<String>,
    /// The `ref` claim.
    pub project_ref: Option<String>,
    /// The `exp` claim.
    pub exp: i64,
    /// Every claim, as a JSON object.
    pub json: String,
}

/// AWS credentials for `sign_sigv4`.
#[derive(uniffi::Record)]
pub struct AwsCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

/// A new API key of `kind` (`publishable` or `secret`) for a project.
#[uniffi::export]
pub fn generate_key(project_ref: String, kind: String) -> Result<String, SupaError> {
    Ok(supa_keys::generate(
        &ProjectRef::parse(&project_ref)?,
        kind.parse::<KeyKind>()?,
    ))
}

/// Checks a key against the project it is presented to.
#[uniffi::export]
pub fn validate_key(project_ref: String, key: String) -> Result<KeyValidation, SupaError> {
    let validation = supa_keys::validate(&ProjectRef::parse(&project_ref)?, &key)?;
    Ok(KeyValidation {
        kind: validation.kind().to_string(),
        checksum_verified: matches!(validation, Validation::Checked(_)),
    })
}

/// SHA-256 of the whole key, in hex: the lookup index of stored keys.
#[uniffi::export]
pub fn hash_key(key: String) -> String {
    supa_keys::hash_hex(&key)
}

/// `{ref}--anon` or `{ref}--service_role`.
#[uniffi::export]
pub fn consumer_name(project_ref: String, kind: String) -> Result<String, SupaError> {
    Ok(supa_keys::consumer_name(
        &ProjectRef::parse(&project_ref)?,
        kind.parse::<KeyKind>()?,
    ))
}

/// A token as the gateway mints it, issued at `now` (Unix seconds).
#[uniffi::export(default(ttl_secs = 300))]
pub fn mint_jwt(
    secret: String,
    project_ref: String,
    role: String,
    now: i64,
    ttl_secs: i64,
) -> Result<String, SupaError> {
    let key = JwtKey::new(secret.as_bytes())?;
    let (project_ref, role) = (ProjectRef::parse(&project_ref)?, role.parse::<Role>()?);
    Ok(supa_keys::mint_with_ttl(
        &key,
        &project_ref,
        role,
        now,
        ttl_secs,
    ))
}

/// Verifies a token at `now` (Unix seconds) and returns its claims.
#[uniffi::export]
pub fn verify_jwt(secret: String, token: String, now: i64) -> Result<JwtClaims, SupaError> {
    let claims = supa_keys::verify(&JwtKey::new(secret.as_bytes())?, &token, now)?;
    Ok(JwtClaims {
        role: claims.role().map(str::to_owned),
        project_ref: claims.project_ref().map(str::to_owned),
        exp: claims.exp(),
        json: claims.to_json(),
    })
}

/// SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) for
/// a request to `service` in `region`, signed at `now` (Unix seconds).
#[uniffi::export]
#[allow(clippy::too_many_arguments)]
pub fn sign_sigv4(
    method: String,
    url: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    credentials: AwsCredentials,
    region: String,
    service: String,
    now: i64,
) -> Result<HashMap<String, String>, SupaError> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let request = SigningRequest {
        method: &method,
        url: &url,
        headers: &headers,
        payload: Payload::Bytes(&body),
    };
    let credentials = Credentials {
        access_key_id: credentials.access_key_id,
        secret_access_key: Secret::new(credentials.secret_access_key),
        session_token: credentials.session_token.map(Secret::new),
    };
    let signed = SigV4Signer::new(service).sign(&request, &credentials, &region, now)?;
    Ok(signed
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect())
}

/// One statement of a project database's build.
#[derive(Debug, uniffi::Record)]
pub struct BootstrapStatement {
    /// `cluster` (once per worker cluster), `template` (in the template
    /// every project is copied from) or `project` (each project's own).
    pub phase: String,
    /// The part of the build (`api roles`, `auth schema`, `logins`...).
    pub part: String,
    /// The statement, with the comments before it in its script.
    pub sql: String,
}

/// The statements a project database is built with, in the order they run:
/// the cluster's, the template's, then (given a ref) the project's own with
/// passwords masked.
#[uniffi::export(default(project_ref = None))]
pub fn bootstrap_statements(
    project_ref: Option<String>,
) -> Result<Vec<BootstrapStatement>, SupaError> {
    let project_ref = project_ref.as_deref().map(ProjectRef::parse).transpose()?;
    Ok(supa_tenant::bootstrap::statements(project_ref.as_ref())
        .into_iter()
        .map(|s| BootstrapStatement {
            phase: s.phase.as_str().to_owned(),
            part: s.part.to_owned(),
            sql: s.sql,
        })
        .collect())
}
