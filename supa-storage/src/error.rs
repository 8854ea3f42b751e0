//! The storage server's one error type, rendered as Supabase Storage
//! renders its errors: `{"statusCode", "code", "error", "message"}`, where
//! `statusCode` is the status the error stands for (a string) and the HTTP
//! status is 400 for every client error and 500 for server errors, as
//! storage-js and storage3 expect. `error` keeps the older names clients
//! still match on (`not_found`, `Bucket not found`, `Duplicate`), and is
//! the code otherwise.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What went wrong, and how Supabase Storage would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The status the error stands for (`statusCode` in the body).
    pub status: u16,
    /// Supabase Storage's error code (`NoSuchKey`).
    pub code: &'static str,
    /// The older error name, where Supabase Storage has one.
    pub legacy: Option<&'static str>,
    /// Human-readable message.
    pub message: String,
    /// The HTTP status when it is not the usual 400/500 mapping.
    pub http_status: Option<u16>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for Error {}

/// Shorthand for results of this crate.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with `code`, standing for `status`.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            legacy: None,
            message: message.into(),
            http_status: None,
        }
    }

    fn legacy(mut self, name: &'static str) -> Self {
        self.legacy = Some(name);
        self
    }

    /// Answers with `status` itself rather than 400.
    pub fn with_http_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// The HTTP status of the response.
    pub fn http_status(&self) -> u16 {
        self.http_status
            .unwrap_or(if self.status >= 500 { 500 } else { 400 })
    }

    /// Whether the caller is at fault (logged quietly).
    pub fn is_client_error(&self) -> bool {
        self.status < 500
    }

    /// A server-side failure; the cause is logged, not shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "storage request failed");
        Self::new(500, "InternalError", "Internal server error")
    }

    /// `NoSuchBucket`.
    pub fn no_such_bucket() -> Self {
        Self::new(404, "NoSuchBucket", "Bucket not found").legacy("Bucket not found")
    }

    /// `NoSuchKey`.
    pub fn no_such_key() -> Self {
        Self::new(404, "NoSuchKey", "Object not found").legacy("not_found")
    }

    /// `NoSuchUpload`.
    pub fn no_such_upload() -> Self {
        Self::new(404, "NoSuchUpload", "Upload not found")
    }

    /// `InvalidJWT`.
    pub fn invalid_jwt(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidJWT", message)
    }

    /// `AccessDenied` (row level security said no).
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(403, "AccessDenied", message).legacy("Unauthorized")
    }

    /// `KeyAlreadyExists`.
    pub fn key_exists() -> Self {
        Self::new(409, "KeyAlreadyExists", "The resource already exists").legacy("Duplicate")
    }

    /// `BucketAlreadyExists`.
    pub fn bucket_exists() -> Self {
        Self::new(409, "BucketAlreadyExists", "The resource already exists").legacy("Duplicate")
    }

    /// `ResourceNotEmpty`.
    pub fn bucket_not_empty() -> Self {
        Self::new(
            409,
            "ResourceNotEmpty",
            "The bucket you tried to delete is not empty",
        )
    }

    /// `InvalidBucketName`.
    pub fn invalid_bucket_name() -> Self {
        Self::new(400, "InvalidBucketName", "Bucket name invalid").legacy("Invalid Input")
    }

    /// `InvalidKey`.
    pub fn invalid_key(key: &str) -> Self {
        Self::new(400, "InvalidKey", format!("Invalid key: {key}"))
    }

    /// `EntityTooLarge`.
    pub fn too_large() -> Self {
        Self::new(
            413,
            "EntityTooLarge",
            "The object exceeded the maximum allowed size",
        )
        .legacy("Payload too large")
    }

    /// `InvalidMimeType`.
    pub fn invalid_mime_type(mime: &str) -> Self {
        Self::new(
            415,
            "InvalidMimeType",
            format!("mime type {mime} is not supported"),
        )
        .legacy("invalid_mime_type")
    }

    /// `InvalidRange`.
    pub fn invalid_range() -> Self {
        Self::new(400, "InvalidRange", "invalid range provided").legacy("invalid_range")
    }

    /// `InvalidRequest`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequest", message)
    }

    /// `MissingParameter`.
    pub fn missing(parameter: &str) -> Self {
        Self::new(
            400,
            "MissingParameter",
            format!("Missing Required Parameter {parameter}"),
        )
    }

    /// `InvalidSignature` (a signed URL's token).
    pub fn invalid_signature(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidSignature", message)
    }

    /// `FeatureNotEnabled`.
    pub fn feature_disabled(feature: &str) -> Self {
        Self::new(
            409,
            "FeatureNotEnabled",
            format!("The feature {feature} is not enabled for this resource"),
        )
    }

    /// The object store's disk is full: nothing was stored, and the
    /// client may try again once the operator has made room.
    pub fn out_of_space(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "the object store is out of space");
        Self::new(
            507,
            "InsufficientStorage",
            "The object store is out of space. Please try again later.",
        )
        .with_http_status(507)
    }

    /// The database could not be reached in time.
    pub fn database_unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "storage database unavailable");
        Self::new(
            503,
            "DatabaseConnectionLimit",
            "The database is not reachable. Please try again later.",
        )
        .with_http_status(503)
    }

    /// The body Supabase Storage sends.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "statusCode": self.status.to_string(),
            "code": self.code,
            "error": self.legacy.unwrap_or(self.code),
            "message": self.message,
        })
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            return Error::database_unavailable(e);
        };
        match db.code().code() {
            // Row level security, or a missing grant.
            "42501" => Error::access_denied(db.message().to_owned()),
            "23505" => Error::key_exists(),
            // The bucket an object names does not exist.
            "23503" => Error::no_such_bucket(),
            "57014" => Error::new(
                544,
                "DatabaseTimeout",
                "The connection to the database timed out",
            )
            .with_http_status(544),
            "25006" => Error::new(
                503,
                "DatabaseReadOnly",
                "The database is currently in read-only mode. Please try again later.",
            )
            .with_http_status(503),
            "42P01" | "42703" | "42883" => Error::new(
                503,
                "DatabaseSchemaMismatch",
                "The database schema is out of sync. Please run migrations or contact support.",
            )
            .with_http_status(503),
            _ if supa_db::is_unavailable(&e) => Error::database_unavailable(e),
            _ => Error::internal(e),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => Error::database_unavailable(other),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_answer_400_with_the_status_they_stand_for() {
        let e = Error::no_such_key();
        assert_eq!(e.http_status(), 400);
        assert_eq!(
            e.body(),
            json!({"statusCode": "404", "code": "NoSuchKey", "error": "not_found", "message": "Object not found"})
        );
        assert_eq!(Error::new(500, "InternalError", "x").http_status(), 500);
        assert_eq!(Error::database_unavailable("down").http_status(), 503);
        assert_eq!(
            Error::bucket_not_empty().body()["error"],
            "ResourceNotEmpty"
        );
    }
}
