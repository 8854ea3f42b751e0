//! The gateway over a real control plane (test kit cluster), called as a
//! tower service. A counting wrapper around the real directory shows how
//! often the gateway asks it, and can make it fail on demand.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use supa_core::{
    BoxFuture, DirectoryError, KeyRecord, ProjectConfig, ProjectDirectory, ProjectRef, Upstream,
};
use supa_router::{Gateway, GatewayConfig, Metrics};
use supa_tenant::{CreateProject, CreatedProject, NewApiKey, Tenant};
use tower::ServiceExt as _;

/// The real directory, counted, with a switch that makes it fail.
struct Counting {
    inner: Tenant,
    configs: AtomicUsize,
    keys: AtomicUsize,
    down: AtomicBool,
}

impl ProjectDirectory for Counting {
    fn project_config<'a>(
        &'a self,
        r: &'a ProjectRef,
    ) -> BoxFuture<'a, Result<Option<ProjectConfig>, DirectoryError>> {
        self.configs.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            // Slow enough that concurrent requests overlap.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.down.load(Ordering::SeqCst) {
                return Err(DirectoryError("switched off by the test".into()));
            }
            ProjectDirectory::project_config(&self.inner, r).await
        })
    }

    fn lookup_key<'a>(
        &'a self,
        hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<KeyRecord>, DirectoryError>> {
        self.keys.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.down.load(Ordering::SeqCst) {
                return Err(DirectoryError("switched off by the test".into()));
            }
            ProjectDirectory::lookup_key(&self.inner, hash).await
        })
    }
}

async fn setup(config: GatewayConfig) -> (Tenant, Arc<Counting>, Arc<Gateway>, CreatedProject) {
    let tenant = supa_testkit::tenant().await;
    let project = tenant
        .create_project(CreateProject {
            name: "gw".into(),
            ..CreateProject::default()
        })
        .await
        .unwrap();
    tenant
        .run_sql(
            &project.project.project_ref,
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let counting = Arc::new(Counting {
        inner: tenant.clone(),
        configs: AtomicUsize::new(0),
        keys: AtomicUsize::new(0),
        down: AtomicBool::new(false),
    });
    let gateway = Arc::new(Gateway::new(
        counting.clone(),
        config,
        Arc::new(Metrics::default()),
    ));
    (tenant, counting, gateway, project)
}

async fn get(gateway: &Arc<Gateway>, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = Request::builder().uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = gateway
        .clone()
        .router()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn one_fetch_per_key_and_project_however_many_ask() {
    let (_, counting, gateway, project) = setup(GatewayConfig::default()).await;
    let r = project.project.project_ref;
    let uri = format!("/project/{r}/rest/v1/t");
    let key = project.publishable_key.clone();
    let requests: Vec<_> = (0..40)
        .map(|_| {
            let gateway = gateway.clone();
            let uri = uri.clone();
            let key = key.clone();
            tokio::spawn(async move { get(&gateway, &uri, &[("apikey", &key)]).await.0 })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(counting.keys.load(Ordering::SeqCst), 1);
    assert_eq!(counting.configs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn backend_failures_are_never_cached_as_invalid() {
    let (_, counting, gateway, project) = setup(GatewayConfig::default()).await;
    let uri = format!("/project/{}/rest/v1/t", project.project.project_ref);
    counting.down.store(true, Ordering::SeqCst);
    let (s, v) = get(&gateway, &uri, &[("apikey", &project.publishable_key)]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["message"], "Service temporarily unavailable");
    counting.down.store(false, Ordering::SeqCst);
    let (s, v) = get(&gateway, &uri, &[("apikey", &project.publishable_key)]).await;
    assert_eq!((s, v), (StatusCode::OK, json!([{"id": 1}])));
}

#[tokio::test]
async fn an_unreachable_directory_leaves_the_last_answers_serving_and_revoked_keys_refused() {
    let config = GatewayConfig {
        ttl: Duration::from_millis(300),
        ..GatewayConfig::default()
    };
    let (tenant, counting, gateway, project) = setup(config).await;
    let r = project.project.project_ref;
    let uri = format!("/project/{r}/rest/v1/t");
    let doomed = tenant
        .create_key(
            &r,
            NewApiKey {
                kind: supa_core::KeyKind::Secret,
                name: "doomed".into(),
            },
        )
        .await
        .unwrap();
    for key in [&project.publishable_key, &doomed.api_key] {
        assert_eq!(
            get(&gateway, &uri, &[("apikey", key)]).await.0,
            StatusCode::OK
        );
    }
    // Revoked (and announced), then the directory goes away for longer
    // than the cache lives.
    let revoked = tenant.revoke_key(&r, &doomed.id).await.unwrap();
    gateway.invalidate(&revoked.hash).await;
    counting.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, v) = get(&gateway, &uri, &[("apikey", &project.publishable_key)]).await;
    assert_eq!((s, v), (StatusCode::OK, json!([{"id": 1}])));
    let (s, v) = get(&gateway, &uri, &[("apikey", &doomed.api_key)]).await;
    assert_eq!(
        (s, &v["message"]),
        (StatusCode::UNAUTHORIZED, &json!("Invalid API key"))
    );
    // A project never seen has no last answer.
    let other = supa_core::ProjectRef::parse("abcdefghijklmnopqrst").unwrap();
    let key = supa_keys::generate(&other, supa_core::KeyKind::Secret);
    let (s, v) = get(
        &gateway,
        &format!("/project/{other}/rest/v1/t"),
        &[("apikey", &key)],
    )
    .await;
    assert_eq!(
        (s, &v["message"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &json!("Service temporarily unavailable")
        )
    );
}

#[tokio::test]
async fn bodies_past_the_limit_are_413_except_for_storage() {
    let (_, _, gateway, project) = setup(GatewayConfig {
        max_body_bytes: 1024,
        ..GatewayConfig::default()
    })
    .await;
    let r = project.project.project_ref;
    let post = |body: Body, length: Option<usize>| {
        let mut request = Request::post(format!("/project/{r}/rest/v1/t"))
            .header("apikey", project.secret_key.expose())
            .header("content-type", "application/json");
        if let Some(n) = length {
            request = request.header("content-length", n);
        }
        request.body(body).unwrap()
    };
    let big = format!("[{}{{\"id\": 2}}]", "{\"id\": 2},".repeat(200));
    assert!(big.len() > 1024);
    let response = gateway
        .handle(post(Body::from(big.clone()), Some(big.len())))
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["message"], "Request size limit exceeded");
    // Streamed with no length: refused where it crosses the limit.
    let chunks = big
        .as_bytes()
        .chunks(100)
        .map(|c| Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(c)))
        .collect::<Vec<_>>();
    let streamed = Body::from_stream(futures_util::stream::iter(chunks));
    assert_eq!(
        gateway.handle(post(streamed, None)).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Under it, written.
    let small = r#"[{"id": 3}]"#;
    let response = gateway
        .handle(post(Body::from(small), Some(small.len())))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // Storage keeps its own limits: the same body is not refused here.
    let upload = Request::post(format!("/project/{r}/storage/v1/object/b/x"))
        .header("apikey", project.secret_key.expose())
        .header("content-length", big.len())
        .body(Body::from(big))
        .unwrap();
    let status = gateway.handle(upload).await.status();
    assert_ne!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn negative_entries_expire_quickly() {
    let config = GatewayConfig {
        negative_ttl: Duration::from_millis(500),
        ..GatewayConfig::default()
    };
    let (tenant, _, gateway, project) = setup(config).await;
    let r = project.project.project_ref;
    let uri = format!("/project/{r}/rest/v1/t");
    // A well-formed key of this project that does not exist yet...
    let key = supa_keys::generate(&r, supa_core::KeyKind::Secret);
    assert_eq!(
        get(&gateway, &uri, &[("apikey", &key)]).await.0,
        StatusCode::UNAUTHORIZED
    );
    // ...is still refused once a real key exists: the miss was cached, briefly.
    let created = tenant
        .create_key(
            &r,
            NewApiKey {
                kind: supa_core::KeyKind::Secret,
                name: "late".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        get(&gateway, &uri, &[("apikey", &created.api_key)]).await.0,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        get(&gateway, &uri, &[("apikey", &key)]).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn garbage_never_gets_a_500() {
    let (_, _, gateway, project) = setup(GatewayConfig::default()).await;
    let r = project.project.project_ref;
    let good = project.publishable_key.as_str();
    let keys = [
        "",
        " ",
        "sb_",
        "sb_publishable_",
        "sb_secret_x_y",
        "sb_publishable_%C3%BC",
        "%00",
        good,
        &good[..good.len() - 1],
        "sb_publishable_AAAAAAAAAAAAAAAAAAAAAA_AAAAAAAA",
    ];
    let auths = [
        "",
        "Bearer",
        "Bearer ",
        "Bearer a.b.c",
        "Bearer ...",
        "Basic xyz",
        "Bearer eyJ.eyJ.sig",
        "Bearer sb_secret_x",
    ];
    let paths = [
        format!("/project/{r}/rest/v1/t"),
        format!("/project/{r}/rest/v1/t?select=(((&id=eq"),
        format!("/project/{r}/rest/v1/t?apikey=%ZZ&order=,,,"),
        format!("/project/{r}/rest/v1/rpc/"),
        format!("/project/{r}/rest/v1/a/b/c/d"),
        format!("/project/{r}/rest/v1"),
        format!("/project/{r}"),
        "/project/".to_owned(),
        "/project/UPPERCASEUPPERCASEUP/rest/v1/t".to_owned(),
        "/".to_owned(),
        "/%FF%FE".to_owned(),
    ];
    for path in &paths {
        for key in keys {
            for auth in auths {
                let mut headers = vec![];
                if !key.is_empty() {
                    headers.push(("apikey", key));
                }
                if !auth.is_empty() {
                    headers.push(("authorization", auth));
                }
                let (s, v) = get(&gateway, path, &headers).await;
                assert!(s.as_u16() < 500, "{path} {key:?} {auth:?} -> {s} {v}");
            }
        }
    }
}

#[tokio::test]
async fn hosts_under_the_base_domain_resolve_to_projects() {
    let config = GatewayConfig {
        base_domain: Some("supa.test".into()),
        ..GatewayConfig::default()
    };
    let (_, _, gateway, project) = setup(config).await;
    let host = format!("{}.supa.test:8000", project.project.project_ref);
    let (s, v) = get(
        &gateway,
        "/rest/v1/t",
        &[("host", &host), ("apikey", &project.publishable_key)],
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!([{"id": 1}])));
    let (s, _) = get(
        &gateway,
        "/rest/v1/t",
        &[
            ("host", "nope.supa.test"),
            ("apikey", &project.publishable_key),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(
        &gateway,
        "/rest/v1/t",
        &[
            ("host", "elsewhere.example"),
            ("apikey", &project.publishable_key),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn slow_and_dead_upstreams_are_504_and_502() {
    let config = GatewayConfig {
        upstream_timeout: Duration::from_millis(300),
        ..GatewayConfig::default()
    };
    let (tenant, _, gateway, project) = setup(config).await;
    let r = project.project.project_ref;
    // An upstream that accepts and never answers.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}/", slow.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = slow.accept().await {
            held.push(socket);
        }
    });
    tenant
        .set_upstream(
            &r,
            Some(Upstream::Http {
                url: slow_url.parse().unwrap(),
            }),
            None,
        )
        .await
        .unwrap();
    gateway.invalidate(r.as_str()).await;
    let uri = format!("/project/{r}/rest/v1/t");
    let (s, v) = get(&gateway, &uri, &[("apikey", &project.publishable_key)]).await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        v,
        json!({"message": "The project's API did not answer in time"})
    );

    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    tenant
        .set_upstream(
            &r,
            Some(Upstream::Http {
                url: format!("http://{dead}/").parse().unwrap(),
            }),
            None,
        )
        .await
        .unwrap();
    gateway.invalidate(r.as_str()).await;
    let (s, v) = get(&gateway, &uri, &[("apikey", &project.publishable_key)]).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    assert_eq!(
        v,
        json!({"message": "The project's API could not be reached"})
    );
}

#[tokio::test]
async fn paused_and_unknown_projects() {
    let (tenant, _, gateway, project) = setup(GatewayConfig::default()).await;
    let r = project.project.project_ref;
    let uri = format!("/project/{r}/rest/v1/t");
    sqlx::query("UPDATE projects SET status = 'INACTIVE' WHERE ref = $1")
        .bind(r.as_str())
        .execute(tenant.pool())
        .await
        .unwrap();
    gateway.invalidate(r.as_str()).await;
    let (s, v) = get(&gateway, &uri, &[("apikey", &project.publishable_key)]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        v["message"],
        "Project is not serving requests (status INACTIVE)"
    );
    // Deleted: its keys are gone with it.
    tenant.delete_project(&r).await.unwrap();
    gateway.invalidate(r.as_str()).await;
    gateway
        .invalidate(&supa_keys::hash_hex(&project.publishable_key))
        .await;
    let (s, _) = get(&gateway, &uri, &[("apikey", &project.publishable_key)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_project_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let (tenant, _, gateway, busy) = setup(GatewayConfig {
        project_rate_limit: Some(2),
        ..GatewayConfig::default()
    })
    .await;
    let quiet = tenant
        .create_project(CreateProject {
            name: "quiet".into(),
            ..CreateProject::default()
        })
        .await
        .unwrap();
    let uri = |p: &CreatedProject| format!("/project/{}/rest/v1/", p.project.project_ref);
    // Warm (the first request builds the project's data plane), then let
    // the bucket fill again: two requests a second, two at once.
    let (s, _) = get(
        &gateway,
        &uri(&busy),
        &[("apikey", busy.secret_key.expose())],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let request = Request::get(uri(&busy))
            .header("apikey", busy.secret_key.expose())
            .body(Body::empty())
            .unwrap();
        let response = gateway.handle(request).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()["retry-after"], "1");
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["message"], "API rate limit exceeded");
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    // A second's worth passes (the burst), then the limit holds (a slow
    // run may earn one more token on the way).
    assert_eq!(statuses[..2], [200, 200], "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 3,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // The neighbour is untouched; the busy one is let in again later.
    let (s, _) = get(
        &gateway,
        &uri(&quiet),
        &[("apikey", quiet.secret_key.expose())],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (s, _) = get(
        &gateway,
        &uri(&busy),
        &[("apikey", busy.secret_key.expose())],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn pg_meta_is_a_service_for_secret_keys_only() {
    let (tenant, counting, _, project) = setup(GatewayConfig::default()).await;
    let meta = supa_tenant::api::meta_engine(&tenant);
    let gateway = Arc::new(
        Gateway::new(
            counting,
            GatewayConfig::default(),
            Arc::new(Metrics::default()),
        )
        .mount("/pg", supa_meta::router(meta)),
    );
    let r = project.project.project_ref;
    let secret = project.secret_key.expose().as_str();
    let publishable = project.publishable_key.as_str();
    let tables = format!("/project/{r}/pg/tables?included_schemas=public");

    let (s, v) = get(&gateway, &tables, &[("apikey", secret)]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["name"], "t");
    assert_eq!(v[0]["columns"][0]["name"], "id");
    // The key may come as a query parameter too; it is not a filter.
    let (s, v) = get(
        &gateway,
        &format!("/project/{r}/pg/schemas?apikey={secret}"),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (s, v) = get(&gateway, &tables, &[("apikey", publishable)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(v["message"].as_str().unwrap().contains("secret"), "{v}");
    let (s, _) = get(&gateway, &tables, &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A secret key from a browser, and another project's secret key.
    let browser = [("apikey", secret), ("user-agent", "Mozilla/5.0")];
    assert_eq!(
        get(&gateway, &tables, &browser).await.0,
        StatusCode::UNAUTHORIZED
    );
    let other = tenant
        .create_project(CreateProject {
            name: "other".into(),
            ..CreateProject::default()
        })
        .await
        .unwrap();
    let (s, _) = get(
        &gateway,
        &tables,
        &[("apikey", other.secret_key.expose().as_str())],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = get(
        &gateway,
        "/project/abcdefghijabcdefghij/pg/tables",
        &[("apikey", secret)],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a key of another ref");
    let (s, _) = get(
        &gateway,
        &format!("/project/{r}/pg/nothing"),
        &[("apikey", secret)],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Services not mounted here still answer 404 naming themselves.
    let (s, v) = get(&gateway, &format!("/project/{r}/auth/v1/settings"), &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["message"].as_str().unwrap().contains("/auth/v1"), "{v}");
    // And a gateway without `/pg` says so.
    let (_, _, bare, _) = setup(GatewayConfig::default()).await;
    let (s, v) = get(
        &bare,
        &format!("/project/{r}/pg/tables"),
        &[("apikey", secret)],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["message"].as_str().unwrap().contains("/pg"), "{v}");
}
