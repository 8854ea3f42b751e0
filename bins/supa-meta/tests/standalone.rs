//! The binary as a postgres-meta container replacement: configured with
//! postgres-meta's own variables, answering over real HTTP.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use sqlx::{Connection as _, Executor as _};

fn get(port: u16, path: &str) -> (u16, serde_json::Value) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

/// The database as postgres-meta's split variables name it.
fn split_settings(database: &str) -> Vec<(&'static str, String)> {
    let pg = supa_testkit::cluster().postgres();
    vec![
        ("PG_META_DB_HOST", "127.0.0.1".into()),
        ("PG_META_DB_PORT", pg.port().to_string()),
        ("PG_META_DB_NAME", database.into()),
        ("PG_META_DB_USER", supa_tenant::embedded::SUPERUSER.into()),
        ("PG_META_DB_PASSWORD", pg.password().expose().clone()),
    ]
}

#[tokio::test]
async fn serves_one_database_from_postgres_meta_settings() {
    let db = supa_testkit::fresh_database().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    conn.execute("CREATE TABLE public.widgets (id int PRIMARY KEY, label text)")
        .await
        .unwrap();
    // The URL form, then the split variables, as the container takes them.
    serve_and_check(vec![("PG_META_DB_URL", db.url.clone())]);
    serve_and_check(split_settings(&db.name));
}

fn serve_and_check(settings: Vec<(&'static str, String)>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_supa-meta"))
        .env_remove("PG_META_DB_URL")
        .envs(settings)
        .env("PG_META_HOST", "127.0.0.1")
        .env("PG_META_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let result = std::panic::catch_unwind(|| {
        assert!(up, "supa-meta did not listen");
        let (status, tables) = get(port, "/tables?included_schemas=public");
        assert_eq!(status, 200);
        assert_eq!(tables[0]["name"], "widgets");
        assert_eq!(tables[0]["columns"][1]["name"], "label");
        let (status, version) = get(port, "/config/version");
        assert_eq!(status, 200);
        assert!(
            version["version"]
                .as_str()
                .unwrap()
                .starts_with("PostgreSQL")
        );
        assert_eq!(get(port, "/nowhere").0, 404);
        assert_eq!(get(port, "/tables?limit=x").0, 400);
    });
    child.kill().ok();
    child.wait().ok();
    result.unwrap();
}
