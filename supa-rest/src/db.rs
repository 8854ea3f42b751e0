//! Connections and the per-request transaction.
//!
//! Values are sent as untyped text parameters (`unknown`, text format), so
//! PostgreSQL infers each one's type from where it is used, exactly as it
//! does for PostgREST's literals. Each connection keeps the statements it
//! has run prepared (the types PostgreSQL inferred become the statement's),
//! so a repeated request shape is parsed and planned once per connection,
//! not once per request: with the request's transaction around it, that
//! halves what the database spends on a single-row read.

use bytes::BytesMut;
use deadpool_postgres::{ClientWrapper, Pool};
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Row, Statement};

use crate::Error;
use crate::sql::Sql;

/// A parameter sent as text with type `unknown`.
#[derive(Debug)]
struct Untyped<'a>(&'a str);

impl ToSql for Untyped<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// A bounded pool of connections to one database.
pub fn pool(config: tokio_postgres::Config, max_size: usize) -> Result<Pool, Error> {
    supa_db::pool(config, max_size).map_err(|e| unavailable(&e))
}

/// PGRST000/503: the database cannot be reached.
pub fn unavailable(details: &str) -> Error {
    Error::api(
        503,
        "PGRST000",
        "Database connection error. Retrying the connection.",
    )
    .with_details(details.to_owned())
}

/// Maps a driver error: database errors keep their SQLSTATE.
pub fn map_error(e: &tokio_postgres::Error, authenticated: bool) -> Error {
    match e.as_db_error() {
        Some(db) => Error::from_db(db, authenticated),
        None => unavailable(&e.to_string()),
    }
}

/// The most statements a connection keeps prepared. Request shapes are
/// few in an application but unbounded in what a client may send (each
/// select list, filter set and order is its own text), so past this the
/// connection's cache starts again: the backend's memory stays bounded.
const PREPARED_PER_CONNECTION: usize = 256;

/// Starts `client`'s statement cache again when it has grown past its
/// bound (checked once per request: counting the cache walks it).
pub fn bound_prepared(client: &ClientWrapper) {
    if client.statement_cache.size() >= PREPARED_PER_CONNECTION {
        client.statement_cache.clear();
    }
}

/// Most parameters a statement is prepared with without allocating their
/// types.
const UNKNOWN: [Type; 32] = [const { Type::UNKNOWN }; 32];

/// `sql`'s parameter types: all `unknown`.
fn untyped(sql: &Sql) -> std::borrow::Cow<'static, [Type]> {
    match UNKNOWN.get(..sql.params.len()) {
        Some(types) => types.into(),
        None => vec![Type::UNKNOWN; sql.params.len()].into(),
    }
}

/// The connection's prepared statement for `sql`'s text, prepared now if
/// it is new (a round trip; none when it is cached). `None` when it cannot
/// be prepared here: statements are prepared before the request's
/// transaction, under the login's settings, so a name only the request's
/// `search_path` resolves fails, and so does a statement in error; such a
/// statement is sent unnamed in its place in the transaction, where it
/// runs, or fails, as it would have.
pub async fn prepare(client: &ClientWrapper, sql: &Sql) -> Option<Statement> {
    client
        .prepare_typed_cached(&sql.text, &untyped(sql))
        .await
        .ok()
}

/// Runs `sql`, as `prepared` when given, else unnamed; all rows. Sends on
/// its first poll: statements started together go out in that order.
pub async fn execute(
    client: &ClientWrapper,
    sql: &Sql,
    prepared: Option<&Statement>,
    authenticated: bool,
) -> Result<Vec<Row>, Error> {
    let values: Vec<Untyped<'_>> = sql.params.iter().map(|p| Untyped(p)).collect();
    let Some(statement) = prepared else {
        let params: Vec<(&(dyn ToSql + Sync), Type)> = values
            .iter()
            .map(|v| (v as &(dyn ToSql + Sync), Type::UNKNOWN))
            .collect();
        return client
            .query_typed(&sql.text, &params)
            .await
            .map_err(|e| map_error(&e, authenticated));
    };
    let params: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    client.query(statement, &params).await.map_err(|e| {
        // A statement prepared before a schema change the cache was not
        // told of keeps the parameter types inferred then (or a result
        // type that changed): it goes, the next request prepares it again.
        if e.code().is_some_and(|c| {
            c.code().starts_with("42")
                || *c == tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED
        }) {
            client.statement_cache.remove(&sql.text, &untyped(sql));
        }
        map_error(&e, authenticated)
    })
}

/// Prepares (or finds) then runs `sql`; all rows.
pub async fn query(
    client: &ClientWrapper,
    sql: &Sql,
    authenticated: bool,
) -> Result<Vec<Row>, Error> {
    let prepared = prepare(client, sql).await;
    execute(client, sql, prepared.as_ref(), authenticated).await
}

/// A column read as text whatever its type (EXPLAIN answers in `json`).
struct AnyText(String);

/// A column's bytes as PostgreSQL sends them in binary, whatever its type:
/// what a media type handler's answer is (a jsonb starts with its version
/// byte, as PostgREST sends it).
struct AnyBytes(Vec<u8>);

impl<'a> tokio_postgres::types::FromSql<'a> for AnyBytes {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(AnyBytes(raw.to_vec()))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

impl<'a> tokio_postgres::types::FromSql<'a> for AnyText {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(AnyText(String::from_utf8_lossy(raw).into_owned()))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// `EXPLAIN (...) sql` (`prefix` names the options): the plan's text,
/// its rows joined by newlines (the JSON format is one row).
pub async fn explain(
    client: &ClientWrapper,
    prefix: &str,
    sql: &Sql,
    authenticated: bool,
) -> Result<String, Error> {
    let explain = Sql {
        text: format!("{prefix}{}", sql.text),
        params: sql.params.clone(),
    };
    let rows = query(client, &explain, authenticated).await?;
    let mut lines = Vec::with_capacity(rows.len());
    for row in &rows {
        let line: AnyText = row.try_get(0).map_err(|e| unavailable(&e.to_string()))?;
        lines.push(line.0);
    }
    Ok(lines.join("\n"))
}

/// The planner's row estimate for `sql` (`Prefer: count=planned`).
pub async fn planned_rows(
    client: &ClientWrapper,
    sql: &Sql,
    authenticated: bool,
) -> Result<Option<i64>, Error> {
    let explain = Sql {
        text: format!("EXPLAIN (FORMAT JSON) {}", sql.text),
        params: sql.params.clone(),
    };
    let rows = query(client, &explain, authenticated).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let text: AnyText = row.try_get(0).map_err(|e| unavailable(&e.to_string()))?;
    let plan: serde_json::Value = serde_json::from_str(&text.0).unwrap_or_default();
    Ok(plan[0]["Plan"]["Plan Rows"].as_f64().map(|r| r as i64))
}

/// The one row every main statement returns.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Total rows without range (exact count), if asked.
    pub total: Option<i64>,
    /// Rows in this page / affected.
    pub page_total: i64,
    /// The body.
    pub body: String,
    /// `Location` query of an inserted row.
    pub location: Option<String>,
    /// Rows that existed before an upsert.
    pub existing: Option<i64>,
    /// `response.headers` GUC (JSON array of objects).
    pub response_headers: Option<String>,
    /// `response.status` GUC.
    pub response_status: Option<String>,
    /// The body when it is not text (a media type handler's answer).
    pub raw_body: Option<Vec<u8>>,
}

impl Outcome {
    /// Reads the main statement's row.
    pub fn from_row(row: &Row) -> Self {
        Self {
            total: row.try_get("total").ok().flatten(),
            page_total: row.try_get("page_total").unwrap_or(0),
            body: row
                .try_get::<_, Option<String>>("body")
                .ok()
                .flatten()
                .unwrap_or_default(),
            location: row.try_get("location").ok().flatten(),
            existing: row.try_get("existing").ok().flatten(),
            response_headers: row.try_get("response_headers").ok().flatten(),
            response_status: row.try_get("response_status").ok().flatten(),
            raw_body: row
                .columns()
                .iter()
                .find(|c| c.name() == "body")
                .filter(|c| *c.type_() != Type::TEXT)
                .and_then(|_| row.try_get::<_, Option<AnyBytes>>("body").ok().flatten())
                .map(|b| b.0),
        }
    }
}
