//! `/functions/v1` for every project: the deployed version of the
//! function a request names, its bundle fetched once from the control
//! plane and kept on disk, `verify_jwt` checked, and the request served by
//! the runtime with the project's environment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use supa_core::{BoxFuture, DirectoryError, FunctionDeployment, ProjectConfig, ProjectRef, Secret};
use tokio::sync::mpsc;

use crate::{Bundle, ExecutionId, FunctionKey, FunctionSpec, Runtime, RuntimeConfig};

/// Where the service gets bundles and leaves logs: the control plane, in
/// process or over its internal API.
pub trait FunctionStore: Send + Sync + 'static {
    /// The bundle of one version of a function, or `None`.
    fn bundle<'a>(
        &'a self,
        project: &'a ProjectRef,
        slug: &'a str,
        version: u32,
    ) -> BoxFuture<'a, Result<Option<Bundle>, DirectoryError>>;

    /// Keeps log events (best effort: they are dropped on failure).
    fn record(&self, events: Vec<LogEvent>) -> BoxFuture<'_, Result<(), DirectoryError>>;
}

/// One log event of a function, as Supabase's function logs carry them:
/// an output line (`Log`), a worker's `Boot` or `Shutdown`, or an
/// `Invocation` with its status and duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    /// The project.
    pub project: ProjectRef,
    /// The function.
    pub slug: String,
    /// Its version.
    pub version: u32,
    /// Microseconds since the Unix epoch.
    pub timestamp: i64,
    /// `Log`, `Boot`, `Shutdown` or `Invocation`.
    pub event_type: String,
    /// `info` or `error`.
    pub level: String,
    /// The line, or what happened.
    pub event_message: String,
    /// The worker (Supabase's execution id).
    pub execution_id: String,
    /// An invocation's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// An invocation's method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Milliseconds until an invocation's response started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_time_ms: Option<u64>,
}

impl LogEvent {
    pub(crate) fn new(
        key: &FunctionKey,
        worker: u64,
        event_type: &str,
        level: &str,
        event_message: String,
    ) -> Self {
        Self {
            project: key.project,
            slug: key.slug.clone(),
            version: key.version,
            timestamp: i64::try_from(supa_core::time::since_epoch().as_micros())
                .unwrap_or(i64::MAX),
            event_type: event_type.to_owned(),
            level: level.to_owned(),
            event_message,
            execution_id: worker.to_string(),
            status_code: None,
            method: None,
            execution_time_ms: None,
        }
    }
}

/// Log events waiting to be stored at most; more are dropped.
const LOG_QUEUE: usize = 10_000;
/// How often waiting log events are stored.
const LOG_FLUSH: Duration = Duration::from_secs(1);

/// The functions service of a process.
pub struct Functions {
    runtime: Arc<Runtime>,
    store: Arc<dyn FunctionStore>,
    bundles: PathBuf,
    logs: mpsc::Sender<LogEvent>,
    /// Version folders, each written once (one fetch at a time), with
    /// their bundle's path.
    unpacked: Mutex<HashMap<PathBuf, Arc<tokio::sync::OnceCell<String>>>>,
    /// Per project, what its requests share.
    prepared: Mutex<HashMap<ProjectRef, Arc<Prepared>>>,
    /// The worker key each function was last served with.
    current: Mutex<HashMap<(ProjectRef, String), FunctionKey>>,
}

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Functions")
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

impl Functions {
    /// A service running workers as `config` says, with bundles kept under
    /// `config.dir` (needs a Tokio runtime).
    pub fn new(
        mut config: RuntimeConfig,
        store: Arc<dyn FunctionStore>,
    ) -> Result<Arc<Self>, String> {
        let bundles = config.dir.join("bundles");
        std::fs::create_dir_all(&bundles)
            .map_err(|e| format!("cannot create {}: {e}", bundles.display()))?;
        let (logs, queue) = mpsc::channel(LOG_QUEUE);
        config.logs = Some(logs.clone());
        tokio::spawn(flush_logs(queue, store.clone()));
        Ok(Arc::new(Self {
            runtime: Runtime::new(config)?,
            store,
            bundles,
            logs,
            unpacked: Mutex::default(),
            prepared: Mutex::default(),
            current: Mutex::default(),
        }))
    }

    /// The runtime (its workers, for tests and metrics).
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// `/functions/v1` for every project: the router finds the project's
    /// [`ProjectConfig`] in the request's extensions.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(move |request: Request<Body>| {
            let functions = self.clone();
            async move { functions.invoke(request).await }
        })
    }

    async fn invoke(&self, request: Request<Body>) -> Response<Body> {
        let Some(config) = request.extensions().get::<Arc<ProjectConfig>>().cloned() else {
            return not_found();
        };
        let slug = slug_of(request.uri().path()).to_owned();
        let Some(deployment) = config.functions.deployments.get(&slug) else {
            return not_found();
        };
        let prepared = self.prepared(&config, request.headers());
        if deployment.verify_jwt
            && let Err(message) = verify_jwt(prepared.jwt_key.as_ref(), request.headers())
        {
            return error(StatusCode::UNAUTHORIZED, json!(401), message);
        }
        let (dir, entrypoint) = match self.unpack(&config.project_ref, &slug, deployment).await {
            Ok(unpacked) => unpacked,
            Err(e) => return e.into_response(),
        };
        let key = FunctionKey {
            project: config.project_ref,
            slug,
            version: deployment.version,
            env: prepared.digest,
        };
        self.serve_as_current(&key);
        let spec = FunctionSpec {
            key,
            dir,
            entrypoint,
            env: prepared.env.clone(),
        };
        let method = request.method().to_string();
        let started = Instant::now();
        let response = self.runtime.call(&spec, request).await;
        let worker = response
            .extensions()
            .get::<ExecutionId>()
            .map_or(0, |e| e.0);
        let mut event = LogEvent::new(
            &spec.key,
            worker,
            "Invocation",
            if response.status().is_server_error() {
                "error"
            } else {
                "info"
            },
            format!(
                "{method} | {} | {}",
                response.status().as_u16(),
                spec.key.slug
            ),
        );
        event.status_code = Some(response.status().as_u16());
        event.method = Some(method);
        event.execution_time_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(0));
        let _ = self.logs.try_send(event);
        response
    }

    /// What a project's requests share until its config changes: the
    /// functions' environment (with `SUPABASE_URL` as this request reached
    /// the gateway, unless the operator set it) and the key that verifies
    /// callers' tokens.
    fn prepared(&self, config: &Arc<ProjectConfig>, headers: &HeaderMap) -> Arc<Prepared> {
        let url =
            (!config.functions.env.contains_key("SUPABASE_URL")).then(|| supabase_url(headers));
        let mut cache = self.prepared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = cache.get(&config.project_ref)
            && Arc::ptr_eq(&p.config, config)
            && p.url == url
        {
            return p.clone();
        }
        let mut env: Vec<(String, Secret<String>)> = config
            .functions
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(url) = &url {
            env.push(("SUPABASE_URL".into(), Secret::new(url.clone())));
        }
        env.sort_by(|a, b| a.0.cmp(&b.0));
        let prepared = Arc::new(Prepared {
            config: config.clone(),
            digest: digest(&env),
            env: env.into(),
            url,
            jwt_key: supa_keys::project_keys(config).ok().map(|(key, _)| key),
        });
        // Projects come and go; a full cache starts over.
        if cache.len() >= PREPARED_PROJECTS {
            cache.clear();
        }
        cache.insert(config.project_ref, prepared.clone());
        prepared
    }

    /// A new version (or environment) retires the workers of the old one.
    fn serve_as_current(&self, key: &FunctionKey) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let id = (key.project, key.slug.clone());
        if current.get(&id) != Some(key) && current.insert(id, key.clone()).is_some() {
            self.runtime.retire_others(key);
        }
    }

    /// The version's folder on disk, fetched and written once, and its
    /// bundle's path in it.
    async fn unpack(
        &self,
        project: &ProjectRef,
        slug: &str,
        deployment: &FunctionDeployment,
    ) -> Result<(PathBuf, String), crate::Error> {
        let dir = version_dir(&self.bundles, project, slug, deployment);
        let cell = self
            .unpacked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(dir.clone())
            .or_default()
            .clone();
        let ready = dir.join(READY);
        let entry = cell
            .get_or_try_init(|| async {
                // Written before (by an earlier process).
                if let Ok(entry) = tokio::fs::read_to_string(&ready).await {
                    return Ok(entry);
                }
                let bundle = self
                    .store
                    .bundle(project, slug, deployment.version)
                    .await
                    .map_err(|e| crate::Error::boot(format!("cannot fetch the bundle: {e}")))?
                    .ok_or_else(|| crate::Error::boot("the deployed version has no bundle"))?;
                if bundle.sha256() != deployment.sha256 {
                    return Err(crate::Error::boot("the bundle does not match its digest"));
                }
                write_bundle(&dir, &bundle)
                    .await
                    .map_err(|e| crate::Error::boot(format!("cannot write the bundle: {e}")))?;
                Ok(bundle.entrypoint)
            })
            .await?
            .clone();
        Ok((dir, entry))
    }
}

/// Projects whose [`Prepared`] is kept at most.
const PREPARED_PROJECTS: usize = 10_000;

/// What a project's requests share until its config changes.
struct Prepared {
    /// The config it was made from (compared by pointer).
    config: Arc<ProjectConfig>,
    /// `SUPABASE_URL`, when taken from the request.
    url: Option<String>,
    env: Arc<[(String, Secret<String>)]>,
    digest: u64,
    jwt_key: Option<supa_keys::JwtKey>,
}

/// Marks a version's folder as completely written.
const READY: &str = ".supa-ready";

fn version_dir(
    root: &std::path::Path,
    project: &ProjectRef,
    slug: &str,
    deployment: &FunctionDeployment,
) -> PathBuf {
    root.join(project.as_str()).join(slug).join(format!(
        "{}-{}",
        deployment.version,
        deployment.sha256.get(..16).unwrap_or("")
    ))
}

/// Writes the files into a fresh folder, then moves it in place, so a
/// folder that exists is whole.
async fn write_bundle(dir: &std::path::Path, bundle: &Bundle) -> std::io::Result<()> {
    let parent = dir.parent().unwrap_or(dir);
    tokio::fs::create_dir_all(parent).await?;
    let partial = parent.join(format!(".partial-{}", supa_core::random_uuid()));
    crate::bundle::write_files(&partial, &bundle.files).await?;
    tokio::fs::write(partial.join(READY), &bundle.entrypoint).await?;
    let _ = tokio::fs::remove_dir_all(dir).await;
    tokio::fs::rename(&partial, dir).await
}

/// The caller's project JWT, when the function wants one.
fn verify_jwt(key: Option<&supa_keys::JwtKey>, headers: &HeaderMap) -> Result<(), &'static str> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(supa_core::bearer_token)
        .filter(|t| !t.is_empty())
        .ok_or("Missing authorization header")?;
    let key = key.ok_or("Invalid JWT")?;
    supa_keys::verify(key, token, supa_keys::unix_now())
        .map(|_| ())
        .map_err(|_| "Invalid JWT")
}

/// The function a request names: the first segment of its path.
pub(crate) fn slug_of(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or("")
}

/// Where clients reach the project, from the headers the gateway sets.
fn supabase_url(headers: &HeaderMap) -> String {
    let url = supa_core::public_base_url(
        |name| headers.get(name).and_then(|v| v.to_str().ok()),
        "/functions/v1",
    );
    url.strip_suffix("/functions/v1").unwrap_or(&url).to_owned()
}

fn digest(env: &[(String, Secret<String>)]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (k, v) in env {
        k.hash(&mut h);
        v.expose().hash(&mut h);
    }
    h.finish()
}

fn error(status: StatusCode, code: serde_json::Value, message: &str) -> Response<Body> {
    use axum::response::IntoResponse as _;
    (
        status,
        axum::Json(json!({"code": code, "message": message})),
    )
        .into_response()
}

/// Supabase's answer for a function that is not deployed.
fn not_found() -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        json!("NOT_FOUND"),
        "Requested function was not found",
    )
}

/// Events kept per function and flush (a second); the rest are counted
/// and reported as one event, so a busy function's logs cost the store a
/// bounded amount whatever the request rate.
const EVENTS_PER_FLUSH: usize = 200;

/// Stores log events in batches, once a second, at most
/// [`EVENTS_PER_FLUSH`] per function.
async fn flush_logs(mut queue: mpsc::Receiver<LogEvent>, store: Arc<dyn FunctionStore>) {
    let mut open = true;
    while open {
        let deadline = tokio::time::Instant::now() + LOG_FLUSH;
        let mut batch = Vec::new();
        // Per function: events kept, events dropped, the last one seen.
        let mut counts: HashMap<(ProjectRef, String), (usize, usize, Option<LogEvent>)> =
            HashMap::new();
        loop {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(event)) => {
                    let count = counts
                        .entry((event.project, event.slug.clone()))
                        .or_default();
                    if count.0 < EVENTS_PER_FLUSH {
                        count.0 += 1;
                        batch.push(event);
                    } else {
                        count.1 += 1;
                        count.2 = Some(event);
                    }
                }
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        for (_, (_, dropped, last)) in counts {
            if let Some(mut summary) = last {
                summary.event_type = "Log".into();
                summary.level = "warning".into();
                summary.event_message = format!(
                    "{dropped} more log events in this second were not kept (at most {EVENTS_PER_FLUSH} a second)"
                );
                summary.status_code = None;
                summary.method = None;
                summary.execution_time_ms = None;
                batch.push(summary);
            }
        }
        if !batch.is_empty()
            && let Err(e) = store.record(batch).await
        {
            tracing::warn!(error = %e, "function logs dropped");
        }
    }
}
