//! PostgREST's error model: a body `{"code","details","hint","message"}`
//! and the HTTP status PostgREST gives each SQLSTATE and PGRST code.

use supa_core::PostgrestErrorBody;
use thiserror::Error;

/// Everything a request can fail with.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum Error {
    /// An error PostgREST itself defines (`PGRSTxxx`).
    #[error("{code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// `PGRST...`.
        code: &'static str,
        /// Message.
        message: String,
        /// Details (text, or JSON such as a list of candidates); boxed,
        /// as a JSON value would make every `Result` of the crate large.
        details: Option<Box<serde_json::Value>>,
        /// Hint.
        hint: Option<String>,
    },
    /// An error PostgreSQL raised while running the request.
    #[error("{sqlstate}: {message}")]
    Db {
        /// SQLSTATE.
        sqlstate: String,
        /// Message.
        message: String,
        /// Detail.
        details: Option<String>,
        /// Hint.
        hint: Option<String>,
        /// Whether the request ran with a JWT (42501 is 401 without one).
        authenticated: bool,
    },
    /// `RAISE SQLSTATE 'PGRST'`: the message is JSON `{code,message,details,hint}`
    /// and the detail JSON `{status, headers}`.
    #[error("custom error {status}")]
    Raised {
        /// HTTP status.
        status: u16,
        /// The body to send.
        body: Box<PostgrestErrorBody>,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// A reason phrase of its own (`status_text`).
        status_text: Option<String>,
    },
}

impl Error {
    /// A PGRST error.
    pub fn api(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Error::Api {
            status,
            code,
            message: message.into(),
            details: None,
            hint: None,
        }
    }

    /// Adds details.
    pub fn with_details(self, d: impl Into<String>) -> Self {
        self.with_details_json(serde_json::Value::String(d.into()))
    }

    /// Adds details that are JSON rather than text.
    pub fn with_details_json(mut self, d: serde_json::Value) -> Self {
        if let Error::Api { details, .. } = &mut self {
            *details = Some(Box::new(d));
        }
        self
    }

    /// Adds a hint.
    pub fn with_hint(mut self, h: impl Into<String>) -> Self {
        if let Error::Api { hint, .. } = &mut self {
            *hint = Some(h.into());
        }
        self
    }

    /// PGRST100: a query parameter does not parse.
    pub fn parse(message: String, details: String) -> Self {
        Error::api(400, "PGRST100", message).with_details(details)
    }

    /// The HTTP status PostgREST answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::Api { status, .. } | Error::Raised { status, .. } => *status,
            // pg-safeupdate's refusals are the client's fault; other
            // cardinality violations are the server's.
            Error::Db {
                sqlstate, message, ..
            } if sqlstate == "21000" => {
                if message.ends_with("requires a WHERE clause") {
                    400
                } else {
                    500
                }
            }
            Error::Db {
                sqlstate,
                authenticated,
                ..
            } => sqlstate_status(sqlstate, *authenticated),
        }
    }

    /// Whether the client caused it.
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status())
    }

    /// The response body.
    pub fn body(&self) -> PostgrestErrorBody {
        match self {
            Error::Api {
                code,
                message,
                details,
                hint,
                ..
            } => PostgrestErrorBody {
                code: (*code).to_owned(),
                details: details.as_deref().cloned(),
                hint: hint.clone(),
                message: message.clone(),
            },
            Error::Db {
                sqlstate,
                message,
                details,
                hint,
                ..
            } => PostgrestErrorBody {
                code: sqlstate.clone(),
                details: details.clone().map(serde_json::Value::String),
                hint: hint.clone(),
                message: message.clone(),
            },
            Error::Raised { body, .. } => (**body).clone(),
        }
    }

    /// The reason phrase `RAISE SQLSTATE 'PGRST'` asked for, if any.
    pub fn status_text(&self) -> Option<&str> {
        match self {
            Error::Raised { status_text, .. } => status_text.as_deref(),
            _ => None,
        }
    }

    /// Extra response headers (`RAISE SQLSTATE 'PGRST'`, 401's
    /// `WWW-Authenticate`).
    pub fn headers(&self) -> Vec<(String, String)> {
        match self {
            Error::Raised { headers, .. } => headers.clone(),
            Error::Api {
                status: 401,
                code,
                message,
                ..
            } => {
                let value = match *code {
                    "PGRST301" | "PGRST303" => {
                        format!("Bearer error=\"invalid_token\", error_description=\"{message}\"")
                    }
                    _ => "Bearer".to_owned(),
                };
                vec![("WWW-Authenticate".to_owned(), value)]
            }
            Error::Db {
                sqlstate,
                authenticated: false,
                ..
            } if sqlstate == "42501" => vec![("WWW-Authenticate".to_owned(), "Bearer".to_owned())],
            _ => Vec::new(),
        }
    }

    /// From a database error; `RAISE SQLSTATE 'PGRST'` becomes
    /// [`Error::Raised`] (or PGRST121 when its JSON is unusable).
    pub fn from_db(e: &tokio_postgres::error::DbError, authenticated: bool) -> Self {
        let sqlstate = e.code().code().to_owned();
        if sqlstate == "PGRST" {
            return raised(e.message(), e.detail());
        }
        Error::Db {
            sqlstate,
            message: e.message().to_owned(),
            details: e.detail().map(str::to_owned),
            hint: e.hint().map(str::to_owned),
            authenticated,
        }
    }
}

fn raised(message: &str, detail: Option<&str>) -> Error {
    let invalid = || {
        Error::api(500, "PGRST121", "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error")
            .with_details(format!("Invalid JSON value for MESSAGE: '{message}'"))
            .with_hint("MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and optional keys: 'details', 'hint'.")
    };
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(message)
    else {
        return invalid();
    };
    let text = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let (Some(code), Some(msg)) = (text("code"), text("message")) else {
        return invalid();
    };
    let body = PostgrestErrorBody {
        code,
        details: text("details").map(serde_json::Value::String),
        hint: text("hint"),
        message: msg,
    };
    let Some(detail) = detail else {
        return Error::api(500, "PGRST121", "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error")
            .with_details("DETAIL is missing in the RAISE statement")
            .with_hint("DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional key: 'status_text'.");
    };
    let Ok(serde_json::Value::Object(d)) = serde_json::from_str::<serde_json::Value>(detail) else {
        return Error::api(500, "PGRST121", "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error")
            .with_details(format!("Invalid JSON value for DETAIL: '{detail}'"))
            .with_hint("DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional key: 'status_text'.");
    };
    let status = d
        .get("status")
        .and_then(|s| s.as_u64())
        .and_then(|s| u16::try_from(s).ok());
    let headers: Vec<(String, String)> = d
        .get("headers")
        .and_then(|h| h.as_object())
        .map(|h| {
            h.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let status_text = d
        .get("status_text")
        .and_then(|t| t.as_str())
        .map(str::to_owned);
    match status {
        Some(status) if (100..600).contains(&status) => Error::Raised {
            status,
            body: Box::new(body),
            headers,
            status_text,
        },
        _ => Error::api(500, "PGRST121", "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error")
            .with_details(format!("Invalid JSON value for DETAIL: '{detail}'"))
            .with_hint("DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional key: 'status_text'."),
    }
}

/// PostgREST's SQLSTATE -> HTTP status table.
pub fn sqlstate_status(code: &str, authenticated: bool) -> u16 {
    if let Some(custom) = code.strip_prefix("PT") {
        // `PTxyz` sets the status; anything unparsable is a 500.
        return custom
            .parse::<u16>()
            .ok()
            .filter(|s| (100..600).contains(s))
            .unwrap_or(500);
    }
    match code {
        "23503" | "23505" => 409,
        "25006" => 405,
        "42883" => 404,
        "42P01" => 404,
        "42P17" => 500,
        "42501" => {
            if authenticated {
                403
            } else {
                401
            }
        }
        "P0001" => 400,
        _ => match &code[..code.len().min(2)] {
            "08" => 503,
            "09" => 500,
            "0L" | "0P" => 403,
            "25" => 500,
            "28" => 403,
            "2D" | "38" | "39" | "3B" | "40" => 500,
            "53" => 503,
            "54" | "55" | "57" | "58" | "F0" | "HV" | "P0" | "XX" => 500,
            _ => 400,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        assert_eq!(sqlstate_status("23505", true), 409);
        assert_eq!(sqlstate_status("42501", false), 401);
        assert_eq!(sqlstate_status("42501", true), 403);
        assert_eq!(sqlstate_status("PT402", true), 402);
        assert_eq!(sqlstate_status("53300", true), 503);
        assert_eq!(sqlstate_status("22P02", true), 400);
        assert_eq!(sqlstate_status("P0002", true), 500);
    }

    #[test]
    fn raised_errors() {
        let e = raised(
            r#"{"code":"123","message":"ABC","details":"DEF"}"#,
            Some(r#"{"status":332,"headers":{"X-Header":"Value"}}"#),
        );
        assert_eq!(e.status(), 332);
        assert_eq!(e.body().code, "123");
        assert_eq!(
            e.headers(),
            vec![("X-Header".to_owned(), "Value".to_owned())]
        );
        assert_eq!(raised("nope", None).status(), 500);
    }
}
