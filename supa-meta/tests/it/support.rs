//! A fixture database, supa-meta over it, and postgres-meta over it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use supa_core::{ProjectDatabase, ProjectRef};
use supa_meta::{FixedDatabase, Meta};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The ref requests are made for (the fixed connector ignores it).
pub(crate) fn project() -> ProjectRef {
    ProjectRef::parse("metametametametameta").unwrap()
}

/// A fresh database with every kind of object in it; its name.
pub(crate) async fn fixture_database() -> String {
    let db = supa_testkit::fresh_database().await;
    // Roles belong to the cluster, so concurrent tests must not race on
    // them: they are made under a lock taken in one shared database
    // (advisory locks are per database).
    let shared = supa_testkit::cluster().url("postgres");
    let mut roles = PgConnection::connect(&shared).await.expect("connect");
    roles
        .execute("SELECT pg_advisory_lock(424242)")
        .await
        .unwrap();
    roles
        .execute(include_str!("../fixtures/roles.sql"))
        .await
        .expect("fixture roles");
    roles
        .execute("SELECT pg_advisory_unlock(424242)")
        .await
        .unwrap();
    roles.close().await.ok();
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    conn.execute(include_str!("../fixtures/every_kind.sql"))
        .await
        .expect("fixture");
    conn.close().await.ok();
    db.name
}

/// The superuser's login to `database`.
pub(crate) fn login(database: &str) -> ProjectDatabase {
    let pg = supa_testkit::cluster().postgres();
    ProjectDatabase {
        host: "127.0.0.1".into(),
        port: pg.port(),
        name: database.to_owned(),
        user: supa_tenant::embedded::SUPERUSER.into(),
        password: pg.password().clone(),
    }
}

/// GET `path` from supa-meta: status and body text.
pub(crate) async fn get_supa_text(router: &axum::Router, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = supa_meta::serve(router.clone(), project(), request).await;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// supa-meta's router over `database`.
pub(crate) fn supa(database: &str) -> axum::Router {
    let meta = Meta::new(
        Arc::new(FixedDatabase(login(database))),
        8,
        Duration::from_secs(60),
    );
    supa_meta::router(meta)
}

/// GET `path` from supa-meta: status and JSON body.
pub(crate) async fn get_supa(router: &axum::Router, path: &str) -> (StatusCode, Value) {
    let (status, text) = get_supa_text(router, path).await;
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("supa-meta {path}: not JSON ({e}): {text}"));
    (status, body)
}

/// postgres-meta (the npm package the bootstrap installs) serving one
/// database; stopped when dropped.
pub(crate) struct PgMeta {
    child: Child,
    port: u16,
}

/// Where the bootstrap installs postgres-meta's server.
pub(crate) fn pg_meta_server() -> PathBuf {
    if let Some(path) = std::env::var_os("SUPA_POSTGRES_META") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/postgres-meta/node_modules/@supabase/postgres-meta/dist/server/server.js")
}

impl PgMeta {
    pub(crate) fn start(database: &str) -> Self {
        let server = pg_meta_server();
        assert!(
            server.exists(),
            "{} is missing: `make deps` installs postgres-meta",
            server.display()
        );
        let url = supa_testkit::cluster().url(database);
        // The free port is found by binding and releasing it, so the
        // system may hand it out again: to a test starting its own server
        // at the same time (ports given here are never given twice), or to
        // a client connection before node binds (a server that exits
        // before listening is started again on another port).
        static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
        let mut tries = 0;
        loop {
            tries += 1;
            let port = loop {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
                if !given.contains(&port) {
                    given.push(port);
                    break port;
                }
            };
            // Its errors go to a file, read if it exits before listening.
            let log = std::env::temp_dir()
                .join(format!("postgres-meta-{}-{port}.log", std::process::id()));
            let child = Command::new("node")
                .arg(&server)
                .env("PG_META_DB_URL", &url)
                .env("PG_META_HOST", "127.0.0.1")
                .env("PG_META_PORT", port.to_string())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("a log file"))
                .spawn()
                .expect("run node; `make deps` installs it");
            let mut me = Self { child, port };
            let mut exited = None;
            for _ in 0..300 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let _ = std::fs::remove_file(&log);
                    return me;
                }
                if let Ok(Some(status)) = me.child.try_wait() {
                    exited = Some(status);
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            match exited {
                Some(status) => assert!(tries < 3, "postgres-meta exited with {status}: {stderr}"),
                None => {
                    me.child.kill().ok();
                    panic!("postgres-meta did not listen within 15 s: {stderr}");
                }
            }
        }
    }

    /// GET `path`: status and JSON body.
    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (status, body) = self.get_text(path).await;
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("postgres-meta {path}: not JSON ({e}): {body}"));
        (status, json)
    }

    /// One GET on a fresh connection: the raw answer.
    async fn exchange(&self, path: &str) -> std::io::Result<Vec<u8>> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok(raw)
    }

    /// GET `path`: status and body text. Node's server has been seen to
    /// reset its first connections on a loaded machine right after it
    /// starts listening: a reset connection is tried again.
    pub(crate) async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let mut attempt = 0;
        let raw = loop {
            match self.exchange(path).await {
                Ok(raw) => break raw,
                Err(_) if attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => panic!("postgres-meta {path}: {e}"),
            }
        };
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        (StatusCode::from_u16(status).unwrap(), body)
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

impl Drop for PgMeta {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
