//! The gateway's service table: every Supabase API a project exposes, with
//! its path prefix, how its API key is checked, and where its requests go.
//! Routing reads this table and nothing else, so a new service is one entry
//! (and, when it runs in process, one mounted router).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use supa_core::{ProjectRef, Secret, Service};

use crate::pool::Origin;
use crate::upstream::{self, Clients, Forward, http_client};

/// How the gateway checks the API key of a service's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPolicy {
    /// Any live key of the project.
    Required,
    /// A secret key only (Supabase's Kong keeps postgres-meta for admins).
    SecretOnly,
    /// Required except below these sub-paths, which e-mails and browsers
    /// reach without a key.
    RequiredExcept(&'static [&'static str]),
    /// None at the gateway: the service decides (functions' `verify_jwt`).
    Open,
}

impl KeyPolicy {
    /// Whether a request for `sub_path` (after the prefix) needs a key.
    pub fn needs_key(self, sub_path: &str) -> bool {
        match self {
            KeyPolicy::Required | KeyPolicy::SecretOnly => true,
            KeyPolicy::RequiredExcept(open) => !open
                .iter()
                .any(|p| sub_path == *p || sub_path.starts_with(&format!("{p}/"))),
            KeyPolicy::Open => false,
        }
    }
}

/// Where a service's requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The project's upstream for this service (`ProjectConfig`); an
    /// embedded one is the router mounted for the entry (the data plane
    /// for `/rest/v1`).
    Project(Service),
    /// A router serving every project, always in process (metadata).
    Platform,
}

/// One entry of the table.
#[derive(Debug, Clone, Copy)]
pub struct ServiceEntry {
    /// Path prefix after the project (`/rest/v1`).
    pub prefix: &'static str,
    /// Name in messages (`auth (/auth/v1)`).
    pub name: &'static str,
    /// How keys are checked.
    pub policy: KeyPolicy,
    /// Where requests go.
    pub target: Target,
    /// Whether the gateway's body size limit applies; storage has its own
    /// (global and per bucket, and resumable uploads in parts).
    pub body_limit: bool,
}

/// The Supabase APIs, as DESIGN section 9 routes them.
pub const SERVICES: &[ServiceEntry] = &[
    ServiceEntry {
        prefix: "/rest/v1",
        name: "rest (/rest/v1)",
        policy: KeyPolicy::Required,
        target: Target::Project(Service::Rest),
        body_limit: true,
    },
    ServiceEntry {
        prefix: "/auth/v1",
        name: "auth (/auth/v1)",
        policy: KeyPolicy::RequiredExcept(&[
            "/verify",
            "/callback",
            "/authorize",
            "/.well-known/jwks.json",
            // The OAuth 2.1 server's third-party clients hold no API key.
            "/oauth/authorize",
            "/oauth/token",
            "/oauth/clients/register",
            "/.well-known/oauth-authorization-server",
        ]),
        target: Target::Project(Service::Auth),
        body_limit: true,
    },
    ServiceEntry {
        prefix: "/storage/v1",
        name: "storage (/storage/v1)",
        // Public objects, signed URLs (download and upload) and the S3
        // protocol (SigV4) are reached without an API key; the server
        // checks what they carry.
        policy: KeyPolicy::RequiredExcept(&[
            "/object/public",
            "/object/info/public",
            "/object/sign",
            "/object/upload/sign",
            "/render/image/public",
            "/render/image/sign",
            "/s3",
        ]),
        target: Target::Project(Service::Storage),
        body_limit: false,
    },
    ServiceEntry {
        prefix: "/realtime/v1",
        name: "realtime (/realtime/v1)",
        policy: KeyPolicy::Required,
        target: Target::Project(Service::Realtime),
        body_limit: true,
    },
    ServiceEntry {
        prefix: "/functions/v1",
        name: "functions (/functions/v1)",
        policy: KeyPolicy::Open,
        target: Target::Project(Service::Functions),
        body_limit: true,
    },
    ServiceEntry {
        prefix: "/pg",
        name: "pg-meta (/pg)",
        policy: KeyPolicy::SecretOnly,
        target: Target::Platform,
        body_limit: true,
    },
    ServiceEntry {
        prefix: "/graphql/v1",
        name: "graphql (/graphql/v1)",
        policy: KeyPolicy::Required,
        target: Target::Platform,
        body_limit: true,
    },
];

/// The entry whose prefix starts `path`, and the path after it.
pub(crate) fn lookup(path: &str) -> Option<(&'static ServiceEntry, &str)> {
    SERVICES.iter().find_map(|entry| {
        let rest = path.strip_prefix(entry.prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some((entry, rest))
    })
}

/// A router that serves `/pg` for every project by forwarding to a remote
/// tenant manager's internal API (`/internal/v1/projects/{ref}/pg/...`),
/// so a standalone gateway never holds a worker's admin login.
pub fn remote_meta(tenant_url: &url::Url, service_token: Secret<String>) -> Router {
    let clients = Arc::new(Clients {
        tls: http_client(std::time::Duration::from_secs(60)),
        timeout: std::time::Duration::from_secs(60),
    });
    let base = Arc::new(tenant_url.clone());
    let origin = Arc::new(Origin::of(tenant_url));
    let token = Arc::new(service_token);
    Router::new().fallback(move |request: Request<Body>| {
        let (clients, base, origin, token) =
            (clients.clone(), base.clone(), origin.clone(), token.clone());
        async move {
            let Some(project) = request.extensions().get::<ProjectRef>().copied() else {
                return crate::Error::NoRoute.response();
            };
            let path_and_query = format!(
                "/internal/v1/projects/{project}/pg{}",
                request.uri().path_and_query().map_or("/", |p| p.as_str())
            );
            let forward = Forward {
                base: &base,
                origin: origin.as_ref().as_ref(),
                path_and_query: &path_and_query,
                token: token.expose(),
                host: None,
                prefix: "/pg",
            };
            upstream::http(&clients, request, &forward)
                .await
                .unwrap_or_else(|e| e.response())
        }
    })
}

/// Answers `request` with a mounted router, the project in its extensions.
pub(crate) async fn serve_mounted(
    router: &Router,
    project: ProjectRef,
    mut request: Request<Body>,
) -> Response<Body> {
    use tower::ServiceExt as _;
    request.extensions_mut().insert(project);
    match router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert_eq!(lookup("/rest/v1/todos").unwrap().0.prefix, "/rest/v1");
        assert_eq!(lookup("/rest/v1").unwrap().1, "");
        assert!(lookup("/rest/v10/x").is_none());
        assert_eq!(lookup("/pg/tables").unwrap().1, "/tables");
        assert!(lookup("/pgx").is_none());
    }

    #[test]
    fn key_policies() {
        let auth = lookup("/auth/v1/verify").unwrap().0.policy;
        assert!(!auth.needs_key("/verify"));
        assert!(!auth.needs_key("/.well-known/jwks.json"));
        assert!(auth.needs_key("/token"));
        assert!(auth.needs_key("/verifyx"));
        assert!(!KeyPolicy::Open.needs_key("/hello"));
        assert!(KeyPolicy::SecretOnly.needs_key("/tables"));
    }
}
