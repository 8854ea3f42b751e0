//! postgres-meta's HTTP API over the engine, as one axum [`Router`].
//!
//! The project comes from the request's extensions (a [`ProjectRef`] the
//! mounting router inserts after checking who may ask), so the same router
//! serves the Management API, Studio's `pg-meta` paths and the gateway.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use supa_core::ProjectRef;

use crate::{Endpoint, Error, Meta, Params};

/// The router answering postgres-meta's paths (`/tables`, `/tables/{id}`,
/// `/config/version`, ...) for the project in the request's extensions.
pub fn router(meta: Meta) -> Router {
    Router::new().fallback(handle).with_state(meta)
}

/// Serves one request for `project` with `router` (from [`router`]); the
/// request's path must already be postgres-meta's (`/tables?...`).
pub async fn serve(router: Router, project: ProjectRef, mut request: Request) -> Response {
    use tower::ServiceExt as _;
    request.extensions_mut().insert(project);
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

async fn handle(State(meta): State<Meta>, RawQuery(raw): RawQuery, request: Request) -> Response {
    // Read leniently (as postgres-meta's server does): a malformed escape
    // stays as it is and fails the parameter's own check, if any.
    let query: HashMap<String, String> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let Some(project) = request.extensions().get::<ProjectRef>().copied() else {
        return failure(&Error::Internal(
            "no project in the request's extensions".into(),
        ));
    };
    let path = request.uri().path().trim_matches('/').to_owned();
    if request.method() != Method::GET {
        let method = request.method().clone();
        return match write(&meta, &project, &method, &path, &query, request).await {
            Some(answer) => answer.unwrap_or_else(|e| failure(&e)),
            None => route_not_found(&method, &path),
        };
    }
    let segments: Vec<&str> = path.split('/').collect();
    let answer = match segments.as_slice() {
        ["generators", "typescript"] => meta
            .typescript(&project, &crate::TypegenOptions::from_query(&query))
            .await
            .map(|types| {
                ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], types).into_response()
            }),
        ["config", "version"] => {
            lookup(&meta, &project, Endpoint::Version, Params::default(), "").await
        }
        [segment] => match Endpoint::from_segment(segment) {
            Some(endpoint) => match Params::from_query(endpoint, &query) {
                Ok(params) => meta.list(&project, endpoint, &params).await.map(json_text),
                Err(e) => Err(e),
            },
            None => return route_not_found(&Method::GET, &path),
        },
        [segment, id] => match lookup_params(Endpoint::from_segment(segment), id, &query) {
            Some(Ok((endpoint, params, label))) => {
                lookup(&meta, &project, endpoint, params, &label).await
            }
            Some(Err(e)) => Err(e),
            None => return route_not_found(&Method::GET, &path),
        },
        _ => return route_not_found(&Method::GET, &path),
    };
    answer.unwrap_or_else(|e| failure(&e))
}

/// The largest body a write endpoint takes (postgres-meta's default).
const MAX_BODY: usize = 3 << 20;

/// `POST /{endpoint}`, `PATCH` and `DELETE /{endpoint}/{id}`, and the
/// privileges' `POST`/`DELETE /{endpoint}`; `None` when there is no such
/// route.
async fn write(
    meta: &Meta,
    project: &ProjectRef,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    request: Request,
) -> Option<Result<Response, Error>> {
    let segments: Vec<&str> = path.split('/').collect();
    let endpoint = Endpoint::from_segment(segments.first()?)?;
    let privileges = matches!(
        endpoint,
        Endpoint::TablePrivileges | Endpoint::ColumnPrivileges
    );
    let writable = privileges
        || matches!(
            endpoint,
            Endpoint::Schemas
                | Endpoint::Tables
                | Endpoint::Columns
                | Endpoint::Extensions
                | Endpoint::Functions
                | Endpoint::Policies
                | Endpoint::Triggers
                | Endpoint::Publications
                | Endpoint::Roles
        );
    if !writable {
        return None;
    }
    let bytes = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return Some(Err(Error::BadRequest(format!("body: {e}")))),
    };
    let cascade = query.get("cascade").is_some_and(|v| v == "true");
    let answer = match (method.as_str(), segments.as_slice(), privileges) {
        ("POST", [_], true) => crate::write::body(&bytes).map(|c| (c, true)),
        ("DELETE", [_], true) => crate::write::body(&bytes).map(|c| (c, false)),
        ("POST", [_], false) => {
            return Some(meta.create(project, endpoint, &bytes).await.map(object));
        }
        ("PATCH", [_, id], false) => {
            return Some(meta.update(project, endpoint, id, &bytes).await.map(object));
        }
        ("DELETE", [_, id], false) => {
            return Some(
                meta.remove(project, endpoint, id, cascade)
                    .await
                    .map(object),
            );
        }
        _ => return None,
    };
    Some(match answer {
        Ok((changes, grant)) => meta
            .privileges(project, endpoint, grant, changes)
            .await
            .map(object),
        Err(e) => Err(e),
    })
}

fn object(value: serde_json::Value) -> Response {
    json_text(value.to_string())
}

/// What `/{endpoint}/{id}` looks up, or `None` when postgres-meta has no
/// such route (ids are digits; extensions go by name; `/columns/{table}`
/// is the first column of a table, `/columns/{table}.{n}` one column).
fn lookup_params(
    endpoint: Option<Endpoint>,
    id: &str,
    query: &HashMap<String, String>,
) -> Option<Result<(Endpoint, Params, String), Error>> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let endpoint = endpoint?;
    match endpoint {
        Endpoint::Extensions => Some(Ok((
            endpoint,
            Params::lookup(id),
            format!("Cannot find an extension named {id}"),
        ))),
        Endpoint::Columns if digits(id) => {
            Some(Params::from_query(endpoint, query).map(|mut params| {
                params.ids = Some(vec![id.to_owned()]);
                params.by_table = true;
                (
                    endpoint,
                    params,
                    format!("Cannot find a column with ID {id}"),
                )
            }))
        }
        Endpoint::Columns => {
            let (table, position) = id.split_once('.')?;
            (digits(table) && digits(position)).then(|| {
                Ok((
                    endpoint,
                    Params::lookup(id),
                    format!("Cannot find a column with ID {id}"),
                ))
            })
        }
        _ => {
            let noun = endpoint.noun()?;
            digits(id).then(|| {
                Ok((
                    endpoint,
                    Params::lookup(id),
                    format!("Cannot find a {noun} with ID {id}"),
                ))
            })
        }
    }
}

async fn lookup(
    meta: &Meta,
    project: &ProjectRef,
    endpoint: Endpoint,
    params: Params,
    not_found: &str,
) -> Result<Response, Error> {
    match meta.first(project, endpoint, &params).await? {
        Some(object) => Ok(json_text(object.to_string())),
        None => Err(Error::NotFound(not_found.to_owned())),
    }
}

fn json_text(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        Body::from(body),
    )
        .into_response()
}

/// postgres-meta's error body, `{"error": message}`.
pub(crate) fn failure(e: &Error) -> Response {
    if e.status().is_server_error() {
        tracing::error!(error = %e, "metadata request failed");
    }
    (
        e.status(),
        axum::Json(json!({ "error": e.client_message() })),
    )
        .into_response()
}

/// The 404 postgres-meta's server (fastify) gives a path it does not route.
fn route_not_found(method: &Method, path: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "message": format!("Route {method}:/{path} not found"),
            "error": "Not Found",
            "statusCode": 404,
        })),
    )
        .into_response()
}
