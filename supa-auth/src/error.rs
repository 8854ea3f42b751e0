//! GoTrue's error bodies, with the codes supabase-js and supabase-py switch
//! on: `{"code": <status>, "error_code": "...", "msg": "..."}`, or, for a
//! client that sends `X-Supabase-Api-Version: 2024-01-01` (both do),
//! `{"code": "...", "message": "..."}`; a weak password adds
//! `"weak_password": {"reasons": [...]}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything a request can fail with, as GoTrue answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// HTTP status.
    pub status: u16,
    /// GoTrue's `error_code` (`invalid_credentials`, `weak_password`...).
    pub code: &'static str,
    /// The message.
    pub msg: String,
    /// Why a password is weak (`length`...), for `weak_password`.
    pub reasons: Vec<&'static str>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.msg)
    }
}

impl std::error::Error for Error {}

impl Error {
    /// An error of `status` with GoTrue's `code` and `msg`.
    pub fn new(status: u16, code: &'static str, msg: impl Into<String>) -> Self {
        Self {
            status,
            code,
            msg: msg.into(),
            reasons: Vec::new(),
        }
    }

    /// 400 `validation_failed`.
    pub fn validation(msg: impl Into<String>) -> Self {
        Self::new(400, "validation_failed", msg)
    }

    /// 500 `unexpected_failure`; the cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        log(&cause);
        Self::new(
            500,
            "unexpected_failure",
            "Unexpected failure, please try again",
        )
    }

    /// 503: the project database is restarting or out of reach (a 503 is
    /// what Supabase's clients retry); the cause is logged, never sent.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        log(&cause);
        Self::new(
            503,
            "unexpected_failure",
            "The database is unavailable, please try again",
        )
    }

    /// Whether the client caused it.
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status)
    }
}

/// Server-side causes go to stderr: they may name the database, never a
/// password or token (callers pass driver errors only).
pub(crate) fn log(cause: &dyn std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "supa-auth: {cause}");
}

/// The API version of GoTrue's current error shape.
pub(crate) const API_VERSION: &str = "2024-01-01";

impl Error {
    /// The body, in the shape of the API version the client asked for.
    pub fn body(&self, versioned: bool) -> serde_json::Value {
        let mut body = if versioned {
            json!({"code": self.code, "message": self.msg})
        } else {
            json!({"code": self.status, "error_code": self.code, "msg": self.msg})
        };
        if !self.reasons.is_empty() {
            body["weak_password"] = json!({"reasons": self.reasons});
        }
        body
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body(false))).into_response();
        // The versioned shape is chosen once the request is known.
        response.extensions_mut().insert(self);
        response
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        if supa_db::is_unavailable(&e) {
            return Self::unavailable(e);
        }
        // The server's message, not the driver's bare "db error".
        match e.as_db_error() {
            Some(db) => Self::internal(format!(
                "{} {}: {}",
                db.severity(),
                db.code().code(),
                db.message()
            )),
            None => Self::internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_gotrues() {
        let e = Error::new(400, "invalid_credentials", "Invalid login credentials");
        assert_eq!(
            e.body(false),
            json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"})
        );
        assert_eq!(
            e.body(true),
            json!({"code": "invalid_credentials", "message": "Invalid login credentials"})
        );
        let mut weak = Error::new(
            422,
            "weak_password",
            "Password should be at least 6 characters.",
        );
        weak.reasons = vec!["length"];
        assert_eq!(
            weak.body(true)["weak_password"],
            json!({"reasons": ["length"]})
        );
        let r = e.into_response();
        assert_eq!(r.status(), 400);
        assert!(Error::validation("x").is_client_error());
        assert!(!Error::new(500, "unexpected_failure", "x").is_client_error());
    }
}
