//! The request path of DESIGN section 4.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Response, Uri, header};
use moka::Expiry;
use serde_json::{Value, json};
use supa_core::{
    DirectoryError, KeyKind, KeyRecord, PostgrestSettings, ProjectConfig, ProjectDirectory,
    ProjectRef, Role, Service, Upstream,
};
use supa_keys::{JwtKey, MintCache, SigV4Signer, Validation};
use supa_rest::{Auth, Engine, RestConfig};

use crate::metrics::Metrics;
use crate::pool::Origin;
use crate::services::{self, KeyPolicy, Target};
use crate::upstream::{self, AwsCredentials, Clients, Forward, http_client};
use crate::{Error, cors};

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `{ref}.{base_domain}` hosts resolve to projects.
    pub base_domain: Option<String>,
    /// How long a project's config and a key stay cached.
    pub ttl: Duration,
    /// How long "no such key/project" stays cached (at most 5 s).
    pub negative_ttl: Duration,
    /// How long the last answer the directory gave for a project or a key
    /// is used when the directory cannot be reached (the tenant manager
    /// is down): cached projects keep serving through its outage.
    pub stale_if_error: Duration,
    /// Connections per project in the embedded data plane.
    pub pool_size: usize,
    /// Idle time after which a project's pool is closed.
    pub idle: Duration,
    /// How long an HTTP or Lambda upstream may take to answer.
    pub upstream_timeout: Duration,
    /// Projects whose pools stay open at once (least recently used closed).
    pub max_open_projects: usize,
    /// Requests a second each project may make at this gateway (a
    /// second's worth may come at once); `None`: no limit.
    pub project_rate_limit: Option<u32>,
    /// The largest request body the gateway passes to any service but
    /// storage (which has its own limits): 413 past it.
    pub max_body_bytes: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            base_domain: None,
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            stale_if_error: Duration::from_secs(3600),
            pool_size: 10,
            idle: Duration::from_secs(300),
            upstream_timeout: Duration::from_secs(60),
            // With the pools' lazily opened connections this keeps a
            // gateway well under a worker's max_connections.
            max_open_projects: 50,
            project_rate_limit: None,
            // The data plane's own limit: PostgREST's clients send no more.
            max_body_bytes: 64 << 20,
        }
    }
}

/// What the gateway keeps per project once loaded.
#[derive(Debug)]
struct ProjectState {
    /// Shared with the services mounted in process, which find it in their
    /// requests' extensions.
    config: Arc<ProjectConfig>,
    jwt_key: JwtKey,
    rest: RestConfig,
    db: Option<supa_core::ProjectDatabase>,
    /// A plain-HTTP upstream's address, parsed once.
    origin: Option<Origin>,
}

type CachedProject = Option<Arc<ProjectState>>;

/// Positive entries live `ttl`, negative ones `negative_ttl`.
struct TtlByPresence {
    ttl: Duration,
    negative: Duration,
}

impl<K, V> Expiry<K, Option<V>> for TtlByPresence {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &Option<V>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(if value.is_some() {
            self.ttl
        } else {
            self.negative
        })
    }
}

/// The gateway: caches, the embedded data plane, and the directory.
pub struct Gateway {
    directory: Arc<dyn ProjectDirectory>,
    config: GatewayConfig,
    keys: moka::future::Cache<[u8; 32], Option<KeyRecord>>,
    projects: moka::future::Cache<ProjectRef, CachedProject>,
    /// The directory's last answers, kept `stale_if_error` past their
    /// expiry above, for when it cannot be reached. A revoked key is kept
    /// here as `None`, so it stays refused through an outage.
    last_keys: moka::future::Cache<[u8; 32], Option<KeyRecord>>,
    last_projects: moka::future::Cache<ProjectRef, CachedProject>,
    engine: Engine,
    clients: Clients,
    signer: SigV4Signer,
    aws: AwsCredentials,
    mints: MintCache,
    metrics: Arc<Metrics>,
    rate: Option<crate::rate::RateLimit>,
    /// Routers serving table entries in process, by prefix.
    mounted: HashMap<&'static str, axum::Router>,
    /// Counts invalidations, so a fetch that straddled one does not leave
    /// what it read in the cache.
    invalidations: std::sync::atomic::AtomicU64,
}

/// Who the request runs as.
enum Identity {
    /// A verified user JWT, passed through.
    User { token: String, claims: Value },
    /// The key's own role; a JWT is minted when one is needed.
    Key(Role),
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over `directory`, counting into `metrics`.
    pub fn new(
        directory: Arc<dyn ProjectDirectory>,
        config: GatewayConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let expiry = || TtlByPresence {
            ttl: config.ttl,
            negative: config.negative_ttl.min(Duration::from_secs(5)),
        };
        Self {
            directory,
            keys: moka::future::Cache::builder()
                .max_capacity(100_000)
                .expire_after(expiry())
                .build(),
            projects: moka::future::Cache::builder()
                .max_capacity(10_000)
                .expire_after(expiry())
                .build(),
            last_keys: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(config.ttl + config.stale_if_error)
                .build(),
            last_projects: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(config.ttl + config.stale_if_error)
                .build(),
            engine: Engine::new(config.pool_size, config.idle, config.max_open_projects),
            clients: Clients {
                tls: http_client(config.upstream_timeout),
                timeout: config.upstream_timeout,
            },
            signer: SigV4Signer::lambda(),
            aws: AwsCredentials::default(),
            mints: MintCache::new(100_000),
            metrics,
            rate: config.project_rate_limit.map(crate::rate::RateLimit::new),
            config,
            mounted: HashMap::new(),
            invalidations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Serves the table entry `prefix` (`/pg`, later `/auth/v1`...) with
    /// `router`, in process: it gets the path after the prefix, the query
    /// without `apikey`, and the [`ProjectRef`] in its extensions, once the
    /// entry's key policy let the request through.
    ///
    /// # Panics
    /// When `prefix` is not an entry of [`crate::SERVICES`]: a wiring error.
    pub fn mount(mut self, prefix: &str, router: axum::Router) -> Self {
        let entry = crate::SERVICES
            .iter()
            .find(|e| e.prefix == prefix)
            .unwrap_or_else(|| panic!("{prefix} is not a service of the gateway's table"));
        self.mounted.insert(entry.prefix, router);
        self
    }

    /// Forgets what an invalidation message names: a project ref or the
    /// hex SHA-256 of a key.
    pub async fn invalidate(&self, message: &str) {
        self.invalidations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(r) = ProjectRef::parse(message) {
            self.projects.invalidate(&r).await;
            self.last_projects.invalidate(&r).await;
            self.engine.evict(r.as_str());
            self.mints.invalidate(&r);
        } else {
            let mut hash = [0u8; 32];
            if hex::decode_to_slice(message, &mut hash).is_ok() {
                self.keys.invalidate(&hash).await;
                // The tenant manager names a key only when it is revoked.
                self.last_keys.insert(hash, None).await;
            }
        }
    }

    /// The gateway as an axum router (every path).
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new().fallback(move |request: Request<Body>| {
            let gateway = self.clone();
            async move { gateway.handle(request).await }
        })
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request<Body>) -> Response<Body> {
        if cors::is_preflight(request.method(), request.headers()) {
            return cors::preflight(request.headers());
        }
        let origin = request.headers().get(header::ORIGIN).cloned();
        let started = std::time::Instant::now();
        let mut kind = "none";
        let mut project = None;
        let mut response = match self.route(request, &mut kind, &mut project).await {
            Ok(r) => r,
            Err(e) => {
                if !e.is_client_error() {
                    tracing::warn!(error = %e, "gateway refused a request");
                }
                e.response()
            }
        };
        cors::decorate(origin, &mut response);
        let status = response.status().as_u16();
        self.metrics.request(status, kind);
        if let Some(project) = project {
            let minute = supa_core::usage::minute_of(supa_core::time::since_epoch());
            self.metrics
                .usage
                .record(&project, minute, status, started.elapsed());
        }
        response
    }

    async fn route(
        &self,
        request: Request<Body>,
        kind: &mut &'static str,
        seen: &mut Option<ProjectRef>,
    ) -> Result<Response<Body>, Error> {
        let path = request.uri().path();
        if path == "/health" {
            return Ok(json_response(200, &json!({"status": "ok"})));
        }
        let (project_ref, rest_path) = self.resolve(request.headers(), path)?;
        let (entry, sub_path) = services::lookup(rest_path).ok_or(Error::NoRoute)?;
        // A service this gateway does not serve answers 404 naming it,
        // before any key is looked at (as Kong does).
        let mounted = self.mounted.get(entry.prefix);
        if mounted.is_none() && entry.target != Target::Project(Service::Rest) {
            return Err(Error::ServiceNotAvailable(entry.name));
        }
        let sub_path = if sub_path.is_empty() { "/" } else { sub_path }.to_owned();
        let via_project_prefix = path.starts_with("/project/");
        let request = if entry.body_limit {
            self.limit_body(request)?
        } else {
            request
        };

        let (key, query) = api_key(request.headers(), request.uri());
        let needs_key = entry.policy.needs_key(&sub_path);
        // The key's own checks (present, its checksum) come before any
        // lookup: a request that fails them costs the directory nothing.
        // An open path still carries the role of a good key (creating a
        // signed URL); a bad one there is ignored, not refused, so public
        // links keep working in a browser with a stale key.
        let offline = match key.as_deref() {
            None if needs_key => return Err(Error::NoApiKey),
            None => None,
            Some(key) => match key_kind_of(&project_ref, key) {
                Ok(kind) => Some((key, kind)),
                Err(e) if needs_key => return Err(e),
                Err(_) => None,
            },
        };
        let browser = from_browser(request.headers());
        let key_kind = async {
            let Some((key, kind)) = offline else {
                return Ok(None);
            };
            let checked = self.check_key(&project_ref, key, kind).await;
            if !needs_key {
                return Ok(checked.ok());
            }
            let key_kind = checked?;
            if key_kind == KeyKind::Secret && browser {
                return Err(Error::SecretKeyInBrowser);
            }
            if entry.policy == KeyPolicy::SecretOnly && key_kind != KeyKind::Secret {
                return Err(Error::SecretKeyRequired);
            }
            Ok(Some(key_kind))
        };
        // A cold project's key and config are fetched at once (the key's
        // verdict still comes first).
        let (key_kind, project) = tokio::join!(key_kind, self.project(&project_ref));
        // Only projects that exist are counted: a made-up ref costs no
        // memory.
        if project.is_ok() {
            *seen = Some(project_ref);
        }
        let key_kind = key_kind?;
        let project = project?;
        if let Some(rate) = &self.rate
            && let Err(wait) = rate.take(&project_ref, std::time::Instant::now())
        {
            return Err(Error::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
        if !project.config.status.is_serving() {
            let status = serde_json::to_value(project.config.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(Error::ProjectUnavailable(status));
        }
        // Where clients reach the gateway, for links a service builds.
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let started = std::time::Instant::now();
        if let Some(router) = mounted {
            *kind = "embedded";
            // A project's own service (auth...) gets its configuration, the
            // caller's own bearer token (never an API key) and where
            // clients reach it, as an http upstream is told.
            // Other schemes (an OAuth client's `Basic` credentials at the
            // auth server's token endpoint) are the service's to check.
            let user_token = match entry.target {
                Target::Project(_) => request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .filter(|v| {
                        v.to_str().is_ok_and(|t| {
                            let token = t.get(7..).unwrap_or("");
                            let bearer = t.len() > 7 && t[..7].eq_ignore_ascii_case("bearer ");
                            !bearer || (!token.starts_with("sb_") && Some(token) != key.as_deref())
                        })
                    })
                    .cloned(),
                Target::Platform => None,
            };
            let peer = request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip());
            // The project may run this service on its own server (a
            // Knative service, a standalone container): proxied as is.
            let remote = match entry.target {
                Target::Project(service) => match project.config.upstream_of(service) {
                    Upstream::Embedded => None,
                    other => Some(other),
                },
                Target::Platform => None,
            };
            let mut forwarded = forward_request(request, &sub_path, query.as_deref())?;
            if let Target::Project(_) = entry.target {
                let h = forwarded.headers_mut();
                // The service limits requests by client: the last hop of
                // `X-Forwarded-For` is the one this gateway saw.
                if let Some(peer) = peer {
                    upstream::append_forwarded_for(h, peer);
                }
                // Without a user's token, the key's role rides in a minted
                // one, as on Supabase (admin endpoints need service_role).
                let token = user_token.or_else(|| {
                    let role = match key_kind? {
                        KeyKind::Secret => supa_core::Role::ServiceRole,
                        _ => supa_core::Role::Anon,
                    };
                    let minted =
                        self.mints
                            .get(&project.jwt_key, &project_ref, role, supa_keys::unix_now());
                    HeaderValue::from_str(&format!("Bearer {minted}")).ok()
                });
                let prefix = if via_project_prefix {
                    format!("/project/{project_ref}{}", entry.prefix)
                } else {
                    entry.prefix.to_owned()
                };
                if let Some(Upstream::Http { url }) = remote {
                    *kind = "http";
                    let path_and_query = forwarded
                        .uri()
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned();
                    let origin = Origin::of(url);
                    let fwd = Forward {
                        base: url,
                        origin: origin.as_ref(),
                        path_and_query: &path_and_query,
                        token: "",
                        host: host.as_deref(),
                        prefix: &prefix,
                    };
                    let response = upstream::service(&self.clients, forwarded, &fwd, token).await;
                    self.metrics.upstream_latency(kind, started.elapsed());
                    return response;
                }
                if let Some(token) = token {
                    h.insert(header::AUTHORIZATION, token);
                }
                upstream::set_forwarded(h, host.as_deref(), &prefix);
                forwarded.extensions_mut().insert(project.config.clone());
            }
            let response = services::serve_mounted(router, project_ref, forwarded).await;
            self.metrics.upstream_latency(kind, started.elapsed());
            return Ok(response);
        }
        // The data plane: keys are always required there.
        let key = key.unwrap_or_default();
        let key_kind = key_kind.ok_or(Error::NoApiKey)?;
        let data_path = sub_path;
        let identity = self.identity(&project, key_kind, &key, request.headers())?;
        let now = supa_keys::unix_now();
        *kind = project.config.upstream.kind();

        // Where clients see the data plane, for links the upstream builds.
        let prefix = if via_project_prefix {
            format!("/project/{project_ref}/rest/v1")
        } else {
            "/rest/v1".to_owned()
        };
        if let Upstream::Embedded = &project.config.upstream {
            let Some(db) = &project.db else {
                return Err(Error::UpstreamUnreachable(
                    "no database for the embedded data plane".into(),
                ));
            };
            // In process: the claims go along, no token is minted.
            let claims = match identity {
                Identity::User { claims, .. } => claims,
                Identity::Key(role) => json!({
                    "iss": supa_keys::ISSUER,
                    "ref": project_ref.as_str(),
                    "role": role.as_str(),
                    "iat": now,
                    "exp": now + supa_keys::DEFAULT_TTL_SECS,
                }),
            };
            let mut forwarded = forward_request(request, &data_path, query.as_deref())?;
            // As an http upstream is told: where clients reach it (the
            // OpenAPI document's host and base path).
            upstream::set_forwarded(forwarded.headers_mut(), host.as_deref(), &prefix);
            let response = self
                .engine
                .handle(
                    project_ref.as_str(),
                    &project.rest,
                    db,
                    forwarded,
                    Auth::Claims(claims),
                )
                .await;
            self.metrics.upstream_latency(kind, started.elapsed());
            return Ok(response);
        }
        let token: Arc<str> = match identity {
            Identity::User { token, .. } => token.into(),
            Identity::Key(role) => {
                self.metrics
                    .mints
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.mints.get(&project.jwt_key, &project_ref, role, now)
            }
        };
        let path_and_query = match &query {
            Some(q) => format!("{data_path}?{q}"),
            None => data_path.clone(),
        };
        let fwd = |base| Forward {
            base,
            origin: project.origin.as_ref(),
            path_and_query: &path_and_query,
            token: &token,
            host: host.as_deref(),
            prefix: &prefix,
        };
        let response = match &project.config.upstream {
            Upstream::Http { url } => upstream::http(&self.clients, request, &fwd(url)).await,
            Upstream::Lambda {
                function_url,
                region,
            } => {
                let credentials = self.aws.get(&self.clients.tls).await?;
                upstream::lambda(
                    &self.clients,
                    &self.signer,
                    &credentials,
                    region,
                    request,
                    &fwd(function_url),
                )
                .await
            }
            Upstream::Embedded => unreachable!("answered above"),
        };
        self.metrics.upstream_latency(kind, started.elapsed());
        response
    }

    /// The project and the path after it: `/project/{ref}/...` or
    /// `Host: {ref}.{base_domain}`.
    fn resolve<'p>(
        &self,
        headers: &HeaderMap,
        path: &'p str,
    ) -> Result<(ProjectRef, &'p str), Error> {
        if let Some(rest) = path.strip_prefix("/project/") {
            let (r, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let r = ProjectRef::parse(r).map_err(|_| Error::ProjectNotFound)?;
            return Ok((r, tail));
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
        if let (Some(host), Some(domain)) = (host, &self.config.base_domain)
            && let Some(sub) = host.strip_suffix(&format!(".{domain}"))
        {
            let r = ProjectRef::parse(sub).map_err(|_| Error::ProjectNotFound)?;
            return Ok((r, path));
        }
        Err(Error::ProjectNotFound)
    }

    /// `kind` (what the key says of itself, [`key_kind_of`]) once its
    /// record proves it is a live key of this project.
    async fn check_key(
        &self,
        project_ref: &ProjectRef,
        key: &str,
        kind: KeyKind,
    ) -> Result<KeyKind, Error> {
        let hash = supa_keys::hash(key);
        // A hit is one lookup; a miss joins (or starts) the single fetch.
        let cached = self.keys.get(&hash).await;
        self.count_l1(cached.is_some());
        let record = match cached {
            Some(r) => r,
            None => {
                let seen = self.invalidations.load(std::sync::atomic::Ordering::SeqCst);
                let directory = self.directory.clone();
                let fetched = self
                    .keys
                    .try_get_with(hash, async move { directory.lookup_key(&hash).await })
                    .await;
                match fetched {
                    // As for project configs: a revocation during the
                    // lookup must not stay hidden behind what it read.
                    Ok(record) if self.straddled(seen) => {
                        self.keys.invalidate(&hash).await;
                        record
                    }
                    Ok(record) => {
                        self.last_keys.insert(hash, record.clone()).await;
                        record
                    }
                    Err(e) => self.last_keys.get(&hash).await.ok_or_else(|| {
                        tracing::warn!(error = %e.0, "key lookup failed, no last answer");
                        Error::Directory(e.0.clone())
                    })?,
                }
            }
        };
        match record {
            Some(r) if r.project_ref == *project_ref && r.kind == kind => Ok(kind),
            _ => Err(Error::InvalidApiKey),
        }
    }

    async fn project(&self, project_ref: &ProjectRef) -> Result<Arc<ProjectState>, Error> {
        let r = *project_ref;
        if let Some(cached) = self.projects.get(&r).await {
            self.count_l1(true);
            return cached.ok_or(Error::ProjectNotFound);
        }
        self.count_l1(false);
        let seen = self.invalidations.load(std::sync::atomic::Ordering::SeqCst);
        let directory = self.directory.clone();
        let fetched = self
            .projects
            .try_get_with(r, async move {
                let Some(config) = directory.project_config(&r).await? else {
                    return Ok(None);
                };
                // User tokens verify with the secret or an ES256 signing key.
                let (jwt_key, _) = supa_keys::project_keys(&config).map_err(|e| {
                    DirectoryError(format!("project {r} has unusable JWT keys: {e}"))
                })?;
                let db = config.database.clone();
                let origin = match &config.upstream {
                    Upstream::Http { url } => Origin::of(url),
                    Upstream::Lambda { function_url, .. } => Origin::of(function_url),
                    Upstream::Embedded => None,
                };
                Ok::<_, DirectoryError>(Some(Arc::new(ProjectState {
                    origin,
                    rest: rest_config(&config.postgrest),
                    config: Arc::new(config),
                    jwt_key,
                    db,
                })))
            })
            .await;
        let cached = match fetched {
            // An invalidation while the config was read may predate what
            // was read: this request uses it, the next one reads again.
            Ok(cached) if self.straddled(seen) => {
                self.projects.invalidate(&r).await;
                cached
            }
            Ok(cached) => {
                self.last_projects.insert(r, cached.clone()).await;
                cached
            }
            Err(e) => self.last_projects.get(&r).await.ok_or_else(|| {
                tracing::warn!(project = %r, error = %e.0, "project config fetch failed, no last answer");
                Error::Directory(e.0.clone())
            })?,
        };
        cached.ok_or(Error::ProjectNotFound)
    }

    /// `request` with its body bounded by `max_body_bytes`: a declared
    /// length past it is refused now, a streamed body fails where it
    /// crosses it (the service answers 413 as it reads).
    fn limit_body(&self, request: Request<Body>) -> Result<Request<Body>, Error> {
        let limit = self.config.max_body_bytes;
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n > limit => Err(Error::BodyTooLarge { limit }),
            // hyper holds a declared length to its word.
            Some(_) => Ok(request),
            None => Ok(request.map(|body| {
                Body::new(http_body_util::Limited::new(
                    body,
                    usize::try_from(limit).unwrap_or(usize::MAX),
                ))
            })),
        }
    }

    /// Whether an invalidation arrived since the counter read `seen`.
    fn straddled(&self, seen: u64) -> bool {
        self.invalidations.load(std::sync::atomic::Ordering::SeqCst) != seen
    }

    fn count_l1(&self, hit: bool) {
        let counter = if hit {
            &self.metrics.l1_hits
        } else {
            &self.metrics.l1_misses
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Who the request runs as: a user's JWT (verified with the project's
    /// secret) or the key's role.
    fn identity(
        &self,
        project: &ProjectState,
        kind: KeyKind,
        key: &str,
        headers: &HeaderMap,
    ) -> Result<Identity, Error> {
        let now = supa_keys::unix_now();
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(supa_core::bearer_token)
            // `Bearer sb_...` and the apikey repeated are not user tokens.
            .filter(|t| !t.is_empty() && !t.starts_with("sb_") && *t != key);
        if let Some(token) = bearer {
            let claims =
                supa_keys::verify(&project.jwt_key, token, now).map_err(|e| Error::InvalidJwt {
                    code: e.pgrst_code().unwrap_or("PGRST301"),
                    message: e.to_string(),
                })?;
            if claims.role() == Some("service_role") && kind != KeyKind::Secret {
                return Err(Error::RoleNotAllowed);
            }
            return Ok(Identity::User {
                token: token.to_owned(),
                claims: Value::Object(claims.as_map().clone()),
            });
        }
        Ok(Identity::Key(kind.role()))
    }
}

/// The data plane settings of a project, from its Supabase-shaped ones.
fn rest_config(settings: &PostgrestSettings) -> RestConfig {
    RestConfig {
        schemas: PostgrestSettings::schemas(&settings.db_schema),
        extra_search_path: PostgrestSettings::schemas(&settings.db_extra_search_path),
        anon_role: Some("anon".into()),
        max_rows: Some(settings.max_rows),
        pool_size: settings
            .db_pool
            .and_then(|p| usize::try_from(p).ok())
            .filter(|p| *p > 0),
        plan_enabled: settings.db_plan_enabled,
        ..RestConfig::default()
    }
}

/// What a key says of itself once its format and checksum hold for this
/// project: publishable or secret (no lookup yet).
fn key_kind_of(project_ref: &ProjectRef, key: &str) -> Result<KeyKind, Error> {
    match supa_keys::validate(project_ref, key) {
        Ok(Validation::Checked(k) | Validation::Unchecked(k)) => Ok(k),
        Err(_) => Err(Error::InvalidApiKey),
    }
}

/// The key from the `apikey` header or query parameter, and the query
/// string without it (it must not reach the data plane as a filter).
fn api_key(headers: &HeaderMap, uri: &Uri) -> (Option<String>, Option<String>) {
    let query = uri.query().unwrap_or("");
    let mut from_query = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == "apikey" {
                if from_query.is_none() {
                    from_query = percent_decode(v);
                }
                false
            } else {
                !pair.is_empty()
            }
        })
        .collect();
    let header_key = headers
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned());
    let key = header_key.or(from_query).filter(|k| !k.is_empty());
    let rest = (!kept.is_empty()).then(|| kept.join("&"));
    (key, rest)
}

/// A query value as form decoding reads it (`+` is a space).
fn percent_decode(v: &str) -> Option<String> {
    let spaced = v.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// Browsers announce themselves as `Mozilla/...`.
fn from_browser(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains("Mozilla/"))
}

/// The request as the data plane sees it: its own path and query, and no
/// `apikey` or `Authorization` (the claims travel beside it).
fn forward_request(
    request: Request<Body>,
    path: &str,
    query: Option<&str>,
) -> Result<Request<Body>, Error> {
    let (mut parts, body) = request.into_parts();
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    parts.uri = target.parse().map_err(|_| Error::NoRoute)?;
    parts.headers.remove("apikey");
    parts.headers.remove(header::AUTHORIZATION);
    Ok(Request::from_parts(parts, body))
}

fn json_response(status: u16, body: &Value) -> Response<Body> {
    let text = body.to_string();
    Response::builder()
        .status(status)
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )
        .header(header::CONTENT_LENGTH, text.len())
        .body(Body::from(text))
        .expect("static parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_come_from_the_header_or_the_query() {
        let uri: Uri = "/rest/v1/t?select=*&apikey=sb_x&id=eq.1".parse().unwrap();
        let (key, rest) = api_key(&HeaderMap::new(), &uri);
        assert_eq!(key.as_deref(), Some("sb_x"));
        assert_eq!(rest.as_deref(), Some("select=*&id=eq.1"));
        let mut h = HeaderMap::new();
        h.insert("apikey", HeaderValue::from_static("sb_h"));
        let (key, _) = api_key(&h, &"/x".parse().unwrap());
        assert_eq!(key.as_deref(), Some("sb_h"));
        h.insert("apikey", HeaderValue::from_static(""));
        assert_eq!(api_key(&h, &"/x".parse().unwrap()).0, None);
        // A malformed escape stays as it is and fails key validation later.
        assert_eq!(
            api_key(&HeaderMap::new(), &"/x?apikey=%ZZ".parse().unwrap())
                .0
                .as_deref(),
            Some("%ZZ")
        );
    }
}
