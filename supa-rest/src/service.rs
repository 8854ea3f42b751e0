//! One served database: its settings, pool and schema cache, and the
//! request handler that ties parsing, planning and the transaction together.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, Bytes};
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header,
};
use deadpool_postgres::Pool;
use futures_util::future::OptionFuture;
use serde_json::Value;
use supa_keys::JwtKey;

use crate::Error;
use crate::config::RestConfig;
use crate::db::{self, Outcome};
use crate::grammar::{Filter, SelectItem};
use crate::openapi::{self, OpenApiMode};
use crate::plan::{self, ReadSpec, RpcArgs, Wrap, WriteSpec};
use crate::request::{
    self, Count, Media, PlanRequest, Prefer, QueryParams, Resolution, Return, Target,
};
use crate::schema::{Function, Relation, Returns, SchemaCache};
use crate::sql::{Sql, quote_ident};

/// What rows can be answered as, the default first.
const ROW_MEDIA: [Media; 5] = [
    Media::Json,
    Media::Csv,
    Media::Object { strip_nulls: false },
    Media::Object { strip_nulls: true },
    Media::ArrayStripped,
];

/// What rows can be answered as in a database: GeoJSON too where PostGIS
/// is installed.
fn row_media(cache: &SchemaCache) -> Vec<Media> {
    let mut media = ROW_MEDIA.to_vec();
    if cache.has_postgis {
        media.push(Media::GeoJson);
    }
    media
}

/// The largest request body accepted (PostgREST has no limit of its own;
/// proxies usually set one).
const BODY_LIMIT: usize = 64 << 20;

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Verify `Authorization: Bearer` with the configured secret, as
    /// PostgREST does (standalone `supa-rest`).
    Header,
    /// Claims already verified by the gateway.
    Claims(Value),
}

/// One database served PostgREST's way.
#[derive(Debug)]
pub struct Service {
    config: RestConfig,
    /// One pool, or one per serving thread.
    pools: supa_db::ThreadPools,
    jwt_key: Option<JwtKey>,
    cache: Mutex<Option<Arc<SchemaCache>>>,
    last_used: AtomicU64,
}

struct Context {
    timer: Arc<Timer>,
    /// An execution plan asked for instead of the answer, and once the
    /// statement is planned, the plan.
    plan: Option<PlanRequest>,
    plan_output: Mutex<Option<String>>,
    schema: String,
    path: String,
    role: String,
    claims: String,
    authenticated: bool,
    profile_header: bool,
}

/// The key of PostgREST's `jwt-secret`: a secret string, or (as PostgREST
/// accepts) a JWK set whose `oct` key is the HS256 secret and whose P-256
/// keys verify ES256 tokens (an auth server's JWKS).
fn jwt_key(secret: &str) -> Result<JwtKey, supa_keys::Error> {
    let text = secret.trim();
    if !text.starts_with('{') {
        return JwtKey::new(secret.as_bytes());
    }
    let set: serde_json::Value =
        serde_json::from_str(text).map_err(|_| supa_keys::Error::BadJwk("keys"))?;
    let keys = set["keys"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![set.clone()]);
    let mut hs = None;
    let mut es = Vec::new();
    for k in &keys {
        match k["kty"].as_str() {
            Some("oct") => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(k["k"].as_str().unwrap_or(""))
                    .map_err(|_| supa_keys::Error::BadJwk("k"))?;
                hs = Some(bytes);
            }
            Some("EC") => es.push(supa_keys::EsPublicKey::from_jwk(k)?),
            _ => {}
        }
    }
    // Without an `oct` key no HS256 token can verify: a random secret.
    let secret = hs.unwrap_or_else(|| {
        let mut random = vec![0u8; 32];
        getrandom::fill(&mut random).expect("the OS has randomness");
        random
    });
    Ok(JwtKey::new(&secret)?.with_es256(es))
}

impl Service {
    /// A service over `pool` with `config`.
    pub fn new(config: RestConfig, pool: Pool) -> Result<Self, Error> {
        Self::with_pools(config, supa_db::ThreadPools::single(pool))
    }

    /// A service over a pool per serving thread, each request taking its
    /// connections from its own thread's (the gateway's embedded data
    /// plane lost a quarter of its throughput to one shared pool).
    pub fn with_pools(config: RestConfig, pools: supa_db::ThreadPools) -> Result<Self, Error> {
        let jwt_key = match &config.jwt_secret {
            Some(s) => Some(jwt_key(s.expose()).map_err(|e| {
                Error::api(500, "PGRST300", "Server lacks JWT secret").with_details(e.to_string())
            })?),
            None => None,
        };
        Ok(Self {
            config,
            pools,
            jwt_key,
            cache: Mutex::new(None),
            last_used: AtomicU64::new(supa_keys::unix_now() as u64),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RestConfig {
        &self.config
    }

    /// Seconds since the epoch of the last request.
    pub fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// The pool of the calling thread.
    pub fn pool(&self) -> &Pool {
        self.pools.current()
    }

    /// Forgets the schema cache and the prepared statements; the next
    /// request loads the one and prepares the others again.
    pub fn invalidate_schema(&self) {
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) = None;
        // Prepared statements keep the types inferred when they were
        // prepared: a changed column type needs them prepared again.
        for pool in self.pools.all() {
            pool.manager().statement_caches.clear();
        }
    }

    /// The schema cache when loaded (kept by an engine when it closes the
    /// pool).
    pub fn loaded_schema(&self) -> Option<Arc<SchemaCache>> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts with a schema cache loaded before (by a pool closed since).
    pub fn with_schema(self, cache: Arc<SchemaCache>) -> Self {
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) = Some(cache);
        self
    }

    /// The schema cache, loaded on first use.
    pub async fn schema(&self) -> Result<Arc<SchemaCache>, Error> {
        if let Some(c) = self.loaded_schema() {
            return Ok(c);
        }
        // A second connection when one is free at once (never waited
        // for: concurrent first requests must not hold one each while
        // waiting for another).
        let pool = self.pool();
        let no_wait = deadpool_postgres::Timeouts {
            wait: Some(std::time::Duration::ZERO),
            ..pool.timeouts()
        };
        let (client, spare) = tokio::join!(pool.get(), pool.timeout_get(&no_wait));
        let client = client.map_err(|e| db::unavailable(&e.to_string()))?;
        let spare = spare.ok();
        let spare = spare.as_ref().map(|s| &***s);
        let loaded = Arc::new(SchemaCache::load(&client, spare, &self.config.schemas).await?);
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) = Some(loaded.clone());
        Ok(loaded)
    }

    /// An axum router answering every path with this service, JWTs
    /// verified here as PostgREST does (the standalone server).
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new().fallback(move |request: Request<Body>| {
            let service = self.clone();
            async move { service.handle(request, Auth::Header).await }
        })
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request<Body>, auth: Auth) -> Response<Body> {
        self.last_used
            .store(supa_keys::unix_now() as u64, Ordering::Relaxed);
        let (parts, body) = request.into_parts();
        if let Some(r) = self
            .config
            .cors
            .as_ref()
            .and_then(|c| c.preflight(&parts.method, &parts.headers))
        {
            self.log_access(&parts, &r, None);
            return r;
        }
        let head = parts.method == Method::HEAD;
        let timer = Arc::new(Timer::default());
        let result = match axum::body::to_bytes(body, BODY_LIMIT).await {
            Ok(bytes) => self.respond(&parts, bytes, auth, &timer).await,
            Err(_) => Err(Error::api(413, "PGRST102", "Request body too large")),
        };
        let mut response = match result {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
        if head {
            *response.body_mut() = Body::empty();
            response.headers_mut().remove(header::CONTENT_LENGTH);
        }
        if self.config.server_timing {
            timer.lap(Phase::Response);
            if let Ok(v) = HeaderValue::from_str(&timer.header()) {
                response.headers_mut().insert("server-timing", v);
            }
        }
        if let Some(cors) = &self.config.cors {
            cors.decorate(&parts.headers, &mut response);
        }
        if let Some(name) = &self.config.trace_header
            && let Some(value) = parts.headers.get(name.as_str())
            && let Ok(name) = HeaderName::from_bytes(name.as_bytes())
        {
            response.headers_mut().insert(name, value.clone());
        }
        let role = timer
            .role
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.log_access(&parts, &response, role.as_deref());
        response
    }

    /// The access log line of an answer, when `log-level` wants it.
    fn log_access(
        &self,
        parts: &axum::http::request::Parts,
        response: &Response<Body>,
        role: Option<&str>,
    ) {
        let Some(level) = self.config.access_log else {
            return;
        };
        let status = response.status().as_u16();
        if !level.logs(status) {
            return;
        }
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let target = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |p| p.as_str());
        let request_line = format!("{} {target} {:?}", parts.method, parts.version);
        crate::access_log::Entry {
            peer: peer.as_deref(),
            role,
            time: supa_keys::unix_now() as u64,
            request_line: &request_line,
            status,
            size: response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            referer: header_str(&parts.headers, "referer").unwrap_or(""),
            user_agent: header_str(&parts.headers, "user-agent").unwrap_or(""),
        }
        .write();
    }

    async fn respond(
        &self,
        parts: &axum::http::request::Parts,
        body: Bytes,
        auth: Auth,
        timer: &Arc<Timer>,
    ) -> Result<Response<Body>, Error> {
        let target = target(parts.uri.path())?;
        let method = parts.method.clone();
        let mut ctx = self.context(&method, &parts.headers, auth, timer.clone())?;
        ctx.path = parts.uri.path().to_owned();
        *timer.role.lock().unwrap_or_else(PoisonError::into_inner) = Some(ctx.role.clone());
        timer.lap(Phase::Jwt);
        // `db-plan-enabled`: a plan media type plans the statement that
        // would answer its `for` media type, which is negotiated as usual.
        let planned_headers;
        let headers = match header_str(&parts.headers, "accept")
            .filter(|_| self.config.plan_enabled)
            .map(PlanRequest::parse)
            .transpose()?
            .flatten()
        {
            Some(plan) => {
                let mut h = parts.headers.clone();
                if let Ok(v) = HeaderValue::from_str(&plan.for_media) {
                    h.insert(header::ACCEPT, v);
                }
                ctx.plan = Some(plan);
                planned_headers = h;
                &planned_headers
            }
            None => &parts.headers,
        };
        let answer = self
            .answer(target, &method, headers, &ctx, parts.uri.query(), body)
            .await?;
        let plan = ctx
            .plan_output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match (plan, &ctx.plan) {
            (Some(text), Some(request)) => plan_response(request, text),
            _ => Ok(answer),
        }
    }

    /// The answer to a request whose context is known.
    async fn answer(
        &self,
        target: Target,
        method: &Method,
        headers: &HeaderMap,
        ctx: &Context,
        query: Option<&str>,
        body: Bytes,
    ) -> Result<Response<Body>, Error> {
        let timer = &ctx.timer;
        let prefer = Prefer::parse(
            headers
                .get_all("prefer")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        if prefer.strict && !prefer.invalid.is_empty() {
            return Err(Error::api(
                400,
                "PGRST122",
                "Invalid preferences given with handling=strict",
            )
            .with_details(format!(
                "Invalid preferences: {}",
                prefer.invalid.join(", ")
            )));
        }
        let pairs = request::decode_query(query.unwrap_or(""));
        let cache = self.schema().await?;
        if *method == Method::OPTIONS {
            timer.lap(Phase::Parse);
            return Ok(options_response(&target));
        }
        match target {
            Target::Root => match &self.config.root_spec {
                Some(name) => {
                    self.rpc(method, headers, ctx, &prefer, &pairs, &cache, name, &body)
                        .await
                }
                None => self.root(method, headers, ctx, &prefer, &cache).await,
            },
            Target::Relation(name) => {
                let rel = cache.relation(&ctx.schema, &name).ok_or_else(|| {
                    Error::api(
                        404,
                        "PGRST205",
                        format!(
                            "Could not find the table '{}.{name}' in the schema cache",
                            ctx.schema
                        ),
                    )
                })?;
                self.relation(method, headers, ctx, &prefer, &pairs, &cache, rel, &body)
                    .await
            }
            Target::Rpc(name) => {
                self.rpc(method, headers, ctx, &prefer, &pairs, &cache, &name, &body)
                    .await
            }
        }
    }

    fn context(
        &self,
        method: &Method,
        headers: &HeaderMap,
        auth: Auth,
        timer: Arc<Timer>,
    ) -> Result<Context, Error> {
        let profile_name = if matches!(*method, Method::GET | Method::HEAD) {
            "accept-profile"
        } else {
            "content-profile"
        };
        let requested = headers.get(profile_name).and_then(|v| v.to_str().ok());
        let schema = match requested {
            Some(s) => {
                if !self.config.schemas.iter().any(|x| x == s) {
                    return Err(
                        Error::api(406, "PGRST106", "Invalid schema: ".to_owned() + s).with_hint(
                            format!(
                                "Only the following schemas are exposed: {}",
                                self.config.schemas.join(", ")
                            ),
                        ),
                    );
                }
                s.to_owned()
            }
            None => self.config.schemas[0].clone(),
        };
        let claims = match auth {
            Auth::Claims(c) => Some(c),
            Auth::Header => self.verify_header(headers)?,
        };
        let role = claims
            .as_ref()
            .and_then(|c| c.get("role"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| self.config.anon_role.clone())
            .ok_or_else(|| Error::api(401, "PGRST302", "Anonymous access is disabled"))?;
        // 42501 is a 401 for the anonymous role (with or without a JWT)
        // and a 403 for any other role.
        let authenticated = self.config.anon_role.as_deref() != Some(role.as_str());
        let claims = match claims {
            Some(c) => c.to_string(),
            None => serde_json::json!({ "role": role }).to_string(),
        };
        Ok(Context {
            timer,
            plan: None,
            plan_output: Mutex::new(None),
            schema,
            path: String::new(),
            role,
            claims,
            authenticated,
            profile_header: self.config.schemas.len() > 1,
        })
    }

    fn verify_header(&self, headers: &HeaderMap) -> Result<Option<Value>, Error> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let Some(token) = supa_core::bearer_token(value.to_str().unwrap_or("")) else {
            return Ok(None);
        };
        let Some(key) = &self.jwt_key else {
            return Err(Error::api(500, "PGRST300", "Server lacks JWT secret"));
        };
        crate::jwt::verify(key, token, self.config.jwt_aud.as_deref()).map(Some)
    }

    #[allow(clippy::too_many_arguments)]
    async fn relation(
        &self,
        method: &Method,
        headers: &HeaderMap,
        ctx: &Context,
        prefer: &Prefer,
        pairs: &[(String, String)],
        cache: &SchemaCache,
        rel: &Relation,
        body: &Bytes,
    ) -> Result<Response<Body>, Error> {
        let q = QueryParams::parse(pairs, &[])?;
        ctx.timer.lap(Phase::Parse);
        let qualifier = format!("{}.{}", quote_ident(&rel.schema), quote_ident(&rel.name));
        let mut from = Sql::default();
        from.qualified(&rel.schema, &rel.name);
        match *method {
            Method::GET | Method::HEAD => {
                let (media, custom) = rows_answer(
                    headers,
                    cache,
                    Some(&(rel.schema.clone(), rel.name.clone())),
                )?;
                plan::check_embedded_paths(
                    q.select.as_deref(),
                    &q.embedded_filters,
                    &q.embedded_other,
                )?;
                let (offset, limit) = self.range(headers, &q)?;
                let counter = AtomicUsize::new(0);
                let embed = plan::EmbedCtx {
                    cache,
                    parent: (rel.schema.clone(), rel.name.clone()),
                    filters: &q.embedded_filters,
                    other: &q.embedded_other,
                    path: Vec::new(),
                    counter: &counter,
                };
                let spec = ReadSpec {
                    select: q.select.as_deref(),
                    filters: &q.filters,
                    logic: &q.logic,
                    order: &q.order,
                    limit,
                    offset,
                    extra: Vec::new(),
                    embed: Some(&embed),
                };
                let (rows, count) = plan::select_rows(&from, &qualifier, &spec)?;
                let exact = matches!(prefer.count, Some(Count::Exact | Count::Estimated));
                let planned = matches!(prefer.count, Some(Count::Planned | Count::Estimated));
                let w = Wrap {
                    source: rows,
                    count: exact.then(|| count.clone()),
                    with_body: true,
                    handler: custom.as_ref().map(|c| c.body.clone()),
                    ..Wrap::default()
                };
                let statement = plan::wrap(&w, media);
                let outcome = self
                    .run(
                        ctx,
                        method,
                        headers,
                        &statement,
                        true,
                        prefer,
                        planned.then_some(&count),
                        |o| singular_check(media, o),
                    )
                    .await?;
                let mut response =
                    read_response(ctx, prefer, media, &outcome, offset, custom.as_ref())?;
                // Where this representation lives: the path and its
                // parameters in order.
                let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
                sorted.sort();
                let query: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let location = if query.is_empty() {
                    format!("/{}", rel.name)
                } else {
                    format!("/{}?{}", rel.name, query.join("&"))
                };
                if let Ok(v) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert("content-location", v);
                }
                Ok(response)
            }
            Method::POST => {
                self.insert(headers, ctx, prefer, &q, cache, rel, body, false)
                    .await
            }
            Method::PUT => {
                self.insert(headers, ctx, prefer, &q, cache, rel, body, true)
                    .await
            }
            Method::PATCH => {
                self.update(headers, ctx, prefer, &q, cache, rel, body)
                    .await
            }
            Method::DELETE => self.delete(headers, ctx, prefer, &q, cache, rel).await,
            _ => Err(Error::api(
                405,
                "PGRST117",
                format!("Unsupported HTTP method: {method}"),
            )),
        }
    }

    /// `offset` and `limit` from the query and the `Range` header.
    fn range(&self, headers: &HeaderMap, q: &QueryParams) -> Result<(i64, Option<i64>), Error> {
        // PostgREST reads a negative offset as none.
        let mut offset = q.offset.unwrap_or(0).max(0);
        let mut limit = q.limit;
        if limit.is_some_and(|l| l < 0) {
            return Err(
                Error::api(416, "PGRST103", "Requested range not satisfiable")
                    .with_details("Limit should be greater than or equal to zero."),
            );
        }
        if let Some((start, end)) = header_str(headers, "range").and_then(request::parse_range) {
            if let Some(end) = end
                && end < start
            {
                return Err(Error::api(416, "PGRST103", "Requested range not satisfiable")
                    .with_details("The lower boundary must be lower than or equal to the upper boundary in the Range header."));
            }
            // Both are at most i64::MAX: saturate rather than overflow.
            offset = offset.saturating_add(start);
            if let Some(end) = end {
                let n = (end - start).saturating_add(1);
                limit = Some(limit.map_or(n, |l| l.min(n)));
            }
        }
        if let Some(max) = self.config.max_rows {
            limit = Some(limit.map_or(max, |l| l.min(max)));
        }
        if limit.is_some_and(|l| l < 0) || offset < 0 {
            return Err(Error::api(
                416,
                "PGRST103",
                "Requested range not satisfiable",
            ));
        }
        Ok((offset, limit))
    }

    /// The media type of rows answered from `cache`'s database.
    fn row_media(headers: &HeaderMap, cache: &SchemaCache) -> Result<Media, Error> {
        request::negotiate(header_str(headers, "accept"), &row_media(cache))
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert(
        &self,
        headers: &HeaderMap,
        ctx: &Context,
        prefer: &Prefer,
        q: &QueryParams,
        cache: &SchemaCache,
        rel: &Relation,
        body: &Bytes,
        put: bool,
    ) -> Result<Response<Body>, Error> {
        let media = Self::row_media(headers, cache)?;
        let payload = payload_json(headers, body)?;
        let columns = match &q.columns {
            Some(c) => c.clone(),
            // With missing=default objects may differ: every key counts.
            None if prefer.missing_default => all_keys(&payload),
            None => payload_keys(&payload)?,
        };
        for c in &columns {
            if rel.column(c).is_none() {
                return Err(Error::api(
                    400,
                    "PGRST204",
                    format!(
                        "Could not find the '{c}' column of '{}' in the schema cache",
                        rel.name
                    ),
                ));
            }
        }
        let (resolution, on_conflict) = if put {
            put_checks(rel, q, &payload)?;
            (Some(Resolution::MergeDuplicates), rel.primary_key.clone())
        } else {
            let on_conflict = q
                .on_conflict
                .clone()
                .unwrap_or_else(|| rel.primary_key.clone());
            // Without conflict columns there is nothing to upsert on.
            (
                prefer.resolution.filter(|_| !on_conflict.is_empty()),
                on_conflict,
            )
        };
        // PUT upserts by nature; only a requested resolution is echoed.
        let applied = Prefer {
            resolution: if put { None } else { resolution },
            ..prefer.clone()
        };
        let spec = WriteSpec {
            rel,
            columns,
            on_conflict: on_conflict.clone(),
            resolution,
            missing_default: prefer.missing_default,
            filters: &[],
            logic: &[],
        };
        let text = payload.to_string();
        let ret = prefer.ret.unwrap_or(Return::Minimal);
        let w = Wrap {
            source: plan::insert(&spec, &text),
            rows: plan::shape_rows(
                q.select.as_deref(),
                rel,
                &write_embed(cache, rel, q, &AtomicUsize::new(0)),
            )?,
            count: None,
            existing: resolution.map(|_| plan::existing_rows(&spec, &text)),
            location: Some(&rel.primary_key),
            with_body: ret == Return::Representation,
            scalar: false,
            handler: None,
        };
        let statement = plan::wrap(&w, media);
        let outcome = self
            .run(
                ctx,
                &Method::POST,
                headers,
                &statement,
                false,
                prefer,
                None,
                |o| {
                    max_affected(prefer, o)?;
                    singular_check(media, o)
                },
            )
            .await?;
        // An upsert where every row already existed is a 200; PUT without
        // a representation is a 204.
        let all_existed = resolution == Some(Resolution::MergeDuplicates)
            && outcome.page_total - outcome.existing.unwrap_or(0) <= 0;
        let status = match (put, ret) {
            (true, Return::Minimal) => 204,
            _ if all_existed => 200,
            _ => 201,
        };
        let mut b = ResponseBuilder::new(status);
        // Inserted rows are counted whatever count was asked for.
        b.content_range = Some(if prefer.count.is_some() {
            format!("*/{}", outcome.page_total)
        } else {
            "*/*".to_owned()
        });
        if ret == Return::HeadersOnly
            && !rel.primary_key.is_empty()
            && outcome.page_total == 1
            && let Some(loc) = &outcome.location
        {
            b.header("location", &format!("/{}?{loc}", rel.name));
        }
        b.applied(&applied, ctx, Some(ret), true);
        if ret == Return::Representation {
            b.body(media, outcome.body.clone());
        }
        b.finish(&outcome)
    }

    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        headers: &HeaderMap,
        ctx: &Context,
        prefer: &Prefer,
        q: &QueryParams,
        cache: &SchemaCache,
        rel: &Relation,
        body: &Bytes,
    ) -> Result<Response<Body>, Error> {
        let media = Self::row_media(headers, cache)?;
        let payload = payload_json(headers, body)?;
        // An array updates with its first object, as PostgREST does.
        let payload = match payload {
            Value::Array(mut items) if items.first().is_some_and(Value::is_object) => {
                items.swap_remove(0)
            }
            Value::Object(_) => payload,
            _ => {
                return Err(Error::api(
                    400,
                    "PGRST102",
                    "Invalid body: expected a JSON object for PATCH",
                ));
            }
        };
        let columns = match &q.columns {
            Some(c) => c.clone(),
            None => payload_keys(&payload)?,
        };
        for c in &columns {
            if rel.column(c).is_none() {
                return Err(Error::api(
                    400,
                    "PGRST204",
                    format!(
                        "Could not find the '{c}' column of '{}' in the schema cache",
                        rel.name
                    ),
                ));
            }
        }
        let ret = prefer.ret.unwrap_or(Return::Minimal);
        if columns.is_empty() {
            // Nothing to set: PostgREST answers without touching the table.
            let mut b = ResponseBuilder::new(if ret == Return::Representation {
                200
            } else {
                204
            });
            b.content_range = Some("*/*".to_owned());
            b.applied(prefer, ctx, Some(ret), true);
            if ret == Return::Representation {
                b.body(
                    media,
                    if media.is_singular() {
                        "null".into()
                    } else {
                        "[]".into()
                    },
                );
            }
            return b.finish(&Outcome::default());
        }
        let spec = WriteSpec {
            rel,
            columns,
            on_conflict: Vec::new(),
            resolution: None,
            missing_default: false,
            filters: &q.filters,
            logic: &q.logic,
        };
        let source = plan::update(&spec, &payload.to_string());
        self.run_write(
            &Method::PATCH,
            headers,
            ctx,
            prefer,
            q,
            cache,
            rel,
            media,
            source,
            |p, n| {
                if n > 0 {
                    format!("0-{}/{}", n - 1, count_text(p, n))
                } else {
                    format!("*/{}", count_text(p, 0))
                }
            },
        )
        .await
    }

    async fn delete(
        &self,
        headers: &HeaderMap,
        ctx: &Context,
        prefer: &Prefer,
        q: &QueryParams,
        cache: &SchemaCache,
        rel: &Relation,
    ) -> Result<Response<Body>, Error> {
        let media = Self::row_media(headers, cache)?;
        let spec = WriteSpec {
            rel,
            columns: Vec::new(),
            on_conflict: Vec::new(),
            resolution: None,
            missing_default: false,
            filters: &q.filters,
            logic: &q.logic,
        };
        let source = plan::delete(&spec);
        self.run_write(
            &Method::DELETE,
            headers,
            ctx,
            prefer,
            q,
            cache,
            rel,
            media,
            source,
            |p, n| format!("*/{}", count_text(p, n)),
        )
        .await
    }

    /// Runs a PATCH or DELETE statement and answers 200 with the rows
    /// (`return=representation`) or 204, with `content_range` of the count.
    #[allow(clippy::too_many_arguments)]
    async fn run_write(
        &self,
        method: &Method,
        headers: &HeaderMap,
        ctx: &Context,
        prefer: &Prefer,
        q: &QueryParams,
        cache: &SchemaCache,
        rel: &Relation,
        media: Media,
        source: Sql,
        content_range: fn(&Prefer, i64) -> String,
    ) -> Result<Response<Body>, Error> {
        let ret = prefer.ret.unwrap_or(Return::Minimal);
        let w = Wrap {
            source,
            rows: plan::shape_rows(
                q.select.as_deref(),
                rel,
                &write_embed(cache, rel, q, &AtomicUsize::new(0)),
            )?,
            with_body: ret == Return::Representation,
            ..Wrap::default()
        };
        let statement = plan::wrap(&w, media);
        let outcome = self
            .run(ctx, method, headers, &statement, false, prefer, None, |o| {
                max_affected(prefer, o)?;
                singular_check(media, o)
            })
            .await?;
        let mut b = ResponseBuilder::new(if ret == Return::Representation {
            200
        } else {
            204
        });
        b.content_range = Some(content_range(prefer, outcome.page_total));
        b.applied(prefer, ctx, Some(ret), true);
        if ret == Return::Representation {
            b.body(media, outcome.body.clone());
        }
        b.finish(&outcome)
    }

    #[allow(clippy::too_many_arguments)]
    async fn rpc(
        &self,
        method: &Method,
        headers: &HeaderMap,
        ctx: &Context,
        prefer: &Prefer,
        pairs: &[(String, String)],
        cache: &SchemaCache,
        name: &str,
        body: &Bytes,
    ) -> Result<Response<Body>, Error> {
        let overloads = cache.functions(&ctx.schema, name);
        let read = matches!(*method, Method::GET | Method::HEAD);
        if !read && *method != Method::POST {
            return Err(Error::api(
                405,
                "PGRST101",
                format!("Cannot use the {method} method on RPC"),
            ));
        }
        // A raw body (bytes or text) goes whole to a function whose one
        // unnamed parameter has that type.
        let mime = header_str(headers, "content-type")
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let raw_type = match mime.as_str() {
            "application/octet-stream" => Some("bytea"),
            "text/plain" => Some("text"),
            "text/xml" => Some("xml"),
            _ => None,
        };
        let raw_func = raw_type.filter(|_| !read).and_then(|t| {
            overloads.iter().find(|f| {
                f.args.len() == 1 && f.args[0].name.is_empty() && f.args[0].type_name == t
            })
        });
        // Argument names given: query keys (GET) or body keys (POST).
        let (payload, given): (Option<Value>, Vec<String>) = if read || raw_func.is_some() {
            let reserved = [
                "select",
                "order",
                "limit",
                "offset",
                "and",
                "or",
                "not.and",
                "not.or",
                "columns",
                "on_conflict",
            ];
            let arg_names: Vec<&String> = overloads
                .iter()
                .flat_map(|f| f.args.iter().map(|a| &a.name))
                .collect();
            // A parameter is an argument when some overload takes it, or
            // when its value is no filter (`?a=1&b=2&typo=x` looks for a
            // function of a, b and typo, as PostgREST does).
            let given = pairs
                .iter()
                .filter(|(k, v)| {
                    !reserved.contains(&k.as_str())
                        && (arg_names.contains(&k)
                            || (!k.contains('.') && crate::grammar::parse_filter(k, v).is_err()))
                })
                .map(|(k, _)| k.clone())
                .collect();
            (None, given)
        } else {
            let payload = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Object(Default::default())
            } else {
                payload_json(headers, body)?
            };
            // An array of objects calls the function with the first one.
            let payload = match payload {
                Value::Array(mut items)
                    if !prefer.single_object && items.first().is_some_and(Value::is_object) =>
                {
                    items.swap_remove(0)
                }
                other => other,
            };
            let given = match &payload {
                Value::Object(m) if !prefer.single_object => m.keys().cloned().collect(),
                _ => Vec::new(),
            };
            (Some(payload), given)
        };
        let func = match raw_func {
            Some(f) => f,
            None => choose_function(overloads, &given, payload.as_ref(), prefer.single_object)
                .ok_or_else(|| function_not_found(&ctx.schema, name, &given, overloads, read))?,
        };
        let args_owned: Vec<(String, String)>;
        let text_payload;
        let single_json = payload.is_some()
            && (prefer.single_object || (func.args.len() == 1 && func.args[0].name.is_empty()));
        let raw_text;
        let args = if let Some(f) = raw_func {
            raw_text = if f.args[0].type_name == "bytea" {
                body.iter().map(|b| format!("{b:02x}")).collect::<String>()
            } else {
                String::from_utf8_lossy(body).into_owned()
            };
            RpcArgs::Raw(&raw_text, f.args[0].type_name == "bytea")
        } else if read {
            args_owned = pairs
                .iter()
                .filter(|(k, _)| func.args.iter().any(|a| &a.name == k))
                .cloned()
                .collect();
            RpcArgs::Text(&args_owned)
        } else if single_json {
            text_payload = payload.as_ref().map(Value::to_string).unwrap_or_default();
            RpcArgs::Single(&text_payload)
        } else {
            text_payload = payload.as_ref().map(Value::to_string).unwrap_or_default();
            RpcArgs::Json {
                payload: &text_payload,
                keys: &given,
            }
        };
        let arg_names: Vec<String> = func.args.iter().map(|a| a.name.clone()).collect();
        let q = QueryParams::parse(pairs, if read { &arg_names } else { &[] })?;
        ctx.timer.lap(Phase::Parse);
        let from = plan::call(func, &args);
        let scalar = !matches!(func.returns, Returns::Composite(_));
        // Text and bytes only for a function returning them.
        let mut allowed = row_media(cache);
        match &func.returns {
            Returns::Scalar(t) if t == "text" || t == "character varying" => {
                allowed.push(Media::Text)
            }
            Returns::Scalar(t) if t == "bytea" => allowed.push(Media::Binary),
            _ => {}
        }
        // `db-root-spec`: the function stands for the OpenAPI document.
        if ctx.path == "/" {
            allowed.push(Media::OpenApi);
        }
        let (media, custom) = match (&func.returns_media, &func.returns) {
            (Some(m), _) => (Media::Json, Some(media_value(headers, m)?)),
            (None, Returns::Composite(Some(rel))) => rows_answer(headers, cache, Some(rel))
                .and_then(|(media, custom)| match custom {
                    Some(c) => Ok((media, Some(c))),
                    None => Ok((
                        request::negotiate(header_str(headers, "accept"), &allowed)?,
                        None,
                    )),
                })?,
            _ => (
                request::negotiate(header_str(headers, "accept"), &allowed)?,
                None,
            ),
        };
        let (offset, limit) = self.range(headers, &q)?;
        let select_star = [SelectItem::Star];
        let counter = AtomicUsize::new(0);
        let embed = match &func.returns {
            Returns::Composite(Some(rel)) => Some(plan::EmbedCtx {
                cache,
                parent: rel.clone(),
                filters: &q.embedded_filters,
                other: &q.embedded_other,
                path: Vec::new(),
                counter: &counter,
            }),
            _ => None,
        };
        let spec = ReadSpec {
            select: if scalar {
                Some(&select_star[..])
            } else {
                q.select.as_deref()
            },
            filters: &q.filters,
            logic: &q.logic,
            order: &q.order,
            limit,
            offset,
            extra: Vec::new(),
            embed: embed.as_ref(),
        };
        let (rows, count) = plan::select_rows(&from, "pgrst_call", &spec)?;
        let exact = matches!(prefer.count, Some(Count::Exact | Count::Estimated));
        let planned = matches!(prefer.count, Some(Count::Planned | Count::Estimated));
        let w = Wrap {
            source: rows,
            count: exact.then(|| count.clone()),
            with_body: func.returns != Returns::Void,
            scalar,
            handler: custom.as_ref().map(|c| c.body.clone()),
            ..Wrap::default()
        };
        // A function returning one value gives that value, not an array.
        let body_media = if !func.returns_set && matches!(media, Media::Json | Media::OpenApi) {
            Media::Object { strip_nulls: false }
        } else {
            media
        };
        let statement = plan::wrap(&w, body_media);
        // max-affected counts rows, so only a function returning a set can
        // honour it (PostgREST 13+).
        if prefer.strict && prefer.max_affected.is_some() && !func.returns_set {
            return Err(Error::api(
                400,
                "PGRST128",
                "Function must return SETOF or TABLE when max-affected preference is used with handling=strict",
            ));
        }
        let read_only = read || func.is_read_only();
        let outcome = self
            .run(
                ctx,
                method,
                headers,
                &statement,
                read_only,
                prefer,
                planned.then_some(&count),
                |o| {
                    if func.returns_set {
                        max_affected(prefer, o)?;
                        singular_check(media, o)
                    } else {
                        Ok(())
                    }
                },
            )
            .await?;
        if func.returns == Returns::Void {
            let mut b = ResponseBuilder::new(204);
            b.applied(prefer, ctx, None, false);
            return b.finish(&outcome);
        }
        if func.returns_set {
            return read_response(ctx, prefer, media, &outcome, offset, custom.as_ref());
        }
        let mut b = ResponseBuilder::new(200);
        b.range(Some(offset), outcome.page_total, outcome.total);
        b.applied(prefer, ctx, None, false);
        match &custom {
            Some(c) => b.custom(c, &outcome),
            None => b.body(media, outcome.body.clone()),
        }
        b.finish(&outcome)
    }

    /// Takes a connection and opens the request's transaction: role, JWT
    /// claims, request GUCs, time zone, then the pre-request function, and
    /// `first` when given, and `end` (`COMMIT` or `ROLLBACK`) after it when
    /// given. They go out together (tokio-postgres pipelines what is
    /// issued before the answers come back): one round trip, not one each,
    /// and the first error in that order is the request's.
    #[allow(clippy::too_many_arguments)]
    async fn begin(
        &self,
        ctx: &Context,
        method: &Method,
        headers: &HeaderMap,
        read_only: bool,
        prefer: &Prefer,
        first: Option<&Sql>,
        end: Option<&'static str>,
    ) -> Result<(deadpool_postgres::Object, Option<Vec<tokio_postgres::Row>>), Error> {
        let client = self
            .pool()
            .get()
            .await
            .map_err(|e| db::unavailable(&e.to_string()))?;
        db::bound_prepared(&client);
        let mut setup = Sql::default();
        let search_path: Vec<String> = std::iter::once(ctx.schema.clone())
            .chain(self.config.extra_search_path.iter().cloned())
            .map(|s| quote_ident(&s))
            .collect();
        setup
            .push("SELECT set_config('search_path', ")
            .param(search_path.join(", "))
            .push(", true), set_config('role', ")
            .param(ctx.role.clone())
            .push(", true), set_config('request.jwt.claims', ")
            .param(ctx.claims.clone())
            .push(", true), set_config('request.method', ")
            .param(method.as_str().to_owned())
            .push(", true), set_config('request.path', ")
            .param(ctx.path.clone())
            .push(", true), set_config('request.headers', ")
            .param(request::headers_json(headers))
            .push(", true), set_config('request.cookies', ")
            .param(request::cookies_json(headers))
            .push(", true)");
        if let Some(tz) = &prefer.timezone {
            // An unknown zone is ignored, or refused under handling=strict.
            let mut known = Sql::default();
            known
                .push("SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = ")
                .param(tz.clone());
            if db::query(&client, &known, ctx.authenticated)
                .await?
                .is_empty()
            {
                if prefer.strict {
                    return Err(Error::api(
                        400,
                        "PGRST122",
                        "Invalid preferences given with handling=strict",
                    )
                    .with_details(format!("Invalid preferences: timezone={tz}")));
                }
            } else {
                setup
                    .push(", set_config('timezone', ")
                    .param(tz.clone())
                    .push(", true)");
            }
        }
        let pre_request = self.config.pre_request.as_ref().map(|pre| {
            let mut call = Sql::default();
            call.push("SELECT ");
            match pre.split_once('.') {
                Some((s, f)) => call.qualified(s, f),
                None => call.ident(pre),
            };
            call.push("()");
            call
        });
        // Prepared first (nothing to wait for once cached), then sent
        // together in order.
        let pre_request = pre_request.as_ref();
        let (set_prepared, pre_prepared, first_prepared) = tokio::join!(
            db::prepare(&client, &setup),
            OptionFuture::from(pre_request.map(|call| db::prepare(&client, call))),
            OptionFuture::from(first.map(|sql| db::prepare(&client, sql))),
        );
        let (pre_prepared, first_prepared) = (pre_prepared.flatten(), first_prepared.flatten());
        let (began, set, pre, rows, ended) = tokio::join!(
            client.batch_execute(if read_only {
                "BEGIN READ ONLY"
            } else {
                "BEGIN"
            }),
            db::execute(&client, &setup, set_prepared.as_ref(), ctx.authenticated),
            OptionFuture::from(pre_request.map(|call| {
                db::execute(&client, call, pre_prepared.as_ref(), ctx.authenticated)
            })),
            OptionFuture::from(first.map(|sql| {
                db::execute(&client, sql, first_prepared.as_ref(), ctx.authenticated)
            })),
            OptionFuture::from(end.map(|end| client.batch_execute(end))),
        );
        let opened = began
            .map_err(|e| db::map_error(&e, ctx.authenticated))
            .and(set)
            .and(pre.transpose())
            .and(rows.transpose())
            .and_then(|rows| {
                // A failed COMMIT (deferred constraint) is the request's
                // error.
                ended
                    .transpose()
                    .map_err(|e| db::map_error(&e, ctx.authenticated))?;
                Ok(rows)
            });
        match opened {
            Ok(rows) => Ok((client, rows)),
            Err(e) => {
                // An aborted transaction's COMMIT has rolled it back.
                if end.is_none() {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                Err(e)
            }
        }
    }

    /// Runs `statement` in a transaction set up for the request; `check`
    /// sees the outcome before commit and may refuse it (rolling back).
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        ctx: &Context,
        method: &Method,
        headers: &HeaderMap,
        statement: &Sql,
        read_only: bool,
        prefer: &Prefer,
        explain: Option<&Sql>,
        check: impl FnOnce(&Outcome) -> Result<(), Error>,
    ) -> Result<Outcome, Error> {
        ctx.timer.lap(Phase::Plan);
        // The statement goes out with the transaction's start, unless
        // something must run between them (a plan, a count estimate).
        let pipelined = ctx.plan.is_none() && explain.is_none();
        let (commit, _) = self.config.tx_end.commits(prefer.tx);
        // A read-only transaction also ends in that flight: one round trip
        // a read. Its end cannot wait for `check`, but then committing or
        // rolling back a transaction that cannot write differs in nothing
        // a client sees.
        let end_early =
            (pipelined && read_only).then_some(if commit { "COMMIT" } else { "ROLLBACK" });
        let (client, first_rows) = match self
            .begin(
                ctx,
                method,
                headers,
                read_only,
                prefer,
                pipelined.then_some(statement),
                end_early,
            )
            .await
        {
            Ok(opened) => opened,
            Err(e) => {
                ctx.timer.lap(Phase::Transaction);
                return Err(e);
            }
        };
        if let Some(plan) = &ctx.plan {
            // A plan is an inspection: whatever EXPLAIN ANALYZE did is
            // rolled back.
            let text = db::explain(
                &client,
                &plan.explain_prefix(),
                statement,
                ctx.authenticated,
            )
            .await;
            let _ = client.batch_execute("ROLLBACK").await;
            ctx.timer.lap(Phase::Transaction);
            *ctx.plan_output
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(text?);
            return Ok(Outcome::default());
        }
        let result = async {
            let planned = match explain {
                Some(sql) => db::planned_rows(&client, sql, ctx.authenticated).await?,
                None => None,
            };
            let rows = match first_rows {
                Some(rows) => rows,
                None => db::query(&client, statement, ctx.authenticated).await?,
            };
            let mut outcome = rows.first().map(Outcome::from_row).unwrap_or_default();
            outcome.total = match prefer.count {
                Some(Count::Planned) => planned,
                Some(Count::Estimated) => match (self.config.max_rows, planned) {
                    (Some(max), Some(p)) if p > max => Some(p),
                    _ => outcome.total,
                },
                _ => outcome.total,
            };
            check(&outcome)?;
            Ok::<_, Error>(outcome)
        }
        .await;
        if end_early.is_some() {
            ctx.timer.lap(Phase::Transaction);
            return result;
        }
        let end = if result.is_ok() && commit {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        let ended = client.batch_execute(end).await;
        ctx.timer.lap(Phase::Transaction);
        if let Err(e) = ended {
            // A failed COMMIT (deferred constraint) is the request's error.
            if result.is_ok() {
                return Err(db::map_error(&e, ctx.authenticated));
            }
        }
        result
    }

    /// `GET /`: the OpenAPI document of the request's schema, listing what
    /// the request's role may use (read in its own transaction).
    async fn root(
        &self,
        method: &Method,
        headers: &HeaderMap,
        ctx: &Context,
        prefer: &Prefer,
        cache: &SchemaCache,
    ) -> Result<Response<Body>, Error> {
        if self.config.openapi_mode == OpenApiMode::Disabled {
            return Err(Error::api(
                404,
                "PGRST126",
                "Root endpoint metadata is disabled",
            ));
        }
        if !matches!(*method, Method::GET | Method::HEAD) {
            return Err(Error::api(
                405,
                "PGRST117",
                format!("Unsupported HTTP method: {method}"),
            ));
        }
        let media = request::negotiate(
            header_str(headers, "accept"),
            &[Media::OpenApi, Media::Json],
        )?;
        ctx.timer.lap(Phase::Parse);
        ctx.timer.lap(Phase::Plan);
        let visible = if self.config.openapi_mode == OpenApiMode::FollowPrivileges {
            // One flight: the setup, the query and the rollback.
            let query = Sql {
                text: openapi::VISIBLE_SQL.to_owned(),
                params: vec![ctx.schema.clone()],
            };
            let (_, rows) = self
                .begin(
                    ctx,
                    method,
                    headers,
                    true,
                    prefer,
                    Some(&query),
                    Some("ROLLBACK"),
                )
                .await?;
            Some(
                rows.unwrap_or_default()
                    .iter()
                    .map(|r| r.get::<_, u32>(0))
                    .collect(),
            )
        } else {
            None
        };
        ctx.timer.lap(Phase::Transaction);
        let spec = openapi::Spec {
            cache,
            schema: &ctx.schema,
            visible: visible.as_ref(),
            server: self.server(headers),
            security_active: self.config.openapi_security_active,
        };
        let mut b = ResponseBuilder::new(200);
        b.body(media, spec.document().to_string());
        b.finish(&Outcome::default())
    }

    /// Where clients reach this API: the configured proxy URI, else what
    /// the request says (a gateway's `X-Forwarded-*`, or `Host`).
    fn server(&self, headers: &HeaderMap) -> openapi::Server {
        if let Some(s) = self
            .config
            .openapi_server_proxy_uri
            .as_deref()
            .and_then(openapi::Server::from_uri)
        {
            return s;
        }
        let host = header_str(headers, "x-forwarded-host")
            .or_else(|| header_str(headers, "host"))
            .unwrap_or("0.0.0.0:3000");
        let scheme = header_str(headers, "x-forwarded-proto").unwrap_or("http");
        let base = header_str(headers, "x-forwarded-prefix").unwrap_or("/");
        openapi::Server {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            base_path: base.to_owned(),
        }
    }
}

/// A 200 whose body is the plan `request` asked for.
fn plan_response(request: &PlanRequest, text: String) -> Result<Response<Body>, Error> {
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, request.content_type())
        .header(header::CONTENT_LENGTH, text.len())
        .body(Body::from(text))
        .map_err(|e| Error::api(500, "PGRSTX00", e.to_string()))
}

/// The phases `Server-Timing` reports, in order.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Jwt,
    Parse,
    Plan,
    Transaction,
    Response,
}

const PHASES: [&str; 5] = ["jwt", "parse", "plan", "transaction", "response"];

/// Time spent per phase of one request (each lap ends a phase), and the
/// role it ran as, for `Server-Timing` and the access log.
#[derive(Debug)]
struct Timer {
    state: Mutex<(std::time::Instant, [Option<f64>; 5])>,
    role: Mutex<Option<String>>,
}

impl Default for Timer {
    fn default() -> Self {
        Self {
            state: Mutex::new((std::time::Instant::now(), [None; 5])),
            role: Mutex::new(None),
        }
    }
}

impl Timer {
    fn lap(&self, phase: Phase) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = std::time::Instant::now();
        let ms = now.duration_since(state.0).as_secs_f64() * 1000.0;
        state.0 = now;
        *state.1[phase as usize].get_or_insert(0.0) += ms;
    }

    /// `jwt;dur=0.1, parse;dur=0.2, ...` for the phases that ran.
    fn header(&self) -> String {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        PHASES
            .iter()
            .zip(state.1)
            .filter_map(|(name, ms)| ms.map(|ms| format!("{name};dur={ms:.1}")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the representation of a write may embed.
fn write_embed<'a>(
    cache: &'a SchemaCache,
    rel: &Relation,
    q: &'a QueryParams,
    counter: &'a AtomicUsize,
) -> plan::EmbedCtx<'a> {
    plan::EmbedCtx {
        cache,
        parent: (rel.schema.clone(), rel.name.clone()),
        filters: &q.embedded_filters,
        other: &q.embedded_other,
        path: Vec::new(),
        counter,
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn target(path: &str) -> Result<Target, Error> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    match segments.as_slice() {
        [one] if one.is_empty() => Ok(Target::Root),
        [one] => Ok(Target::Relation(one.clone())),
        [rpc, name] if rpc == "rpc" && !name.is_empty() => Ok(Target::Rpc(name.clone())),
        _ => Err(Error::api(
            404,
            "PGRST125",
            "Invalid path specified in request URL",
        )),
    }
}

fn options_response(target: &Target) -> Response<Body> {
    let allow = match target {
        Target::Rpc(_) => "OPTIONS,GET,HEAD,POST",
        _ => "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE",
    };
    Response::builder()
        .status(200)
        .header("allow", allow)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("static response")
}

/// The request body as JSON (CSV bodies are converted to an array of
/// objects with text values).
fn payload_json(headers: &HeaderMap, body: &Bytes) -> Result<Value, Error> {
    let content_type = header_str(headers, "content-type").unwrap_or("application/json");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "text/csv" => csv_payload(body),
        "application/json"
        | ""
        | "application/vnd.pgrst.object+json"
        | "application/vnd.pgrst.object" => serde_json::from_slice(body)
            .map_err(|_| Error::api(400, "PGRST102", "Empty or invalid json")),
        "application/x-www-form-urlencoded" => {
            let map: serde_json::Map<String, Value> = form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            Ok(Value::Object(map))
        }
        other => Err(Error::api(
            415,
            "PGRST107",
            format!("None of these media types are available: {other}"),
        )),
    }
}

fn csv_payload(body: &Bytes) -> Result<Value, Error> {
    let text = String::from_utf8_lossy(body);
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .map(|h| h.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if line.split(',').count() != header.len() {
            return Err(Error::api(
                400,
                "PGRST102",
                "All lines must have same number of fields",
            ));
        }
        let mut obj = serde_json::Map::new();
        for (k, v) in header.iter().zip(line.split(',')) {
            obj.insert(
                k.clone(),
                if v == "NULL" {
                    Value::Null
                } else {
                    Value::String(v.to_owned())
                },
            );
        }
        rows.push(Value::Object(obj));
    }
    Ok(Value::Array(rows))
}

/// The keys to write: those of the object, or of the first object of an
/// array, all of whose objects must have the same keys.
fn payload_keys(payload: &Value) -> Result<Vec<String>, Error> {
    match payload {
        Value::Object(m) => Ok(m.keys().cloned().collect()),
        Value::Array(items) => {
            let mut keys: Option<Vec<String>> = None;
            for item in items {
                let Value::Object(m) = item else {
                    return Err(Error::api(400, "PGRST102", "All object keys must match"));
                };
                let mut k: Vec<String> = m.keys().cloned().collect();
                k.sort();
                match &keys {
                    None => keys = Some(k),
                    Some(first) => {
                        let mut f = first.clone();
                        f.sort();
                        if f != k {
                            return Err(Error::api(400, "PGRST102", "All object keys must match"));
                        }
                    }
                }
            }
            // Keep the first object's key order.
            Ok(items
                .first()
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default())
        }
        _ => Err(Error::api(400, "PGRST102", "Empty or invalid json")),
    }
}

/// Every key of every object, in first-seen order.
fn all_keys(payload: &Value) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let objects: Vec<&Value> = match payload {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    for o in objects {
        for k in o.as_object().into_iter().flat_map(|m| m.keys()) {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys
}

/// PUT rules: every primary key column filtered with `eq`, matching the
/// payload, no limit/offset, exactly one object.
fn put_checks(rel: &Relation, q: &QueryParams, payload: &Value) -> Result<(), Error> {
    if q.limit.is_some() || q.offset.is_some() {
        return Err(Error::api(
            400,
            "PGRST114",
            "limit/offset querystring parameters are not allowed for PUT",
        ));
    }
    let obj = match payload {
        Value::Object(m) => m,
        Value::Array(a) if a.len() == 1 && a[0].is_object() => a[0].as_object().expect("checked"),
        _ => {
            return Err(Error::api(
                400,
                "PGRST102",
                "PUT payload must contain a single row",
            ));
        }
    };
    let eq_filters: Vec<&Filter> = q
        .filters
        .iter()
        .filter(|f| {
            !f.negated
                && matches!(
                    f.op,
                    crate::grammar::Operation::Cmp(crate::grammar::CmpOp::Eq, None, _)
                )
        })
        .collect();
    let filtered: Vec<&str> = eq_filters.iter().map(|f| f.field.name.as_str()).collect();
    let mut pk = rel.primary_key.clone();
    pk.sort();
    let mut given: Vec<&str> = filtered.clone();
    given.sort();
    if pk.is_empty()
        || q.filters.len() != pk.len()
        || given != pk.iter().map(String::as_str).collect::<Vec<_>>()
    {
        return Err(Error::api(
            405,
            "PGRST105",
            "Filters must include all and only primary key columns with 'eq' operators",
        ));
    }
    for f in eq_filters {
        let crate::grammar::Operation::Cmp(_, _, v) = &f.op else {
            continue;
        };
        let matches = match obj.get(&f.field.name) {
            Some(Value::String(s)) => s == v,
            Some(Value::Number(n)) => n.to_string() == *v,
            Some(Value::Bool(b)) => b.to_string() == *v,
            _ => false,
        };
        if !matches {
            return Err(Error::api(
                400,
                "PGRST115",
                "Payload values do not match URL in primary key column(s)",
            ));
        }
    }
    Ok(())
}

fn choose_function<'a>(
    overloads: &'a [Function],
    given: &[String],
    payload: Option<&Value>,
    single_object: bool,
) -> Option<&'a Function> {
    // A single unnamed json/jsonb parameter takes the whole body.
    if payload.is_some()
        && let Some(f) = overloads.iter().find(|f| {
            f.args.len() == 1
                && (single_object || f.args[0].name.is_empty())
                && matches!(f.args[0].type_name.as_str(), "json" | "jsonb")
        })
    {
        return Some(f);
    }
    let fits: Vec<&Function> = overloads
        .iter()
        .filter(|f| {
            given.iter().all(|g| f.args.iter().any(|a| &a.name == g))
                && f.args.iter().all(|a| {
                    a.has_default || a.variadic && payload.is_none() || given.contains(&a.name)
                })
        })
        .collect();
    match fits.as_slice() {
        [] => None,
        [one] => Some(one),
        many => many
            .iter()
            .copied()
            .max_by_key(|f| f.args.iter().filter(|a| given.contains(&a.name)).count()),
    }
}

/// PGRST202. A GET cannot send a JSON body, so its search names no
/// json/jsonb parameter; a near overload of the same name is suggested.
fn function_not_found(
    schema: &str,
    name: &str,
    given: &[String],
    overloads: &[Function],
    get: bool,
) -> Error {
    let mut sorted = given.to_vec();
    sorted.sort();
    let params = sorted.join(", ");
    let message =
        format!("Could not find the function {schema}.{name}({params}) in the schema cache");
    let searched = if sorted.is_empty() {
        "without parameters".to_owned()
    } else {
        format!("with parameters {params}")
    };
    let json = if get {
        ""
    } else {
        " or with a single unnamed json/jsonb parameter"
    };
    let e = Error::api(404, "PGRST202", message).with_details(format!(
        "Searched for the function {schema}.{name} {searched}{json}, but no matches were found in the schema cache."
    ));
    // The overload sharing the most parameters with the call, if any does
    // (PostgREST suggests only near misses).
    let nearest = overloads
        .iter()
        .map(|f| {
            let shared = f.args.iter().filter(|a| given.contains(&a.name)).count();
            (shared, f)
        })
        .filter(|(shared, _)| *shared > 0)
        .max_by_key(|(shared, _)| *shared)
        .map(|(_, f)| f);
    match nearest {
        Some(f) => {
            let args: Vec<&str> = f.args.iter().map(|a| a.name.as_str()).collect();
            e.with_hint(format!(
                "Perhaps you meant to call the function {schema}.{name}({})",
                args.join(", ")
            ))
        }
        None => e,
    }
}

fn singular_check(media: Media, o: &Outcome) -> Result<(), Error> {
    if media.is_singular() && o.page_total != 1 {
        return Err(Error::api(
            406,
            "PGRST116",
            "Cannot coerce the result to a single JSON object",
        )
        .with_details(format!("The result contains {} rows", o.page_total)));
    }
    Ok(())
}

fn max_affected(prefer: &Prefer, o: &Outcome) -> Result<(), Error> {
    if prefer.strict
        && let Some(max) = prefer.max_affected
        && o.page_total > max
    {
        return Err(Error::api(
            400,
            "PGRST124",
            "Query result exceeds max-affected preference constraint",
        )
        .with_details(format!("The query affects {} rows", o.page_total)));
    }
    Ok(())
}

fn count_text(prefer: &Prefer, n: i64) -> String {
    if prefer.count == Some(Count::Exact) {
        n.to_string()
    } else {
        "*".to_owned()
    }
}

fn read_response(
    ctx: &Context,
    prefer: &Prefer,
    media: Media,
    outcome: &Outcome,
    offset: i64,
    custom: Option<&Custom>,
) -> Result<Response<Body>, Error> {
    let total = outcome.total;
    let mut status = 200;
    if let Some(total) = total {
        if offset > total {
            let e = Error::api(416, "PGRST103", "Requested range not satisfiable").with_details(
                format!("An offset of {offset} was requested, but there are only {total} rows."),
            );
            let mut response = error_response(&e);
            response.headers_mut().insert(
                "content-range",
                HeaderValue::from_str(&format!("*/{total}")).expect("ascii"),
            );
            return Ok(response);
        }
        if outcome.page_total < total {
            status = 206;
        }
    }
    let mut b = ResponseBuilder::new(status);
    b.range(Some(offset), outcome.page_total, total);
    b.applied(prefer, ctx, None, false);
    match custom {
        Some(c) => b.custom(c, outcome),
        None => b.body(media, outcome.body.clone()),
    }
    b.finish(outcome)
}

/// An answer made by a media type handler: the body's expression and the
/// `Content-Type`.
struct Custom {
    body: String,
    content_type: String,
}

/// How rows of `rel` are answered: by the media type handler the client
/// prefers over any built-in media type (one over `rel`'s rows even
/// overrides a built-in one), else by the built-in media type negotiated.
fn rows_answer(
    headers: &HeaderMap,
    cache: &SchemaCache,
    rel: Option<&(String, String)>,
) -> Result<(Media, Option<Custom>), Error> {
    if let Some(accept) = header_str(headers, "accept") {
        for mime in request::preferences(accept) {
            let builtin = request::builtin(&mime);
            let handler = cache.media_handler(
                &mime,
                rel,
                builtin.is_none() && mime != "*/*" && !mime.ends_with("/*"),
            );
            if let Some(h) = handler {
                let content_type =
                    builtin.map_or_else(|| mime.clone(), |m| m.content_type().to_owned());
                return Ok((
                    builtin.unwrap_or(Media::Json),
                    Some(Custom {
                        body: plan::handler_body(h),
                        content_type,
                    }),
                ));
            }
            if builtin.is_some() || mime.ends_with("/*") {
                break;
            }
        }
    }
    Ok((Service::row_media(headers, cache)?, None))
}

/// The answer of a function returning a media type's domain: its value, as
/// that media type (`*/*` answers anything, as `application/octet-stream`).
fn media_value(headers: &HeaderMap, media: &str) -> Result<Custom, Error> {
    let accepted = media == "*/*"
        || header_str(headers, "accept").is_none_or(|a| {
            request::preferences(a)
                .iter()
                .any(|p| p == media || p == "*/*")
        });
    if !accepted {
        return Err(Error::api(
            406,
            "PGRST107",
            format!(
                "None of these media types are available: {}",
                header_str(headers, "accept").unwrap_or_default()
            ),
        ));
    }
    Ok(Custom {
        body: plan::MEDIA_VALUE_BODY.to_owned(),
        content_type: if media == "*/*" {
            "application/octet-stream".to_owned()
        } else {
            media.to_owned()
        },
    })
}

struct ResponseBuilder {
    status: u16,
    headers: Vec<(String, String)>,
    content_range: Option<String>,
    body: Option<(Media, String)>,
    /// A handler's answer: its `Content-Type` and bytes.
    raw: Option<(String, Vec<u8>)>,
}

impl ResponseBuilder {
    fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_range: None,
            body: None,
            raw: None,
        }
    }

    fn custom(&mut self, custom: &Custom, outcome: &Outcome) {
        let bytes = outcome
            .raw_body
            .clone()
            .unwrap_or_else(|| outcome.body.clone().into_bytes());
        self.raw = Some((custom.content_type.clone(), bytes));
    }

    fn header(&mut self, name: &str, value: &str) {
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    fn range(&mut self, offset: Option<i64>, page: i64, total: Option<i64>) {
        let total = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
        let lower = offset.unwrap_or(0);
        self.content_range = Some(if page == 0 {
            format!("*/{total}")
        } else {
            format!("{lower}-{}/{total}", lower + page - 1)
        });
    }

    fn applied(&mut self, prefer: &Prefer, ctx: &Context, ret: Option<Return>, write: bool) {
        let mut applied = Vec::new();
        if write {
            match prefer.resolution {
                Some(Resolution::MergeDuplicates) => applied.push("resolution=merge-duplicates"),
                Some(Resolution::IgnoreDuplicates) => applied.push("resolution=ignore-duplicates"),
                None => {}
            }
            if prefer.missing_default {
                applied.push("missing=default");
            }
            match (prefer.ret, ret) {
                (Some(Return::Minimal), Some(_)) => applied.push("return=minimal"),
                (Some(Return::HeadersOnly), Some(_)) => applied.push("return=headers-only"),
                (Some(Return::Representation), Some(_)) => applied.push("return=representation"),
                _ => {}
            }
        }
        if prefer.single_object {
            applied.push("params=single-object");
        }
        match prefer.count {
            Some(Count::Exact) => applied.push("count=exact"),
            Some(Count::Planned) => applied.push("count=planned"),
            Some(Count::Estimated) => applied.push("count=estimated"),
            None => {}
        }
        if ctx.profile_header {
            self.header("content-profile", &ctx.schema);
        }
        match prefer.handling {
            Some(true) => applied.push("handling=strict"),
            Some(false) => applied.push("handling=lenient"),
            None => {}
        }
        let tz;
        if let Some(t) = &prefer.timezone {
            tz = format!("timezone={t}");
            applied.push(&tz);
        }
        let ma;
        if let Some(m) = prefer.max_affected
            && prefer.strict
        {
            ma = format!("max-affected={m}");
            applied.push(&ma);
        }
        if !applied.is_empty() {
            self.header("preference-applied", &applied.join(", "));
        }
    }

    fn body(&mut self, media: Media, body: String) {
        self.body = Some((media, body));
    }

    /// The body of an `application/octet-stream` answer: base64 from the
    /// database, sent as the bytes it stands for.
    fn binary_body(body: &str) -> Vec<u8> {
        use base64::Engine as _;
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .unwrap_or_default()
    }

    fn finish(mut self, outcome: &Outcome) -> Result<Response<Body>, Error> {
        // The transaction may have set response.status and response.headers.
        if let Some(s) = &outcome.response_status {
            self.status = s.trim().parse().map_err(|_| {
                Error::api(
                    500,
                    "PGRST112",
                    "response.status guc must be a valid status code",
                )
            })?;
        }
        let mut builder = Response::builder().status(
            StatusCode::from_u16(self.status)
                .map_err(|_| Error::api(500, "PGRST112", "Invalid response status"))?,
        );
        let h = builder.headers_mut().expect("builder is valid");
        if let Some((media, _)) = &self.body {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(media.content_type()),
            );
        }
        if let Some((content_type, _)) = &self.raw
            && let Ok(v) = HeaderValue::from_str(content_type)
        {
            h.insert(header::CONTENT_TYPE, v);
        }
        if let Some(cr) = &self.content_range {
            h.insert("content-range", HeaderValue::from_str(cr).expect("ascii"));
        }
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.append(k, v);
            }
        }
        if let Some(raw) = &outcome.response_headers {
            let parsed: Result<Vec<serde_json::Map<String, Value>>, _> = serde_json::from_str(raw);
            let Ok(list) = parsed else {
                return Err(Error::api(
                    500,
                    "PGRST111",
                    "response.headers guc must be a JSON array composed of objects with a single key and a string value",
                ));
            };
            for obj in list {
                for (k, v) in obj {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    if let (Ok(k), Ok(v)) = (
                        HeaderName::from_bytes(k.as_bytes()),
                        HeaderValue::from_str(&v),
                    ) {
                        // Cookies accumulate; other headers replace ours.
                        if k == header::SET_COOKIE {
                            h.append(k, v);
                        } else {
                            h.insert(k, v);
                        }
                    }
                }
            }
        }
        let body: Vec<u8> = match (self.body, self.raw) {
            (_, Some((_, raw))) if self.status != 204 => raw,
            (Some((Media::Binary, b)), _) if self.status != 204 => Self::binary_body(&b),
            (Some((_, b)), _) if self.status != 204 => b.into_bytes(),
            _ => Vec::new(),
        };
        if self.status != 204 {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let body = Body::from(body);
        builder
            .body(body)
            .map_err(|e| Error::api(500, "PGRSTX00", e.to_string()))
    }
}

/// A PostgREST error as an HTTP response.
pub fn error_response(e: &Error) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_string(&e.body()).unwrap_or_default();
    let code = e.body().code;
    let mut r = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header("proxy-status", format!("PostgREST; error={code}"));
    for (k, v) in e.headers() {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            r = r.header(k, v);
        }
    }
    let mut response = r
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .expect("valid error response");
    // HTTP/1 sends it in place of the status code's usual phrase.
    if let Some(phrase) = e
        .status_text()
        .and_then(|t| hyper::ext::ReasonPhrase::try_from(t.as_bytes().to_vec()).ok())
    {
        response.extensions_mut().insert(phrase);
    }
    response
}
