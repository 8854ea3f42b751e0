//! The Management API and the internal directory API, called as a tower
//! service (no socket) over a real management database and worker.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use supa_core::{ProjectRef, Secret};
use supa_tenant::api::{self, ApiTokens};
use supa_tenant::{INVALIDATE_CHANNEL, Tenant};
use tower::ServiceExt as _;

const ADMIN: &str = "admin-token-for-tests";
const SERVICE: &str = "service-token-for-tests";

async fn app() -> (Tenant, Router) {
    let tenant = super::tenant().await;
    let router = api::router(
        tenant.clone(),
        ApiTokens {
            admin: Secret::new(ADMIN.into()),
            service: Secret::new(SERVICE.into()),
        },
    );
    (tenant, router)
}

/// Sends a request; `body` is sent as it is (a string) so malformed JSON
/// can be tested too.
async fn send(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = match body {
        Some(b) => request
            .header("content-type", "application/json")
            .body(Body::from(b.to_owned())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{path} answered {status} without JSON"
    );
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {bytes:?}"));
    (status, value)
}

async fn admin(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let body = body.map(|b| b.to_string());
    send(app, method, path, Some(ADMIN), body.as_deref()).await
}

fn message(v: &Value) -> &str {
    v["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {v}"))
}

#[tokio::test]
async fn tokens_are_required_and_kept_apart() {
    let (_, app) = app().await;
    let (s, v) = send(&app, Method::GET, "/v1/projects", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(message(&v).contains("missing bearer token"), "{v}");
    for wrong in ["nope", SERVICE, &format!("{ADMIN}x"), ""] {
        let (s, v) = send(&app, Method::GET, "/v1/projects", Some(wrong), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert!(message(&v).starts_with("Unauthorized"), "{v}");
    }
    // A scheme other than Bearer is no token at all.
    let request = Request::get("/api/v1/projects")
        .header("authorization", format!("Basic {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(request).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // The admin token does not open the internal API, nor the service token the admin one.
    let path = "/internal/v1/projects/abcdefghijabcdefghij/config";
    let (s, _) = send(&app, Method::GET, path, Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = send(&app, Method::GET, "/admin/v1/workers", Some(SERVICE), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, v) = send(&app, Method::GET, "/health", None, None).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": "ok"})));
    let (s, v) = send(&app, Method::GET, "/v2/nothing", Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(message(&v), "Not found");
    let (s, v) = send(&app, Method::PUT, "/v1/projects", Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(message(&v), "Method not allowed");
}

#[tokio::test]
async fn projects_through_the_api() {
    let (_, app) = app().await;
    let (s, created) = admin(
        &app,
        Method::POST,
        "/v1/projects",
        Some(json!({"name": "demo"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "ACTIVE_HEALTHY");
    assert_eq!(created["name"], "demo");
    let r = ProjectRef::parse(created["ref"].as_str().unwrap()).unwrap();
    assert_eq!(created["id"], created["ref"]);
    for (field, prefix) in [
        ("publishable_key", "sb_publishable_"),
        ("secret_key", "sb_secret_"),
    ] {
        let key = created[field].as_str().unwrap();
        assert!(key.starts_with(prefix));
        assert!(matches!(
            supa_keys::validate(&r, key),
            Ok(supa_keys::Validation::Checked(_))
        ));
    }

    for base in ["/v1", "/api/v1"] {
        let (s, list) = admin(&app, Method::GET, &format!("{base}/projects"), None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|p| p["ref"] == r.as_str())
        );
        let (s, one) = admin(&app, Method::GET, &format!("{base}/projects/{r}"), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(one["ref"], r.as_str());
        assert!(
            one.get("secret_key").is_none(),
            "keys are shown at creation only"
        );
    }

    let (s, v) = admin(
        &app,
        Method::POST,
        "/v1/projects",
        Some(json!({"name": "again", "ref": r})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    let (s, v) = admin(&app, Method::DELETE, &format!("/v1/projects/{r}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"id": r, "ref": r, "name": "demo"}));
    let (s, v) = admin(&app, Method::GET, &format!("/v1/projects/{r}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(message(&v).contains(r.as_str()), "{v}");
    let (s, _) = admin(&app, Method::DELETE, &format!("/v1/projects/{r}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = admin(&app, Method::GET, "/v1/projects/not-a-ref", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(message(&v).contains("not-a-ref"), "{v}");
}

#[tokio::test]
async fn bad_bodies_get_400_naming_the_field() {
    let (_, app) = app().await;
    let cases: &[(&str, &str)] = &[
        (r#"{"name": "x", "colour": "red"}"#, "colour"),
        (r#"{}"#, "name"),
        (r#"{"name": 5}"#, "name"),
        (r#"{"name": "x", "ref": "TOOSHORT"}"#, "ref"),
        (r#"{"name": ""}"#, "name"),
        (r#"{"name": "x", "worker_id": "nowhere"}"#, "worker_id"),
        (r#"{"name": "#, "Invalid request body"),
        ("", "expected JSON"),
        ("[1, 2]", "Invalid request body"),
    ];
    for (body, names) in cases {
        let (s, v) = send(&app, Method::POST, "/v1/projects", Some(ADMIN), Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(message(&v).contains(names), "{body}: {v}");
    }
    let (s, list) = admin(&app, Method::GET, "/v1/projects", None).await;
    assert_eq!(
        (s, list),
        (StatusCode::OK, json!([])),
        "nothing was created"
    );
}

#[tokio::test]
async fn api_keys_secrets_and_sql_through_the_api() {
    let (tenant, app) = app().await;
    let r = super::new_project(&tenant, "keys").await;
    let keys_path = format!("/v1/projects/{r}/api-keys");

    let (s, masked) = admin(&app, Method::GET, &keys_path, None).await;
    assert_eq!(s, StatusCode::OK);
    let (_, revealed) = admin(&app, Method::GET, &format!("{keys_path}?reveal=true"), None).await;
    let secret_of = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|k| k["type"] == "secret")
            .unwrap()["api_key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(!secret_of(&masked).starts_with(&secret_of(&revealed)));
    assert!(supa_keys::validate(&r, &secret_of(&revealed)).is_ok());
    assert!(supa_keys::validate(&r, &secret_of(&masked)).is_err());
    let (s, v) = admin(&app, Method::GET, &format!("{keys_path}?reveal=yes"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&v).contains("reveal"));

    let (s, extra) = admin(
        &app,
        Method::POST,
        &keys_path,
        Some(json!({"type": "secret", "name": "ci"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{extra}");
    assert_eq!(
        extra["secret_jwt_template"],
        json!({"role": "service_role"})
    );
    let (s, v) = admin(
        &app,
        Method::POST,
        &keys_path,
        Some(json!({"type": "publishable", "name": "p2"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&v).starts_with("type:"), "{v}");
    let (s, v) = admin(
        &app,
        Method::POST,
        &keys_path,
        Some(json!({"type": "admin", "name": "x"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&v).contains("type"), "{v}");
    let id = extra["id"].as_str().unwrap();
    let (s, revoked) = admin(&app, Method::DELETE, &format!("{keys_path}/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(revoked["id"], id);
    let (s, _) = admin(&app, Method::DELETE, &format!("{keys_path}/{id}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let secrets_path = format!("/v1/projects/{r}/secrets");
    let (s, v) = admin(
        &app,
        Method::POST,
        &secrets_path,
        Some(json!([{"name": "STRIPE_KEY", "value": "sk_live_1"}])),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, listed) = admin(&app, Method::GET, &secrets_path, None).await;
    assert_eq!(s, StatusCode::OK);
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"sk_live_1"));
    assert_eq!(listed, json!([{"name": "STRIPE_KEY", "value": digest}]));
    for bad in ["lower", "SUPABASE_URL", "1ABC"] {
        let (s, v) = admin(
            &app,
            Method::POST,
            &secrets_path,
            Some(json!([{"name": bad, "value": "v"}])),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert!(message(&v).starts_with("name:"), "{v}");
    }
    let (s, left) = admin(
        &app,
        Method::DELETE,
        &secrets_path,
        Some(json!(["STRIPE_KEY"])),
    )
    .await;
    assert_eq!((s, left), (StatusCode::OK, json!([])));

    let query_path = format!("/v1/projects/{r}/database/query");
    let q = |sql: &str| Some(json!({ "query": sql }));
    let (s, v) = admin(
        &app,
        Method::POST,
        &query_path,
        q("CREATE TABLE t (id int PRIMARY KEY, n text)"),
    )
    .await;
    assert_eq!((s, v), (StatusCode::CREATED, json!([])));
    let (s, v) = admin(
        &app,
        Method::POST,
        &query_path,
        q("INSERT INTO t VALUES (1, 'a') RETURNING *"),
    )
    .await;
    assert_eq!((s, v), (StatusCode::CREATED, json!([{"id": 1, "n": "a"}])));
    let (s, v) = admin(&app, Method::POST, &query_path, q("SELEC 1")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&v),
        "Failed to run sql query: ERROR:  42601: syntax error at or near \"SELEC\""
    );
    let (s, v) = admin(
        &app,
        Method::POST,
        &query_path,
        Some(json!({"sql": "SELECT 1"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&v).contains("sql"), "{v}");
    let (s, _) = admin(
        &app,
        Method::POST,
        "/v1/projects/abcdefghijabcdefghij/database/query",
        q("SELECT 1"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn workers_through_the_admin_api() {
    let (tenant, app) = app().await;
    let (s, list) = admin(&app, Method::GET, "/admin/v1/workers", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list[0]["id"], "local");
    assert!(list[0].get("admin_password").is_none());

    let pg = supa_testkit::cluster().postgres();
    let bad = json!({"id": "w2", "host": "127.0.0.1", "port": pg.port(), "admin_user": "supa", "admin_password": "wrong"});
    let (s, v) = admin(&app, Method::POST, "/admin/v1/workers", Some(bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        message(&v).contains("password authentication failed"),
        "{v}"
    );
    let (s, v) = admin(
        &app,
        Method::POST,
        "/admin/v1/workers",
        Some(json!({"id": "w3", "host": "h"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&v).contains("port"), "{v}");

    let (s, v) = admin(
        &app,
        Method::PATCH,
        "/admin/v1/workers/local",
        Some(json!({"weight": 7})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["weight"], 7);
    let (s, _) = admin(
        &app,
        Method::PATCH,
        "/admin/v1/workers/local",
        Some(json!({"status": "asleep"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = admin(&app, Method::GET, "/admin/v1/workers/nope", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    super::new_project(&tenant, "holds the worker").await;
    let (s, v) = admin(&app, Method::DELETE, "/admin/v1/workers/local", None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(message(&v).contains("still holds"), "{v}");
}

#[tokio::test]
async fn internal_directory_serves_configs_and_keys() {
    let (tenant, app) = app().await;
    let created = tenant.create_project(super::create("dir")).await.unwrap();
    let r = created.project.project_ref;
    let internal = |path: String| {
        let app = app.clone();
        async move { send(&app, Method::GET, &path, Some(SERVICE), None).await }
    };

    let (s, config) = internal(format!("/internal/v1/projects/{r}/config")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(config["ref"], r.as_str());
    assert_eq!(config["status"], "ACTIVE_HEALTHY");
    assert_eq!(config["upstream"], json!({"kind": "embedded"}));
    let secret = tenant.project_config(&r).await.unwrap().jwt_secret;
    assert_eq!(config["jwt_secret"], secret.expose().as_str());

    let hash = supa_keys::hash_hex(&created.publishable_key);
    let (s, record) = internal(format!("/internal/v1/keys/{hash}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(record["ref"], r.as_str());
    assert_eq!(record["type"], "publishable");
    let (s, _) = internal(format!("/internal/v1/keys/{}", "0".repeat(64))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = internal("/internal/v1/keys/xyz".into()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&v).starts_with("sha256:"));
    let (s, _) = internal("/internal/v1/projects/abcdefghijabcdefghij/config".into()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A revoked key disappears from the directory.
    let secret_hash = supa_keys::hash_hex(created.secret_key.expose());
    let keys = tenant.list_keys(&r, false).await.unwrap();
    let secret_id = &keys.iter().find(|k| k.hash == secret_hash).unwrap().id;
    tenant.revoke_key(&r, secret_id).await.unwrap();
    let (s, _) = internal(format!("/internal/v1/keys/{secret_hash}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn revocations_and_deletions_are_published_on_redis() {
    let redis = supa_testkit::redis();
    let tenant = super::tenant().await;
    tenant.publish_to_redis(&redis.url()).unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(INVALIDATE_CHANNEL).await.unwrap();

    let created = tenant.create_project(super::create("pub")).await.unwrap();
    let r = created.project.project_ref;
    let extra = tenant
        .create_key(
            &r,
            supa_tenant::NewApiKey {
                kind: supa_core::KeyKind::Secret,
                name: "x".into(),
            },
        )
        .await
        .unwrap();
    tenant.revoke_key(&r, &extra.id).await.unwrap();
    tenant.delete_project(&r).await.unwrap();

    use futures_util::StreamExt as _;
    let mut messages = pubsub.on_message();
    let mut got = Vec::new();
    while got.len() < 4 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), messages.next())
            .await
            .expect("an invalidation within 5 s")
            .unwrap();
        got.push(next.get_payload::<String>().unwrap());
    }
    // The revoked key, then the project, then its two remaining keys.
    assert_eq!(got[0], extra.hash);
    assert_eq!(got[1], r.as_str());
    let mut rest = got[2..].to_vec();
    rest.sort();
    let mut expected = vec![
        supa_keys::hash_hex(&created.publishable_key),
        supa_keys::hash_hex(created.secret_key.expose()),
    ];
    expected.sort();
    assert_eq!(rest, expected);
}

#[tokio::test]
async fn upstreams_are_set_by_the_platform_admin() {
    let (tenant, app) = app().await;
    let r = super::new_project(&tenant, "up").await;
    let path = format!("/admin/v1/projects/{r}");
    let http = json!({"upstream": {"kind": "http", "url": "http://10.0.0.5:3000/"}});
    let (s, v) = admin(&app, Method::PATCH, &path, Some(http)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let config = tenant.project_config(&r).await.unwrap();
    assert_eq!(config.upstream.kind(), "http");
    assert!(
        config.database.is_none(),
        "only the embedded upstream gets credentials"
    );
    for bad in [
        json!({"upstream": {"kind": "http", "url": "ftp://x/"}}),
        json!({"upstream": {"kind": "lambda", "function_url": "https://x.lambda-url.us-east-1.on.aws/", "region": "US EAST"}}),
        json!({"upstream": {"kind": "carrier-pigeon"}}),
    ] {
        let (s, v) = admin(&app, Method::PATCH, &path, Some(bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(message(&v).contains("upstream"), "{v}");
    }
    let (s, _) = admin(
        &app,
        Method::PATCH,
        "/admin/v1/projects/abcdefghijabcdefghij",
        Some(json!({"upstream": {"kind": "embedded"}})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = admin(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"upstream": {"kind": "embedded"}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(tenant.project_config(&r).await.unwrap().database.is_some());
}

#[tokio::test]
async fn postgres_meta_is_served_at_every_mount_point() {
    let (tenant, app) = app().await;
    let r = super::new_project(&tenant, "meta").await;
    let (s, _) = admin(
        &app,
        Method::POST,
        &format!("/v1/projects/{r}/database/query"),
        Some(json!({"query": "CREATE TABLE public.notes (id int PRIMARY KEY, body text)"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    for prefix in [
        format!("/v1/projects/{r}/database"),
        format!("/api/v1/projects/{r}/database"),
        format!("/api/platform/pg-meta/{r}"),
    ] {
        let path = format!("{prefix}/tables?included_schemas=public");
        let (s, tables) = admin(&app, Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {tables}");
        let notes = &tables[0];
        assert_eq!(notes["name"], "notes", "{path}: {tables}");
        assert_eq!(notes["columns"][1]["name"], "body");
        assert_eq!(notes["primary_keys"][0]["name"], "id");

        let (s, one) = admin(
            &app,
            Method::GET,
            &format!("{prefix}/tables/{}", notes["id"]),
            None,
        )
        .await;
        assert_eq!((s, &one["name"]), (StatusCode::OK, &json!("notes")));
        let (s, v) = admin(&app, Method::GET, &format!("{prefix}/config/version"), None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(v["version_number"].as_i64().unwrap() >= 150000);

        // The template's schemas are there; the system ones are not.
        let (_, schemas) = admin(&app, Method::GET, &format!("{prefix}/schemas"), None).await;
        let names: Vec<&str> = schemas
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"public") && names.contains(&"auth"),
            "{names:?}"
        );
        assert!(!names.contains(&"pg_catalog"));

        // Bad input: an unknown endpoint, a bad parameter, no token.
        let (s, v) = admin(&app, Method::GET, &format!("{prefix}/nothing-here"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        let (s, v) = admin(
            &app,
            Method::GET,
            &format!("{prefix}/tables?limit=many"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["error"].as_str().unwrap().contains("limit"));
        let (s, _) = send(&app, Method::GET, &format!("{prefix}/tables"), None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = send(
            &app,
            Method::GET,
            &format!("{prefix}/tables"),
            Some(SERVICE),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }

    // An unknown project, and a malformed ref.
    for path in [
        "/v1/projects/abcdefghijabcdefghij/database/tables",
        "/api/platform/pg-meta/abcdefghijabcdefghij/tables",
        "/api/platform/pg-meta/NOT-A-REF/tables",
    ] {
        let (s, v) = admin(&app, Method::GET, path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
    }

    // Names that try to break out of their quotes only fail to match.
    let evil = "public'%3B%20drop%20table%20public.notes%3B--";
    for query in [
        format!("included_schemas={evil}"),
        format!("excluded_schemas={evil}"),
    ] {
        let (s, _) = admin(
            &app,
            Method::GET,
            &format!("/api/platform/pg-meta/{r}/tables?{query}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, _) = admin(
        &app,
        Method::GET,
        &format!("/api/platform/pg-meta/{r}/extensions/x'%3Bdrop%20table%20public.notes%3B--"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, tables) = admin(
        &app,
        Method::GET,
        &format!("/api/platform/pg-meta/{r}/tables?included_schemas=public"),
        None,
    )
    .await;
    assert_eq!(tables[0]["name"], "notes", "the table is still there");

    // Studio's SQL path answers 200 with the rows.
    let (s, rows) = admin(
        &app,
        Method::POST,
        &format!("/api/platform/pg-meta/{r}/query"),
        Some(json!({"query": "SELECT count(*) AS n FROM public.notes"})),
    )
    .await;
    assert_eq!((s, rows), (StatusCode::OK, json!([{"n": 0}])));
    // Its errors are postgres-meta's shape, as on every path of the family.
    let (s, v) = admin(
        &app,
        Method::POST,
        &format!("/api/platform/pg-meta/{r}/query"),
        Some(json!({"query": "selec 1"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("syntax error"), "{v}");
}

#[tokio::test]
async fn api_v1_speaks_the_studio_api() {
    let (tenant, app) = app().await;
    let r = super::new_project(&tenant, "studio").await;
    let (s, keys) = admin(
        &app,
        Method::GET,
        &format!("/api/v1/projects/{r}/api-keys"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let by_name = |name: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .unwrap_or_else(|| panic!("no {name} key in {keys}"))["api_key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(by_name("anon").starts_with("sb_publishable_"));
    // In full: the reference documents this as the way to get the keys.
    supa_keys::validate(&r, &by_name("service_role")).expect("a whole secret key");

    // /v1 keeps Supabase's shapes.
    let (_, keys) = admin(
        &app,
        Method::GET,
        &format!("/v1/projects/{r}/api-keys"),
        None,
    )
    .await;
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .all(|k| k["name"] == "default")
    );

    let q = Some(json!({"query": "SELECT 1 AS one"}));
    let (s, rows) = admin(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{r}/database/query"),
        q.clone(),
    )
    .await;
    assert_eq!((s, rows), (StatusCode::OK, json!([{"one": 1}])));
    let (s, _) = admin(
        &app,
        Method::POST,
        &format!("/v1/projects/{r}/database/query"),
        q,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
}
