//! Shared database plumbing of the services that work in project databases
//! (the data plane, the metadata API, the auth and storage servers): a
//! driver configuration from a [`ProjectDatabase`] login and back, the
//! bounded pool each keeps per project, built the same way everywhere (fast
//! recycling, 10 s to connect and to wait for a connection), and the
//! bounded set of those pools an engine serving many projects holds
//! ([`Pools`]), and a project's pool split among a thread-per-core
//! server's threads ([`ThreadPools`]).

#![forbid(unsafe_code)]

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
pub use deadpool_postgres::{Object, Pool};
use supa_core::{ProjectDatabase, ProjectRef, Secret};
use tokio_postgres::NoTls;

/// How long connecting, and waiting for a pooled connection, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `e` says the database cannot serve right now rather than that
/// a statement failed: the connection broke (no server error at all), the
/// server refused or dropped it (SQLSTATE class 08), it is shutting down,
/// restarting or starting up (57P01, 57P02, 57P03), or it is out of
/// connections (53300). Services answer these 503: worth a retry.
pub fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        None => true,
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
        }
    }
}

/// The driver configuration of `login`, naming `application` in
/// `pg_stat_activity`.
pub fn pg_config(login: &ProjectDatabase, application: &str) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(&login.host)
        .port(login.port)
        .dbname(&login.name)
        .user(&login.user)
        .password(login.password.expose())
        .application_name(application)
        .connect_timeout(CONNECT_TIMEOUT);
    c
}

/// The login a driver configuration (a standalone server's
/// `DATABASE_URL`) names: its first host (a Unix socket directory stays a
/// path, which [`pg_config`] reads back as one), port, database, user and
/// password, with libpq's defaults for what it leaves out.
pub fn login_of(config: &tokio_postgres::Config) -> ProjectDatabase {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    ProjectDatabase {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        name: config.get_dbname().unwrap_or("postgres").to_owned(),
        user: config.get_user().unwrap_or("postgres").to_owned(),
        password: Secret::new(
            String::from_utf8_lossy(config.get_password().unwrap_or_default()).into_owned(),
        ),
    }
}

/// A pool of at most `max_size` connections made with `config`, opened on
/// demand. The error says why it cannot be built.
pub fn pool(config: tokio_postgres::Config, max_size: usize) -> Result<Pool, String> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| e.to_string())
}

/// A project's pool on a thread-per-core server: one per serving thread
/// of [`supa_core::serve::per_thread`], the pool size split among them, so
/// a request takes connections whose driver tasks run on its own thread
/// (a connection's driver runs on the runtime that opened it, and one pool
/// shared by the threads has every query wake another thread twice). Off
/// those threads, one pool serves.
#[derive(Debug)]
pub struct ThreadPools(Box<[Pool]>);

impl ThreadPools {
    /// Pools of `config` with `max_size` connections in all: split among
    /// the serving threads when called on one, else a single pool.
    pub fn open(config: &tokio_postgres::Config, max_size: usize) -> Result<Self, String> {
        let threads = supa_core::serve::serving_slot().map_or(1, |(_, n)| n);
        let pools = shares(max_size, threads)
            .map(|size| pool(config.clone(), size))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(pools.into_boxed_slice()))
    }

    /// `pool` for every thread (a standalone server).
    pub fn single(pool: Pool) -> Self {
        Self(Box::new([pool]))
    }

    /// The calling thread's pool.
    pub fn current(&self) -> &Pool {
        let slot = supa_core::serve::serving_slot().map_or(0, |(i, _)| i);
        &self.0[slot % self.0.len()]
    }

    /// Every thread's pool.
    pub fn all(&self) -> &[Pool] {
        &self.0
    }
}

/// `max_size` connections shared among `threads` pools, at least one each.
fn shares(max_size: usize, threads: usize) -> impl Iterator<Item = usize> {
    let threads = threads.max(1);
    (0..threads).map(move |i| (max_size / threads + usize::from(i < max_size % threads)).max(1))
}

/// Runs `step` (a standalone server's schema migration) until it
/// succeeds, once a second, at most `tries` times: a server started with
/// its database (docker-compose) waits for it. The error is the last one.
pub async fn when_ready<T, E: std::fmt::Display>(
    tries: u32,
    mut step: impl AsyncFnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut tried = 1;
    loop {
        match step().await {
            Ok(done) => return Ok(done),
            Err(e) if tried < tries => {
                tracing::warn!(error = %e, "database not ready; retrying");
                tried += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The pools of an engine that serves many projects: one per project,
/// opened on demand, at most `max_projects` of them, each closed after
/// `idle` without a request. Cheap to clone.
#[derive(Clone)]
pub struct Pools(moka::sync::Cache<ProjectRef, Pool>);

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("open", &self.0.entry_count())
            .finish()
    }
}

impl Pools {
    /// At most `max_projects` pools, each closed after `idle` unused.
    pub fn new(max_projects: u64, idle: Duration) -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(max_projects.max(1))
                .time_to_idle(idle)
                .build(),
        )
    }

    /// The one pool of a standalone server, kept open.
    pub fn single(project: ProjectRef, pool: Pool) -> Self {
        let pools = Self(moka::sync::Cache::builder().max_capacity(1).build());
        pools.insert(project, pool);
        pools
    }

    /// The project's pool, if open.
    pub fn get(&self, project: &ProjectRef) -> Option<Pool> {
        self.0.get(project)
    }

    /// The project's pool, opened by `open` when it has none.
    pub fn get_or_open(
        &self,
        project: &ProjectRef,
        open: impl FnOnce() -> Result<Pool, String>,
    ) -> Result<Pool, String> {
        if let Some(pool) = self.0.get(project) {
            return Ok(pool);
        }
        let pool = open()?;
        self.insert(*project, pool.clone());
        Ok(pool)
    }

    /// Keeps `pool` as the project's.
    pub fn insert(&self, project: ProjectRef, pool: Pool) {
        self.0.insert(project, pool);
    }

    /// Forgets a project's pool (deleted, login rotated).
    pub fn evict(&self, project: &ProjectRef) {
        self.0.invalidate(project);
    }

    /// How many pools are open.
    pub fn open(&self) -> u64 {
        self.0.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_size_is_shared_among_the_serving_threads() {
        assert_eq!(shares(10, 2).collect::<Vec<_>>(), [5, 5]);
        assert_eq!(shares(3, 2).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(shares(1, 2).collect::<Vec<_>>(), [1, 1]);
        assert_eq!(shares(10, 1).collect::<Vec<_>>(), [10]);
        // Off the serving threads: one pool of the whole size.
        let config: tokio_postgres::Config = "host=127.0.0.1 dbname=d".parse().unwrap();
        let pools = ThreadPools::open(&config, 4).unwrap();
        assert_eq!(pools.all().len(), 1);
        assert_eq!(pools.current().status().max_size, 4);
    }

    #[test]
    fn logins_become_driver_configurations() {
        let login = ProjectDatabase {
            host: "127.0.0.1".into(),
            port: 6543,
            name: "proj_abcdefghijabcdefghij".into(),
            user: "abcdefghijabcdefghij_auth".into(),
            password: Secret::new("pw".into()),
        };
        let c = pg_config(&login, "supa-auth");
        assert_eq!(c.get_ports(), [6543]);
        assert_eq!(c.get_dbname(), Some("proj_abcdefghijabcdefghij"));
        assert_eq!(c.get_user(), Some("abcdefghijabcdefghij_auth"));
        assert_eq!(c.get_application_name(), Some("supa-auth"));
        assert_eq!(c.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        // Building a pool opens nothing: no server is needed here.
        let p = pool(c.clone(), 3).unwrap();
        assert_eq!(p.status().max_size, 3);
        // And back: the login a URL names.
        let back = login_of(&c);
        assert_eq!(
            (back.host.as_str(), back.port, back.user.as_str()),
            ("127.0.0.1", 6543, "abcdefghijabcdefghij_auth")
        );
        assert_eq!(back.password.expose(), "pw");
        let socket: tokio_postgres::Config = "host=/run/postgresql dbname=d".parse().unwrap();
        assert_eq!(login_of(&socket).host, "/run/postgresql");
        assert_eq!(
            pg_config(&login_of(&socket), "x").get_hosts(),
            socket.get_hosts()
        );
    }

    #[test]
    fn pools_are_kept_per_project_until_evicted() {
        let project = ProjectRef::parse("abcdefghijabcdefghij").unwrap();
        let config: tokio_postgres::Config = "host=127.0.0.1 dbname=d".parse().unwrap();
        let pools = Pools::new(10, Duration::from_secs(60));
        let mut opened = 0;
        for _ in 0..3 {
            pools
                .get_or_open(&project, || {
                    opened += 1;
                    pool(config.clone(), 1)
                })
                .unwrap();
        }
        assert_eq!(opened, 1);
        assert!(pools.get(&project).is_some());
        pools.evict(&project);
        assert!(pools.get(&project).is_none());
    }
}
