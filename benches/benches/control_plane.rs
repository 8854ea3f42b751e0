//! Control-plane latency, end to end over HTTP: project creation through
//! the Management API on an embedded cluster (full durability, as `supa up`
//! runs it), then the project list with 1,000 projects on one worker.
//!
//! Not criterion: each creation makes a database, so the samples are few
//! and expensive; this prints percentiles of real runs. The baseline is the
//! reference deployment's 2-3 minutes per project (its own documentation),
//! which cannot run here.

#![allow(clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use supa_tenant::CreateProject;
use supa_tenant::client::ManagementClient;
use supa_tenant::platform::{self, ControlPlane, Settings};

const TIMED_CREATIONS: usize = 20;
const TOTAL_PROJECTS: usize = 1000;
const FILL_CONCURRENCY: usize = 4;
const LIST_SAMPLES: usize = 50;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("supa-bench-").tempdir()?;
    let plane = ControlPlane::start(Settings {
        data_dir: dir.path().to_owned(),
        ..Settings::default()
    })
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(platform::serve(listener, plane.router(), async {
        stopped.await.ok();
    }));
    let client = ManagementClient::new(&url, plane.tokens.admin.clone())?;
    let create = |name: String| {
        let client = client.clone();
        async move {
            let request = CreateProject {
                name,
                ..CreateProject::default()
            };
            let started = Instant::now();
            client.create_project(&request, |_| {}).await?;
            anyhow::Ok(started.elapsed())
        }
    };

    // The first project on a worker also prepares its template database.
    let first = create("first".into()).await?;
    let mut samples = Vec::new();
    for i in 0..TIMED_CREATIONS {
        samples.push(create(format!("timed-{i}")).await?);
    }
    let (p50, p95) = (
        percentile(&mut samples, 50.0),
        percentile(&mut samples, 95.0),
    );

    let fill_started = Instant::now();
    let mut created = 1 + TIMED_CREATIONS;
    while created < TOTAL_PROJECTS {
        let batch = FILL_CONCURRENCY.min(TOTAL_PROJECTS - created);
        let mut tasks = Vec::new();
        for i in 0..batch {
            tasks.push(tokio::spawn(create(format!("fill-{}", created + i))));
        }
        for task in tasks {
            task.await??;
        }
        created += batch;
    }
    let fill = fill_started.elapsed();
    let filled = TOTAL_PROJECTS - 1 - TIMED_CREATIONS;

    let mut lists = Vec::new();
    let mut count = 0;
    for _ in 0..LIST_SAMPLES {
        let started = Instant::now();
        count = client.list_projects().await?.len();
        lists.push(started.elapsed());
    }
    let (l50, l95) = (percentile(&mut lists, 50.0), percentile(&mut lists, 95.0));

    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| first project on a fresh worker (prepares the template) | {} |",
        ms(first)
    );
    println!(
        "| project creation p50 ({TIMED_CREATIONS} sequential) | {} |",
        ms(p50)
    );
    println!(
        "| project creation p95 ({TIMED_CREATIONS} sequential) | {} |",
        ms(p95)
    );
    println!(
        "| fill to {TOTAL_PROJECTS} projects, {FILL_CONCURRENCY} concurrent | {filled} in {:.1} s ({:.1} projects/s) |",
        fill.as_secs_f64(),
        filled as f64 / fill.as_secs_f64()
    );
    println!(
        "| `GET /v1/projects` with {count} projects, p50 ({LIST_SAMPLES} calls) | {} |",
        ms(l50)
    );
    println!(
        "| `GET /v1/projects` with {count} projects, p95 | {} |",
        ms(l95)
    );
    println!(
        "| ratio p50 vs the reference's 120 s (low end of 2-3 min) | {:.4} × |",
        p50.as_secs_f64() / 120.0
    );

    stop.send(()).ok();
    server.await??;
    plane.shutdown().await?;
    Ok(())
}
