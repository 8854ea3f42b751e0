//! The multi-project engine over real project databases made by the
//! control plane: isolation, claims from a gateway, schema reload on
//! NOTIFY, idle pools closed.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use supa_core::{ProjectRef, Secret};
use supa_rest::{Auth, Engine, ProjectDb, RestConfig};
use supa_tenant::{CreateProject, Tenant};

async fn project(tenant: &Tenant, name: &str) -> (ProjectRef, ProjectDb) {
    let created = tenant
        .create_project(CreateProject {
            name: name.into(),
            ..CreateProject::default()
        })
        .await
        .unwrap();
    let r = created.project.project_ref;
    let db = ProjectDb {
        host: "127.0.0.1".into(),
        port: supa_testkit::cluster().postgres().port(),
        database: format!("proj_{r}"),
        user: format!("{r}_authenticator"),
        password: Secret::new(
            tenant
                .authenticator_password(&r)
                .await
                .unwrap()
                .expose()
                .clone(),
        ),
    };
    (r, db)
}

fn config() -> RestConfig {
    RestConfig {
        anon_role: Some("anon".into()),
        ..RestConfig::default()
    }
}

async fn call(
    engine: &Engine,
    key: &str,
    db: &ProjectDb,
    method: &str,
    path: &str,
    body: Option<Value>,
    role: Option<&str>,
) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("prefer", "return=representation")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let auth = match role {
        Some(r) => Auth::Claims(json!({ "role": r })),
        None => Auth::Header,
    };
    let response = engine.handle(key, &config(), db, request, auth).await;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn projects_are_served_apart_with_gateway_claims() {
    let tenant = supa_testkit::tenant().await;
    let (a, db_a) = project(&tenant, "a").await;
    let (b, db_b) = project(&tenant, "b").await;
    tenant
        .run_sql(&a, "CREATE TABLE secrets_of_a (id int PRIMARY KEY, v text); ALTER TABLE secrets_of_a ENABLE ROW LEVEL SECURITY", Duration::from_secs(10))
        .await
        .unwrap();
    let engine = Engine::new(2, Duration::from_secs(60), 100);

    // Service role (BYPASSRLS) writes; anon sees nothing under RLS.
    let (s, v) = call(
        &engine,
        a.as_str(),
        &db_a,
        "POST",
        "/secrets_of_a",
        Some(json!({"id": 1, "v": "x"})),
        Some("service_role"),
    )
    .await;
    assert_eq!((s, v), (201, json!([{"id": 1, "v": "x"}])));
    let (s, v) = call(
        &engine,
        a.as_str(),
        &db_a,
        "GET",
        "/secrets_of_a",
        None,
        None,
    )
    .await;
    assert_eq!((s, v), (200, json!([])));
    let (s, v) = call(
        &engine,
        a.as_str(),
        &db_a,
        "POST",
        "/secrets_of_a",
        Some(json!({"id": 2})),
        Some("anon"),
    )
    .await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["code"], "42501");

    // Project B has no such table, whatever the role.
    let (s, v) = call(
        &engine,
        b.as_str(),
        &db_b,
        "GET",
        "/secrets_of_a",
        None,
        Some("service_role"),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(v["code"], "PGRST205");
    // B's authenticator cannot be pointed at A's database.
    let stolen = ProjectDb {
        database: db_a.database.clone(),
        ..db_b.clone()
    };
    let (s, v) = call(
        &engine,
        "stolen",
        &stolen,
        "GET",
        "/secrets_of_a",
        None,
        Some("service_role"),
    )
    .await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(engine.len(), 3);
}

#[tokio::test]
async fn schema_reloads_on_notify_and_idle_projects_are_closed() {
    let tenant = supa_testkit::tenant().await;
    let (r, db) = project(&tenant, "reload").await;
    let engine = Engine::new(2, Duration::from_secs(1), 100).listening();
    let (s, _) = call(
        &engine,
        r.as_str(),
        &db,
        "GET",
        "/late",
        None,
        Some("service_role"),
    )
    .await;
    assert_eq!(s, 404);
    // The SQL endpoint sends NOTIFY pgrst after DDL; the engine reloads.
    tenant
        .run_sql(&r, "CREATE TABLE late (id int)", Duration::from_secs(10))
        .await
        .unwrap();
    let mut status = 0;
    for _ in 0..50 {
        status = call(
            &engine,
            r.as_str(),
            &db,
            "GET",
            "/late",
            None,
            Some("service_role"),
        )
        .await
        .0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    assert_eq!(engine.len(), 1);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert!(
        engine.is_empty(),
        "an idle project is dropped with its pool"
    );
}

#[tokio::test]
async fn at_most_max_projects_pools_are_open() {
    let tenant = supa_testkit::tenant().await;
    let engine = Engine::new(2, Duration::from_secs(60), 2);
    let mut projects = Vec::new();
    for i in 0..3 {
        projects.push(project(&tenant, &format!("p{i}")).await);
    }
    for (r, db) in &projects {
        let (s, _) = call(
            &engine,
            r.as_str(),
            db,
            "GET",
            "/nothing",
            None,
            Some("service_role"),
        )
        .await;
        assert_eq!(s, 404);
        // Ordered by last use to the second: keep them apart.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(engine.len(), 2, "the least recently used pool was closed");
}
