//! The write endpoints: every change made through supa-meta is read back
//! through supa-meta and through postgres-meta, which must agree.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::differential::same;
use crate::support::{PgMeta, get_supa, project, supa};

async fn send(
    router: &axum::Router,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = supa_meta::serve(router.clone(), project(), request).await;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Reads `path` through both and fails on any difference.
async fn agree(ours: &axum::Router, reference: &PgMeta, path: &str) -> Value {
    let (s1, a) = get_supa(ours, path).await;
    let (s2, b) = reference.get(path).await;
    assert_eq!(s1, s2, "{path}: {a} vs {b}");
    same(path, a.clone(), b);
    a
}

#[tokio::test]
async fn writes_round_trip_and_read_back_the_same_through_both() {
    let db = supa_testkit::fresh_database().await;
    let reference = PgMeta::start(&db.name);
    let ours = supa(&db.name);
    let ok = |(s, v): (StatusCode, Value)| {
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    };

    // Schemas.
    let schema = ok(send(&ours, Method::POST, "/schemas", json!({"name": "shop"})).await);
    assert_eq!(schema["name"], "shop");
    agree(&ours, &reference, &format!("/schemas/{}", schema["id"])).await;

    // Tables, with a comment, then RLS, a new name and a key.
    let table = ok(send(
        &ours,
        Method::POST,
        "/tables",
        json!({"name": "items", "schema": "shop", "comment": "for sale"}),
    )
    .await);
    assert_eq!(
        (&table["schema"], &table["comment"]),
        (&json!("shop"), &json!("for sale"))
    );
    let t = table["id"].clone();

    // Columns: identity, defaults (literal and expression), checks, uniques.
    let id = ok(send(&ours, Method::POST, "/columns", json!({
        "table_id": t, "name": "id", "type": "int8", "is_identity": true, "identity_generation": "ALWAYS", "is_primary_key": true
    })).await);
    assert_eq!(
        (&id["is_identity"], &id["identity_generation"]),
        (&json!(true), &json!("ALWAYS"))
    );
    let name = ok(send(&ours, Method::POST, "/columns", json!({
        "table_id": t, "name": "name", "type": "text", "default_value": "it's", "is_nullable": false,
        "check": "length(name) < 100", "comment": "what it is called", "is_unique": true
    })).await);
    assert_eq!(name["default_value"], "'it''s'::text");
    assert_eq!(name["check"], "length(name) < 100");
    let tags = ok(send(&ours, Method::POST, "/columns", json!({
        "table_id": t, "name": "tags", "type": "text[]", "default_value": "'{}'::text[]", "default_value_format": "expression"
    })).await);
    assert_eq!(tags["data_type"], "ARRAY");
    let price = ok(send(
        &ours,
        Method::POST,
        "/columns",
        json!({"table_id": t, "name": "price", "type": "numeric(10,2)"}),
    )
    .await);
    agree(&ours, &reference, &format!("/tables/{t}")).await;

    let changed = ok(send(&ours, Method::PATCH, &format!("/columns/{}", price["id"].as_str().unwrap()), json!({
        "name": "cost", "type": "int4", "default_value": "0", "default_value_format": "expression",
        "is_nullable": false, "comment": null, "check": "price >= 0"
    })).await);
    assert_eq!(
        (&changed["name"], &changed["format"], &changed["check"]),
        (&json!("cost"), &json!("int4"), &json!("cost >= 0"))
    );
    agree(
        &ours,
        &reference,
        &format!("/columns/{}", changed["id"].as_str().unwrap()),
    )
    .await;
    let plain = ok(send(
        &ours,
        Method::PATCH,
        &format!("/columns/{}", name["id"].as_str().unwrap()),
        json!({
            "is_unique": false, "check": null, "drop_default": true
        }),
    )
    .await);
    assert_eq!(
        (
            &plain["is_unique"],
            &plain["check"],
            &plain["default_value"]
        ),
        (&json!(false), &Value::Null, &Value::Null)
    );

    let table = ok(send(
        &ours,
        Method::PATCH,
        &format!("/tables/{t}"),
        json!({
            "rls_enabled": true, "rls_forced": true, "replica_identity": "FULL", "name": "products",
            "primary_keys": [{"name": "id"}, {"name": "name"}], "comment": null
        }),
    )
    .await);
    assert_eq!(
        (
            &table["name"],
            &table["rls_enabled"],
            &table["replica_identity"]
        ),
        (&json!("products"), &json!(true), &json!("FULL"))
    );
    assert_eq!(table["primary_keys"].as_array().unwrap().len(), 2);
    agree(&ours, &reference, &format!("/tables/{t}")).await;

    // Policies.
    let policy = ok(send(&ours, Method::POST, "/policies", json!({
        "name": "read all", "schema": "shop", "table": "products", "definition": "true", "command": "SELECT", "roles": ["public"]
    })).await);
    assert_eq!(policy["roles"], json!(["public"]));
    let policy = ok(send(
        &ours,
        Method::PATCH,
        &format!("/policies/{}", policy["id"]),
        json!({"name": "read some", "definition": "cost > 0"}),
    )
    .await);
    assert_eq!(
        (&policy["name"], &policy["definition"]),
        (&json!("read some"), &json!("(cost > 0)"))
    );
    agree(&ours, &reference, &format!("/policies/{}", policy["id"])).await;
    let (s, v) = send(&ours, Method::POST, "/policies", json!({"name": "x", "table": "products", "schema": "shop", "command": "SELECT; DROP TABLE shop.products"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // Functions and triggers.
    let function = ok(send(
        &ours,
        Method::POST,
        "/functions",
        json!({
            "name": "stamp", "schema": "shop", "return_type": "trigger", "language": "plpgsql",
            "definition": "BEGIN NEW.name := upper(NEW.name); RETURN NEW; END",
            "config_params": {"search_path": "shop, public"}
        }),
    )
    .await);
    assert_eq!(
        function["config_params"],
        json!({"search_path": "shop, public"})
    );
    let function = ok(send(
        &ours,
        Method::PATCH,
        &format!("/functions/{}", function["id"]),
        json!({
            "definition": "BEGIN NEW.name := lower(NEW.name); RETURN NEW; END"
        }),
    )
    .await);
    assert!(function["definition"].as_str().unwrap().contains("lower"));
    agree(&ours, &reference, &format!("/functions/{}", function["id"])).await;
    let adder = ok(send(&ours, Method::POST, "/functions", json!({
        "name": "add", "args": ["a integer", "b integer DEFAULT 1"], "return_type": "integer", "definition": "SELECT a + b", "behavior": "IMMUTABLE"
    })).await);
    assert_eq!(adder["argument_types"], "a integer, b integer DEFAULT 1");
    agree(&ours, &reference, &format!("/functions/{}", adder["id"])).await;

    let trigger = ok(send(&ours, Method::POST, "/triggers", json!({
        "name": "stamp_names", "schema": "shop", "table": "products", "function_schema": "shop", "function_name": "stamp",
        "activation": "BEFORE", "events": ["INSERT", "UPDATE"], "orientation": "ROW", "function_args": ["a'b"]
    })).await);
    assert_eq!(trigger["function_args"], json!(["a'b"]));
    let trigger = ok(send(
        &ours,
        Method::PATCH,
        &format!("/triggers/{}", trigger["id"]),
        json!({"enabled_mode": "DISABLED", "name": "stamp_all"}),
    )
    .await);
    assert_eq!(
        (&trigger["enabled_mode"], &trigger["name"]),
        (&json!("DISABLED"), &json!("stamp_all"))
    );
    agree(&ours, &reference, &format!("/triggers/{}", trigger["id"])).await;

    // Extensions, publications, roles, privileges.
    let extension = ok(send(
        &ours,
        Method::POST,
        "/extensions",
        json!({"name": "pg_trgm", "schema": "shop"}),
    )
    .await);
    assert_eq!(extension["schema"], "shop");
    ok(send(
        &ours,
        Method::PATCH,
        "/extensions/pg_trgm",
        json!({"schema": "public"}),
    )
    .await);
    agree(&ours, &reference, "/extensions/pg_trgm").await;

    let publication = ok(send(
        &ours,
        Method::POST,
        "/publications",
        json!({"name": "shop_changes", "publish_insert": true, "tables": ["shop.products"]}),
    )
    .await);
    assert_eq!(publication["tables"][0]["name"], "products");
    let publication = ok(send(
        &ours,
        Method::PATCH,
        &format!("/publications/{}", publication["id"]),
        json!({"publish_delete": true, "tables": []}),
    )
    .await);
    assert_eq!(publication["tables"], json!([]));
    agree(
        &ours,
        &reference,
        &format!("/publications/{}", publication["id"]),
    )
    .await;

    let role_name = format!("shop_clerk_{}", &db.name[5..]);
    let role = ok(send(&ours, Method::POST, "/roles", json!({
        "name": role_name, "can_login": true, "password": "p'w", "connection_limit": 4, "config": {"search_path": "shop, public"}
    })).await);
    assert_eq!(
        (&role["can_login"], &role["connection_limit"]),
        (&json!(true), &json!(4))
    );
    let role = ok(send(&ours, Method::PATCH, &format!("/roles/{}", role["id"]), json!({
        "can_create_db": true, "config": [{"op": "replace", "path": "statement_timeout", "value": "5s"}]
    })).await);
    assert_eq!(role["config"]["statement_timeout"], "5s");
    agree(&ours, &reference, &format!("/roles/{}", role["id"])).await;

    let granted = ok(send(&ours, Method::POST, "/table-privileges", json!([
        {"relation_id": t, "grantee": role_name, "privilege_type": "SELECT", "is_grantable": true}
    ])).await);
    let privileges = &granted[0]["privileges"];
    assert!(
        privileges
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["grantee"] == json!(role_name) && p["is_grantable"] == json!(true)),
        "{granted}"
    );
    let column_id = format!("{t}.2");
    let granted = ok(send(
        &ours,
        Method::POST,
        "/column-privileges",
        json!([
            {"column_id": column_id, "grantee": "public", "privilege_type": "UPDATE"}
        ]),
    )
    .await);
    assert!(
        granted
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["column_id"] == json!(column_id)
                && c["privileges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["grantee"] == "PUBLIC" && p["privilege_type"] == "UPDATE")),
        "{granted}"
    );
    ok(send(
        &ours,
        Method::DELETE,
        "/table-privileges",
        json!([{"relation_id": t, "grantee": role_name, "privilege_type": "SELECT"}]),
    )
    .await);
    agree(&ours, &reference, "/table-privileges?included_schemas=shop").await;
    agree(
        &ours,
        &reference,
        "/column-privileges?included_schemas=shop",
    )
    .await;

    // Deletes answer the object as it was; afterwards both say 404.
    for path in [
        format!("/triggers/{}", trigger["id"]),
        format!("/policies/{}", policy["id"]),
        format!("/publications/{}", publication["id"]),
        format!("/columns/{}", tags["id"].as_str().unwrap()),
        format!("/functions/{}", adder["id"]),
    ] {
        let (s, gone) = send(&ours, Method::DELETE, &path, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{path}: {gone}");
        assert_eq!(
            reference.get(&path).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
        assert_eq!(
            get_supa(&ours, &path).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // A schema with objects needs cascade.
    let (s, v) = send(
        &ours,
        Method::DELETE,
        &format!("/schemas/{}", schema["id"]),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("depend"), "{v}");
    ok(send(&ours, Method::DELETE, "/extensions/pg_trgm", json!({})).await);
    let (s, _) = send(
        &ours,
        Method::DELETE,
        &format!("/schemas/{}?cascade=true", schema["id"]),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        reference.get(&format!("/tables/{t}")).await.0,
        StatusCode::NOT_FOUND
    );
    ok(send(
        &ours,
        Method::DELETE,
        &format!("/roles/{}", role["id"]),
        json!({}),
    )
    .await);

    // Bad input: malformed bodies, unknown ids, names that try to escape.
    let (s, _) = send(&ours, Method::POST, "/tables", json!({"schema": "public"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = send(&ours, Method::PATCH, "/tables/1", json!({"name": "x"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let evil = "x\"; DROP SCHEMA public CASCADE; --";
    let made = ok(send(&ours, Method::POST, "/tables", json!({"name": evil})).await);
    assert_eq!(made["name"], evil);
    let (_, schemas) = get_supa(&ours, "/schemas").await;
    assert!(
        schemas
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "public")
    );
    let (s, _) = send(&ours, Method::POST, "/types", json!({"name": "x"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for path in [
        "/tables?limit=%ZZ",
        "/tables?included_schemas=%FF%FE",
        "/tables?&&=&limit",
    ] {
        let (s, v) = get_supa(&ours, path).await;
        assert!(
            s == StatusCode::OK || s == StatusCode::BAD_REQUEST,
            "{path}: {s} {v}"
        );
    }
}
