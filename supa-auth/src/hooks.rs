//! Auth hooks that are Postgres functions
//! (`pg-functions://postgres/{schema}/{function}`), run as Supabase runs
//! them: in the request's transaction, as `supabase_auth_admin`, the event
//! bound as JSON, the function's name quoted.

use deadpool_postgres::GenericClient;
use serde_json::Value;

/// Why a hook failed: the status its `{"error": {"http_code"}}` asked for
/// (none when the call itself failed), and the message.
#[derive(Debug)]
pub(crate) struct HookError {
    pub status: Option<u16>,
    pub message: String,
}

/// The function a `pg-functions://` URI names, quoted; `None` for another
/// scheme.
pub(crate) fn pg_function(uri: &str) -> Option<String> {
    let (schema, function) = uri
        .strip_prefix("pg-functions://postgres/")?
        .split_once('/')?;
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    Some(format!("{}.{}", quote(schema), quote(function)))
}

/// Calls `function` (quoted by [`pg_function`]) with `event`: its answer,
/// unless it fails or answers `{"error": {"http_code", "message"}}`.
pub(crate) async fn call(
    db: &impl GenericClient,
    function: &str,
    event: &Value,
) -> Result<Value, HookError> {
    let row = db
        .query_one(
            &format!("SELECT to_jsonb({function}($1::text::jsonb))::text"),
            &[&event.to_string()],
        )
        .await
        .map_err(|e| HookError {
            status: None,
            message: format!(
                "Error running hook URI: {}",
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_owned())
            ),
        })?;
    let answer: Value = row
        .get::<_, Option<&str>>(0)
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null);
    if let Some(error) = answer.get("error") {
        return Err(HookError {
            status: error["http_code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..600).contains(c)),
            message: error["message"]
                .as_str()
                .unwrap_or("Hook failed")
                .to_owned(),
        });
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    #[test]
    fn function_names_are_quoted() {
        assert_eq!(
            super::pg_function("pg-functions://postgres/public/add_claims").as_deref(),
            Some("\"public\".\"add_claims\"")
        );
        assert_eq!(
            super::pg_function("pg-functions://postgres/a\"b/c").as_deref(),
            Some("\"a\"\"b\".\"c\"")
        );
        assert!(super::pg_function("https://hooks.example.com/x").is_none());
    }
}
