//! The SQL endpoint: run a user's statements in a project's database as the
//! worker admin, and return the rows of the last statement as JSON.
//!
//! Statements go through the simple query protocol (several statements in
//! one string, as the dashboard sends them), so every value arrives as text
//! and is mapped to JSON by its column type: integers and numerics become
//! numbers, timestamps ISO 8601, bytea `\x` hex, arrays JSON arrays, json and
//! jsonb JSON, NULL null, anything else its text.

use std::time::Duration;

use futures_util::TryStreamExt as _;
use serde_json::{Map, Number, Value};
use sqlx::postgres::{PgRow, PgTypeKind};
use sqlx::{
    Column as _, Connection as _, Either, Executor as _, PgConnection, Row as _, TypeInfo as _,
    ValueRef as _,
};
use supa_core::ProjectRef;

use crate::projects::database_name;
use crate::{Error, Tenant};

/// How long one SQL endpoint call may run.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

impl Tenant {
    /// Runs `query` in the project's database; the rows of its last
    /// statement as JSON objects. Sends `NOTIFY pgrst, 'reload schema'` after
    /// statements that may have changed the schema.
    pub async fn run_sql(
        &self,
        project_ref: &ProjectRef,
        query: &str,
        timeout: Duration,
    ) -> Result<Vec<Value>, Error> {
        if query.trim().is_empty() {
            return Err(Error::invalid("query", "must not be empty"));
        }
        let mut conn = self.project_connection(project_ref, timeout).await?;
        let result = last_statement_rows(&mut conn, query).await;
        if result.is_ok() && may_change_schema(query) {
            // Data planes listening on the database reload on NOTIFY;
            // gateways reload when told the project changed.
            conn.execute("NOTIFY pgrst, 'reload schema'").await?;
            self.invalidate(crate::Invalidation::Project(*project_ref));
        }
        conn.close().await.ok();
        result
    }

    /// A connection to the project's database as the worker's admin,
    /// statements limited to `timeout`, times in UTC.
    pub(crate) async fn project_connection(
        &self,
        project_ref: &ProjectRef,
        timeout: Duration,
    ) -> Result<PgConnection, Error> {
        let (worker, status): (String, String) =
            sqlx::query_as("SELECT worker_id, status FROM projects WHERE ref = $1")
                .bind(project_ref.as_str())
                .fetch_optional(&self.db)
                .await?
                .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        crate::projects::refuse_if_paused(project_ref, &status)?;
        let pool = self.worker_pool(&worker).await?;
        let options = pool
            .connect_options()
            .as_ref()
            .clone()
            .database(&database_name(project_ref));
        let mut conn = PgConnection::connect_with(&options).await?;
        let millis = timeout.as_millis().clamp(1, i32::MAX as u128);
        conn.execute(sqlx::AssertSqlSafe(format!(
            "SET statement_timeout = {millis}; SET TIME ZONE 'UTC'; SET DateStyle = 'ISO'; SET bytea_output = 'hex'; SET search_path = \"$user\", public, extensions"
        )))
        .await?;
        Ok(conn)
    }
}

async fn last_statement_rows(conn: &mut PgConnection, query: &str) -> Result<Vec<Value>, Error> {
    let mut stream = sqlx::raw_sql(sqlx::AssertSqlSafe(query.to_owned())).fetch_many(&mut *conn);
    let mut current = Vec::new();
    let mut last = Vec::new();
    loop {
        match stream.try_next().await {
            Ok(Some(Either::Left(_done))) => last = std::mem::take(&mut current),
            Ok(Some(Either::Right(row))) => current.push(row_to_json(&row)),
            Ok(None) => break,
            Err(sqlx::Error::Database(e)) => {
                return Err(Error::Sql {
                    code: e
                        .code()
                        .map(|c| c.into_owned())
                        .unwrap_or_else(|| "XX000".into()),
                    message: e.message().to_owned(),
                    position: e
                        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                        .and_then(|pg| match pg.position() {
                            Some(sqlx::postgres::PgErrorPosition::Original(at)) => Some(at),
                            _ => None,
                        }),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    // A trailing statement that returned rows but no completion is still the last.
    if !current.is_empty() {
        last = current;
    }
    Ok(last)
}

/// Whether the text contains a schema-changing command; a false positive
/// costs one schema reload, a false negative a stale schema.
fn may_change_schema(query: &str) -> bool {
    const DDL: [&str; 8] = [
        "create", "alter", "drop", "grant", "revoke", "comment", "truncate", "rename",
    ];
    query
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|word| DDL.iter().any(|k| word.eq_ignore_ascii_case(k)))
}

fn row_to_json(row: &PgRow) -> Value {
    let mut object = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let value = match row.try_get_raw(i) {
            Ok(raw) if raw.is_null() => Value::Null,
            Ok(raw) => {
                let type_info = raw.type_info();
                let text = raw.as_str().unwrap_or_default();
                match type_info.kind() {
                    PgTypeKind::Array(element) => parse_array(text, element.name()),
                    _ => scalar(text, type_info.name()),
                }
            }
            Err(_) => Value::Null,
        };
        object.insert(column.name().to_owned(), value);
    }
    Value::Object(object)
}

/// One text-format value of type `type_name` as JSON.
fn scalar(text: &str, type_name: &str) -> Value {
    match type_name {
        "BOOL" => Value::Bool(text == "t"),
        "INT2" | "INT4" | "INT8" | "OID" | "NUMERIC" | "FLOAT4" | "FLOAT8" => {
            // NaN and infinities have no JSON number; they stay text.
            serde_json::from_str::<Number>(text)
                .map_or_else(|_| Value::String(text.to_owned()), Value::Number)
        }
        "JSON" | "JSONB" => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        }
        "TIMESTAMPTZ" | "TIMESTAMP" => Value::String(iso_timestamp(text)),
        _ => Value::String(text.to_owned()),
    }
}

/// `2024-05-01 12:00:00.5+00` → `2024-05-01T12:00:00.5+00:00`.
fn iso_timestamp(text: &str) -> String {
    let mut out = text.replacen(' ', "T", 1);
    // A whole-hour offset (`+00`, `-05`) gains its minutes.
    let bytes = out.as_bytes();
    if bytes.len() > 3
        && matches!(bytes[bytes.len() - 3], b'+' | b'-')
        && out.contains('T')
        && !out.ends_with(" BC")
    {
        out.push_str(":00");
    }
    out
}

/// A text-format array literal (`{1,2,NULL}`, `{"a b","c"}`, `{{1},{2}}`).
fn parse_array(text: &str, element_type: &str) -> Value {
    let mut chars = text.chars().peekable();
    // A literal may start with explicit bounds: `[0:1]={...}`.
    if chars.peek() == Some(&'[') {
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
        }
    }
    parse_array_level(&mut chars, element_type).unwrap_or_else(|| Value::String(text.to_owned()))
}

fn parse_array_level(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    element_type: &str,
) -> Option<Value> {
    if chars.next()? != '{' {
        return None;
    }
    let mut items = Vec::new();
    if chars.peek() == Some(&'}') {
        chars.next();
        return Some(Value::Array(items));
    }
    loop {
        let item = match chars.peek()? {
            '{' => parse_array_level(chars, element_type)?,
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '\\' => s.push(chars.next()?),
                        '"' => break,
                        c => s.push(c),
                    }
                }
                scalar(&s, element_type)
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '}' {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                if s == "NULL" {
                    Value::Null
                } else {
                    scalar(s.trim(), element_type)
                }
            }
        };
        items.push(item);
        match chars.next()? {
            ',' => continue,
            '}' => return Some(Value::Array(items)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arrays() {
        assert_eq!(parse_array("{1,2,NULL}", "INT4"), json!([1, 2, null]));
        assert_eq!(parse_array("{}", "TEXT"), json!([]));
        assert_eq!(
            parse_array(r#"{"a b","c\"d",NULL,"NULL"}"#, "TEXT"),
            json!(["a b", "c\"d", null, "NULL"])
        );
        assert_eq!(
            parse_array("{{1,2},{3,4}}", "INT8"),
            json!([[1, 2], [3, 4]])
        );
        assert_eq!(parse_array("[0:1]={t,f}", "BOOL"), json!([true, false]));
        assert_eq!(parse_array("{broken", "INT4"), json!("{broken"));
    }

    #[test]
    fn timestamps_become_iso_8601() {
        assert_eq!(
            iso_timestamp("2024-05-01 12:00:00+00"),
            "2024-05-01T12:00:00+00:00"
        );
        assert_eq!(
            iso_timestamp("2024-05-01 12:00:00.25+05:30"),
            "2024-05-01T12:00:00.25+05:30"
        );
        assert_eq!(iso_timestamp("2024-05-01 12:00:00"), "2024-05-01T12:00:00");
        assert_eq!(iso_timestamp("infinity"), "infinity");
    }

    #[test]
    fn ddl_detection() {
        assert!(may_change_schema("create table t (id int)"));
        assert!(may_change_schema("select 1; ALTER TABLE t ADD c int"));
        assert!(!may_change_schema("select created_at from t"));
        assert!(!may_change_schema("insert into t values (1)"));
    }
}
