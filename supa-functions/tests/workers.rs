//! The worker runtime with the real Deno the bootstrap installs
//! (`runtime/deno`, from npm): cold starts, scale to zero and back, the
//! per-function limit under concurrent load, Supabase's limits and the
//! permissions a function runs with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::Request;
use supa_core::{ProjectRef, Secret};
use supa_functions::{
    BUNDLE_FILE, Builder, FunctionKey, FunctionSpec, Runtime, RuntimeConfig, SourceFile,
};

fn deno() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runtime/deno/node_modules/@deno/linux-x64-glibc/deno");
    assert!(
        path.exists(),
        "{} is missing: `make deps` installs it",
        path.display()
    );
    path
}

/// A function folder with `index.ts` = `source`.
fn function(root: &Path, slug: &str, source: &str, env: &[(&str, &str)]) -> FunctionSpec {
    let dir = root.join(slug);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.ts"), source).unwrap();
    FunctionSpec {
        key: FunctionKey {
            project: ProjectRef::parse("funcfuncfuncfuncfunc").unwrap(),
            slug: slug.into(),
            version: 1,
            env: 0,
        },
        dir,
        entrypoint: "index.ts".into(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), Secret::new(v.to_string())))
            .collect::<Vec<_>>()
            .into(),
    }
}

fn runtime(root: &Path, tune: impl FnOnce(&mut RuntimeConfig)) -> Arc<Runtime> {
    let mut config = RuntimeConfig::new(deno(), root.join("runtime"));
    tune(&mut config);
    Runtime::new(config).unwrap()
}

async fn call(runtime: &Runtime, spec: &FunctionSpec, request: Request<Body>) -> (u16, String) {
    let response = runtime.call(spec, request).await;
    let status = response.status().as_u16();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cut: {e}>"));
    (status, body)
}

fn get(path: &str) -> Request<Body> {
    Request::get(format!("http://function{path}"))
        .body(Body::empty())
        .unwrap()
}

const ECHO: &str = r#"
Deno.serve(async (req) => {
  const url = new URL(req.url);
  return Response.json({
    method: req.method,
    path: url.pathname,
    query: url.search,
    header: req.headers.get("x-test"),
    body: await req.text(),
    secret: (() => { try { return Deno.env.get("MY_SECRET") ?? null; } catch { return null; } })(),
  }, { status: url.searchParams.get("status") ? Number(url.searchParams.get("status")) : 200 });
});
"#;

#[tokio::test]
async fn a_function_starts_on_demand_and_sees_the_request_and_its_secrets() {
    let root = tempfile::tempdir().unwrap();
    let rt = runtime(root.path(), |_| {});
    let spec = function(root.path(), "echo", ECHO, &[("MY_SECRET", "s3cret")]);
    assert_eq!(rt.workers(), 0, "nothing runs before the first request");
    let request = Request::post("http://function/echo/a?x=1&status=201")
        .header("x-test", "yes")
        .body(Body::from("hello"))
        .unwrap();
    let (status, body) = call(&rt, &spec, request).await;
    assert_eq!(status, 201, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/echo/a");
    assert_eq!(body["query"], "?x=1&status=201");
    assert_eq!(body["header"], "yes");
    assert_eq!(body["body"], "hello");
    assert_eq!(body["secret"], "s3cret");
    assert_eq!(rt.workers(), 1);
    // Warm: the same worker.
    let (status, _) = call(&rt, &spec, get("/echo")).await;
    assert_eq!(status, 200);
    assert_eq!(rt.workers(), 1);
}

#[tokio::test]
async fn idle_workers_exit_and_the_next_request_starts_one() {
    let root = tempfile::tempdir().unwrap();
    let rt = runtime(root.path(), |c| c.idle = Duration::from_millis(500));
    let spec = function(root.path(), "echo", ECHO, &[]);
    assert_eq!(call(&rt, &spec, get("/")).await.0, 200);
    assert_eq!(rt.workers(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rt.workers(), 0, "scaled to zero");
    assert_eq!(call(&rt, &spec, get("/")).await.0, 200);
    assert_eq!(rt.workers(), 1);
}

#[tokio::test]
async fn concurrent_requests_start_workers_up_to_the_limit_and_wait_for_cold_starts() {
    let root = tempfile::tempdir().unwrap();
    let rt = runtime(root.path(), |c| {
        c.max_workers = 2;
        c.per_worker = 1;
    });
    let spec = function(
        root.path(),
        "slow",
        "Deno.serve(async () => { await new Promise((r) => setTimeout(r, 300)); return new Response('done'); });",
        &[],
    );
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (rt, spec) = (rt.clone(), spec.clone());
            tokio::spawn(async move { call(&rt, &spec, get("/")).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), (200, "done".to_owned()));
    }
    assert_eq!(rt.workers_of(&spec.key), 2);
}

#[tokio::test]
async fn limits_answer_546_and_other_functions_keep_answering() {
    let root = tempfile::tempdir().unwrap();
    let rt = runtime(root.path(), |c| {
        c.wall_clock = Duration::from_secs(4);
        c.cpu_time = Duration::from_millis(500);
        c.memory_mb = 64;
    });
    let spin = function(
        root.path(),
        "spin",
        "Deno.serve(() => { while (true) {} });",
        &[],
    );
    let hog = function(
        root.path(),
        "hog",
        "Deno.serve(() => { const a = []; while (true) a.push(new Array(100000).fill(Math.random())); });",
        &[],
    );
    let echo = function(root.path(), "echo", ECHO, &[]);
    let (spun, hogged, echoed) = tokio::join!(
        call(&rt, &spin, get("/")),
        call(&rt, &hog, get("/")),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            call(&rt, &echo, get("/")).await
        }
    );
    assert_eq!(echoed.0, 200, "{echoed:?}");
    for (status, body) in [spun, hogged] {
        assert_eq!(status, 546, "{body}");
        assert!(body.contains("WORKER_LIMIT"), "{body}");
    }
    // Waiting is not working: a function asleep for longer than its CPU
    // budget answers, one asleep past the wall clock does not.
    let nap = |ms: u32| {
        format!(
            "Deno.serve(async () => {{ await new Promise((r) => setTimeout(r, {ms})); return new Response('rested'); }});"
        )
    };
    let short = function(root.path(), "nap", &nap(1500), &[]);
    assert_eq!(
        call(&rt, &short, get("/")).await,
        (200, "rested".to_owned())
    );
    let long = function(root.path(), "sleep", &nap(6000), &[]);
    let (status, body) = call(&rt, &long, get("/")).await;
    assert_eq!(status, 546, "{body}");
    // The broken workers are gone; the next request gets a fresh one.
    assert_eq!(rt.workers_of(&spin.key), 0);
    assert_eq!(call(&rt, &echo, get("/")).await.0, 200);
}

#[tokio::test]
async fn a_function_reads_only_its_folder_and_its_variables_and_runs_nothing() {
    let root = tempfile::tempdir().unwrap();
    let rt = runtime(root.path(), |_| {});
    let other = function(root.path(), "other", ECHO, &[("OTHER_SECRET", "theirs")]);
    let probe = format!(
        r#"
const attempt = async (f) => {{ try {{ await f(); return "allowed"; }} catch (e) {{ return e.name; }} }};
Deno.serve(async () => Response.json({{
  own: await attempt(() => Deno.readTextFile("./index.ts")),
  other: await attempt(() => Deno.readTextFile({other:?})),
  env: await attempt(() => Deno.env.get("HOME")),
  write: await attempt(() => Deno.writeTextFile("./x.txt", "x")),
  run: await attempt(() => new Deno.Command("/bin/true").output()),
  ffi: await attempt(() => Deno.dlopen("libc.so.6", {{}})),
}}));
"#,
        other = other.dir.join("index.ts").display().to_string()
    );
    let spec = function(root.path(), "probe", &probe, &[]);
    let (status, body) = call(&rt, &spec, get("/")).await;
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["own"], "allowed");
    for denied in ["other", "env", "write", "run", "ffi"] {
        assert_eq!(seen[denied], "NotCapable", "{denied}: {body}");
    }
}

#[tokio::test]
async fn a_function_that_cannot_start_is_a_boot_error() {
    let root = tempfile::tempdir().unwrap();
    let rt = runtime(root.path(), |_| {});
    let broken = function(root.path(), "broken", "this is not ( typescript", &[]);
    let (status, body) = call(&rt, &broken, get("/")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("BOOT_ERROR"), "{body}");
    let silent = function(root.path(), "silent", "console.log('never serves');", &[]);
    let (status, body) = call(&rt, &silent, get("/")).await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn a_new_version_retires_the_old_one_once_its_requests_are_answered() {
    let root = tempfile::tempdir().unwrap();
    let rt = runtime(root.path(), |_| {});
    let slow = "Deno.serve(async () => { await new Promise((r) => setTimeout(r, 800)); return new Response('v1'); });";
    let v1 = function(root.path(), "f", slow, &[]);
    let in_flight = {
        let (rt, v1) = (rt.clone(), v1.clone());
        tokio::spawn(async move { call(&rt, &v1, get("/f")).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut v2 = function(
        root.path(),
        "f2",
        "Deno.serve(() => new Response('v2'));",
        &[],
    );
    v2.key.slug = "f".into();
    v2.key.version = 2;
    rt.retire_others(&v2.key);
    assert_eq!(call(&rt, &v2, get("/f")).await, (200, "v2".into()));
    // The request the old version held is answered by it.
    assert_eq!(in_flight.await.unwrap(), (200, "v1".into()));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rt.workers_of(&v1.key), 0);
    assert_eq!(rt.workers(), 1, "only the new version's worker is left");
}

#[tokio::test]
async fn output_lines_and_lifecycle_become_log_events() {
    let root = tempfile::tempdir().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(100);
    let rt = runtime(root.path(), |c| c.logs = Some(tx));
    let spec = function(
        root.path(),
        "talk",
        "Deno.serve(() => { console.log('hello', 42); console.error('oops'); return new Response('ok'); });",
        &[],
    );
    assert_eq!(call(&rt, &spec, get("/talk")).await.0, 200);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a log event in time")
            .unwrap();
        assert_eq!(event.slug, "talk");
        seen.push((event.event_type, event.level, event.event_message));
    }
    assert!(
        seen[0].0 == "Boot" && seen[0].2.starts_with("booted (time: "),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("Log".into(), "info".into(), "hello 42".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("Log".into(), "error".into(), "oops".into())),
        "{seen:?}"
    );
}

/// A builder whose npm cache (and bundler) outlives the test, so the
/// suite downloads them once.
fn builder(root: &Path) -> Builder {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deno-build-cache");
    Builder::new(deno(), cache, root.join("scratch")).unwrap()
}

fn source(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        content: text.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn a_deploy_is_bundled_with_its_local_imports_and_runs_from_the_bundle() {
    let root = tempfile::tempdir().unwrap();
    let builder = builder(root.path());
    let bundle = builder
        .build(
            vec![
                source("hello/index.ts", "import { greet } from './lib/greet.ts';\nDeno.serve(() => new Response(greet('you')));"),
                source("hello/lib/greet.ts", "export const greet = (n: string): string => `hi ${n}`;"),
            ],
            "hello/index.ts",
            None,
        )
        .await
        .unwrap();
    assert_eq!(bundle.entrypoint, format!("hello/{BUNDLE_FILE}"));
    assert_eq!(bundle.files.len(), 3);
    // The bundle alone answers.
    let dir = root.path().join("run");
    std::fs::create_dir_all(dir.join("hello")).unwrap();
    let js = &bundle
        .files
        .iter()
        .find(|f| f.path == bundle.entrypoint)
        .unwrap()
        .content;
    std::fs::write(dir.join(&bundle.entrypoint), js).unwrap();
    let rt = runtime(root.path(), |_| {});
    let mut spec = function(root.path(), "unused", "", &[]);
    spec.dir = dir;
    spec.entrypoint = bundle.entrypoint.clone();
    assert_eq!(
        call(&rt, &spec, get("/hello")).await,
        (200, "hi you".into())
    );
}

#[tokio::test]
async fn a_deploy_that_reaches_outside_its_files_or_does_not_compile_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let builder = builder(root.path());
    let secret = root.path().join("secret.ts");
    std::fs::write(&secret, "export const s = 'server secret';").unwrap();
    let outside = builder
        .build(
            vec![source(
                "index.ts",
                &format!(
                    "import {{ s }} from 'file://{}';\nDeno.serve(() => new Response(s));",
                    secret.display()
                ),
            )],
            "index.ts",
            None,
        )
        .await
        .unwrap_err();
    assert!(
        outside.contains("outside the function's files"),
        "{outside}"
    );
    let broken = builder
        .build(
            vec![source("index.ts", "Deno.serve(() => {")],
            "index.ts",
            None,
        )
        .await
        .unwrap_err();
    assert!(
        !broken.is_empty() && !broken.contains(&root.path().display().to_string()),
        "{broken}"
    );
    let missing = builder
        .build(vec![source("index.ts", "")], "main.ts", None)
        .await
        .unwrap_err();
    assert!(missing.contains("not among the files"), "{missing}");
}

#[tokio::test]
async fn a_huge_response_is_stopped_and_other_functions_keep_answering() {
    let root = tempfile::tempdir().unwrap();
    let rt = runtime(root.path(), |c| c.max_response_bytes = 1024 * 1024);
    let declared = function(
        root.path(),
        "declared",
        "Deno.serve(() => new Response(new Uint8Array(2 * 1024 * 1024)));",
        &[],
    );
    let (status, body) = call(&rt, &declared, get("/declared")).await;
    assert_eq!(status, 546, "{body}");
    assert!(body.contains("WORKER_LIMIT"), "{body}");
    let endless = function(
        root.path(),
        "endless",
        "Deno.serve(() => new Response(new ReadableStream({ pull(c) { c.enqueue(new Uint8Array(64 * 1024)); } })));",
        &[],
    );
    let (status, body) = call(&rt, &endless, get("/endless")).await;
    assert_eq!(
        status, 200,
        "the headers went out before the size was known"
    );
    assert!(body.starts_with("<cut:"), "the body is cut: {body:.40}");
    // Its worker was stopped (and is forgotten at the next reaping).
    let mut left = rt.workers_of(&endless.key);
    for _ in 0..40 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = rt.workers_of(&endless.key);
    }
    assert_eq!(left, 0, "its worker was stopped");
    let other = function(
        root.path(),
        "other",
        "Deno.serve(() => new Response('fine'));",
        &[],
    );
    assert_eq!(call(&rt, &other, get("/other")).await, (200, "fine".into()));
}
