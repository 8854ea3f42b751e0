//! A project's auth, functions and settings pages, and the platform's
//! workers. Auth users come from the project's auth server at the gateway
//! (GoTrue's admin API); settings, secrets, functions and workers from the
//! control plane.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use supa_core::ProjectRef;
use supa_core::time::iso8601_millis;
use supa_tenant::PostgrestPatch;

use crate::Studio;
use crate::gateway::{Problem, call, enc};
use crate::pages::{
    CsrfOnly, ProjectParam, bad_form, csrf_field, failed, page, problem_page, project_nav, refused,
};
use crate::session::Session;

/// The auth settings the form edits (the rest stay as they are).
const AUTH_FIELDS: [(&str, &str, Kind); 6] = [
    ("site_url", "Site URL", Kind::Text),
    (
        "uri_allow_list",
        "Redirect URLs (comma-separated)",
        Kind::Text,
    ),
    ("jwt_exp", "Access token lifetime (seconds)", Kind::Number),
    ("disable_signup", "Disable sign-ups", Kind::Flag),
    ("external_email_enabled", "E-mail sign-in", Kind::Flag),
    (
        "mailer_autoconfirm",
        "Confirm e-mails automatically",
        Kind::Flag,
    ),
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Number,
    Flag,
}

#[derive(Deserialize, Default)]
pub(crate) struct Search {
    q: Option<String>,
}

pub(crate) async fn auth(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Query(search): Query<Search>,
) -> Response {
    let tenant = &studio.inner.tenant;
    let (project, settings) = match tokio::try_join!(
        tenant.get_project(&project_ref),
        tenant.auth_settings(&project_ref)
    ) {
        Ok(both) => both,
        Err(e) => return failed(&session, e),
    };
    let users = call(
        &studio,
        &project_ref,
        Method::GET,
        "auth/v1/admin/users?per_page=1000",
        &[],
        None,
    )
    .await;
    let needle = search.q.clone().unwrap_or_default().to_lowercase();
    let base = format!("/projects/{project_ref}/auth");
    let body = html! {
        h1 { (project.name) }
        (project_nav(&project_ref, "auth"))
        h2 id="users" { "Users" }
        form.row method="get" action=(base) role="search" {
            label for="q" { "Search users" }
            input id="q" name="q" type="search" value=(search.q.clone().unwrap_or_default());
            button.secondary type="submit" { "Search" }
        }
        @match &users {
            Err(Problem(p)) => p.error role="alert" { "The auth server did not answer: " (p) },
            Ok(answer) => {
                @let all: Vec<&Value> = answer.body["users"].as_array().into_iter().flatten().collect();
                @let shown: Vec<&&Value> = all.iter().filter(|u| needle.is_empty() || ["email", "phone", "id"].iter().any(|k| u[*k].as_str().is_some_and(|v| v.to_lowercase().contains(&needle)))).collect();
                p.hint id="user-count" { (shown.len()) " of " (answer.total.unwrap_or(all.len() as u64)) " users" }
                table id="user-list" {
                    caption.visually-hidden { "Users" }
                    thead { tr { th scope="col" { "E-mail" } th scope="col" { "Phone" } th scope="col" { "Created" } th scope="col" { "Last sign-in" } th scope="col" { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for u in &shown {
                            @let email = u["email"].as_str().unwrap_or("");
                            tr {
                                td { (email) @if u["email_confirmed_at"].is_null() && !email.is_empty() { " " span.hint { "(unconfirmed)" } } }
                                td { (u["phone"].as_str().unwrap_or("")) }
                                td { (u["created_at"].as_str().unwrap_or("").get(..10).unwrap_or("")) }
                                td { (u["last_sign_in_at"].as_str().unwrap_or("never")) }
                                td {
                                    form.inline method="post" action={ (base) "/users/" (enc(u["id"].as_str().unwrap_or(""))) "/delete" } {
                                        (csrf_field(&session))
                                        button.danger type="submit" aria-label={ "Delete user " (email) } { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 id="add-user" { "Add a user" }
        form.card method="post" action={ (base) "/users" } {
            (csrf_field(&session))
            label for="user-email" { "E-mail" }
            input id="user-email" name="email" type="email" required;
            label for="user-password" { "Password" }
            input id="user-password" name="password" type="password" minlength="6" required autocomplete="new-password";
            label.check for="user-confirm" { input id="user-confirm" type="checkbox" name="email_confirm" value="on" checked; " Confirm the e-mail now" }
            button type="submit" { "Add user" }
        }
        h2 id="invite-user" { "Invite a user" }
        form.card method="post" action={ (base) "/invite" } {
            (csrf_field(&session))
            label for="invite-email" { "E-mail" }
            input id="invite-email" name="email" type="email" required;
            p.hint { "The auth server mails them a link; they are confirmed when they follow it." }
            button type="submit" { "Send invitation" }
        }
        h2 id="auth-settings" { "Settings" }
        form.card.wide method="post" action={ (base) "/settings" } {
            (csrf_field(&session))
            @for (key, label, kind) in AUTH_FIELDS {
                @let value = &settings[key];
                @match kind {
                    Kind::Flag => label.check for={ "s-" (key) } { input id={ "s-" (key) } type="checkbox" name=(key) value="on" checked[value.as_bool() == Some(true)]; " " (label) }
                    _ => {
                        label for={ "s-" (key) } { (label) }
                        input id={ "s-" (key) } name=(key) type=(if kind == Kind::Number { "number" } else { "text" }) value=(match value { Value::String(s) => s.clone(), Value::Null => String::new(), v => v.to_string() });
                    }
                }
            }
            input type="hidden" name="_flags" value="1";
            button type="submit" { "Save auth settings" }
        }
    };
    page(&format!("Auth · {}", project.name), Some(&session), body)
}

#[derive(Deserialize)]
pub(crate) struct NewUser {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    email: String,
    password: String,
    #[serde(default)]
    email_confirm: Option<String>,
}

pub(crate) async fn add_user(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Form(form): Form<NewUser>,
) -> Response {
    let body = json!({"email": form.email, "password": form.password, "email_confirm": form.email_confirm.is_some()});
    let change = (Method::POST, "admin/users".to_owned(), Some(body));
    auth_change(&studio, &session, project_ref, &form.csrf, change).await
}

#[derive(Deserialize)]
pub(crate) struct Invite {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    email: String,
}

/// Invites a user by e-mail through the auth server's `POST /invite`.
pub(crate) async fn invite_user(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Form(form): Form<Invite>,
) -> Response {
    let change = (
        Method::POST,
        "invite".to_owned(),
        Some(json!({"email": form.email})),
    );
    auth_change(&studio, &session, project_ref, &form.csrf, change).await
}

pub(crate) async fn delete_user(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let change = (Method::DELETE, format!("admin/users/{}", enc(&id)), None);
    auth_change(&studio, &session, project_ref, &form.csrf, change).await
}

/// Sends one change to the project's auth server (`path` under
/// `/auth/v1`), then returns to the auth page or shows the server's answer.
async fn auth_change(
    studio: &Studio,
    session: &Session,
    project_ref: ProjectRef,
    csrf: &str,
    (method, path, body): (Method, String, Option<Value>),
) -> Response {
    if !session.csrf_ok(csrf) {
        return bad_form();
    }
    let base = format!("/projects/{project_ref}/auth");
    let path = format!("auth/v1/{path}");
    match call(studio, &project_ref, method, &path, &[], body.as_ref()).await {
        Ok(_) => Redirect::to(&base).into_response(),
        Err(Problem(p)) => problem_page(session, &base, &p),
    }
}

pub(crate) async fn save_auth_settings(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !session.csrf_ok(form.get("_csrf").map_or("", String::as_str)) {
        return bad_form();
    }
    let base = format!("/projects/{project_ref}/auth");
    let mut patch = Map::new();
    for (key, _, kind) in AUTH_FIELDS {
        let given = form.get(key).map(String::as_str);
        let value = match kind {
            // An unchecked box is absent from the form.
            Kind::Flag => Value::Bool(given == Some("on")),
            Kind::Number => match given.map(str::parse::<i64>) {
                Some(Ok(n)) => Value::from(n),
                _ => {
                    return refused(
                        StatusCode::BAD_REQUEST,
                        &format!("{key} must be a whole number"),
                    );
                }
            },
            Kind::Text => Value::String(given.unwrap_or_default().to_owned()),
        };
        patch.insert(key.to_owned(), value);
    }
    match studio
        .inner
        .tenant
        .update_auth_settings(&project_ref, patch)
        .await
    {
        Ok(_) => Redirect::to(&format!("{base}#auth-settings")).into_response(),
        Err(e) => problem_page(&session, &base, &e.to_string()),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct LogsOf {
    logs: Option<String>,
}

pub(crate) async fn functions(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Query(q): Query<LogsOf>,
) -> Response {
    let tenant = &studio.inner.tenant;
    let (project, functions) = match tokio::try_join!(
        tenant.get_project(&project_ref),
        tenant.list_functions(&project_ref)
    ) {
        Ok(both) => both,
        Err(e) => return failed(&session, e),
    };
    let logs = match &q.logs {
        Some(slug) => Some((
            slug.clone(),
            tenant.function_logs(&project_ref, slug, 100, None).await,
        )),
        None => None,
    };
    let body = html! {
        h1 { (project.name) }
        (project_nav(&project_ref, "functions"))
        h2 { "Edge functions" }
        @if functions.is_empty() {
            p { "No functions deployed. Deploy one with " code { "supa functions deploy " (project_ref) " NAME" } " or the Management API." }
        } @else {
            table id="function-list" {
                caption.visually-hidden { "Functions" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Version" } th scope="col" { "Verify JWT" } th scope="col" { "Updated" } th scope="col" { span.visually-hidden { "Logs" } } } }
                tbody {
                    @for f in &functions {
                        tr {
                            td { code { (f.slug) } }
                            td { "v" (f.version) }
                            td { @if f.verify_jwt { "yes" } @else { "no" } }
                            td { (iso8601_millis(u64::try_from(f.updated_at).unwrap_or(0))) }
                            td { a href={ "/projects/" (project_ref) "/functions?logs=" (enc(&f.slug)) } aria-label={ "Logs of " (f.slug) } { "Logs" } }
                        }
                    }
                }
            }
        }
        @if let Some((slug, logs)) = &logs {
            h2 id="logs" { "Logs of " code { (slug) } }
            @match logs {
                Err(e) => p.error role="alert" { (e.to_string()) },
                Ok(events) if events.is_empty() => p { "No log events yet." },
                Ok(events) => {
                    ol.plain.logs id="log-events" {
                        @for e in events {
                            li { span.hint { (iso8601_millis(e["timestamp"].as_u64().unwrap_or(0) / 1000)) " " (e["level"].as_str().unwrap_or("")) " v" (e["version"].as_i64().unwrap_or(0)) } " " code { (e["event_message"].as_str().unwrap_or("")) } }
                        }
                    }
                }
            }
        }
    };
    page(
        &format!("Functions · {}", project.name),
        Some(&session),
        body,
    )
}

pub(crate) async fn settings(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
) -> Response {
    let tenant = &studio.inner.tenant;
    let (project, rest, secrets) = match tokio::try_join!(
        tenant.get_project(&project_ref),
        tenant.postgrest_settings(&project_ref),
        tenant.list_secrets(&project_ref)
    ) {
        Ok(all) => all,
        Err(e) => return failed(&session, e),
    };
    let body = html! {
        h1 { (project.name) }
        (project_nav(&project_ref, "settings"))
        h2 id="data-plane" { "Data plane" }
        form.card.wide method="post" action={ "/projects/" (project_ref) "/settings" } {
            (csrf_field(&session))
            label for="db_schema" { "Exposed schemas (comma-separated)" }
            input id="db_schema" name="db_schema" value=(rest.db_schema) required;
            label for="max_rows" { "Most rows one read returns" }
            input id="max_rows" name="max_rows" type="number" min="1" value=(rest.max_rows);
            label for="db_extra_search_path" { "Extra search path" }
            input id="db_extra_search_path" name="db_extra_search_path" value=(rest.db_extra_search_path);
            label for="db_pool" { "Pool size (empty: the platform's default)" }
            input id="db_pool" name="db_pool" type="number" min="1" value=(rest.db_pool.map(|p| p.to_string()).unwrap_or_default());
            label.check for="db_plan_enabled" { input id="db_plan_enabled" type="checkbox" name="db_plan_enabled" value="on" checked[rest.db_plan_enabled]; " Answer query plans" }
            button type="submit" { "Save data plane settings" }
        }
        h2 id="secrets" { "Secrets" }
        p.hint { "The environment of the project's edge functions. Values are never shown: only their SHA-256." }
        @if secrets.is_empty() { p { "No secrets set." } }
        table id="secret-list" {
            caption.visually-hidden { "Secrets" }
            thead { tr { th scope="col" { "Name" } th scope="col" { "SHA-256 of the value" } } }
            tbody { @for s in &secrets { tr { td { code { (s.name) } } td { code { (s.value) } } } } }
        }
    };
    page(
        &format!("Settings · {}", project.name),
        Some(&session),
        body,
    )
}

#[derive(Deserialize)]
pub(crate) struct RestForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    db_schema: String,
    max_rows: String,
    #[serde(default)]
    db_extra_search_path: String,
    #[serde(default)]
    db_pool: String,
    #[serde(default)]
    db_plan_enabled: Option<String>,
}

pub(crate) async fn save_settings(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Form(form): Form<RestForm>,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return bad_form();
    }
    let base = format!("/projects/{project_ref}/settings");
    let number = |field: &str, v: &str| {
        v.trim()
            .parse::<i64>()
            .map_err(|_| format!("{field} must be a whole number"))
    };
    let patch = (|| {
        Ok::<_, String>(PostgrestPatch {
            db_schema: Some(form.db_schema.clone()),
            max_rows: Some(number("max_rows", &form.max_rows)?),
            db_extra_search_path: Some(form.db_extra_search_path.clone()),
            db_pool: Some(match form.db_pool.trim() {
                "" => None,
                v => Some(number("db_pool", v)?),
            }),
            db_plan_enabled: Some(form.db_plan_enabled.is_some()),
        })
    })();
    let patch = match patch {
        Ok(p) => p,
        Err(why) => return problem_page(&session, &base, &why),
    };
    match studio
        .inner
        .tenant
        .update_postgrest_settings(&project_ref, patch)
        .await
    {
        Ok(_) => Redirect::to(&base).into_response(),
        Err(e) => problem_page(&session, &base, &e.to_string()),
    }
}

/// The platform's workers (the admin token is the platform's).
pub(crate) async fn workers(State(studio): State<Studio>, session: Session) -> Response {
    let workers = match studio.inner.tenant.list_workers().await {
        Ok(w) => w,
        Err(e) => return failed(&session, e),
    };
    let body: Markup = html! {
        h1 { "Workers" }
        p.hint { "The database clusters projects are placed on. Register more with " code { "supa workers register" } "." }
        table id="worker-list" {
            caption.visually-hidden { "Workers" }
            thead { tr { th scope="col" { "Id" } th scope="col" { "Address" } th scope="col" { "Status" } th scope="col" { "Databases" } th scope="col" { "Weight" } } }
            tbody {
                @for w in &workers {
                    tr {
                        td { (w.id) }
                        td { code { (w.host) ":" (w.port) } }
                        td { (w.status.as_str()) }
                        td { (w.project_count) " / " (w.max_databases) }
                        td { (w.weight) }
                    }
                }
            }
        }
    };
    page("Workers", Some(&session), body)
}

#[derive(Deserialize, Default)]
pub(crate) struct Channel {
    channel: Option<String>,
    changes: Option<String>,
}

/// The realtime inspector: the browser joins a channel at the gateway
/// (with the publishable key, as an app does) and lists what arrives.
pub(crate) async fn realtime(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Query(q): Query<Channel>,
) -> Response {
    let tenant = &studio.inner.tenant;
    let (project, keys) = match tokio::try_join!(
        tenant.get_project(&project_ref),
        tenant.list_keys(&project_ref, false)
    ) {
        Ok(both) => both,
        Err(e) => return failed(&session, e),
    };
    let publishable = keys
        .iter()
        .find(|k| k.kind == supa_core::KeyKind::Publishable)
        .map(|k| k.api_key.clone())
        .unwrap_or_default();
    let channel = q
        .channel
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "room-1".into());
    let changes = q.changes.is_some();
    let socket = format!(
        "{}/project/{project_ref}/realtime/v1/websocket?apikey={}&vsn=1.0.0",
        studio.inner.sockets,
        enc(&publishable)
    );
    let body = html! {
        h1 { (project.name) }
        (project_nav(&project_ref, "realtime"))
        h2 { "Channel inspector" }
        form.row method="get" action={ "/projects/" (project_ref) "/realtime" } {
            label for="channel" { "Channel" }
            input id="channel" name="channel" value=(channel) required;
            label.check for="changes" { input id="changes" type="checkbox" name="changes" value="on" checked[changes]; " Postgres changes in public" }
            button.secondary type="submit" { "Listen" }
        }
        div id="inspector" data-socket=(socket) data-channel=(channel) data-changes=(if changes { "public" } else { "" }) {
            p id="rt-status" role="status" { "Connecting… (this page needs JavaScript)" }
            ol.plain.logs id="rt-events" aria-live="polite" {}
        }
        p.hint { "Broadcasts, presence and (when chosen) Postgres changes the publishable key may see appear here as they happen." }
    };
    page(
        &format!("Realtime · {}", project.name),
        Some(&session),
        body,
    )
}
