use thiserror::Error;

/// Everything the control plane can fail with, classified by who caused it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The machine is not set up for this (missing binaries, bad settings).
    #[error("{0}")]
    Config(String),
    /// Settings the config profile refuses (`production`), one line each.
    #[error("{}", .0.join("\n"))]
    Refused(Vec<String>),
    /// A PostgreSQL server command (initdb, pg_ctl) failed.
    #[error("embedded PostgreSQL: {0}")]
    Embedded(String),
    /// The object store (storage bytes) failed or cannot be opened.
    #[error("object storage: {0}")]
    Storage(String),
    /// A file or process operation failed.
    #[error("could not {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The management database or a worker answered with an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored secret could not be decrypted: wrong master key or tampering.
    #[error("cannot decrypt {0}: wrong master key or corrupted data")]
    Decrypt(String),
    /// The caller sent something unusable; names the field.
    #[error("{field}: {message}")]
    InvalidInput {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with existing state (duplicate ref, worker in use).
    #[error("{0}")]
    Conflict(String),
    /// A worker could not be reached or refused the credentials given.
    #[error("cannot connect to worker: {0}")]
    WorkerUnreachable(String),
    /// A statement sent to the SQL endpoint failed; the message is shown
    /// as Supabase shows it.
    #[error("Failed to run sql query: ERROR:  {code}: {message}")]
    Sql {
        /// SQLSTATE.
        code: String,
        /// PostgreSQL's message.
        message: String,
        /// Where in the query the error is, as a 1-based character
        /// offset (PostgreSQL's `position`), when it says.
        position: Option<usize>,
    },
    /// No active worker has room for another project.
    #[error("no active worker has room for another project")]
    NoCapacity,
    /// Taking or restoring a backup failed (`pg_dump`, `pg_restore`).
    #[error("{0}")]
    Backup(String),
    /// A feature this control plane was started without (edge functions
    /// without Deno); the message says what to set.
    #[error("{0}")]
    Unavailable(String),
    /// A remote Management API answered with an error.
    #[error("{message}")]
    Remote {
        /// The HTTP status it answered with.
        status: u16,
        /// Its `message`.
        message: String,
    },
    /// A remote Management API could not be reached or answered nonsense.
    #[error("{0}")]
    Transport(String),
}

/// Whether `e` is a database error with SQLSTATE `code`.
pub(crate) fn has_sqlstate(e: &sqlx::Error, code: &str) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(code))
}

impl Error {
    pub(crate) fn io(context: &str, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_owned(),
            source,
        }
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            message: message.into(),
        }
    }

    /// A setting the core types refuse, named by its field.
    pub(crate) fn setting(e: supa_core::Error) -> Self {
        match e {
            supa_core::Error::InvalidSetting { field, reason } => Error::invalid(field, reason),
            other => Error::invalid(other.field(), other.to_string()),
        }
    }

    pub(crate) fn with_context(self, context: &str) -> Self {
        match self {
            Error::Embedded(m) => Error::Embedded(format!("{m} ({context})")),
            other => other,
        }
    }

    /// The HTTP status the Management API answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidInput { .. } | Error::WorkerUnreachable(_) | Error::Sql { .. } => 400,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::NoCapacity | Error::Unavailable(_) => 503,
            Error::Remote { status, .. } => *status,
            Error::Transport(_) => 502,
            _ => 500,
        }
    }

    /// Whether the caller caused it (the message may be shown as it is).
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status())
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::NoCapacity | Error::Transport(_) => true,
            Error::Remote { status, .. } => *status == 503,
            Error::Database(e) => matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)),
            _ => false,
        }
    }
}
