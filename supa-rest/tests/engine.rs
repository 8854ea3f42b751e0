//! The multi-project engine over real project databases made by the
//! control plane: isolation, claims from a gateway, schema reload on
//! NOTIFY, idle pools closed.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use supa_core::{ProjectDatabase, ProjectRef, Secret};
use supa_rest::{Auth, Engine, RestConfig};
use supa_tenant::{CreateProject, Tenant};

async fn project(tenant: &Tenant, name: &str) -> (ProjectRef, ProjectDatabase) {
    let created = tenant
        .create_project(CreateProject {
            name: name.into(),
            ..CreateProject::default()
        })
        .await
        .unwrap();
    let r = created.project.project_ref;
    let db = ProjectDatabase {
        host: "127.0.0.1".into(),
        port: supa_testkit::cluster().postgres().port(),
        name: format!("proj_{r}"),
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

/// Runs `sql` in the project's database as the SQL endpoint does (with
/// its `NOTIFY pgrst` after schema changes).
async fn run_sql(tenant: &Tenant, r: &ProjectRef, sql: &str) {
    tenant
        .run_sql(r, sql, supa_tenant::DEFAULT_STATEMENT_TIMEOUT)
        .await
        .unwrap();
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
    db: &ProjectDatabase,
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
    run_sql(&tenant, &a, "CREATE TABLE secrets_of_a (id int PRIMARY KEY, v text); ALTER TABLE secrets_of_a ENABLE ROW LEVEL SECURITY").await;
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
    let stolen = ProjectDatabase {
        name: db_a.name.clone(),
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
    let engine = Engine::listening(2, Duration::from_secs(1), 100);
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
    run_sql(&tenant, &r, "CREATE TABLE late (id int)").await;
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
    // The closed project comes back with the schema cache it had, and an
    // eviction (the project changed) drops that too.
    let (first, db) = &projects[0];
    let back = engine.service(first.as_str(), &config(), db).unwrap();
    assert!(back.loaded_schema().is_some(), "schema cache kept");
    engine.evict(first.as_str());
    let again = engine.service(first.as_str(), &config(), db).unwrap();
    assert!(again.loaded_schema().is_none(), "eviction forgot it");
}

/// One request with headers of its own: status, headers, body bytes.
async fn exchange(
    engine: &Engine,
    key: &str,
    db: &ProjectDatabase,
    config: &RestConfig,
    request: Request<Body>,
) -> (u16, axum::http::HeaderMap, Vec<u8>) {
    let auth = Auth::Claims(json!({ "role": "service_role" }));
    let response = engine.handle(key, config, db, request, auth).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, bytes.to_vec())
}

fn get(path: &str, accept: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("accept", accept)
        .body(Body::empty())
        .unwrap()
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(bytes)))
}

/// The shapes real clients send that PostgREST 14 answers: to-many
/// spreads, self-references, two keys to one table, defaults with
/// `columns`, max-affected on RPC, estimated counts, embeds in writes,
/// plans, GeoJSON, the OpenAPI document and media type handlers.
#[tokio::test]
async fn postgrest_14_behaviours_on_a_project() {
    let tenant = supa_testkit::tenant().await;
    let (r, db) = project(&tenant, "parity").await;
    run_sql(&tenant, &r, "CREATE EXTENSION postgis WITH SCHEMA extensions;
             CREATE TABLE channels (id int PRIMARY KEY, name text NOT NULL);
             COMMENT ON TABLE channels IS 'Chat channels';
             CREATE TABLE messages (id int PRIMARY KEY, channel_id int REFERENCES channels(id), body text,
                                    likes int NOT NULL DEFAULT 0, status text NOT NULL DEFAULT 'sent');
             CREATE TABLE employees (id int PRIMARY KEY, name text NOT NULL, manager_id int REFERENCES employees(id));
             CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
             CREATE TABLE transfers (id int PRIMARY KEY, sender_id int REFERENCES users(id),
                                     receiver_id int REFERENCES users(id), amount int);
             CREATE TABLE shops (id int PRIMARY KEY, name text, location extensions.geometry(Point, 4326));
             INSERT INTO channels VALUES (1, 'general'), (2, 'random'), (3, 'empty');
             INSERT INTO messages VALUES (1, 1, 'hi', 3), (2, 1, 'hello', 5), (3, 2, 'yo', 1);
             INSERT INTO employees VALUES (1, 'boss', NULL), (2, 'ann', 1), (3, 'bob', 1), (4, 'cy', 2);
             INSERT INTO users VALUES (1, 'ann'), (2, 'bob');
             INSERT INTO transfers VALUES (1, 1, 2, 10), (2, 2, 1, 5);
             INSERT INTO shops VALUES (1, 'corner', extensions.ST_SetSRID(extensions.ST_MakePoint(2.5, 48.5), 4326));
             CREATE FUNCTION all_messages() RETURNS SETOF messages LANGUAGE sql STABLE AS 'SELECT * FROM messages';
             CREATE FUNCTION one_number() RETURNS int LANGUAGE sql STABLE AS 'SELECT 1';
             CREATE DOMAIN \"text/html\" AS text;
             CREATE FUNCTION page() RETURNS \"text/html\" LANGUAGE sql STABLE AS $$ SELECT '<p>hi</p>'::\"text/html\" $$;").await;
    let engine = Engine::new(2, Duration::from_secs(60), 100);
    let config = RestConfig {
        anon_role: Some("anon".into()),
        extra_search_path: vec!["public".into(), "extensions".into()],
        aggregates_enabled: true,
        plan_enabled: true,
        ..RestConfig::default()
    };
    let key = r.as_str();
    let read = |path: &str| exchange(&engine, key, &db, &config, get(path, "application/json"));

    // A spread of a to-many relationship gives arrays, empty for none.
    let (s, _, b) =
        read("/channels?select=name,...messages(body,likes)&order=id&messages.order=id").await;
    assert_eq!(s, 200);
    assert_eq!(
        json_of(&b),
        json!([
            {"name": "general", "body": ["hi", "hello"], "likes": [3, 5]},
            {"name": "random", "body": ["yo"], "likes": [1]},
            {"name": "empty", "body": [], "likes": []}
        ])
    );
    // Aggregates inside one are not implemented in PostgREST 14 either.
    let (s, _, b) = read("/channels?select=name,...messages(likes.sum())").await;
    assert_eq!(s, 400);
    assert_eq!(json_of(&b)["code"], "PGRST127");
    // An aggregate over a to-one spread groups by the spread columns.
    let (s, _, b) =
        read("/messages?select=...channels(name),likes.sum()&order=channels(name)").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let mut sums = json_of(&b).as_array().unwrap().clone();
    sums.sort_by_key(|v| v["name"].as_str().unwrap().to_owned());
    assert_eq!(
        sums,
        vec![
            json!({"name": "general", "sum": 8}),
            json!({"name": "random", "sum": 1})
        ]
    );

    // A self-reference: the parent by its key column, the children by the
    // table's own name (hinted by the children's column).
    let (s, _, b) = read(
        "/employees?select=name,manager:manager_id(name),reports:employees!manager_id(name)&order=id&reports.order=id",
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let rows = json_of(&b);
    assert_eq!(
        rows[0],
        json!({"name": "boss", "manager": null, "reports": [{"name": "ann"}, {"name": "bob"}]})
    );
    assert_eq!(
        rows[3],
        json!({"name": "cy", "manager": {"name": "ann"}, "reports": []})
    );

    // Two keys to one table: ambiguous without a hint, with PostgREST's
    // details; each hint picks one.
    let (s, _, b) = read("/transfers?select=amount,users(name)").await;
    assert_eq!(s, 300);
    let e = json_of(&b);
    assert_eq!(e["code"], "PGRST201");
    assert_eq!(
        e["details"][0],
        json!({
            "cardinality": "many-to-one",
            "embedding": "transfers with users",
            "relationship": "transfers_sender_id_fkey using transfers(sender_id) and users(id)"
        })
    );
    assert_eq!(e["details"].as_array().unwrap().len(), 2);
    let (s, _, b) = read(
        "/transfers?select=amount,sender:users!sender_id(name),receiver:users!transfers_receiver_id_fkey(name)&order=id",
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        json_of(&b)[0],
        json!({"amount": 10, "sender": {"name": "ann"}, "receiver": {"name": "bob"}})
    );

    // The alias errors name is PostgREST's.
    let (s, _, b) = read("/channels?select=name,messages(sum)").await;
    assert_eq!(s, 400);
    assert_eq!(
        json_of(&b)["message"],
        "column messages_1.sum does not exist"
    );

    // columns= with missing=default: absent keys take the column defaults.
    let insert = Request::builder()
        .method("POST")
        .uri("/messages?columns=id,channel_id,body,likes,status&select=id,likes,status,channels(name)")
        .header("content-type", "application/json")
        .header("prefer", "return=representation, missing=default")
        .body(Body::from(
            json!([{"id": 10, "channel_id": 2, "body": "a"}, {"id": 11, "body": "b", "likes": 7}]).to_string(),
        ))
        .unwrap();
    let (s, h, b) = exchange(&engine, key, &db, &config, insert).await;
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        h["preference-applied"],
        "missing=default, return=representation"
    );
    // ...and the representation of a write embeds.
    assert_eq!(
        json_of(&b),
        json!([
            {"id": 10, "likes": 0, "status": "sent", "channels": {"name": "random"}},
            {"id": 11, "likes": 7, "status": "sent", "channels": null}
        ])
    );

    // max-affected on a function: more rows than allowed is PGRST124, a
    // function returning one value cannot honour it (PGRST128).
    let rpc = |path: &str| {
        Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .header("prefer", "handling=strict, max-affected=2")
            .body(Body::from("{}"))
            .unwrap()
    };
    let (s, _, b) = exchange(&engine, key, &db, &config, rpc("/rpc/all_messages")).await;
    assert_eq!(s, 400);
    assert_eq!(json_of(&b)["code"], "PGRST124");
    let (s, _, b) = exchange(&engine, key, &db, &config, rpc("/rpc/one_number")).await;
    assert_eq!(s, 400);
    assert_eq!(json_of(&b)["code"], "PGRST128");

    // HEAD with count=estimated: 206 with the total when a page is short.
    let head = Request::builder()
        .method("HEAD")
        .uri("/messages?limit=1")
        .header("prefer", "count=estimated")
        .body(Body::empty())
        .unwrap();
    let (s, h, b) = exchange(&engine, key, &db, &config, head).await;
    assert_eq!(s, 206);
    assert_eq!(h["content-range"], "0-0/5");
    assert!(b.is_empty());

    // Plans, behind db-plan-enabled.
    let (s, h, b) = exchange(
        &engine,
        key,
        &db,
        &config,
        get(
            "/messages?id=eq.1",
            "application/vnd.pgrst.plan+json; options=verbose",
        ),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        h["content-type"],
        "application/vnd.pgrst.plan+json; for=\"application/json\"; options=verbose; charset=utf-8"
    );
    assert!(json_of(&b)[0]["Plan"]["Node Type"].is_string());

    // GeoJSON where PostGIS is installed.
    let (s, h, b) = exchange(
        &engine,
        key,
        &db,
        &config,
        get("/shops", "application/geo+json"),
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(h["content-type"], "application/geo+json; charset=utf-8");
    assert_eq!(
        json_of(&b),
        json!({"type": "FeatureCollection", "features": [{
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [2.5, 48.5]},
            "properties": {"id": 1, "name": "corner"}
        }]})
    );

    // A function returning a media type's domain answers with its value.
    let (s, h, b) = exchange(&engine, key, &db, &config, get("/rpc/page", "text/html")).await;
    assert_eq!((s, h["content-type"].to_str().unwrap()), (200, "text/html"));
    assert_eq!(b, b"<p>hi</p>");

    // The OpenAPI document lists the tables with their comments.
    let (s, _, b) = exchange(
        &engine,
        key,
        &db,
        &config,
        get("/", "application/openapi+json"),
    )
    .await;
    assert_eq!(s, 200);
    let doc = json_of(&b);
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(doc["paths"]["/channels"]["get"]["summary"], "Chat channels");
    assert_eq!(
        doc["definitions"]["messages"]["properties"]["channel_id"]["description"],
        "Note:\nThis is a Foreign Key to `channels.id`.<fk table='channels' column='id'/>"
    );
}

/// Statements stay prepared on each connection; a column whose type
/// changes behind the schema cache's back (no NOTIFY) costs at most one
/// failed request per connection that had it prepared, never more.
#[tokio::test]
async fn prepared_statements_follow_a_changed_column_type() {
    let tenant = supa_testkit::tenant().await;
    let (r, db) = project(&tenant, "prepared").await;
    run_sql(
        &tenant,
        &r,
        "CREATE TABLE typed (id int, v text); INSERT INTO typed VALUES (1, 'a'); \
             GRANT SELECT ON typed TO anon",
    )
    .await;
    let pool = 2;
    let engine = Engine::new(pool, Duration::from_secs(60), 10);
    let get = || {
        call(
            &engine,
            r.as_str(),
            &db,
            "GET",
            "/typed?id=eq.1",
            None,
            None,
        )
    };
    // Both connections prepare the statement (two at a time).
    for _ in 0..4 {
        let ((s1, v1), (s2, _)) = tokio::join!(get(), get());
        assert_eq!((s1, s2), (200, 200), "{v1}");
        assert_eq!(v1, json!([{"id": 1, "v": "a"}]));
    }
    let (admin, connection) = tokio_postgres::connect(
        &supa_testkit::cluster().url(&db.name),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute("ALTER TABLE typed ALTER COLUMN id TYPE text")
        .await
        .unwrap();
    let mut failures = 0;
    let body = loop {
        let (s, v) = get().await;
        if s == 200 {
            break v;
        }
        failures += 1;
        assert!(failures <= pool, "still failing after {failures}: {s} {v}");
    };
    assert_eq!(body, json!([{"id": "1", "v": "a"}]));
}
