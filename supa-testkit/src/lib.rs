//! The test kit every crate's integration tests use: a real PostgreSQL
//! cluster, never a mock.
//!
//! [`cluster`] starts one throwaway cluster per test binary (in a temp dir,
//! with durability off for speed) the first time a test asks for it; a
//! watchdog process stops it and deletes its directory once the test binary
//! has exited, however it exited. [`fresh_database`] gives each test its own
//! empty database in that cluster.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sqlx::{Connection, Executor, PgConnection};
use supa_tenant::embedded::{Durability, EmbeddedPostgres};

/// The shared cluster of this test binary.
#[derive(Debug)]
pub struct Cluster {
    pg: EmbeddedPostgres,
    dir: PathBuf,
}

impl Cluster {
    /// The running server.
    pub fn postgres(&self) -> &EmbeddedPostgres {
        &self.pg
    }

    /// The superuser's connection URL for `database`.
    pub fn url(&self, database: &str) -> String {
        self.pg.url(database).into_inner()
    }

    /// The directory holding the cluster.
    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }
}

/// The cluster of this test binary, started on first use.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("supa-testkit-")
            .tempdir()
            .expect("create a temp dir for the test cluster")
            .keep();
        let pg = EmbeddedPostgres::start(&dir, Durability::Throwaway)
            .unwrap_or_else(|e| panic!("the test kit could not start PostgreSQL: {e}"));
        spawn_watchdog(&pg, &dir);
        Cluster { pg, dir }
    })
}

/// A database created for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its name.
    pub name: String,
    /// The superuser's URL for it.
    pub url: String,
}

/// Creates an empty database with a random name in the shared cluster.
pub async fn fresh_database() -> TestDatabase {
    let cluster = cluster();
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).expect("random");
    let name = format!("test_{}", hex::encode(suffix));
    let mut admin = PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("connect");
    // The name is generated here from hex digits, so it needs no quoting beyond this.
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .expect("create database");
    admin.close().await.ok();
    TestDatabase {
        url: cluster.url(&name),
        name,
    }
}

/// Once this process is gone, stop the cluster and remove its directory. A
/// separate process does it because a test binary's statics are never
/// dropped, and a panicking or killed test must not leak a server.
fn spawn_watchdog(pg: &EmbeddedPostgres, dir: &std::path::Path) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let stop: Vec<String> = pg.pg_ctl_command(&["stop", "-m", "immediate"]);
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        stop = stop.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        dir = quote(&dir.to_string_lossy()),
    );
    // `setsid -f` forks the watchdog into its own session and returns at
    // once, so waiting on it here reaps `setsid` and leaves the watchdog.
    Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn the test cluster's watchdog");
}
