//! Everything the gateway refuses with, and the body each refusal gets.

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use supa_core::{GatewayErrorBody, PostgrestErrorBody};
use thiserror::Error;

/// A request the gateway answers itself.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No `apikey` header or query parameter.
    #[error("no API key")]
    NoApiKey,
    /// Malformed, wrong checksum, unknown, revoked or another project's key.
    #[error("invalid API key")]
    InvalidApiKey,
    /// A secret key sent by a browser.
    #[error("secret key used from a browser")]
    SecretKeyInBrowser,
    /// A publishable key for a service kept for secret keys (`/pg`).
    #[error("a secret key is required")]
    SecretKeyRequired,
    /// The ref is malformed or no such project exists.
    #[error("project not found")]
    ProjectNotFound,
    /// The project exists but is not serving (paused, coming up, ...).
    #[error("project not serving: {0}")]
    ProjectUnavailable(String),
    /// A Supabase service this platform does not run yet.
    #[error("{0} is not available")]
    ServiceNotAvailable(&'static str),
    /// No route.
    #[error("no route")]
    NoRoute,
    /// A user JWT that does not verify (PostgREST's body).
    #[error("invalid JWT: {message}")]
    InvalidJwt {
        /// `PGRST301` or `PGRST303`.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// A user JWT claiming `service_role` with a publishable key.
    #[error("service_role JWT with a publishable key")]
    RoleNotAllowed,
    /// The directory could not answer.
    #[error("directory unavailable: {0}")]
    Directory(String),
    /// The upstream could not be reached.
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    /// The upstream did not answer in time.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// The project used its requests per second at this gateway.
    #[error("project rate limit reached; retry in {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds until a request would pass (at least 1).
        retry_after_secs: u64,
    },
    /// The request body is larger than the gateway lets through.
    #[error("request body over {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
}

impl Error {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Error::NoApiKey
            | Error::InvalidApiKey
            | Error::SecretKeyInBrowser
            | Error::SecretKeyRequired
            | Error::InvalidJwt { .. }
            | Error::RoleNotAllowed => 401,
            Error::ProjectNotFound | Error::ServiceNotAvailable(_) | Error::NoRoute => 404,
            Error::ProjectUnavailable(_) | Error::Directory(_) => 503,
            Error::UpstreamUnreachable(_) => 502,
            Error::UpstreamTimeout => 504,
            Error::RateLimited { .. } => 429,
            Error::BodyTooLarge { .. } => 413,
        }
    }

    /// Whether the client caused it.
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status())
    }

    /// The JSON body: Supabase's gateway shape, or PostgREST's for JWTs.
    pub fn body(&self) -> String {
        let gateway = |m: &str, h: Option<&str>| match h {
            Some(h) => GatewayErrorBody::new(m, h),
            None => GatewayErrorBody::without_hint(m),
        };
        let body = match self {
            Error::NoApiKey => GatewayErrorBody::no_api_key(),
            Error::InvalidApiKey => GatewayErrorBody::invalid_api_key(),
            Error::SecretKeyInBrowser => gateway(
                "Forbidden use of secret API key in browser",
                Some(
                    "Secret API keys can only be used in a protected environment and should never be used in a browser. Use a publishable key instead.",
                ),
            ),
            Error::SecretKeyRequired => gateway(
                "This endpoint requires a secret API key",
                Some("Use a secret key (sb_secret_...) from a protected environment."),
            ),
            Error::ProjectNotFound => gateway("Project not found", None),
            Error::ProjectUnavailable(status) => gateway(
                &format!("Project is not serving requests (status {status})"),
                Some("Restore or wait for the project to become ACTIVE_HEALTHY."),
            ),
            Error::ServiceNotAvailable(service) => gateway(
                &format!("The {service} service is not available on this platform yet"),
                None,
            ),
            Error::NoRoute => gateway("no Route matched with those values", None),
            Error::InvalidJwt { code, message } => {
                let b = PostgrestErrorBody::new(*code, message.clone());
                return serde_json::to_string(&b).unwrap_or_default();
            }
            Error::RoleNotAllowed => {
                let b = PostgrestErrorBody::new(
                    "PGRST303",
                    "A service_role JWT needs a secret API key",
                );
                return serde_json::to_string(&b).unwrap_or_default();
            }
            Error::Directory(_) => gateway(
                "Service temporarily unavailable",
                Some("The project directory could not be reached; retry shortly."),
            ),
            Error::UpstreamUnreachable(_) => {
                gateway("The project's API could not be reached", None)
            }
            Error::UpstreamTimeout => gateway("The project's API did not answer in time", None),
            // Kong's rate-limiting plugin's words, which Supabase answers.
            Error::RateLimited { .. } => gateway("API rate limit exceeded", None),
            // Kong's request-size-limiting plugin's words.
            Error::BodyTooLarge { .. } => gateway("Request size limit exceeded", None),
        };
        body.to_json()
    }

    /// As a response.
    pub fn response(&self) -> Response<Body> {
        let body = self.body();
        let mut response = Response::builder()
            .status(
                StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, body.len());
        if let Error::RateLimited { retry_after_secs } = self {
            response = response.header(header::RETRY_AFTER, *retry_after_secs);
        }
        response
            .body(Body::from(body))
            .expect("static parts are valid")
    }
}
