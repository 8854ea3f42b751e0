//! The SQL editor: run a query in the project's database as its admin,
//! see the rows as a grid or the error with where it points, go back to
//! the history and to saved snippets.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use supa_core::ProjectRef;
use supa_tenant::DEFAULT_STATEMENT_TIMEOUT;

use crate::Studio;
use crate::pages::{ProjectParam, bad_form, csrf_field, failed, page, project_nav};
use crate::session::Session;

/// Rows shown in the grid; the rest are counted.
const GRID_ROWS: usize = 500;

#[derive(Deserialize, Default)]
pub(crate) struct Load {
    snippet: Option<String>,
    history: Option<i64>,
}

pub(crate) async fn editor(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Query(load): Query<Load>,
) -> Response {
    render(&studio, &session, &project_ref, Prefill::Load(load), None).await
}

#[derive(Deserialize)]
pub(crate) struct Run {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    query: String,
    /// `save` from the "Save as snippet" button, else run.
    #[serde(default)]
    action: String,
    #[serde(default)]
    save_as: String,
}

pub(crate) async fn run(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Form(form): Form<Run>,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return bad_form();
    }
    let tenant = &studio.inner.tenant;
    if form.action == "save" {
        return match tenant
            .save_snippet(&project_ref, &form.save_as, &form.query)
            .await
        {
            Ok(s) => {
                let note = format!("Saved as snippet {}.", s.name);
                render(
                    &studio,
                    &session,
                    &project_ref,
                    Prefill::Text(form.query),
                    Some(Outcome::Note(note)),
                )
                .await
            }
            Err(e) => failed(&session, e),
        };
    }
    let outcome = match tenant
        .run_sql(&project_ref, &form.query, DEFAULT_STATEMENT_TIMEOUT)
        .await
    {
        Ok(rows) => {
            let _ = tenant
                .record_sql(&project_ref, &form.query, Ok(rows.len()))
                .await;
            Outcome::Rows(rows)
        }
        Err(e) => {
            let _ = tenant
                .record_sql(&project_ref, &form.query, Err(&e.to_string()))
                .await;
            if e.status() == 404 {
                return failed(&session, e);
            }
            Outcome::Error(e)
        }
    };
    let status = match outcome {
        Outcome::Error(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let response = render(
        &studio,
        &session,
        &project_ref,
        Prefill::Text(form.query),
        Some(outcome),
    )
    .await;
    (status, response).into_response()
}

enum Prefill {
    Load(Load),
    Text(String),
}

enum Outcome {
    Rows(Vec<Value>),
    Error(supa_tenant::Error),
    Note(String),
}

async fn render(
    studio: &Studio,
    session: &Session,
    project_ref: &ProjectRef,
    prefill: Prefill,
    outcome: Option<Outcome>,
) -> Response {
    let tenant = &studio.inner.tenant;
    let (project, history, snippets) = match tokio::try_join!(
        tenant.get_project(project_ref),
        tenant.sql_history(project_ref),
        tenant.snippets(project_ref)
    ) {
        Ok(all) => all,
        Err(e) => return failed(session, e),
    };
    let text = match prefill {
        Prefill::Text(t) => t,
        Prefill::Load(load) => {
            let from_snippet = load.snippet.and_then(|id| {
                snippets
                    .iter()
                    .find(|s| s.id == id)
                    .map(|s| s.query.clone())
            });
            let from_history = load
                .history
                .and_then(|id| history.iter().find(|h| h.id == id).map(|h| h.query.clone()));
            from_snippet.or(from_history).unwrap_or_default()
        }
    };
    let base = format!("/projects/{project_ref}/sql");
    let body = html! {
        h1 { (project.name) }
        (project_nav(project_ref, "sql"))
        div.sql {
            section aria-labelledby="editor" {
                h2 id="editor" { "SQL editor" }
                form method="post" action=(base) {
                    (csrf_field(session))
                    label for="query" { "SQL" }
                    textarea id="query" name="query" rows="10" spellcheck="false" required { (text) }
                    div.row {
                        button type="submit" name="action" value="run" { "Run" }
                        label for="save-as" { "Snippet name" }
                        input id="save-as" name="save_as" maxlength="100";
                        button.secondary type="submit" name="action" value="save" { "Save as snippet" }
                    }
                }
                @match &outcome {
                    Some(Outcome::Rows(rows)) => (grid(rows)),
                    Some(Outcome::Error(e)) => (error_box(e, &text)),
                    Some(Outcome::Note(n)) => p.ok role="status" { (n) },
                    None => {},
                }
            }
            aside {
                section aria-labelledby="snippets" {
                    h2 id="snippets" { "Snippets" }
                    @if snippets.is_empty() { p.hint { "None saved yet." } }
                    ul.plain { @for s in &snippets { li { a href={ (base) "?snippet=" (s.id) } { (s.name) } } } }
                }
                section aria-labelledby="history" {
                    h2 id="history" { "History" }
                    @if history.is_empty() { p.hint { "Nothing run yet." } }
                    ol.plain.history {
                        @for h in &history {
                            li {
                                a href={ (base) "?history=" (h.id) } { code { (first_line(&h.query)) } }
                                " "
                                @if h.error.is_some() { span.bad { "failed" } } @else { span.hint { (h.row_count.unwrap_or(0)) " rows" } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&format!("SQL · {}", project.name), Some(session), body)
}

fn first_line(query: &str) -> String {
    let line = query.trim().lines().next().unwrap_or("");
    let mut short: String = line.chars().take(60).collect();
    if line.chars().count() > 60 || query.trim().lines().count() > 1 {
        short.push('…');
    }
    short
}

fn grid(rows: &[Value]) -> Markup {
    let columns: Vec<&String> = rows
        .first()
        .and_then(Value::as_object)
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    html! {
        p.ok role="status" id="result-summary" { "Success. " (rows.len()) " row" @if rows.len() != 1 { "s" } "." }
        @if !columns.is_empty() {
            div.scroll {
                table.grid id="result" {
                    caption.visually-hidden { "Query result" }
                    thead { tr { @for c in &columns { th scope="col" { (c) } } } }
                    tbody {
                        @for row in rows.iter().take(GRID_ROWS) {
                            tr { @for c in &columns { td { (cell(row.get(c.as_str()))) } } }
                        }
                    }
                }
            }
            @if rows.len() > GRID_ROWS { p.hint { "Showing the first " (GRID_ROWS) " rows." } }
        }
    }
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "NULL".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The error, and when PostgreSQL says where, the line it points into with
/// a caret under the character.
fn error_box(e: &supa_tenant::Error, query: &str) -> Markup {
    let at = match e {
        supa_tenant::Error::Sql {
            position: Some(p), ..
        } => locate(query, *p),
        _ => None,
    };
    html! {
        div.error-box role="alert" id="sql-error" {
            p.error { (e.to_string()) }
            @if let Some((line_no, line, column)) = at {
                p { "At line " (line_no) ", column " (column) ":" }
                pre.pointer { (line) "\n" (" ".repeat(column.saturating_sub(1))) "^" }
            }
        }
    }
}

/// The 1-based line number, the line and the 1-based column of the
/// `position`-th character (1-based, as PostgreSQL counts).
fn locate(query: &str, position: usize) -> Option<(usize, String, usize)> {
    let mut seen = 0;
    for (i, line) in query.split('\n').enumerate() {
        let len = line.chars().count() + 1;
        if position <= seen + len {
            return Some((
                i + 1,
                line.trim_end_matches('\r').to_owned(),
                position - seen,
            ));
        }
        seen += len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_become_line_and_column() {
        let q = "select 1;\nselect nope from t";
        assert_eq!(locate(q, 1), Some((1, "select 1;".into(), 1)));
        assert_eq!(locate(q, 18), Some((2, "select nope from t".into(), 8)));
        assert_eq!(locate(q, 500), None);
        assert_eq!(locate("sélect x", 3), Some((1, "sélect x".into(), 3)));
    }

    #[test]
    fn history_lines_are_shortened() {
        assert_eq!(first_line("select 1"), "select 1");
        assert_eq!(first_line("select 1\nfrom t"), "select 1…");
        assert_eq!(first_line(&"x".repeat(70)).chars().count(), 61);
    }
}
