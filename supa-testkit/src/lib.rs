//! The test kit every crate's integration tests use: a real PostgreSQL
//! cluster, never a mock.
//!
//! [`cluster`] starts one throwaway cluster per test binary (in a temp dir,
//! with durability off for speed) the first time a test asks for it; a
//! watchdog process stops it and deletes its directory once the test binary
//! has exited, however it exited. [`fresh_database`] gives each test its own
//! empty database in that cluster. [`redis`] does the same for a Redis
//! server.

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
        let stop = pg.pg_ctl_command(&["stop", "-m", "immediate"]);
        let stop: Vec<String> = stop.iter().map(|a| quote(a)).collect();
        spawn_watchdog(&stop.join(" "), &dir);
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

/// The shared Redis server of this test binary.
#[derive(Debug)]
pub struct Redis {
    port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (tests of "Redis went away"); [`Redis::start`]
    /// brings it back on the same port.
    pub fn stop(&self) {
        Command::new("sh")
            .args([
                "-c",
                &format!("kill $(cat {}) 2>/dev/null", self.pid_file()),
            ])
            .status()
            .expect("run kill");
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Starts the server (again), in memory only, and waits until it
    /// answers.
    pub fn start(&self) {
        let status = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "yes", "--pidfile", &self.pid_file()])
            .args(["--logfile", &self.dir.join("redis.log").to_string_lossy()])
            .arg("--dir")
            .arg(&self.dir)
            .status()
            .unwrap_or_else(|e| {
                panic!("the test kit could not run redis-server ({e}); run `make deps`")
            });
        assert!(
            status.success(),
            "redis-server failed to start; see {}/redis.log",
            self.dir.display()
        );
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!(
            "redis-server did not listen on port {} within 5 s",
            self.port
        );
    }

    fn pid_file(&self) -> String {
        self.dir.join("redis.pid").to_string_lossy().into_owned()
    }
}

/// The Redis server of this test binary, started on first use.
pub fn redis() -> &'static Redis {
    static REDIS: OnceLock<Redis> = OnceLock::new();
    REDIS.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("supa-testkit-redis-")
            .tempdir()
            .expect("create a temp dir for Redis")
            .keep();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        let redis = Redis { port, dir };
        redis.start();
        let stop = format!("kill $(cat {}) 2>/dev/null", quote(&redis.pid_file()));
        spawn_watchdog(&stop, &redis.dir);
        redis
    })
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Once this process is gone, run `stop` and remove `dir`. A separate
/// process does it because a test binary's statics are never dropped, and
/// a panicking or killed test must not leak a server.
fn spawn_watchdog(stop: &str, dir: &std::path::Path) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
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
        .expect("spawn the test kit's watchdog");
}

/// A control plane over a fresh management database, with this binary's
/// cluster registered as worker `local` (for the crates whose tests need
/// real projects: the data plane and the gateway).
pub async fn tenant() -> supa_tenant::Tenant {
    let db = fresh_database().await;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("random");
    let tenant = supa_tenant::Tenant::connect(&db.url, supa_tenant::MasterKey::from_bytes(&key))
        .await
        .expect("connect the control plane");
    let pg = cluster().postgres();
    tenant
        .register_worker(supa_tenant::NewWorker {
            id: "local".into(),
            host: "127.0.0.1".into(),
            port: pg.port(),
            admin_user: supa_tenant::embedded::SUPERUSER.into(),
            admin_password: pg.password().clone(),
            max_databases: 1000,
            weight: 1,
            status: supa_tenant::WorkerStatus::Active,
        })
        .await
        .expect("register the test cluster");
    tenant
}
