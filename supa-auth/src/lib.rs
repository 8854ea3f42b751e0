//! Supa's auth server: the `/auth/v1` API of Supabase's auth server
//! (GoTrue) for every project, over the `auth` schema of each project
//! database, as supabase-py and supabase-js call it.
//!
//! [`Auth`] is the multi-project engine (a small pool per project,
//! bounded in number, closed when idle); [`router`] is its axum `Router`,
//! which finds the project of each request in the request's extensions as
//! an `Arc<ProjectConfig>` (the gateway puts it there, the standalone
//! binary too) and where clients reach it in `X-Forwarded-Host` and
//! `X-Forwarded-Prefix`. This first part signs users up with e-mail and password, grants
//! sessions by password and by refresh token (rotated, with GoTrue's reuse
//! interval and reuse detection), shows and updates the user, and signs
//! out; access tokens carry GoTrue's claims and are signed with the
//! project's JWT secret, so the gateway passes them through and the data
//! plane applies RLS by `auth.uid()`.

#![forbid(unsafe_code)]

mod api;
mod error;
pub mod gotrue_env;
mod hooks;
mod limits;
mod links;
mod mail;
mod mfa;
mod oauth;
mod oauth_server;
pub mod schema;
mod sms;
mod store;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

pub use api::router;
pub use error::Error;
use supa_core::{AuthSettings, ProjectConfig, ProjectDatabase, ProjectRef};
use supa_keys::JwtKey;

/// One project as its auth server needs it.
#[derive(Clone)]
pub struct AuthProject {
    /// The project.
    pub project_ref: ProjectRef,
    /// Verifies its access tokens (and signs them, HS256, without an
    /// ES256 key).
    pub jwt_key: JwtKey,
    /// Its ES256 signing keys, the current one first: access tokens are
    /// signed with it and every one is in the JWKS.
    pub signing_keys: Vec<supa_keys::EsSigningKey>,
    /// Its settings.
    pub settings: AuthSettings,
    /// The auth server's login to its database.
    pub database: ProjectDatabase,
    /// The `iss` of its access tokens (`{public URL}/auth/v1`).
    pub issuer: String,
    /// Where e-mailed links lead (`{issuer}/verify`).
    pub verify_url: String,
    /// Where OAuth providers send users back (`{issuer}/callback`).
    pub callback_url: String,
    /// Its write-only settings (OAuth client secrets, hook secrets), by
    /// field name.
    pub auth_secrets: std::collections::BTreeMap<String, supa_core::Secret<String>>,
    /// The password of its SMTP server.
    pub smtp_pass: Option<supa_core::Secret<String>>,
}

impl std::fmt::Debug for AuthProject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthProject")
            .field("project_ref", &self.project_ref)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Connections per project, opened on demand: as many as the data plane
/// keeps, so sign-ins and refreshes under load do not queue for one.
pub const POOL_SIZE: usize = 10;

/// The engine: a pool per project database; cheap to clone.
#[derive(Clone)]
pub struct Auth {
    pools: supa_db::Pools,
    pub(crate) limits: limits::Limits,
    /// Talks to OAuth providers.
    pub(crate) http: reqwest::Client,
    /// OpenID discovery documents, by issuer.
    pub(crate) discovery: moka::sync::Cache<String, Arc<oauth::Endpoints>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("open_pools", &self.pools.open())
            .finish()
    }
}

impl Default for Auth {
    fn default() -> Self {
        Self::new(200, Duration::from_secs(300))
    }
}

impl Auth {
    /// At most `max_projects` pools of [`POOL_SIZE`] connections, each closed after
    /// `idle` without a request.
    pub fn new(max_projects: u64, idle: Duration) -> Self {
        Self {
            pools: supa_db::Pools::new(max_projects, idle),
            limits: limits::Limits::default(),
            http: supa_core::http::client(Duration::from_secs(10)),
            discovery: oauth::discovery_cache(),
        }
    }

    /// The engine of one database served standalone: its pool of `max`
    /// connections, made from `config`, stays open.
    pub fn single(
        project: ProjectRef,
        mut config: tokio_postgres::Config,
        max: usize,
    ) -> Result<Self, Error> {
        config.options("-c TimeZone=UTC");
        config.application_name("supa-auth");
        let pool = supa_db::pool(config, max).map_err(Error::internal)?;
        Ok(Self {
            pools: supa_db::Pools::single(project, pool),
            limits: limits::Limits::default(),
            http: supa_core::http::client(Duration::from_secs(10)),
            discovery: oauth::discovery_cache(),
        })
    }

    /// Creates or brings up to date the auth schema of a standalone
    /// database, as GoTrue migrates on start.
    pub async fn migrate(&self, project: ProjectRef) -> Result<(), Error> {
        let pool = self
            .pools
            .get(&project)
            .ok_or_else(|| Error::internal("no database"))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| Error::internal(format!("database: {e}")))?;
        schema::migrate(&mut client, true).await
    }

    /// Forgets a project's pool (deleted, login rotated).
    pub fn evict(&self, project: &ProjectRef) {
        self.pools.evict(project);
    }

    /// A connection to the project's database, acting as
    /// `supabase_auth_admin`, timestamps in UTC.
    pub(crate) async fn client(&self, project: &AuthProject) -> Result<supa_db::Object, Error> {
        let connect = |pool: &supa_db::Pool| {
            let pool = pool.clone();
            async move {
                pool.get().await.map_err(|e| {
                    Error::unavailable(format!("project {}: {e}", project.project_ref))
                })
            }
        };
        if let Some(pool) = self.pools.get(&project.project_ref) {
            return connect(&pool).await;
        }
        let mut config = supa_db::pg_config(&project.database, "supa-auth");
        config.options("-c TimeZone=UTC");
        let pool = supa_db::pool(config, POOL_SIZE).map_err(Error::internal)?;
        let mut client = connect(&pool).await?;
        // A project made before a schema addition gets it now.
        schema::migrate(&mut client, false).await?;
        self.pools.insert(project.project_ref, pool);
        Ok(client)
    }
}

impl AuthProject {
    /// The project of `config`, its tokens issued by `issuer`; a 503 when
    /// it has no auth login (made before the auth server).
    pub fn from_config(config: &ProjectConfig, issuer: String) -> Result<Self, Error> {
        let database = config.auth_database.clone().ok_or_else(|| {
            Error::new(
                503,
                "auth_unavailable",
                "Auth is not available for this project",
            )
        })?;
        let (jwt_key, signing_keys) = supa_keys::project_keys(config).map_err(Error::internal)?;
        Ok(Self {
            project_ref: config.project_ref,
            jwt_key,
            signing_keys,
            settings: config.auth.clone(),
            database,
            verify_url: format!("{issuer}/verify"),
            callback_url: format!("{issuer}/callback"),
            auth_secrets: config.auth_secrets.clone(),
            issuer,
            smtp_pass: config.smtp_pass.clone(),
        })
    }

    /// Its SMTP server, when it has one (its e-mails stay in the outbox
    /// otherwise).
    pub(crate) fn smtp(&self) -> Option<mail::Smtp> {
        let s = &self.settings;
        let host = s.smtp_host.clone()?;
        let port = s
            .smtp_port
            .as_deref()
            .and_then(|p| p.parse().ok())
            .unwrap_or(587);
        let address = s.smtp_admin_email.clone().unwrap_or_else(|| {
            let domain = url::Url::parse(&s.site_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "localhost".into());
            format!("noreply@{domain}")
        });
        let from = match &s.smtp_sender_name {
            Some(name) => format!("\"{}\" <{address}>", name.replace(['"', '\\'], "")),
            None => address,
        };
        Some(mail::Smtp {
            host,
            port,
            user: s.smtp_user.clone(),
            pass: self.smtp_pass.clone(),
            from,
        })
    }
}

/// Where clients reach a standalone server, configured rather than read
/// from forwarded headers (GoTrue's `API_EXTERNAL_URL`): a request
/// extension that overrides them.
#[derive(Debug, Clone)]
pub struct PublicUrls {
    /// The `iss` of access tokens.
    pub issuer: String,
    /// Where e-mailed links lead.
    pub verify_url: String,
    /// Where OAuth providers send users back.
    pub callback_url: String,
}

/// The project of a request, from its `Arc<ProjectConfig>` extension and
/// forwarded headers.
#[derive(Debug, Clone)]
pub(crate) struct Project(pub Arc<AuthProject>);

impl std::ops::Deref for Project {
    type Target = AuthProject;
    fn deref(&self) -> &AuthProject {
        &self.0
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Project {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Error> {
        let config = parts
            .extensions
            .get::<Arc<ProjectConfig>>()
            .cloned()
            .ok_or_else(|| Error::new(404, "not_found", "No project"))?;
        if let Some(urls) = parts.extensions.get::<PublicUrls>() {
            let mut project = AuthProject::from_config(&config, urls.issuer.clone())?;
            project.verify_url.clone_from(&urls.verify_url);
            project.callback_url.clone_from(&urls.callback_url);
            return Ok(Self(Arc::new(project)));
        }
        let issuer = supa_core::public_base_url(
            |name| parts.headers.get(name).and_then(|v| v.to_str().ok()),
            "/auth/v1",
        );
        Ok(Self(Arc::new(AuthProject::from_config(&config, issuer)?)))
    }
}
