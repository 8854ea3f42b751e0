//! The one error type of the metadata service.

use axum::http::StatusCode;
use thiserror::Error;

/// Everything a metadata request can fail with. Answers carry
/// postgres-meta's body, `{"error": message}`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A query parameter or body field is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The project, or the object asked for, does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// PostgreSQL refused a statement (a user's DDL, a bad name): its
    /// message is the answer (400).
    #[error("{message}")]
    Sql {
        /// SQLSTATE.
        code: String,
        /// PostgreSQL's message.
        message: String,
    },
    /// The statement ran out of time (408, as postgres-meta answers).
    #[error("Query read timeout")]
    Timeout,
    /// The project's database cannot be reached now (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A fault of ours; the client sees a generic message (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) | Error::Sql { .. } => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Timeout => StatusCode::REQUEST_TIMEOUT,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Timeout | Error::Unavailable(_))
    }

    /// The message the client may see: internals stay in the log.
    pub fn client_message(&self) -> String {
        match self {
            Error::Unavailable(_) => {
                "The project's database is unavailable; try again shortly".into()
            }
            Error::Internal(_) => "Internal error; the service's log has the cause".into(),
            other => other.to_string(),
        }
    }

    pub(crate) fn from_pg(e: &tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if db.code() == &tokio_postgres::error::SqlState::QUERY_CANCELED => {
                Error::Timeout
            }
            Some(db) => Error::Sql {
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
            },
            None => Error::Unavailable(e.to_string()),
        }
    }
}
