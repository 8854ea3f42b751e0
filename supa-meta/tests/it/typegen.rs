//! Type generation against postgres-meta's `/generators/typescript` on the
//! same database: the files must be the same, byte for byte.

use axum::http::StatusCode;
use sqlx::{Connection, Executor, PgConnection};

use crate::support::{PgMeta, fixture_database, get_supa_text, supa};

/// The query strings compared: every schema, some, the options, schemas
/// whose names need quotes, and schemas with nothing or that do not exist.
const QUERIES: [&str; 9] = [
    "",
    "?included_schemas=public",
    "?included_schemas=public,core",
    "?included_schemas=public,hidden&detect_one_to_one_relationships=true",
    "?included_schemas=Extra%20Schema,public&postgrest_version=12.2.3",
    "?excluded_schemas=core,hidden",
    "?included_schemas=empty_one",
    "?included_schemas=nothing_here",
    "?included_schemas=public%27%3B%20drop%20table%20public.users%3B--",
];

#[tokio::test]
async fn typescript_is_postgres_metas_byte_for_byte() {
    let database = fixture_database().await;
    let url = supa_testkit::cluster().url(&database);
    let mut conn = PgConnection::connect(&url).await.unwrap();
    conn.execute(include_str!("../fixtures/typegen.sql"))
        .await
        .expect("typegen fixture");
    let pg_meta = PgMeta::start(&database);
    let router = supa(&database);
    for query in QUERIES {
        let path = format!("/generators/typescript{query}");
        let (their_status, theirs) = pg_meta.get_text(&path).await;
        let (our_status, ours) = get_supa_text(&router, &path).await;
        assert_eq!(
            their_status,
            StatusCode::OK,
            "postgres-meta {path}: {theirs}"
        );
        assert_eq!(our_status, StatusCode::OK, "supa-meta {path}: {ours}");
        if ours != theirs {
            let line = ours
                .lines()
                .zip(theirs.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| ours.lines().count().min(theirs.lines().count()));
            let around = |text: &str| {
                text.lines()
                    .skip(line.saturating_sub(3))
                    .take(7)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            panic!(
                "{path}: the files differ at line {}\n--- postgres-meta\n{}\n--- supa-meta\n{}",
                line + 1,
                around(&theirs),
                around(&ours)
            );
        }
        assert!(ours.starts_with("export type Json ="), "{path}");
    }
    // The injection attempt named a schema; nothing ran.
    let users: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE oid = 'public.users'::regclass")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(users, 1);
}
