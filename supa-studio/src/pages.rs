//! The pages: each handler reads the control plane and renders HTML;
//! changes are POSTed forms checked against the session's CSRF token, and
//! answer with a redirect (or, for project creation, the steps as they run).

use std::convert::Infallible;

use axum::Form;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use supa_core::{KeyKind, ProjectRef, ProjectStatus};
use supa_tenant::{ApiKeyInfo, CreateOptions, CreateProject, CreateStep, NewApiKey, Project};

use crate::Studio;
use crate::session::{self, Session};

const CSS: &str = include_str!("../assets/studio.css");
const JS: &str = include_str!("../assets/studio.js");

/// No script or style but Studio's own files, no framing, forms post only
/// here, and connections only to Studio and the gateway's WebSockets (the
/// realtime inspector): an injected tag could neither run nor send
/// anything away.
pub(crate) fn content_security_policy(sockets: &str) -> HeaderValue {
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {sockets}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
}

/// Headers on every Studio response.
pub(crate) async fn security_headers(
    State(studio): State<Studio>,
    mut response: Response,
) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, studio.inner.csp.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it browsers send `Origin: null` with form
    // POSTs, and the origin check needs the real one.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Pages show keys: never kept by the browser or a proxy.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

pub(crate) async fn css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", CSS)
}

pub(crate) async fn js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The frame of every page. `session` is `None` on the sign-in page.
fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Supa Studio" }
                link rel="stylesheet" href="/assets/studio.css";
                script src="/assets/studio.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Supa Studio" }
                    @if let Some(s) = session {
                        nav aria-label="Main" { a href="/" { "Projects" } " " a href="/workers" { "Workers" } }
                        form.inline method="post" action="/sign-out" {
                            (csrf_field(s))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

pub(crate) fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="_csrf" value=(s.csrf); }
}

pub(crate) fn page(title: &str, session: Option<&Session>, body: Markup) -> Response {
    Html(layout(title, session, body).into_string()).into_response()
}

/// A page that says why a request was refused.
pub(crate) fn refused(status: StatusCode, message: &str) -> Response {
    let body = html! {
        h1 { "Refused" }
        p role="alert" { (message) }
        p { a href="/" { "Back to Studio" } }
    };
    (status, Html(layout("Refused", None, body).into_string())).into_response()
}

/// A control-plane error, shown in place with its status.
pub(crate) fn failed(session: &Session, e: supa_tenant::Error) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = html! {
        h1 { "Something went wrong" }
        p.error role="alert" { (e.to_string()) }
        p { a href="/" { "Back to projects" } }
    };
    (status, page("Error", Some(session), body)).into_response()
}

/// A change a service or the control plane refused, with a way back.
pub(crate) fn problem_page(session: &Session, back: &str, message: &str) -> Response {
    let body = html! {
        h1 { "The change was refused" }
        p.error role="alert" { (message) }
        p { a href=(back) { "Back" } }
    };
    (
        StatusCode::BAD_REQUEST,
        page("Refused", Some(session), body),
    )
        .into_response()
}

pub(crate) fn bad_form() -> Response {
    refused(
        StatusCode::FORBIDDEN,
        "The form has expired or did not come from Studio. Reload the page and try again.",
    )
}

/// The `{ref}` of a project page's path; a malformed one is the "no such
/// project" page. Listed after [`Session`] in a handler, so a visitor
/// without a session is sent to sign in first.
pub(crate) struct ProjectParam(pub ProjectRef);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ProjectParam {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| no_such_project())?;
        params
            .iter()
            .find(|(name, _)| *name == "ref")
            .and_then(|(_, value)| ProjectRef::parse(value).ok())
            .map(ProjectParam)
            .ok_or_else(no_such_project)
    }
}

fn no_such_project() -> Response {
    refused(StatusCode::NOT_FOUND, "There is no such project.")
}

// --- sign in and out ------------------------------------------------------

pub(crate) async fn sign_in_form() -> Response {
    sign_in_page(None, StatusCode::OK)
}

fn sign_in_page(error: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.card method="post" action="/sign-in" {
            label for="token" { "Admin token" }
            input id="token" name="token" type="password" autocomplete="current-password" required autofocus;
            p.hint { "The Management API token (" code { "SUPA_ADMIN_TOKEN" } ", or " code { "DATA_DIR/admin_token" } ")." }
            button type="submit" { "Sign in" }
        }
    };
    (status, page("Sign in", None, body)).into_response()
}

#[derive(Deserialize)]
pub(crate) struct SignIn {
    token: String,
}

pub(crate) async fn sign_in(
    State(studio): State<Studio>,
    headers: HeaderMap,
    form: Result<Form<SignIn>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !session::same_origin(&headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "This request came from another site and was refused.",
        );
    }
    let Ok(Form(form)) = form else {
        return sign_in_page(Some("Enter the admin token."), StatusCode::BAD_REQUEST);
    };
    if !studio.accepts(form.token.trim()) {
        return sign_in_page(
            Some("That token is not the admin token."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let id = studio.inner.sessions.start();
    let cookie = session::set_cookie(Some(&id), session::is_https(&headers));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// A form that carries nothing but its CSRF token.
#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(rename = "_csrf", default)]
    pub(crate) csrf: String,
}

pub(crate) async fn sign_out(
    State(studio): State<Studio>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return bad_form();
    }
    studio.inner.sessions.end(&session.id);
    let cookie = session::set_cookie(None, session::is_https(&headers));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/sign-in")).into_response()
}

// --- projects -------------------------------------------------------------

pub(crate) async fn projects(State(studio): State<Studio>, session: Session) -> Response {
    let tenant = &studio.inner.tenant;
    let (projects, workers) = match tokio::try_join!(tenant.list_projects(), tenant.list_workers())
    {
        Ok(both) => both,
        Err(e) => return failed(&session, e),
    };
    let body = html! {
        h1 { "Projects" }
        @if projects.is_empty() {
            p { "No projects yet. Create the first one below." }
        } @else {
            table {
                caption.visually-hidden { "Projects with their status and worker" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Ref" } th scope="col" { "Status" } th scope="col" { "Worker" } th scope="col" { "Created" } th scope="col" { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for p in &projects {
                        tr {
                            td { a href={ "/projects/" (p.project_ref) } { (p.name) } }
                            td { code { (p.project_ref) } }
                            td { span class={ "status status-" (p.status.as_str().to_ascii_lowercase()) } { (p.status.as_str()) } }
                            td { (p.worker_id) }
                            td { time datetime=(p.created_at) { (p.created_at.get(..10).unwrap_or(&p.created_at)) } }
                            td.actions { (pause_button(&session, p, "list")) }
                        }
                    }
                }
            }
        }
        h2 id="new" { "New project" }
        form.card method="post" action="/projects" {
            (csrf_field(&session))
            label for="name" { "Name" }
            input id="name" name="name" required maxlength="256";
            label for="worker" { "Worker" }
            select id="worker" name="worker" {
                option value="" { "Least loaded" }
                @for w in &workers { option value=(w.id) { (w.id) " (" (w.host) ":" (w.port) ")" } }
            }
            button type="submit" { "Create project" }
        }
    };
    page("Projects", Some(&session), body)
}

#[derive(Deserialize)]
pub(crate) struct NewProject {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    name: String,
    #[serde(default)]
    worker: String,
}

/// Creates a project and shows each step as it starts: the page is
/// streamed, so the browser renders the steps while the database is made.
pub(crate) async fn create_project(
    State(studio): State<Studio>,
    session: Session,
    Form(form): Form<NewProject>,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return bad_form();
    }
    // Pieces of HTML, already escaped, in the order they are sent.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let tenant = studio.inner.tenant.clone();
    let request = CreateProject {
        name: form.name,
        project_ref: None,
        worker_id: Some(form.worker).filter(|w| !w.is_empty()),
    };
    tokio::spawn(async move {
        let steps = tx.clone();
        let progress = move |step: CreateStep| {
            let _ = steps.send(html! { li { (step.describe()) "…" } }.into_string());
        };
        let options = CreateOptions {
            progress: Some(&progress),
            ..Default::default()
        };
        let outcome = match tenant.create_project_with(request, options).await {
            Ok(created) => {
                let p = &created.project;
                html! {
                    p.ok role="status" {
                        "Project " strong { (p.name) } " is up. "
                        a id="open-project" href={ "/projects/" (p.project_ref) } { "Open it" }
                    }
                }
            }
            Err(e) => html! {
                p.error role="alert" { "Creation failed and was rolled back: " (e.to_string()) }
                p { a href="/" { "Back to projects" } }
            },
        };
        let _ = tx.send(format!("</ol>{}", outcome.into_string()));
    });
    // The frame is split where the steps go; the last piece closes the list.
    let frame = layout(
        "Creating a project",
        Some(&session),
        html! { h1 { "Creating a project" } ol id="steps" aria-live="polite" { (PreEscaped("<!--steps-->")) } },
    )
    .into_string();
    let (head, tail) = frame
        .split_once("<!--steps-->")
        .expect("the marker is in the frame");
    let tail = tail.replacen("</ol>", "", 1);
    let stream = futures_util::stream::unfold(
        (Some(head.to_owned()), rx, Some(tail)),
        |(mut head, mut rx, mut tail)| async move {
            let piece = match head.take() {
                Some(h) => h,
                None => match rx.recv().await {
                    Some(piece) => piece,
                    None => tail.take()?,
                },
            };
            Some((Ok::<_, Infallible>(Bytes::from(piece)), (None, rx, tail)))
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

// --- one project ----------------------------------------------------------

pub(crate) async fn project_home(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
) -> Response {
    home(&studio, &session, project_ref, None, None).await
}

/// The project's home; `revealed` is a secret key shown in full (after a
/// POST asked for it), `notice` a line about what just happened.
async fn home(
    studio: &Studio,
    session: &Session,
    project_ref: ProjectRef,
    revealed: Option<&ApiKeyInfo>,
    notice: Option<&str>,
) -> Response {
    let tenant = &studio.inner.tenant;
    let (project, keys) = match tokio::try_join!(
        tenant.get_project(&project_ref),
        tenant.list_keys(&project_ref, false)
    ) {
        Ok(both) => both,
        Err(e) => return failed(session, e),
    };
    let url = format!(
        "{}/project/{}",
        studio.inner.gateway_url, project.project_ref
    );
    let publishable = keys.iter().find(|k| k.kind == KeyKind::Publishable);
    let publishable_key = publishable.map_or("", |k| k.api_key.as_str());
    let body = html! {
        h1 { (project.name) }
        (project_nav(&project.project_ref, "home"))
        p { "Ref " code { (project.project_ref) } " · " span class={ "status status-" (project.status.as_str().to_ascii_lowercase()) } { (project.status.as_str()) } " · worker " (project.worker_id) }
        @if let Some(n) = notice { p.ok role="status" { (n) } }
        section aria-labelledby="api" {
            h2 id="api" { "API" }
            dl {
                dt { "API URL" }
                dd { code id="api-url" { (url) } " " (copy_button("api-url", "Copy API URL")) }
                dt { "Publishable key" }
                dd { code id="publishable-key" { (publishable_key) } " " (copy_button("publishable-key", "Copy publishable key")) }
            }
        }
        section aria-labelledby="secret-keys" {
            h2 id="secret-keys" { "Secret keys" }
            table {
                caption.visually-hidden { "Secret keys" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Created" } th scope="col" { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for k in keys.iter().filter(|k| k.kind == KeyKind::Secret) {
                        @let shown = revealed.filter(|r| r.id == k.id);
                        tr data-key-name=(k.name) {
                            td { (k.name) }
                            td {
                                @if let Some(r) = shown {
                                    code id={ "key-" (k.id) } { (r.api_key) } " " (copy_button(&format!("key-{}", k.id), &format!("Copy secret key {}", k.name)))
                                } @else {
                                    code { (k.api_key) }
                                }
                            }
                            td { (k.inserted_at.get(..10).unwrap_or(&k.inserted_at)) }
                            td.actions {
                                @if shown.is_none() {
                                    form.inline method="post" action={ "/projects/" (project.project_ref) "/keys/" (k.id) "/reveal" } {
                                        (csrf_field(session))
                                        button type="submit" aria-label={ "Reveal secret key " (k.name) } { "Reveal" }
                                    }
                                }
                                form.inline method="post" action={ "/projects/" (project.project_ref) "/keys/" (k.id) "/revoke" } {
                                    (csrf_field(session))
                                    button.danger type="submit" aria-label={ "Revoke secret key " (k.name) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
            form.card method="post" action={ "/projects/" (project.project_ref) "/keys" } {
                (csrf_field(session))
                label for="key-name" { "New secret key name" }
                input id="key-name" name="name" required maxlength="64";
                button type="submit" { "Create secret key" }
            }
        }
        section aria-labelledby="connect" {
            h2 id="connect" { "Connect" }
            h3 { "supabase-py" }
            pre { code { "from supabase import create_client\n\nsupabase = create_client(\"" (url) "\", \"" (publishable_key) "\")\nrows = supabase.table(\"todos\").select(\"*\").execute().data" } }
            h3 { "supabase-js" }
            pre { code { "import { createClient } from \"@supabase/supabase-js\";\n\nconst supabase = createClient(\"" (url) "\", \"" (publishable_key) "\");\nconst { data } = await supabase.from(\"todos\").select(\"*\");" } }
        }
        section aria-labelledby="danger" {
            h2 id="danger" { "Danger zone" }
            div.row {
                (pause_button(session, &project, "home"))
                a.button.danger href={ "/projects/" (project.project_ref) "/delete" } { "Delete project" }
            }
        }
    };
    page(&project.name, Some(session), body)
}

/// The tabs of a project's pages; `current` is marked for assistive
/// technology.
pub(crate) fn project_nav(project_ref: &ProjectRef, current: &str) -> Markup {
    let tabs = [
        ("home", "Overview", ""),
        ("tables", "Table editor", "/tables"),
        ("sql", "SQL editor", "/sql"),
        ("auth", "Auth", "/auth"),
        ("storage", "Storage", "/storage"),
        ("realtime", "Realtime", "/realtime"),
        ("functions", "Functions", "/functions"),
        ("observability", "Observability", "/observability"),
        ("settings", "Settings", "/settings"),
    ];
    html! {
        nav.tabs aria-label="Project" {
            @for (id, label, path) in &tabs {
                @if *id == current {
                    a aria-current="page" href={ "/projects/" (project_ref) (path) } { (label) }
                } @else {
                    a href={ "/projects/" (project_ref) (path) } { (label) }
                }
            }
        }
    }
}

fn copy_button(target: &str, label: &str) -> Markup {
    html! { button.copy type="button" data-copy=(target) aria-label=(label) { "Copy" } }
}

fn project_of(project: &Project) -> String {
    format!("/projects/{}", project.project_ref)
}

#[derive(Deserialize)]
pub(crate) struct NewKey {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    name: String,
}

pub(crate) async fn create_key(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Form(form): Form<NewKey>,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return bad_form();
    }
    let new = NewApiKey {
        kind: KeyKind::Secret,
        name: form.name,
    };
    match studio.inner.tenant.create_key(&project_ref, new).await {
        // Shown in full once, as the Management API does at creation.
        Ok(key) => {
            home(
                &studio,
                &session,
                project_ref,
                Some(&key),
                Some("Secret key created. Copy it now: it is masked from here on unless revealed."),
            )
            .await
        }
        Err(e) => failed(&session, e),
    }
}

pub(crate) async fn reveal_key(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return bad_form();
    }
    match studio.inner.tenant.list_keys(&project_ref, true).await {
        Ok(keys) => match keys
            .iter()
            .find(|k| k.id == id && k.kind == KeyKind::Secret)
        {
            Some(key) => home(&studio, &session, project_ref, Some(key), None).await,
            None => refused(StatusCode::NOT_FOUND, "There is no such key."),
        },
        Err(e) => failed(&session, e),
    }
}

pub(crate) async fn revoke_key(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return bad_form();
    }
    match studio.inner.tenant.revoke_key(&project_ref, &id).await {
        Ok(key) => {
            home(
                &studio,
                &session,
                project_ref,
                None,
                Some(&format!(
                    "Secret key {} revoked: gateways refuse it now.",
                    key.name
                )),
            )
            .await
        }
        Err(e) => failed(&session, e),
    }
}

/// Pause for a serving project, resume for a paused one, nothing while
/// it changes state. `back` names the page to return to.
fn pause_button(session: &Session, project: &Project, back: &str) -> Markup {
    let (action, label) = match project.status {
        ProjectStatus::ActiveHealthy | ProjectStatus::PauseFailed => ("pause", "Pause"),
        ProjectStatus::Inactive | ProjectStatus::RestoreFailed => ("resume", "Resume"),
        _ => return html! {},
    };
    html! {
        form.inline method="post" action={ (project_of(project)) "/" (action) } {
            (csrf_field(session))
            input type="hidden" name="back" value=(back);
            button.secondary type="submit" aria-label={ (label) " project " (project.name) } { (label) }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct PauseForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    back: String,
}

pub(crate) async fn pause_project(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Form(form): Form<PauseForm>,
) -> Response {
    set_paused(&studio, &session, project_ref, &form, true).await
}

pub(crate) async fn resume_project(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Form(form): Form<PauseForm>,
) -> Response {
    set_paused(&studio, &session, project_ref, &form, false).await
}

async fn set_paused(
    studio: &Studio,
    session: &Session,
    project_ref: ProjectRef,
    form: &PauseForm,
    pause: bool,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return bad_form();
    }
    let tenant = &studio.inner.tenant;
    let done = if pause {
        tenant.pause_project(&project_ref).await
    } else {
        tenant.resume_project(&project_ref).await
    };
    match done {
        Ok(project) if form.back == "home" => Redirect::to(&project_of(&project)).into_response(),
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => failed(session, e),
    }
}

pub(crate) async fn confirm_delete(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
) -> Response {
    let project = match studio.inner.tenant.get_project(&project_ref).await {
        Ok(p) => p,
        Err(e) => return failed(&session, e),
    };
    let body = html! {
        h1 { "Delete " (project.name) "?" }
        p { "The database, its keys and its stored objects are removed. This cannot be undone." }
        form.card method="post" action={ (project_of(&project)) "/delete" } {
            (csrf_field(&session))
            label for="confirm" { "Type the project ref " code { (project.project_ref) } " to confirm" }
            input id="confirm" name="confirm" required autocomplete="off";
            button.danger type="submit" { "Delete project" }
            " " a href=(project_of(&project)) { "Cancel" }
        }
    };
    page("Delete project", Some(&session), body)
}

#[derive(Deserialize)]
pub(crate) struct ConfirmDelete {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn delete_project(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Form(form): Form<ConfirmDelete>,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return bad_form();
    }
    if form.confirm.trim() != project_ref.as_str() {
        return refused(
            StatusCode::BAD_REQUEST,
            "The ref typed does not match: nothing was deleted.",
        );
    }
    match studio.inner.tenant.delete_project(&project_ref).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => failed(&session, e),
    }
}
