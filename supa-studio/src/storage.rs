//! The storage browser: buckets, folders, upload (with progress when
//! scripts run), download, public and signed URLs, all through the
//! project's storage API at the gateway with a secret key.

use axum::Form;
use axum::body::Body;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use supa_core::ProjectRef;

use crate::Studio;
use crate::gateway::{Problem, call, enc, message_of, send};
use crate::pages::{ProjectParam, bad_form, csrf_field, failed, page, problem_page, project_nav};
use crate::session::Session;

/// The largest upload Studio passes on (bigger files: the storage API's
/// resumable uploads, from a client).
pub(crate) const MAX_UPLOAD: usize = 50 << 20;

/// Each segment of an object path encoded, the slashes kept.
fn enc_path(path: &str) -> String {
    path.split('/').map(enc).collect::<Vec<_>>().join("/")
}

#[derive(Deserialize, Default)]
pub(crate) struct Browse {
    bucket: Option<String>,
    prefix: Option<String>,
}

pub(crate) async fn browser(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Query(q): Query<Browse>,
) -> Response {
    let project = match studio.inner.tenant.get_project(&project_ref).await {
        Ok(p) => p,
        Err(e) => return failed(&session, e),
    };
    let base = format!("/projects/{project_ref}/storage");
    let buckets = call(
        &studio,
        &project_ref,
        Method::GET,
        "storage/v1/bucket",
        &[],
        None,
    )
    .await;
    let prefix = q.prefix.clone().unwrap_or_default();
    let listing = match &q.bucket {
        Some(bucket) => Some(
            call(
                &studio,
                &project_ref,
                Method::POST,
                &format!("storage/v1/object/list/{}", enc(bucket)),
                &[],
                Some(&json!({"prefix": prefix, "limit": 1000, "offset": 0, "sortBy": {"column": "name", "order": "asc"}})),
            )
            .await,
        ),
        None => None,
    };
    // The folders of the prefix, each with the prefix up to it.
    let crumbs: Vec<(&str, String)> = prefix
        .split('/')
        .filter(|p| !p.is_empty())
        .scan(String::new(), |upto, part| {
            upto.push_str(part);
            upto.push('/');
            Some((part, upto.clone()))
        })
        .collect();
    let public = |bucket: &str| {
        buckets
            .as_ref()
            .ok()
            .and_then(|b| b.body.as_array())
            .is_some_and(|all| {
                all.iter()
                    .any(|b| b["name"] == bucket && b["public"] == true)
            })
    };
    let body = html! {
        h1 { (project.name) }
        (project_nav(&project_ref, "storage"))
        div.sql {
            section aria-labelledby="files" {
                @match (&q.bucket, &listing) {
                    (Some(bucket), Some(Ok(answer))) => {
                        h2 id="files" { "Bucket " code { (bucket) } @if public(bucket) { " " span.hint { "(public)" } } }
                        nav aria-label="Folder" {
                            a href={ (base) "?bucket=" (enc(bucket)) } { (bucket) }
                            @for (part, upto) in &crumbs {
                                " / " a href={ (base) "?bucket=" (enc(bucket)) "&prefix=" (enc(upto)) } { (part) }
                            }
                        }
                        table id="object-list" {
                            caption.visually-hidden { "Files and folders" }
                            thead { tr { th scope="col" { "Name" } th scope="col" { "Size" } th scope="col" { "Type" } th scope="col" { span.visually-hidden { "Actions" } } } }
                            tbody {
                                @for o in answer.body.as_array().into_iter().flatten() {
                                    @let name = o["name"].as_str().unwrap_or("");
                                    @let full = format!("{prefix}{name}");
                                    @if o["id"].is_null() {
                                        tr { td { a href={ (base) "?bucket=" (enc(bucket)) "&prefix=" (enc(&format!("{full}/"))) } { (name) "/" } } td {} td { "folder" } td {} }
                                    } @else {
                                        tr {
                                            td { (name) }
                                            td { (o["metadata"]["size"].as_u64().unwrap_or(0)) " B" }
                                            td { (o["metadata"]["mimetype"].as_str().unwrap_or("")) }
                                            td.actions {
                                                a.button.secondary href={ (base) "/download?bucket=" (enc(bucket)) "&path=" (enc(&full)) } aria-label={ "Download " (name) } { "Download" }
                                                form.inline method="post" action={ (base) "/sign" } {
                                                    (csrf_field(&session))
                                                    input type="hidden" name="bucket" value=(bucket);
                                                    input type="hidden" name="path" value=(full);
                                                    button.secondary type="submit" aria-label={ "Signed URL of " (name) } { "Signed URL" }
                                                }
                                                @if public(bucket) {
                                                    a href={ (studio.inner.gateway_url) "/project/" (project_ref) "/storage/v1/object/public/" (enc_path(bucket)) "/" (enc_path(&full)) } aria-label={ "Public URL of " (name) } { "Public URL" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        h3 id="upload" { "Upload" }
                        form.card method="post" action={ (base) "/upload" } enctype="multipart/form-data" data-upload {
                            (csrf_field(&session))
                            input type="hidden" name="bucket" value=(bucket);
                            input type="hidden" name="prefix" value=(prefix);
                            label for="file" { "File" }
                            input id="file" name="file" type="file" required;
                            progress id="upload-progress" max="100" value="0" aria-label="Upload progress" hidden {}
                            button type="submit" { "Upload" }
                        }
                    }
                    (Some(_), Some(Err(Problem(p)))) => p.error role="alert" { (p) },
                    _ => p { "Choose a bucket." },
                }
            }
            aside {
                h2 id="buckets" { "Buckets" }
                @match &buckets {
                    Err(Problem(p)) => p.error role="alert" { "The storage server did not answer: " (p) },
                    Ok(answer) => ul.plain id="bucket-list" {
                        @for b in answer.body.as_array().into_iter().flatten() {
                            @let name = b["name"].as_str().unwrap_or("");
                            li { a href={ (base) "?bucket=" (enc(name)) } aria-current=[(q.bucket.as_deref() == Some(name)).then_some("page")] { (name) } @if b["public"] == true { " " span.hint { "public" } } }
                        }
                    },
                }
                form.card method="post" action={ (base) "/buckets" } {
                    (csrf_field(&session))
                    label for="bucket-name" { "New bucket" }
                    input id="bucket-name" name="name" required maxlength="63";
                    label.check for="bucket-public" { input id="bucket-public" type="checkbox" name="public" value="on"; " Public" }
                    button type="submit" { "Create bucket" }
                }
            }
        }
    };
    page(&format!("Storage · {}", project.name), Some(&session), body)
}

#[derive(Deserialize)]
pub(crate) struct NewBucket {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    name: String,
    #[serde(default)]
    public: Option<String>,
}

pub(crate) async fn create_bucket(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Form(form): Form<NewBucket>,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return bad_form();
    }
    let base = format!("/projects/{project_ref}/storage");
    let body = json!({"name": form.name, "id": form.name, "public": form.public.is_some()});
    match call(
        &studio,
        &project_ref,
        Method::POST,
        "storage/v1/bucket",
        &[],
        Some(&body),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("{base}?bucket={}", enc(&form.name))).into_response(),
        Err(Problem(p)) => problem_page(&session, &base, &p),
    }
}

/// A multipart upload: `_csrf`, `bucket`, `prefix`, then `file`.
pub(crate) async fn upload(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    mut multipart: Multipart,
) -> Response {
    let base = format!("/projects/{project_ref}/storage");
    let (mut csrf, mut bucket, mut prefix) = (String::new(), String::new(), String::new());
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return problem_page(&session, &base, &e.body_text()),
        };
        match field.name().unwrap_or_default() {
            "_csrf" => csrf = field.text().await.unwrap_or_default(),
            "bucket" => bucket = field.text().await.unwrap_or_default(),
            "prefix" => prefix = field.text().await.unwrap_or_default(),
            "file" => {
                // The token came first in the form: check it before any byte
                // goes further.
                if !session.csrf_ok(&csrf) {
                    return bad_form();
                }
                let name = field
                    .file_name()
                    .unwrap_or("upload")
                    .rsplit(['/', '\\'])
                    .next()
                    .unwrap_or("upload")
                    .to_owned();
                let kind = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let bytes = match field.bytes().await {
                    Ok(b) => b,
                    Err(e) => return problem_page(&session, &base, &e.body_text()),
                };
                let back = format!("{base}?bucket={}&prefix={}", enc(&bucket), enc(&prefix));
                let path = format!(
                    "storage/v1/object/{}/{}",
                    enc_path(&bucket),
                    enc_path(&format!("{prefix}{name}"))
                );
                let headers = [("Content-Type", kind.as_str()), ("x-upsert", "true")];
                return match send(
                    &studio,
                    &project_ref,
                    Method::POST,
                    &path,
                    &headers,
                    Some(bytes.into()),
                )
                .await
                {
                    Ok(r) if r.status().is_success() => Redirect::to(&back).into_response(),
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        problem_page(&session, &back, &format!("{status}: {}", message_of(&body)))
                    }
                    Err(Problem(p)) => problem_page(&session, &back, &p),
                };
            }
            _ => {}
        }
    }
    problem_page(&session, &base, "choose a file to upload")
}

#[derive(Deserialize)]
pub(crate) struct Object {
    bucket: String,
    path: String,
}

/// The object's bytes, as an attachment.
pub(crate) async fn download(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Query(o): Query<Object>,
) -> Response {
    let base = format!("/projects/{project_ref}/storage");
    let path = format!(
        "storage/v1/object/{}/{}",
        enc_path(&o.bucket),
        enc_path(&o.path)
    );
    match send(&studio, &project_ref, Method::GET, &path, &[], None).await {
        Ok(r) if r.status().is_success() => {
            let kind = r
                .headers()
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            let name = o.path.rsplit('/').next().unwrap_or("download");
            let disposition = format!("attachment; filename*=UTF-8''{}", enc(name));
            let mut response = Response::new(Body::from_stream(r.bytes_stream()));
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, kind);
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            response
        }
        Ok(r) => {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            problem_page(&session, &base, &format!("{status}: {}", message_of(&body)))
        }
        Err(Problem(p)) => problem_page(&session, &base, &p),
    }
}

#[derive(Deserialize)]
pub(crate) struct SignForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    bucket: String,
    path: String,
}

/// A signed URL valid for an hour.
pub(crate) async fn sign(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
    Form(form): Form<SignForm>,
) -> Response {
    if !session.csrf_ok(&form.csrf) {
        return bad_form();
    }
    let back = format!(
        "/projects/{project_ref}/storage?bucket={}",
        enc(&form.bucket)
    );
    let path = format!(
        "storage/v1/object/sign/{}/{}",
        enc_path(&form.bucket),
        enc_path(&form.path)
    );
    let signed = match call(
        &studio,
        &project_ref,
        Method::POST,
        &path,
        &[],
        Some(&json!({"expiresIn": 3600})),
    )
    .await
    {
        Ok(answer) => answer.body["signedURL"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        Err(Problem(p)) => return problem_page(&session, &back, &p),
    };
    let url = signed_url(&studio, &project_ref, &signed);
    let body = html! {
        h1 { "Signed URL" }
        p { "Anyone with this link can download " code { (form.bucket) "/" (form.path) } " for the next hour." }
        p { code id="signed-url" { (url) } " " button.copy type="button" data-copy="signed-url" aria-label="Copy signed URL" { "Copy" } }
        p { a href=(back) { "Back to the bucket" } }
    };
    page("Signed URL", Some(&session), body)
}

/// The storage API's `signedURL` (`/object/sign/...`) as a full URL.
fn signed_url(studio: &Studio, project: &ProjectRef, signed: &str) -> String {
    format!(
        "{}/project/{project}/storage/v1{signed}",
        studio.inner.gateway_url
    )
}
