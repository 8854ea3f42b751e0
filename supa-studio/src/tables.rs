//! The table editor. Schemas, tables, columns, keys and foreign keys come
//! from the metadata API (postgres-meta's `/schemas` and `/tables`, served
//! in process); rows are read and written through the project's data plane
//! at the gateway with a secret key (the service role), exactly as an
//! app's server would, so RLS, grants and the data plane's own checks apply
//! as they do for everyone.

use std::collections::HashMap;

use axum::Form;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};
use supa_core::ProjectRef;

use crate::Studio;
use crate::gateway::{Answer, Problem, call, enc};
use crate::pages::{
    ProjectParam, bad_form, csrf_field, failed, page, problem_page, project_nav, refused,
};
use crate::session::Session;

/// Rows per page.
const PAGE: usize = 50;
/// Filter operators offered (PostgREST's spelling).
const OPERATORS: [&str; 8] = ["eq", "neq", "gt", "gte", "lt", "lte", "ilike", "is"];

async fn meta(studio: &Studio, project: &ProjectRef, path: &str) -> Result<Value, Problem> {
    let request = Request::get(path)
        .body(Body::empty())
        .expect("a static request");
    let response = supa_meta::serve(studio.inner.meta.clone(), *project, request).await;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .map_err(|e| Problem(e.to_string()))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| Problem(e.to_string()))?;
    if !status.is_success() {
        let message = value
            .get("error")
            .or(value.get("message"))
            .and_then(Value::as_str);
        return Err(Problem(
            message.unwrap_or("the metadata API failed").to_owned(),
        ));
    }
    Ok(value)
}

/// The project's REST API in `schema`.
async fn rest(
    studio: &Studio,
    project: &ProjectRef,
    schema: &str,
    method: reqwest::Method,
    path_and_query: &str,
    body: Option<&Value>,
) -> Result<Answer, Problem> {
    let profile = if method == reqwest::Method::GET {
        "Accept-Profile"
    } else {
        "Content-Profile"
    };
    let headers = [(profile, schema), ("Prefer", "count=exact, return=minimal")];
    call(
        studio,
        project,
        method,
        &format!("rest/v1/{path_and_query}"),
        &headers,
        body,
    )
    .await
}

#[derive(Deserialize)]
pub(crate) struct SchemaQuery {
    schema: Option<String>,
}

/// Schemas, the tables of one, and a form to create a table.
pub(crate) async fn list(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Query(q): Query<SchemaQuery>,
) -> Response {
    let project = match studio.inner.tenant.get_project(&project_ref).await {
        Ok(p) => p,
        Err(e) => return failed(&session, e),
    };
    let schema = q.schema.unwrap_or_else(|| "public".into());
    let data = async {
        let schemas = meta(
            &studio,
            &project_ref,
            "/schemas?include_system_schemas=false",
        )
        .await?;
        // The list shows no columns: leaving them out keeps a schema of
        // 1,000 tables one cheap catalog read.
        let tables = meta(
            &studio,
            &project_ref,
            &format!(
                "/tables?included_schemas={}&include_columns=false",
                enc(&schema)
            ),
        )
        .await?;
        Ok::<_, Problem>((schemas, tables))
    }
    .await;
    let body = html! {
        h1 { (project.name) }
        (project_nav(&project_ref, "tables"))
        @match &data {
            Err(Problem(p)) => p.error role="alert" { (p) },
            Ok((schemas, tables)) => {
                form.row method="get" action={ "/projects/" (project_ref) "/tables" } {
                    label for="schema" { "Schema" }
                    select id="schema" name="schema" {
                        @for s in schemas.as_array().into_iter().flatten() {
                            @let name = s["name"].as_str().unwrap_or("");
                            option value=(name) selected[name == schema] { (name) }
                        }
                    }
                    button.secondary type="submit" { "Show" }
                }
                h2 { "Tables in " code { (schema) } }
                @let tables = tables.as_array().cloned().unwrap_or_default();
                @if tables.is_empty() { p { "No tables yet." } }
                ul.plain.tables {
                    @for t in &tables {
                        @let name = t["name"].as_str().unwrap_or("");
                        li {
                            a href={ "/projects/" (project_ref) "/tables/" (enc(&schema)) "/" (enc(name)) } { (name) }
                            " " span.hint { "~" (t["live_rows_estimate"].as_i64().unwrap_or(0)) " rows" }
                            @if t["rls_enabled"].as_bool() == Some(true) { " " span.hint { "· RLS" } }
                        }
                    }
                }
            }
        }
        h2 id="new-table" { "New table" }
        form.card method="post" action={ "/projects/" (project_ref) "/tables" } {
            (csrf_field(&session))
            input type="hidden" name="schema" value=(schema);
            label for="table-name" { "Table name" }
            input id="table-name" name="name" required maxlength="63" pattern="[A-Za-z_][A-Za-z0-9_]*";
            label for="columns" { "Columns, one per line: name type" }
            textarea id="columns" name="columns" rows="4" spellcheck="false" { "title text\ncreated_at timestamptz default now()" }
            p.hint { "An " code { "id bigint" } " identity primary key is added first." }
            label.check for="rls" { input id="rls" type="checkbox" name="rls" value="on" checked; " Enable row level security" }
            button type="submit" { "Create table" }
        }
    };
    page(&format!("Tables · {}", project.name), Some(&session), body)
}

#[derive(Deserialize)]
pub(crate) struct NewTable {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    schema: String,
    name: String,
    #[serde(default)]
    columns: String,
    #[serde(default)]
    rls: Option<String>,
}

/// `"name"` with inner quotes doubled: any name is safe as an identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One column line (`name type [default ...]`) as SQL, or why not. The
/// type and default are checked against a narrow grammar: letters,
/// digits, spaces, `_`, `(`, `)`, `,`, `[]` and a function call default,
/// nothing that could end the statement.
fn column_sql(line: &str) -> Result<String, String> {
    let mut parts = line.trim().splitn(2, char::is_whitespace);
    let name = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default().trim();
    if name.is_empty() || rest.is_empty() {
        return Err(format!("{line:?}: write a name and a type"));
    }
    let safe = rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " _(),[]".contains(c));
    if !safe {
        return Err(format!(
            "{line:?}: the type may hold letters, digits, spaces and _(),[] only"
        ));
    }
    Ok(format!("{} {rest}", ident(name)))
}

pub(crate) async fn create(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Form(form): Form<NewTable>,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return bad_form();
    }
    let mut columns = vec!["\"id\" bigint generated by default as identity primary key".to_owned()];
    for line in form.columns.lines().filter(|l| !l.trim().is_empty()) {
        match column_sql(line) {
            Ok(sql) => columns.push(sql),
            Err(why) => return refused(StatusCode::BAD_REQUEST, &why),
        }
    }
    let table = format!("{}.{}", ident(&form.schema), ident(form.name.trim()));
    let mut sql = format!("create table {table} ({});", columns.join(", "));
    if form.rls.is_some() {
        sql.push_str(&format!(" alter table {table} enable row level security;"));
    }
    match studio
        .inner
        .tenant
        .run_sql(&project_ref, &sql, supa_tenant::DEFAULT_STATEMENT_TIMEOUT)
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/projects/{project_ref}/tables/{}/{}",
            enc(&form.schema),
            enc(form.name.trim())
        ))
        .into_response(),
        Err(e) => failed(&session, e),
    }
}

/// The table's metadata: its id from the schema's list without columns,
/// then `/tables/{id}` with columns, keys and relationships of that one.
async fn table_meta(
    studio: &Studio,
    project: &ProjectRef,
    schema: &str,
    name: &str,
) -> Result<Value, Problem> {
    let tables = meta(
        studio,
        project,
        &format!(
            "/tables?included_schemas={}&include_columns=false",
            enc(schema)
        ),
    )
    .await?;
    let id = tables
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == name))
        .and_then(|t| t["id"].as_i64())
        .ok_or_else(|| Problem(format!("there is no table {schema}.{name}")))?;
    meta(studio, project, &format!("/tables/{id}")).await
}

#[derive(Deserialize, Default)]
pub(crate) struct Browse {
    order: Option<String>,
    desc: Option<String>,
    column: Option<String>,
    op: Option<String>,
    value: Option<String>,
    page: Option<usize>,
    edit: Option<String>,
}

/// Rows, paged, sorted and filtered; insert, edit and delete.
pub(crate) async fn table(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Path((_, schema, name)): Path<(String, String, String)>,
    Query(q): Query<Browse>,
) -> Response {
    let project = match studio.inner.tenant.get_project(&project_ref).await {
        Ok(p) => p,
        Err(e) => return failed(&session, e),
    };
    let base = format!(
        "/projects/{project_ref}/tables/{}/{}",
        enc(&schema),
        enc(&name)
    );
    let loaded = async {
        let t = table_meta(&studio, &project_ref, &schema, &name).await?;
        let columns: Vec<String> = t["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect();
        let mut query = format!(
            "{}?select=*&limit={PAGE}&offset={}",
            enc(&name),
            q.page.unwrap_or(0) * PAGE
        );
        if let Some(order) = q
            .order
            .as_deref()
            .filter(|o| columns.iter().any(|c| c == o))
        {
            let dir = if q.desc.is_some() { "desc" } else { "asc" };
            query.push_str(&format!("&order={}.{dir}", enc(order)));
        }
        if let (Some(column), Some(op), Some(value)) = (&q.column, &q.op, &q.value)
            && columns.contains(column)
            && OPERATORS.contains(&op.as_str())
            && !value.is_empty()
        {
            query.push_str(&format!("&{}={}.{}", enc(column), op, enc(value)));
        }
        let rows = rest(
            &studio,
            &project_ref,
            &schema,
            reqwest::Method::GET,
            &query,
            None,
        )
        .await?;
        Ok::<_, Problem>((t, columns, rows))
    }
    .await;
    let body = match &loaded {
        Err(Problem(p)) => html! { p.error role="alert" { (p) } },
        Ok((t, columns, rows)) => {
            table_body(&session, &base, &project_ref, &schema, t, columns, rows, &q)
        }
    };
    let body = html! {
        h1 { (project.name) }
        (project_nav(&project_ref, "tables"))
        p { a href={ "/projects/" (project_ref) "/tables?schema=" (enc(&schema)) } { "Tables" } " / " code { (schema) "." (name) } }
        (body)
    };
    page(&format!("{name} · {}", project.name), Some(&session), body)
}

#[allow(clippy::too_many_arguments)]
fn table_body(
    session: &Session,
    base: &str,
    project_ref: &ProjectRef,
    schema: &str,
    t: &Value,
    columns: &[String],
    rows: &Answer,
    q: &Browse,
) -> Markup {
    let key = single_primary_key(t);
    // Foreign keys this table holds: column -> (schema, table, column).
    let links: HashMap<String, (String, String, String)> = t["relationships"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["source_table_name"] == t["name"] && r["source_schema"] == t["schema"])
        .filter_map(|r| {
            Some((
                r["source_column_name"].as_str()?.to_owned(),
                (
                    r["target_table_schema"].as_str()?.to_owned(),
                    r["target_table_name"].as_str()?.to_owned(),
                    r["target_column_name"].as_str()?.to_owned(),
                ),
            ))
        })
        .collect();
    let total = rows
        .range
        .as_deref()
        .and_then(|r| r.rsplit('/').next())
        .and_then(|n| n.parse::<usize>().ok());
    let page_no = q.page.unwrap_or(0);
    let filter = |extra: &str| {
        let mut s = String::new();
        if let (Some(c), Some(op), Some(v)) = (&q.column, &q.op, &q.value) {
            s.push_str(&format!(
                "&column={}&op={}&value={}",
                enc(c),
                enc(op),
                enc(v)
            ));
        }
        if let Some(o) = &q.order {
            s.push_str(&format!("&order={}", enc(o)));
            if q.desc.is_some() {
                s.push_str("&desc=1");
            }
        }
        format!("{base}?{}{s}", extra)
    };
    let list = rows.body.as_array().cloned().unwrap_or_default();
    let editing = q.edit.as_deref();
    html! {
        form.row method="get" action=(base) aria-label="Filter rows" {
            label for="f-column" { "Column" }
            select id="f-column" name="column" { @for c in columns { option value=(c) selected[q.column.as_deref() == Some(c.as_str())] { (c) } } }
            label for="f-op" { "Operator" }
            select id="f-op" name="op" { @for op in OPERATORS { option value=(op) selected[q.op.as_deref() == Some(op)] { (op) } } }
            label for="f-value" { "Value" }
            input id="f-value" name="value" value=(q.value.clone().unwrap_or_default());
            button.secondary type="submit" { "Filter" }
            a href=(base) { "Clear" }
        }
        p.hint id="row-count" { @if let Some(n) = total { (n) " rows" } " · HTTP " (rows.status) }
        div.scroll {
            table.grid id="rows" {
                caption.visually-hidden { "Rows of " (schema) "." (t["name"].as_str().unwrap_or("")) }
                thead { tr {
                    @for c in columns {
                        @let desc = q.order.as_deref() == Some(c.as_str()) && q.desc.is_none();
                        th scope="col" { a href={ (base) "?order=" (enc(c)) @if desc { "&desc=1" } } aria-label={ "Sort by " (c) } { (c) } }
                    }
                    @if key.is_some() { th scope="col" { span.visually-hidden { "Actions" } } }
                } }
                tbody {
                    @for row in &list {
                        @let id = key.as_deref().map(|k| cell_text(row.get(k)));
                        @if editing.is_some() && editing == id.as_deref() {
                            tr.editing { td colspan=(columns.len() + 1) { (row_form(session, base, columns, Some(row), key.as_deref())) } }
                        } @else {
                            tr {
                                @for c in columns {
                                    @let text = cell_text(row.get(c.as_str()));
                                    td {
                                        @match (links.get(c), row.get(c.as_str())) {
                                            (Some((s, tname, tcol)), Some(v)) if !v.is_null() => {
                                                a href={ "/projects/" (project_ref) "/tables/" (enc(s)) "/" (enc(tname)) "?column=" (enc(tcol)) "&op=eq&value=" (enc(&text)) } { (text) }
                                            }
                                            _ => (text),
                                        }
                                    }
                                }
                                @if let Some(id) = &id {
                                    td.actions {
                                        a.button.secondary href={ (filter(&format!("page={page_no}&edit={}", enc(id)))) } aria-label={ "Edit row " (id) } { "Edit" }
                                        form.inline method="post" action={ (base) "/delete" } {
                                            (csrf_field(session))
                                            input type="hidden" name="key" value=(id);
                                            button.danger type="submit" aria-label={ "Delete row " (id) } { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav.row aria-label="Pages" {
            @if page_no > 0 { a href=(filter(&format!("page={}", page_no - 1))) { "Previous" } }
            span { "Page " (page_no + 1) }
            @if total.is_none_or(|n| (page_no + 1) * PAGE < n) && list.len() == PAGE { a href=(filter(&format!("page={}", page_no + 1))) { "Next" } }
        }
        @if key.is_none() { p.hint { "Rows can be edited and deleted here when the table has a one-column primary key." } }
        h2 id="insert" { "Insert a row" }
        (row_form(session, base, columns, None, key.as_deref()))
    }
}

/// A form for a new row, or for editing `row`; empty fields are left to
/// their defaults (insert) or unchanged (edit).
fn row_form(
    session: &Session,
    base: &str,
    columns: &[String],
    row: Option<&Value>,
    key: Option<&str>,
) -> Markup {
    let prefix = if row.is_some() { "e-" } else { "i-" };
    html! {
        form.card.wide method="post" action={ (base) @if row.is_some() { "/update" } @else { "/insert" } } {
            (csrf_field(session))
            @if let (Some(row), Some(k)) = (row, key) { input type="hidden" name="_key" value=(cell_text(row.get(k))); }
            @for c in columns {
                label for={ (prefix) (c) } { (c) }
                input id={ (prefix) (c) } name=(c) value=(row.map(|r| cell_text(r.get(c.as_str()))).unwrap_or_default());
            }
            button type="submit" { @if row.is_some() { "Save row" } @else { "Insert row" } }
        }
    }
}

fn single_primary_key(t: &Value) -> Option<String> {
    match t["primary_keys"].as_array().map(Vec::as_slice) {
        Some([only]) => only["name"].as_str().map(str::to_owned),
        _ => None,
    }
}

fn cell_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A row change: the form's fields, with `_csrf` and `_key` apart.
pub(crate) async fn change(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Path((_, schema, name, action)): Path<(String, String, String, String)>,
    Form(mut fields): Form<HashMap<String, String>>,
) -> Response {
    if !session.csrf_ok(fields.get("_csrf").map_or("", String::as_str)) {
        return bad_form();
    }
    fields.remove("_csrf");
    let base = format!(
        "/projects/{project_ref}/tables/{}/{}",
        enc(&schema),
        enc(&name)
    );
    let outcome = async {
        let t = table_meta(&studio, &project_ref, &schema, &name).await?;
        let key_filter = |key: &str| {
            single_primary_key(&t)
                .map(|k| format!("{}?{}=eq.{}", enc(&name), enc(&k), enc(key)))
                .ok_or_else(|| Problem("the table has no one-column primary key".into()))
        };
        let known: Vec<&str> = t["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        let values: Map<String, Value> = fields
            .iter()
            .filter(|(k, v)| known.contains(&k.as_str()) && !v.is_empty())
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let body = Value::Object(values);
        let (method, target, body) = match action.as_str() {
            "insert" => (reqwest::Method::POST, enc(&name), Some(&body)),
            "update" => (
                reqwest::Method::PATCH,
                key_filter(fields.get("_key").map_or("", String::as_str))?,
                Some(&body),
            ),
            "delete" => (
                reqwest::Method::DELETE,
                key_filter(fields.get("key").map_or("", String::as_str))?,
                None,
            ),
            _ => return Err(Problem("no such change".into())),
        };
        rest(&studio, &project_ref, &schema, method, &target, body).await
    }
    .await;
    match outcome {
        Ok(_) => Redirect::to(&base).into_response(),
        Err(Problem(p)) => problem_page(&session, &base, &p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_types_are_narrow() {
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(column_sql("title text").unwrap(), "\"title\" text");
        assert_eq!(
            column_sql("created_at timestamptz default now()").unwrap(),
            "\"created_at\" timestamptz default now()"
        );
        assert_eq!(
            column_sql("price numeric(10,2)").unwrap(),
            "\"price\" numeric(10,2)"
        );
        assert!(column_sql("x int; drop table t").is_err());
        assert!(column_sql("x text default 'a'").is_err());
        assert!(column_sql("lonely").is_err());
    }
}
