//! Supa Studio: the platform's web dashboard, served by the tenant manager
//! (and so by `supa up`) at `/` on the Management API's listener.
//!
//! Pages are HTML rendered on the server (maud templates, every value
//! escaped at compile-time-checked interpolation points) with one small
//! script for copy buttons; all assets are compiled into the binary, so
//! Studio works offline and needs no build step. Signing in with the admin
//! token starts a session held in an HttpOnly, SameSite=Strict cookie;
//! every form carries the session's CSRF token and changes from another
//! origin are refused; every response carries a strict
//! Content-Security-Policy (no inline script or style, no framing).
//! Studio calls the control plane in process, the same [`Tenant`] the
//! Management API serves.

mod gateway;
mod observability;
mod pages;
mod project_pages;
mod session;
mod sql;
mod storage;
mod tables;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use supa_core::Secret;
use supa_tenant::Tenant;

pub use session::{COOKIE, LIFETIME};

/// The dashboard's state: the control plane, the admin token's digest,
/// the sessions and where the public gateway is.
#[derive(Clone)]
pub struct Studio {
    inner: Arc<Inner>,
}

struct Inner {
    tenant: Tenant,
    /// postgres-meta's API for a project in the request's extensions.
    meta: Router,
    /// Calls the projects' data planes at the gateway.
    http: reqwest::Client,
    admin: [u8; 32],
    sessions: session::Sessions,
    gateway_url: String,
    /// `gateway_url` as a WebSocket origin (`ws://`, `wss://`).
    sockets: String,
    /// The Content-Security-Policy of every page.
    csp: axum::http::HeaderValue,
}

impl Studio {
    /// A dashboard over `tenant` and its metadata API `meta` (from
    /// [`supa_tenant::api::pg_service`]), signed into with `admin_token`;
    /// projects' data planes are reached, and their URLs shown, under
    /// `gateway_url`.
    pub fn new(
        tenant: Tenant,
        meta: Router,
        admin_token: &Secret<String>,
        gateway_url: &str,
    ) -> Self {
        let gateway_url = gateway_url.trim_end_matches('/');
        let sockets = gateway_url
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        Self {
            inner: Arc::new(Inner {
                tenant,
                meta,
                http: supa_core::http::client(std::time::Duration::from_secs(60)),
                admin: Sha256::digest(admin_token.expose().as_bytes()).into(),
                sessions: session::Sessions::default(),
                gateway_url: gateway_url.to_owned(),
                csp: pages::content_security_policy(&sockets),
                sockets,
            }),
        }
    }

    fn accepts(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        bool::from(digest.ct_eq(&self.inner.admin))
    }
}

/// Studio's pages and assets, to merge into the Management API's router.
pub fn router(studio: Studio) -> Router {
    Router::new()
        .route("/", get(pages::projects))
        .route("/sign-in", get(pages::sign_in_form).post(pages::sign_in))
        .route("/sign-out", post(pages::sign_out))
        .route("/projects", post(pages::create_project))
        .route("/projects/{ref}", get(pages::project_home))
        .route("/projects/{ref}/sql", get(sql::editor).post(sql::run))
        .route(
            "/projects/{ref}/tables",
            get(tables::list).post(tables::create),
        )
        .route("/projects/{ref}/tables/{schema}/{name}", get(tables::table))
        .route(
            "/projects/{ref}/tables/{schema}/{name}/{action}",
            post(tables::change),
        )
        .route("/projects/{ref}/auth", get(project_pages::auth))
        .route("/projects/{ref}/auth/users", post(project_pages::add_user))
        .route(
            "/projects/{ref}/auth/invite",
            post(project_pages::invite_user),
        )
        .route(
            "/projects/{ref}/auth/users/{id}/delete",
            post(project_pages::delete_user),
        )
        .route(
            "/projects/{ref}/auth/settings",
            post(project_pages::save_auth_settings),
        )
        .route("/projects/{ref}/functions", get(project_pages::functions))
        .route("/projects/{ref}/observability", get(observability::page_of))
        .route("/projects/{ref}/realtime", get(project_pages::realtime))
        .route(
            "/projects/{ref}/settings",
            get(project_pages::settings).post(project_pages::save_settings),
        )
        .route("/projects/{ref}/storage", get(storage::browser))
        .route(
            "/projects/{ref}/storage/buckets",
            post(storage::create_bucket),
        )
        .route(
            "/projects/{ref}/storage/upload",
            post(storage::upload).layer(axum::extract::DefaultBodyLimit::max(storage::MAX_UPLOAD)),
        )
        .route("/projects/{ref}/storage/download", get(storage::download))
        .route("/projects/{ref}/storage/sign", post(storage::sign))
        .route("/workers", get(project_pages::workers))
        .route("/projects/{ref}/pause", post(pages::pause_project))
        .route("/projects/{ref}/resume", post(pages::resume_project))
        .route("/projects/{ref}/keys", post(pages::create_key))
        .route("/projects/{ref}/keys/{id}/reveal", post(pages::reveal_key))
        .route("/projects/{ref}/keys/{id}/revoke", post(pages::revoke_key))
        .route(
            "/projects/{ref}/delete",
            get(pages::confirm_delete).post(pages::delete_project),
        )
        // No icon: an empty answer rather than a 404 on every page.
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .route("/assets/studio.css", get(pages::css))
        .route("/assets/studio.js", get(pages::js))
        .layer(axum::middleware::map_response_with_state(
            studio.clone(),
            pages::security_headers,
        ))
        .with_state(studio)
}
