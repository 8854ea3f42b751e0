//! Every read endpoint of supa-meta against postgres-meta on the same
//! fixture database, field by field.

use serde_json::Value;

use crate::support::{PgMeta, fixture_database, get_supa, supa};

/// Fields that change between two reads of the same database, and why.
const VOLATILE: [(&str, &str); 5] = [
    (
        "active_connections",
        "counts the sessions open at the moment of the read",
    ),
    (
        "bytes",
        "relation sizes change as the statistics and free space maps are written",
    ),
    ("size", "the pretty form of `bytes`"),
    (
        "live_rows_estimate",
        "the statistics collector updates it asynchronously",
    ),
    (
        "dead_rows_estimate",
        "the statistics collector updates it asynchronously",
    ),
];

/// Settings that belong to the reading session, not to the database.
const SESSION_SETTINGS: [&str; 2] = [
    // Each service names its own connections.
    "application_name",
    // supa-meta bounds its statements; postgres-meta times out client-side.
    "statement_timeout",
];

/// Arrays postgres-meta aggregates without an order: compared as sets.
const UNORDERED: [&str; 5] = ["columns", "relationships", "privileges", "tables", "events"];

fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (field, _) in VOLATILE {
                map.remove(field);
            }
            for (key, v) in map.iter_mut() {
                normalize(v);
                if UNORDERED.contains(&key.as_str()) {
                    sort(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn sort(value: &mut Value) {
    if let Value::Array(items) = value {
        items.sort_by_cached_key(|v| v.to_string());
    }
}

/// Lists are compared as sets (postgres-meta leaves their order to the
/// plan); `config` keeps its order, which postgres-meta does define.
fn prepare(path: &str, mut body: Value) -> Value {
    if path.starts_with("/config") {
        if let Value::Array(items) = &mut body {
            // Names with a dot are registered by the libraries a session
            // happened to load (an FDW handler, say).
            items.retain(|s| {
                let name = s["name"].as_str().unwrap_or("");
                !SESSION_SETTINGS.contains(&name) && !name.contains('.')
            });
        }
        normalize(&mut body);
        return body;
    }
    normalize(&mut body);
    sort(&mut body);
    body
}

/// Where two JSON values first differ, as `path: left != right` lines.
fn differences(path: &str, left: &Value, right: &Value, out: &mut Vec<String>) {
    match (left, right) {
        (Value::Object(a), Value::Object(b)) => {
            // Same fields in the same order (both parsers keep it).
            let (ka, kb): (Vec<_>, Vec<_>) = (a.keys().collect(), b.keys().collect());
            if ka != kb && ka.len() == kb.len() {
                out.push(format!("{path}: fields in another order: {ka:?} vs {kb:?}"));
            }
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => differences(&format!("{path}.{k}"), va, vb, out),
                    None => out.push(format!("{path}.{k}: only in supa-meta ({va})")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: only in postgres-meta ({})", b[k]));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                differences(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            out.push(format!(
                "{path}: {} items in supa-meta, {} in postgres-meta",
                a.len(),
                b.len()
            ));
            let show = |items: &Vec<Value>| {
                items
                    .iter()
                    .map(|v| v.get("name").or(v.get("id")).unwrap_or(v).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push(format!("  supa-meta:     {}", show(a)));
            out.push(format!("  postgres-meta: {}", show(b)));
        }
        _ if left != right => out.push(format!("{path}: {left} != {right}")),
        _ => {}
    }
}

/// Fails, naming every field, when the two answers for `path` differ.
pub(crate) fn same(path: &str, ours: Value, theirs: Value) {
    let mut found = Vec::new();
    differences(
        path,
        &prepare(path, ours),
        &prepare(path, theirs),
        &mut found,
    );
    assert!(
        found.is_empty(),
        "supa-meta differs from postgres-meta:\n{}",
        found.join("\n")
    );
}

#[tokio::test]
async fn every_read_endpoint_matches_postgres_meta() {
    let database = fixture_database().await;
    let reference = PgMeta::start(&database);
    let ours = supa(&database);

    // Ids of the fixture's objects, for the lookups.
    let (_, tables) = reference.get("/tables?included_schemas=public").await;
    let users = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "users")
        .expect("the fixture's users table")["id"]
        .clone();
    let first_of =
        |body: &Value, field: &str| body[0][field].to_string().trim_matches('"').to_owned();
    let (_, views) = reference.get("/views").await;
    let (_, functions) = reference.get("/functions").await;
    let (_, policies) = reference.get("/policies").await;
    let (_, triggers) = reference.get("/triggers").await;
    let (_, publications) = reference.get("/publications").await;
    let (_, indexes) = reference.get("/indexes").await;
    let (_, schemas) = reference.get("/schemas").await;
    let (_, roles) = reference.get("/roles").await;

    let mut paths: Vec<String> = [
        "/schemas",
        "/schemas?include_system_schemas=true",
        "/tables",
        "/tables?include_columns=false",
        "/tables?included_schemas=core",
        "/tables?excluded_schemas=core",
        "/tables?include_system_schemas=true",
        "/columns",
        "/columns?included_schemas=core",
        "/views",
        "/views?include_columns=false",
        "/materialized-views",
        "/materialized-views?include_columns=true",
        "/foreign-tables",
        "/foreign-tables?include_columns=false",
        "/extensions",
        "/extensions/pgcrypto",
        "/extensions/no_such_extension",
        "/functions",
        "/functions?included_schemas=core",
        "/roles",
        "/roles?include_default_roles=true",
        "/policies",
        "/triggers",
        "/types",
        "/types?include_array_types=true",
        "/types?included_schemas=core",
        "/publications",
        "/table-privileges",
        "/table-privileges?included_schemas=core",
        "/column-privileges",
        "/column-privileges?included_schemas=public",
        "/indexes",
        "/config",
        "/config/version",
        "/tables/1",
        "/functions/1",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    paths.extend([
        format!("/tables/{users}"),
        format!("/columns/{users}.2"),
        format!("/columns/{users}.99"),
        format!("/views/{}", first_of(&views, "id")),
        format!("/functions/{}", first_of(&functions, "id")),
        format!("/policies/{}", first_of(&policies, "id")),
        format!("/triggers/{}", first_of(&triggers, "id")),
        format!("/publications/{}", first_of(&publications, "id")),
        format!("/indexes/{}", first_of(&indexes, "id")),
        format!("/schemas/{}", first_of(&schemas, "id")),
        format!("/roles/{}", first_of(&roles, "id")),
    ]);

    let mut report = Vec::new();
    for path in &paths {
        let (their_status, theirs) = reference.get(path).await;
        let (our_status, body) = get_supa(&ours, path).await;
        if their_status != our_status {
            report.push(format!(
                "{path}: status {our_status} != {their_status} ({body} vs {theirs})"
            ));
            continue;
        }
        let mut found = Vec::new();
        differences(
            path,
            &prepare(path, body),
            &prepare(path, theirs),
            &mut found,
        );
        report.extend(found);
    }
    // Paging picks rows in an order postgres-meta leaves to the plan, so
    // only the sizes of the pages are comparable.
    for path in [
        "/tables?limit=2&offset=1",
        "/columns?limit=5",
        "/functions?limit=3&offset=2",
    ] {
        let (_, theirs) = reference.get(path).await;
        let (_, body) = get_supa(&ours, path).await;
        if body.as_array().map(Vec::len) != theirs.as_array().map(Vec::len) {
            report.push(format!("{path}: page sizes differ"));
        }
    }
    assert!(
        report.is_empty(),
        "supa-meta differs from postgres-meta:\n{}",
        report.join("\n")
    );
}
