//! The worker processes: started on demand, shared by concurrent requests,
//! more of them under load, stopped when idle or when they break a limit.

use std::collections::HashMap;
use std::future::Future as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response};
use hyper_util::rt::TokioIo;
use supa_core::{ProjectRef, Secret};
use tokio::process::{Child, Command};
use tokio::sync::{OnceCell, mpsc};

use crate::{Error, LogEvent};

/// How workers run.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The `deno` binary.
    pub deno: PathBuf,
    /// Where sockets, the bootstrap and Deno's cache live.
    pub dir: PathBuf,
    /// Workers of one function at most.
    pub max_workers: usize,
    /// Requests a worker serves at once before another is started.
    pub per_worker: usize,
    /// A worker idle this long exits.
    pub idle: Duration,
    /// A request answered later than this is cut (546).
    pub wall_clock: Duration,
    /// CPU time a worker may spend on one request before it answers
    /// (546); time waiting on I/O does not count.
    pub cpu_time: Duration,
    /// A worker's V8 heap, in MiB.
    pub memory_mb: u32,
    /// Bytes a response may have: a larger `Content-Length` is answered
    /// 546, a streamed body cut (and its worker stopped) when it passes.
    pub max_response_bytes: u64,
    /// How long a worker may take to listen.
    pub boot_timeout: Duration,
    /// Where workers' output lines and lifecycle events go (none: their
    /// output goes to this process's).
    pub logs: Option<mpsc::Sender<LogEvent>>,
}

impl RuntimeConfig {
    /// Supabase's limits (150 s wall clock, 2 s of CPU, 256 MiB) and an idle time of
    /// 60 s, with `deno` and `dir` as given.
    pub fn new(deno: PathBuf, dir: PathBuf) -> Self {
        Self {
            deno,
            dir,
            max_workers: 4,
            per_worker: 16,
            idle: Duration::from_secs(60),
            wall_clock: Duration::from_secs(150),
            cpu_time: Duration::from_secs(2),
            memory_mb: 256,
            max_response_bytes: 256 * 1024 * 1024,
            boot_timeout: Duration::from_secs(10),
            logs: None,
        }
    }
}

/// One version of one function of one project.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FunctionKey {
    /// The project.
    pub project: ProjectRef,
    /// The function's slug.
    pub slug: String,
    /// Its version.
    pub version: u32,
    /// A digest of its environment: a worker started with another one is
    /// not reused (a changed secret reaches the next request).
    pub env: u64,
}

impl FunctionKey {
    fn same_function(&self, other: &FunctionKey) -> bool {
        self.project == other.project && self.slug == other.slug
    }
}

/// The worker that answered a request (Supabase's `execution_id`), in the
/// response's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionId(pub u64);

/// What a worker runs.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Which function.
    pub key: FunctionKey,
    /// The folder of its source files, the only one it may read.
    pub dir: PathBuf,
    /// The entrypoint, relative to `dir`.
    pub entrypoint: String,
    /// Its environment: the only variables it may read.
    pub env: Arc<[(String, Secret<String>)]>,
}

struct Worker {
    id: u64,
    key: FunctionKey,
    logs: Option<mpsc::Sender<LogEvent>>,
    socket: PathBuf,
    child: Mutex<Option<Child>>,
    /// Set once it listens (or failed to).
    ready: OnceCell<Result<(), Error>>,
    in_flight: AtomicUsize,
    last_used: Mutex<Instant>,
    /// Connections to the worker between requests.
    connections: Mutex<Vec<Connection>>,
}

type Connection = hyper::client::conn::http1::SendRequest<Body>;

/// How often a waiting request's worker's CPU time is read.
const CPU_TICK: Duration = Duration::from_millis(50);

/// Where a function may never connect: the cloud instance metadata
/// services (AWS IMDS and the ECS task endpoint in 169.254.0.0/16, its
/// IPv6 address, and the names GCP and EC2 resolve to them), which hand
/// out the host's credentials to whoever asks from the machine. Deno
/// checks addresses after parsing (`0xa9fea9fe` is caught) but not what a
/// name resolves to, so a name of the caller's pointing there is for the
/// network's own egress rules (see docs/security.md).
const DENIED_NET: &str =
    "169.254.0.0/16,[fd00:ec2::254],metadata.google.internal,metadata,instance-data";

/// Connections kept per worker at most.
const KEPT_CONNECTIONS: usize = 32;

impl Worker {
    /// A kept-alive connection that can take a request.
    async fn idle_connection(&self) -> Option<Connection> {
        loop {
            let mut c = self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()?;
            // Ready at once, or in a moment once the last response's end
            // has been processed; an error means the worker closed it.
            if c.ready().await.is_ok() {
                return Some(c);
            }
        }
    }

    /// Keeps a connection whose response has been read in full (HTTP/1:
    /// one exchange at a time) for another request.
    fn keep(&self, connection: Connection) {
        let mut kept = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() < KEPT_CONNECTIONS && !connection.is_closed() {
            kept.push(connection);
        }
    }

    /// Reports a lifecycle event of this worker.
    fn event(&self, event_type: &'static str, level: &'static str, message: String) {
        if let Some(logs) = &self.logs {
            let _ = logs.try_send(LogEvent::new(
                &self.key, self.id, event_type, level, message,
            ));
        }
    }

    fn kill(&self) {
        if let Some(mut child) = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            self.event("Shutdown", "info", "shutdown".into());
            self.connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            let _ = child.start_kill();
            // Reaped in the background so no zombie is left.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// CPU time the process has used (user and system), from
    /// `/proc/{pid}/stat`; zero when it cannot be read.
    fn cpu(&self) -> Duration {
        let pid = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(Child::id);
        let Some(stat) = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        else {
            return Duration::ZERO;
        };
        // After the command name (which may hold spaces), utime and stime
        // are the 12th and 13th fields, in clock ticks (100 a second).
        let ticks: u64 = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|t| t.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        Duration::from_millis(ticks * 10)
    }

    /// Whether the process has exited (how, if it has).
    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        match child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status),
            None => Some(std::process::ExitStatus::default()),
            _ => None,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A request's hold on a worker, given back when dropped.
struct Lease(Arc<Worker>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        *self
            .0
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }
}

/// The running edge functions of this process.
pub struct Runtime {
    config: RuntimeConfig,
    bootstrap: PathBuf,
    pools: Mutex<HashMap<FunctionKey, Vec<Arc<Worker>>>>,
    /// Workers of versions (or environments) no longer served: stopped as
    /// soon as their last request is answered.
    retired: Mutex<Vec<Arc<Worker>>>,
    next: AtomicU64,
    /// Where workers' sockets are.
    sockets: PathBuf,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("dir", &self.config.dir)
            .field("workers", &self.workers())
            .finish()
    }
}

impl Runtime {
    /// A runtime with no worker; its reaper stops idle workers from now on
    /// (needs a Tokio runtime).
    pub fn new(config: RuntimeConfig) -> Result<Arc<Self>, String> {
        let sockets = socket_dir(&config.dir)?;
        let bootstrap = config.dir.join("bootstrap.js");
        std::fs::write(&bootstrap, crate::BOOTSTRAP_JS)
            .map_err(|e| format!("cannot write {}: {e}", bootstrap.display()))?;
        let runtime = Arc::new(Self {
            config,
            bootstrap,
            pools: Mutex::default(),
            retired: Mutex::default(),
            next: AtomicU64::new(1),
            sockets,
        });
        let weak = Arc::downgrade(&runtime);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Some(runtime) = weak.upgrade() else {
                    return;
                };
                runtime.reap();
            }
        });
        Ok(runtime)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FunctionKey, Vec<Arc<Worker>>>> {
        self.pools.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Worker processes alive, across functions.
    pub fn workers(&self) -> usize {
        self.lock().values().map(Vec::len).sum::<usize>()
            + self
                .retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
    }

    /// Workers of one function.
    pub fn workers_of(&self, key: &FunctionKey) -> usize {
        self.lock().get(key).map_or(0, Vec::len)
    }

    /// Stops workers idle for longer than the idle time, and those that
    /// exited on their own.
    fn reap(&self) {
        let idle = self.config.idle;
        let mut pools = self.lock();
        for workers in pools.values_mut() {
            workers.retain(|w| {
                let quiet = w.in_flight.load(Ordering::Acquire) == 0
                    && w.last_used
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .elapsed()
                        >= idle;
                let keep = !quiet && w.exited().is_none();
                if !keep {
                    w.kill();
                }
                keep
            });
        }
        pools.retain(|_, workers| !workers.is_empty());
        drop(pools);
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|w| {
                let busy = w.in_flight.load(Ordering::Acquire) > 0 && w.exited().is_none();
                if !busy {
                    w.kill();
                }
                busy
            });
    }

    /// Serves `key` from now on instead of any other version (or
    /// environment) of the same function: their workers finish the
    /// requests they hold, then stop.
    pub fn retire_others(&self, key: &FunctionKey) {
        let mut pools = self.lock();
        let old: Vec<FunctionKey> = pools
            .keys()
            .filter(|k| k.same_function(key) && *k != key)
            .cloned()
            .collect();
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        for k in old {
            retired.extend(pools.remove(&k).unwrap_or_default());
        }
    }

    /// A worker for a request: the least busy one, or a new one when all
    /// are busy and the limit allows.
    fn lease(&self, spec: &FunctionSpec) -> Result<Lease, Error> {
        let mut pools = self.lock();
        let workers = pools.entry(spec.key.clone()).or_default();
        workers.retain(|w| w.exited().is_none());
        let least = workers
            .iter()
            .min_by_key(|w| w.in_flight.load(Ordering::Acquire))
            .cloned();
        let worker = match least {
            Some(w)
                if w.in_flight.load(Ordering::Acquire) < self.config.per_worker
                    || workers.len() >= self.config.max_workers =>
            {
                w
            }
            _ => {
                let w = Arc::new(self.spawn(spec)?);
                workers.push(w.clone());
                w
            }
        };
        worker.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(Lease(worker))
    }

    fn spawn(&self, spec: &FunctionSpec) -> Result<Worker, Error> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        // Processes may share the folder: the pid keeps names apart.
        let socket = self
            .sockets
            .join(format!("{}-{id}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let dir = spec
            .dir
            .canonicalize()
            .map_err(|e| Error::boot(format!("{}: {e}", spec.dir.display())))?;
        let entry = dir.join(&spec.entrypoint);
        if !entry.starts_with(&dir) {
            return Err(Error::boot(
                "the entrypoint is outside the function's folder",
            ));
        }
        let mut command = Command::new(&self.config.deno);
        command
            .arg("run")
            .arg("--no-prompt")
            .arg("--quiet")
            // Deployed bundles carry their imports: nothing is fetched.
            .arg("--cached-only")
            .arg("--allow-net")
            .arg(format!("--deny-net={DENIED_NET}"))
            .arg(format!(
                "--allow-read={},{}",
                path_arg(&dir)?,
                path_arg(&socket)?
            ))
            .arg(format!("--allow-write={}", path_arg(&socket)?))
            .arg(format!(
                "--v8-flags=--max-old-space-size={}",
                self.config.memory_mb
            ));
        if !spec.env.is_empty() {
            let names: Vec<&str> = spec.env.iter().map(|(n, _)| n.as_str()).collect();
            command.arg(format!("--allow-env={}", names.join(",")));
        }
        command
            .arg(&self.bootstrap)
            .arg(&socket)
            .arg(format!("file://{}", path_arg(&entry)?))
            // Nothing of this process's environment leaks in.
            .env_clear()
            .env("DENO_DIR", self.config.dir.join("deno"))
            .env("NO_COLOR", "1")
            .envs(tls_env())
            .envs(spec.env.iter().map(|(n, v)| (n, v.expose())))
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if self.config.logs.is_some() {
            command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
        }
        let mut child = command
            .spawn()
            .map_err(|e| Error::boot(format!("cannot run {}: {e}", self.config.deno.display())))?;
        if let Some(logs) = &self.config.logs {
            if let Some(out) = child.stdout.take() {
                tokio::spawn(forward_lines(
                    out,
                    logs.clone(),
                    spec.key.clone(),
                    id,
                    "info",
                ));
            }
            if let Some(err) = child.stderr.take() {
                tokio::spawn(forward_lines(
                    err,
                    logs.clone(),
                    spec.key.clone(),
                    id,
                    "error",
                ));
            }
        }
        tracing::debug!(project = %spec.key.project, slug = %spec.key.slug, id, "started a function worker");
        Ok(Worker {
            id,
            key: spec.key.clone(),
            logs: self.config.logs.clone(),
            socket,
            child: Mutex::new(Some(child)),
            ready: OnceCell::new(),
            in_flight: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
            connections: Mutex::default(),
        })
    }

    /// Waits until the worker listens, the process exits, or the boot
    /// timeout passes.
    async fn boot(&self, worker: &Worker) -> Result<(), Error> {
        let started = Instant::now();
        let deadline = started + self.config.boot_timeout;
        loop {
            if tokio::net::UnixStream::connect(&worker.socket)
                .await
                .is_ok()
            {
                worker.event(
                    "Boot",
                    "info",
                    format!("booted (time: {}ms)", started.elapsed().as_millis()),
                );
                return Ok(());
            }
            if let Some(status) = worker.exited() {
                return Err(Error::boot(format!(
                    "worker {} exited: {status}",
                    worker.id
                )));
            }
            if Instant::now() >= deadline {
                worker.kill();
                return Err(Error::boot(format!(
                    "worker {} did not listen in time",
                    worker.id
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Serves one request with the function, starting a worker if needed.
    pub async fn call(&self, spec: &FunctionSpec, request: Request<Body>) -> Response<Body> {
        match self.try_call(spec, request).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    }

    async fn try_call(
        &self,
        spec: &FunctionSpec,
        request: Request<Body>,
    ) -> Result<Response<Body>, Error> {
        let lease = self.lease(spec)?;
        let worker = lease.0.clone();
        worker
            .ready
            .get_or_init(|| self.boot(&worker))
            .await
            .clone()?;
        let wall_clock = self.config.wall_clock;
        // The worker's CPU time is watched until the response starts; with
        // requests sharing a worker, theirs counts too. Counted from the
        // first tick: most requests are answered before it, and reading
        // `/proc` for each of them would cost more than the answer.
        let budget = self.config.cpu_time;
        let over_budget = async {
            tokio::time::sleep(CPU_TICK).await;
            let cpu_start = worker.cpu();
            loop {
                tokio::time::sleep(CPU_TICK).await;
                if worker.cpu().saturating_sub(cpu_start) > budget {
                    return;
                }
            }
        };
        let exchange = tokio::time::timeout(wall_clock, async {
            let mut request = request;
            // A kept-alive connection first; one the worker closed meanwhile
            // gives the request back unsent.
            while let Some(mut sender) = worker.idle_connection().await {
                match sender.try_send_request(request).await {
                    Ok(response) => return Ok((response, sender)),
                    Err(mut e) => match e.take_message() {
                        Some(unsent) => request = unsent,
                        None => return Err(e.error().to_string()),
                    },
                }
            }
            let stream = tokio::net::UnixStream::connect(&worker.socket)
                .await
                .map_err(|e| e.to_string())?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            Ok((response, sender))
        });
        let sent = tokio::select! {
            sent = exchange => sent,
            () = over_budget => {
                self.forget(&spec.key, &worker);
                return Err(Error::limit(format!(
                    "worker {} used more than {} s of CPU",
                    worker.id,
                    budget.as_secs_f32()
                )));
            }
        };
        match sent {
            Ok(Ok((response, connection))) => {
                // The body streams on; the worker stays leased (and its
                // wall clock runs) until it has been read.
                let deadline = tokio::time::Instant::now() + wall_clock;
                let declared = response
                    .headers()
                    .get(axum::http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                if declared.is_some_and(|n| n > self.config.max_response_bytes) {
                    self.forget(&spec.key, &worker);
                    return Err(Error::limit(format!(
                        "worker {} answered more than {} bytes",
                        worker.id, self.config.max_response_bytes
                    )));
                }
                let (mut parts, incoming) = response.into_parts();
                parts.extensions.insert(ExecutionId(worker.id));
                let body = Body::new(Guarded {
                    inner: incoming,
                    connection: Some(connection),
                    allowance: self.config.max_response_bytes,
                    lease,
                    deadline: Box::pin(tokio::time::sleep_until(deadline)),
                });
                Ok(Response::from_parts(parts, body))
            }
            Ok(Err(e)) => {
                // The connection broke: the worker died under the request
                // (its heap, a crash) or closed it.
                let died = worker.exited().is_some()
                    || tokio::time::timeout(Duration::from_millis(200), async {
                        while worker.exited().is_none() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    })
                    .await
                    .is_ok();
                if died {
                    self.forget(&spec.key, &worker);
                    Err(Error::limit(format!("worker {} died: {e}", worker.id)))
                } else {
                    Err(Error::new(
                        502,
                        "WORKER_ERROR",
                        format!("the function's response was cut: {e}"),
                    ))
                }
            }
            Err(_) => {
                self.forget(&spec.key, &worker);
                Err(Error::limit(format!(
                    "worker {} ran past {} s",
                    worker.id,
                    wall_clock.as_secs_f32()
                )))
            }
        }
    }

    /// Stops a worker that broke a limit; the next request gets a new one.
    fn forget(&self, key: &FunctionKey, worker: &Arc<Worker>) {
        worker.kill();
        if let Some(workers) = self.lock().get_mut(key) {
            workers.retain(|w| !Arc::ptr_eq(w, worker));
        }
    }
}

/// The longest socket path Linux takes is 107 bytes; a worker's name
/// adds up to 25.
const MAX_SOCKET_DIR: usize = 80;

/// `dir/sockets`, or a private folder under the system's temporary one
/// when that path is too long for a Unix socket.
fn socket_dir(dir: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt as _;
    let preferred = dir.join("sockets");
    let chosen = if preferred.as_os_str().len() <= MAX_SOCKET_DIR {
        preferred
    } else {
        std::env::temp_dir().join(format!("supa-fn-{}", supa_core::random_uuid()))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&chosen)
        .map_err(|e| format!("cannot create {}: {e}", chosen.display()))?;
    if chosen.as_os_str().len() > MAX_SOCKET_DIR {
        return Err(format!(
            "{} is too long a path for Unix sockets",
            chosen.display()
        ));
    }
    Ok(chosen)
}

/// How Deno trusts TLS servers, read by Deno itself (not the function):
/// the system's store as well as its own, so the operator's CAs are
/// trusted, unless the operator chose otherwise.
pub(crate) fn tls_env() -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = [
        "DENO_TLS_CA_STORE",
        "DENO_CERT",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ]
    .into_iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| (k, v)))
    .collect();
    if !env.iter().any(|(k, _)| *k == "DENO_TLS_CA_STORE") {
        env.push(("DENO_TLS_CA_STORE", "system,mozilla".into()));
    }
    env
}

/// Longest output line kept; the rest of it is cut.
const MAX_LINE: usize = 16 * 1024;

/// Reports each line a worker writes as a `Log` event.
async fn forward_lines(
    mut stream: impl tokio::io::AsyncRead + Unpin,
    logs: mpsc::Sender<LogEvent>,
    key: FunctionKey,
    worker: u64,
    level: &'static str,
) {
    use tokio::io::AsyncReadExt as _;
    let mut line = Vec::new();
    let mut chunk = [0u8; 8192];
    let emit = |line: &mut Vec<u8>| {
        if line.len() > MAX_LINE {
            line.truncate(MAX_LINE);
        }
        let text = String::from_utf8_lossy(line).trim_end().to_owned();
        line.clear();
        // Dropped when the collector is behind, never waited for.
        let _ = logs.try_send(LogEvent::new(&key, worker, "Log", level, text));
    };
    while let Ok(n) = stream.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        for part in chunk[..n].split_inclusive(|b| *b == b'\n') {
            if line.len() <= MAX_LINE {
                line.extend_from_slice(part);
            }
            if part.ends_with(b"\n") {
                emit(&mut line);
            }
        }
    }
    if !line.is_empty() {
        emit(&mut line);
    }
}

/// A path as Deno's flags take it (comma-separated lists: no commas).
fn path_arg(path: &Path) -> Result<&str, Error> {
    path.to_str()
        .filter(|p| !p.contains(','))
        .ok_or_else(|| Error::boot(format!("{} cannot be passed to deno", path.display())))
}

/// A response body that holds its worker and stops at the wall clock;
/// read to its end, it gives its connection back to the worker.
struct Guarded {
    inner: hyper::body::Incoming,
    connection: Option<Connection>,
    lease: Lease,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// Bytes the body may still carry.
    allowance: u64,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.lease.0.kill();
            return std::task::Poll::Ready(Some(
                Err("the function ran past its wall clock".into()),
            ));
        }
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled {
            let len = frame.data_ref().map_or(0, |d| d.len() as u64);
            match self.allowance.checked_sub(len) {
                Some(left) => self.allowance = left,
                None => {
                    tracing::warn!(
                        worker = self.lease.0.id,
                        "a function's response passed its size limit"
                    );
                    self.lease.0.kill();
                    return std::task::Poll::Ready(Some(Err(
                        "the function's response passed its size limit".into(),
                    )));
                }
            }
        }
        // The end: no more frames, or all the bytes `Content-Length` said
        // (the server reading it may not poll again).
        let ended = match &polled {
            std::task::Poll::Ready(None) => true,
            std::task::Poll::Ready(Some(Ok(_))) => http_body::Body::is_end_stream(&self.inner),
            _ => false,
        };
        if ended && let Some(connection) = self.connection.take() {
            self.lease.0.keep(connection);
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}
