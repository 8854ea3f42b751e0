use serde::{Deserialize, Serialize};

/// The JSON body Supabase's gateway answers with when it refuses a request
/// before the data plane sees it: `{"message": ..., "hint": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayErrorBody {
    /// What went wrong.
    pub message: String,
    /// What to do about it; omitted when there is nothing useful to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl GatewayErrorBody {
    /// A body with a message and a hint.
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// A body with a message only.
    pub fn without_hint(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    /// 401 for a request carrying no key at all.
    pub fn no_api_key() -> Self {
        Self::new(
            "No API key found in request",
            "No `apikey` request header or url param was found.",
        )
    }

    /// 401 for a key that is malformed, wrong, revoked or of another project.
    /// Deliberately the same body for all of them.
    pub fn invalid_api_key() -> Self {
        Self::new(
            "Invalid API key",
            "Double check your Supabase `anon` or `service_role` API key.",
        )
    }

    /// The body serialized as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("string fields always serialize")
    }
}

/// PostgREST's error body: `{"code", "details", "hint", "message"}`, with
/// `details` and `hint` as JSON `null` when absent, as PostgREST sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgrestErrorBody {
    /// A SQLSTATE (`23505`) or a PostgREST code (`PGRST116`).
    pub code: String,
    /// Extra detail, or null: mostly a string, an array where PostgREST
    /// lists candidates (PGRST201's relationships).
    pub details: Option<serde_json::Value>,
    /// A suggestion, or null.
    pub hint: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl PostgrestErrorBody {
    /// A body with a code and message, `details` and `hint` null.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            details: None,
            hint: None,
            message: message.into(),
        }
    }

    /// Sets `details`.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(serde_json::Value::String(details.into()));
        self
    }

    /// Sets `hint`.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The body serialized as JSON, keys in PostgREST's order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("string fields always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_bodies_match_supabase() {
        assert_eq!(
            GatewayErrorBody::no_api_key().to_json(),
            r#"{"message":"No API key found in request","hint":"No `apikey` request header or url param was found."}"#
        );
        assert_eq!(
            GatewayErrorBody::invalid_api_key().to_json(),
            r#"{"message":"Invalid API key","hint":"Double check your Supabase `anon` or `service_role` API key."}"#
        );
        assert_eq!(
            GatewayErrorBody::without_hint("no").to_json(),
            r#"{"message":"no"}"#
        );
    }

    #[test]
    fn postgrest_body_keeps_nulls() {
        let b = PostgrestErrorBody::new(
            "PGRST116",
            "Cannot coerce the result to a single JSON object",
        )
        .with_details("The result contains 0 rows");
        assert_eq!(
            b.to_json(),
            r#"{"code":"PGRST116","details":"The result contains 0 rows","hint":null,"message":"Cannot coerce the result to a single JSON object"}"#
        );
    }
}
