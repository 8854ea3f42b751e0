//! Many projects in one gateway process: what an idle project costs in
//! memory, and whether every project is still served, at what latency,
//! once most of their pools have been closed.
//!
//! One real project (its database, credentials and settings, read from
//! the tenant manager) stands for `--projects` synthetic ones: each has its
//! own ref and publishable key, and the gateway gives each its own cache
//! entries, pool and schema cache, as it would for separate databases
//! (which do not fit on one test disk by the thousand; the gateway's side
//! is the same). Requests go through the gateway's router in process, so
//! the process's heap is the gateway's alone; a counting allocator
//! measures it (RSS hides what the allocator keeps after a free).
//!
//! `many-projects --tenant-url URL --service-token T --ref REF
//! [--projects 10000] [--path /rest/v1/items?id=eq.1]` prints one JSON
//! object: warm latency (one project, pool open), round 1 (every project's
//! first request), round 2 (every project again, after their pools were
//! closed for idleness), errors, and heap and RSS per idle project.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::Request;
use supa_core::{
    BoxFuture, DirectoryError, KeyKind, KeyRecord, ProjectConfig, ProjectDirectory, ProjectRef,
    Secret,
};
use supa_router::{Gateway, GatewayConfig, HttpDirectory, Metrics};
use tower::ServiceExt as _;

/// The system allocator, counting the bytes it has handed out and not
/// had back.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is only arithmetic on the sizes it was given.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The real project's config under every synthetic ref, and their keys.
struct Synthetic {
    template: ProjectConfig,
    keys: HashMap<[u8; 32], KeyRecord>,
}

impl ProjectDirectory for Synthetic {
    fn project_config<'a>(
        &'a self,
        project_ref: &'a ProjectRef,
    ) -> BoxFuture<'a, Result<Option<ProjectConfig>, DirectoryError>> {
        let mut config = self.template.clone();
        config.project_ref = *project_ref;
        Box::pin(async move { Ok(Some(config)) })
    }

    fn lookup_key<'a>(
        &'a self,
        hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<KeyRecord>, DirectoryError>> {
        let record = self.keys.get(hash).cloned();
        Box::pin(async move { Ok(record) })
    }
}

struct Args {
    tenant_url: String,
    token: String,
    project: ProjectRef,
    projects: usize,
    path: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut tenant_url, mut token, mut project) = (None, None, None);
    let (mut projects, mut path) = (10_000, "/rest/v1/items?id=eq.1".to_owned());
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} wants a value"));
        match arg.as_str() {
            "--tenant-url" => tenant_url = Some(value()?),
            "--service-token" => token = Some(value()?),
            "--ref" => {
                project = Some(ProjectRef::parse(&value()?).map_err(|e| format!("--ref: {e}"))?)
            }
            "--projects" => projects = value()?.parse().map_err(|_| "--projects wants a number")?,
            "--path" => path = value()?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        tenant_url: tenant_url.ok_or("--tenant-url is required")?,
        token: token.ok_or("--service-token is required")?,
        project: project.ok_or("--ref is required")?,
        projects,
        path,
    })
}

/// Resident set size in bytes.
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Latency percentiles (ms) of `samples` (seconds).
fn percentiles(mut samples: Vec<f64>) -> serde_json::Map<String, serde_json::Value> {
    samples.sort_by(f64::total_cmp);
    let at = |p| supa_benches::nearest_rank(&samples, p).map_or(0.0, |s| s * 1000.0);
    let mut report = serde_json::Map::new();
    for (name, p) in [("p50_ms", 0.50), ("p99_ms", 0.99), ("max_ms", 1.0)] {
        report.insert(name.into(), at(p).into());
    }
    report
}

/// One request; its latency and whether it answered 200.
async fn call(router: &axum::Router, project: &ProjectRef, key: &str, path: &str) -> (f64, bool) {
    let request = Request::get(format!("/project/{project}{path}"))
        .header("apikey", key)
        .body(Body::empty())
        .expect("a well-formed request");
    let started = Instant::now();
    let ok = match router.clone().oneshot(request).await {
        Ok(response) => {
            let ok = response.status() == 200;
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await;
            ok && body.is_ok()
        }
        Err(never) => match never {},
    };
    (started.elapsed().as_secs_f64(), ok)
}

/// Every project once, in order: latency percentiles, failures and the
/// round's duration.
async fn round(
    router: &axum::Router,
    projects: &[(ProjectRef, String)],
    path: &str,
) -> serde_json::Value {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(projects.len());
    let mut failed = 0;
    for (project, key) in projects {
        let (latency, ok) = call(router, project, key, path).await;
        latencies.push(latency);
        failed += usize::from(!ok);
    }
    let mut report = percentiles(latencies);
    report.insert("failed".into(), failed.into());
    report.insert("seconds".into(), started.elapsed().as_secs_f64().into());
    report.into()
}

#[tokio::main]
async fn main() {
    let args = parse_args().unwrap_or_else(|e| fail(&e));
    let remote = HttpDirectory::new(&args.tenant_url, Secret::new(args.token.clone()));
    let template = match remote.project_config(&args.project).await {
        Ok(Some(config)) => config,
        other => fail(&format!("cannot read project {}: {other:?}", args.project)),
    };
    let mut keys = HashMap::new();
    let projects: Vec<(ProjectRef, String)> = (0..=args.projects)
        .map(|i| {
            let project = ProjectRef::generate();
            let key = supa_keys::generate(&project, KeyKind::Publishable);
            keys.insert(
                supa_keys::hash(&key),
                KeyRecord {
                    project_ref: project,
                    kind: KeyKind::Publishable,
                    id: format!("k{i}"),
                },
            );
            (project, key)
        })
        .collect();
    // The first one measures warm latency and is not counted below.
    let (warm_project, projects) = projects.split_first().expect("at least one");
    // Pools close after 2 s idle; cache entries outlive the run (a round
    // of 10,000 cold requests outlasts the default minute), so the idle
    // figure counts every entry and round 2 finds every one.
    let idle = Duration::from_secs(2);
    let config = GatewayConfig {
        idle,
        ttl: Duration::from_secs(3600),
        ..GatewayConfig::default()
    };
    let max_open = config.max_open_projects;
    let metrics = Arc::new(Metrics::default());
    let gateway = Arc::new(Gateway::new(
        Arc::new(Synthetic { template, keys }),
        config,
        metrics.clone(),
    ));
    let router = gateway.router();

    let (first, ok) = call(&router, &warm_project.0, &warm_project.1, &args.path).await;
    if !ok {
        fail(&format!(
            "{} does not answer 200 on the real project",
            args.path
        ));
    }
    let mut warm = Vec::new();
    for _ in 0..1000 {
        warm.push(
            call(&router, &warm_project.0, &warm_project.1, &args.path)
                .await
                .0,
        );
    }
    // Idle long enough for the warm project's pool to close too.
    tokio::time::sleep(idle * 2).await;
    let (heap_before, rss_before) = (LIVE.load(Ordering::Relaxed), rss());

    let round1 = round(&router, projects, &args.path).await;
    // Every pool closes for idleness: what stays is what an idle project
    // costs.
    tokio::time::sleep(idle * 2).await;
    let (heap_idle, rss_idle) = (LIVE.load(Ordering::Relaxed), rss());

    let fetched_before = metrics.l1_misses.load(Ordering::Relaxed);
    let round2 = round(&router, projects, &args.path).await;
    let n = projects.len();
    let per = |after: usize, before: usize| after.saturating_sub(before) as f64 / n as f64;
    let report = serde_json::json!({
        "projects": n,
        "max_open_projects": max_open,
        "first_request_ms": first * 1000.0,
        "warm": percentiles(warm),
        "round1": round1,
        "round2": round2,
        "idle_project_heap_bytes": per(heap_idle, heap_before),
        "idle_project_rss_bytes": per(rss_idle, rss_before),
        "heap_bytes_idle": heap_idle,
        "rss_bytes_idle": rss_idle,
        // Cache misses in round 2: entries the gateway had to fetch again.
        "cache_misses_round2": metrics.l1_misses.load(Ordering::Relaxed) - fetched_before,
    });
    supa_benches::print_report(&report);
}

fn fail(message: &str) -> ! {
    supa_benches::exit_with("many-projects", message)
}
