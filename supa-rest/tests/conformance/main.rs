//! The PostgREST conformance corpus (`../shared/conformance`, or
//! `SUPA_CONFORMANCE_DIR`) against `supa-rest`.
//!
//! Loads the fixtures into a throwaway cluster from the test kit with the
//! corpus's own `build/load.sh`, serves them with one engine configuration
//! per instance the corpus describes (README section 3), runs every HTTP
//! case in process, and prints pass counts per area and a final
//! `N passed, N failed` line. A JSON report goes to
//! `target/conformance/report.json`. The run fails when an area passes
//! fewer cases than its floor in `conformance/floors.txt`; cases listed in
//! `conformance/deferred.txt` are run and reported but not required.
//! `SUPA_CONFORMANCE_WRITE_FLOORS=1` records the current counts as floors.

#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use supa_core::Secret;
use supa_rest::{Auth, RestConfig, Service, TxEnd};

const AUTH_SECRET: &str = "reallyreallyreallyreallyverysafe";
const ALL_SCHEMAS: &[&str] = &[
    "test",
    "operators",
    "ordering",
    "pagination",
    "representations",
    "mutations",
    "rpc",
    "headers",
    "config",
    "openapi",
    "domain_representations",
    "observability",
    "auth",
    "v1",
    "v2",
    "SPECIAL \"@/\\#~_-",
    "تست",
];
const MULTI_SCHEMAS: &[&str] = &["v1", "v2", "SPECIAL \"@/\\#~_-"];
/// Cases that resolve their objects in `test` although labelled with a
/// mirror (README section 5).
const NO_PROFILE: &[i64] = &[1360, 1368, 1373, 1433, 1439];

fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SUPA_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    repo.join("../shared/conformance")
}

#[derive(Debug)]
struct Case {
    id: i64,
    area: String,
    label: Option<String>,
    raw: Value,
}

fn load_cases(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir.join("cases"))
        .expect("read cases")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("read case");
        let raw: Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let feature = raw["feature"].as_str().unwrap_or("");
        cases.push(Case {
            id: raw["id"].as_i64().unwrap_or(0),
            area: feature.split('/').next().unwrap_or("").to_owned(),
            label: raw["schema"].as_str().map(str::to_owned),
            raw,
        });
    }
    cases
}

fn build_database(dir: &Path) -> String {
    let cluster = supa_testkit::cluster();
    let pg = cluster.postgres();
    let db = format!("conformance_{}", std::process::id());
    let output = Command::new("bash")
        .arg(dir.join("build/load.sh"))
        .arg(&db)
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", pg.port().to_string())
        .env("PGUSER", supa_tenant::embedded::SUPERUSER)
        .env("PGPASSWORD", pg.password().expose())
        .output()
        .expect("run build/load.sh");
    assert!(
        output.status.success(),
        "load.sh failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    db
}

fn base_config(schemas: &[&str]) -> RestConfig {
    RestConfig {
        schemas: schemas.iter().map(|s| (*s).to_owned()).collect(),
        extra_search_path: vec!["public".into()],
        anon_role: Some(supa_tenant::embedded::SUPERUSER.into()),
        jwt_secret: None,
        jwt_aud: None,
        max_rows: None,
        pre_request: None,
        tx_end: TxEnd::Rollback,
        aggregates_enabled: true,
        plan_enabled: true,
        server_timing: true,
        trace_header: Some("X-Request-Id".into()),
        cors: Some(supa_rest::config::Cors::parse(
            "http://example.com, http://example2.com",
        )),
        ..RestConfig::default()
    }
}

fn auth_config() -> RestConfig {
    RestConfig {
        anon_role: Some("postgrest_test_anonymous".into()),
        pre_request: Some("auth.switch_role".into()),
        jwt_secret: Some(Secret::new(AUTH_SECRET.into())),
        ..base_config(ALL_SCHEMAS)
    }
}

/// Which instance a case runs on, and its config.
fn instance(case: &Case) -> (String, RestConfig) {
    let label = case.label.as_deref().unwrap_or("");
    let path = case.raw["request"]["path"].as_str().unwrap_or("");
    let (mut key, mut config) = if label == "openapi_no_schema_comment" {
        ("openapi_no_comment".to_owned(), {
            let mut c = auth_config();
            c.schemas = vec!["openapi_no_comment".into()];
            c
        })
    } else if matches!(label, "auth" | "openapi") || path == "/" {
        ("auth".to_owned(), auth_config())
    } else if label == "multi" || (1557..=1560).contains(&case.id) || case.id == 1574 {
        ("multi".to_owned(), base_config(MULTI_SCHEMAS))
    } else if label == "unicode" {
        ("unicode".to_owned(), base_config(&["تست"]))
    } else {
        ("bulk".to_owned(), base_config(ALL_SCHEMAS))
    };
    if let Some(Value::Object(overrides)) = case.raw.get("config") {
        let mut applied = false;
        for (k, v) in overrides {
            let text = match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            };
            match k.as_str() {
                "db-schemas" | "db-schema" => {
                    config.schemas = text
                        .map(|t| supa_rest::config::list(&t))
                        .unwrap_or_default();
                }
                "db-anon-role" => config.anon_role = text,
                "jwt-secret" => config.jwt_secret = text.map(Secret::new),
                "jwt-aud" => config.jwt_aud = text,
                // README section 3: emulated with the base64 of the same
                // secret, which decodes to the same key bytes.
                "jwt-secret-is-base64" => continue,
                "db-max-rows" => config.max_rows = text.and_then(|t| t.parse().ok()),
                "db-pre-request" => config.pre_request = text,
                "db-tx-end" => {
                    if let Some(t) = text.and_then(|t| t.parse().ok()) {
                        config.tx_end = t;
                    }
                }
                "db-extra-search-path" => {
                    config.extra_search_path = text
                        .map(|t| supa_rest::config::list(&t))
                        .unwrap_or_default();
                }
                "db-aggregates-enabled" => {
                    config.aggregates_enabled = text.as_deref() == Some("true")
                }
                "db-plan-enabled" => config.plan_enabled = text.as_deref() == Some("true"),
                "openapi-mode" => {
                    if let Some(m) = text.and_then(|t| t.parse().ok()) {
                        config.openapi_mode = m;
                    }
                }
                "openapi-security-active" => {
                    config.openapi_security_active = text.as_deref() == Some("true")
                }
                "openapi-server-proxy-uri" => config.openapi_server_proxy_uri = text,
                "db-root-spec" => config.root_spec = text,
                "server-timing-enabled" => config.server_timing = text.as_deref() == Some("true"),
                "server-trace-header" => config.trace_header = text.filter(|t| !t.is_empty()),
                "server-cors-allowed-origins" => {
                    config.cors = Some(supa_rest::config::Cors::parse(
                        text.as_deref().unwrap_or(""),
                    ))
                }
                _ => continue,
            }
            applied = true;
        }
        if applied {
            key = format!("case-{}", case.id);
        }
        // README section 3: 1764 runs without a JWT secret, its anon role kept.
        if case.id == 1764 {
            config.jwt_secret = None;
            key = format!("case-{}", case.id);
        }
        // bier capped rows and schemas for the `config` cases on a shared instance.
        if (1700..=1704).contains(&case.id) && config.schemas.is_empty() {
            config.schemas = vec!["test".into()];
        }
    }
    (key, config)
}

fn sign_hs256(payload: &Value, secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload.to_string());
    let input = format!("{header}.{body}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Percent-encodes what cannot go on the wire (README section 4.2).
fn wire_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let hex_follows = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        let keep =
            b.is_ascii_graphic() && !b"\"<>{}|\\^`".contains(&b) && (b != b'%' || hex_follows);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    out
}

fn build_request(case: &Case) -> Request<Body> {
    let req = &case.raw["request"];
    let method = req["method"].as_str().unwrap_or("GET");
    let path = req["path"].as_str().unwrap_or("/");
    let mut builder = Request::builder().method(method).uri(wire_path(path));
    let mut names: Vec<String> = Vec::new();
    if let Some(Value::Object(h)) = req.get("headers") {
        for (k, v) in h {
            builder = builder.header(
                k.as_str(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            );
            names.push(k.to_ascii_lowercase());
        }
    }
    let label = case.label.as_deref().unwrap_or("");
    let routed_away = matches!(
        label,
        "" | "public"
            | "test"
            | "multi"
            | "unicode"
            | "openapi"
            | "openapi_variadic"
            | "openapi_no_schema_comment"
    ) || (1557..=1560).contains(&case.id)
        || (1700..=1704).contains(&case.id)
        || case.id == 1574
        || NO_PROFILE.contains(&case.id)
        || path == "/";
    if !routed_away
        && !names
            .iter()
            .any(|n| n == "accept-profile" || n == "content-profile")
    {
        builder = builder.header("accept-profile", label);
        if !matches!(method, "GET" | "HEAD") {
            builder = builder.header("content-profile", label);
        }
    }
    if let Some(jwt) = req.get("jwt")
        && !names.iter().any(|n| n == "authorization")
    {
        builder = builder.header(
            "authorization",
            format!("Bearer {}", sign_hs256(&jwt["payload"], AUTH_SECRET)),
        );
    }
    let body = if let Some(raw) = req.get("body_raw").and_then(Value::as_str) {
        raw.to_owned()
    } else if let Some(j) = req.get("body_json") {
        j.to_string()
    } else {
        match req.get("body") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    };
    builder.body(Body::from(body)).expect("request")
}

struct Got {
    status: u16,
    /// A reason phrase of the answer's own (what HTTP/1 sends instead of
    /// the status code's usual one).
    reason: Option<String>,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn json_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    let mut rest = path.strip_prefix('$')?;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']")?;
            cur = cur.get(&r[..end])?;
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let idx: usize = r[..end].parse().ok()?;
            cur = cur.get(idx)?;
            rest = &r[end + 1..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        } else {
            return None;
        }
    }
    Some(cur)
}

fn check(expect: &Value, got: &Got) -> Vec<String> {
    let mut errs = Vec::new();
    let Value::Object(expect) = expect else {
        return vec!["no expect block".into()];
    };
    let body_text = String::from_utf8_lossy(&got.body).into_owned();
    let header = |n: &str| got.headers.get(&n.to_ascii_lowercase()).cloned();
    for (key, want) in expect {
        match key.as_str() {
            "status" => {
                if want.as_u64() != Some(u64::from(got.status)) {
                    errs.push(format!("status {} != {want}", got.status));
                }
            }
            "status_text" => {
                let canonical = axum::http::StatusCode::from_u16(got.status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                let reason = got.reason.as_deref().unwrap_or(canonical);
                if want.as_str() != Some(reason) {
                    errs.push(format!("status text {reason:?} != {want}"));
                }
            }
            "headers" => {
                for (name, value) in want.as_object().into_iter().flatten() {
                    let want_v = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    if header(name).as_deref() != Some(want_v.as_str()) {
                        errs.push(format!("header {name}: {:?} != {want_v:?}", header(name)));
                    }
                }
            }
            "headers_present" => {
                for name in want
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if header(name).is_none() {
                        errs.push(format!("header {name} missing"));
                    }
                }
            }
            "headers_absent" => {
                for name in want
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if header(name).is_some() {
                        errs.push(format!("header {name} present: {:?}", header(name)));
                    }
                }
            }
            "headers_match" => {
                for (name, re) in want.as_object().into_iter().flatten() {
                    let value = header(name).unwrap_or_default();
                    let ok = regex::Regex::new(re.as_str().unwrap_or(""))
                        .map(|r| r.is_match(&value))
                        .unwrap_or(false);
                    if !ok {
                        errs.push(format!("header {name}: {value:?} !~ {re}"));
                    }
                }
            }
            "headers_absent_in_value" => {
                for (name, subs) in want.as_object().into_iter().flatten() {
                    let value = header(name).unwrap_or_default();
                    let subs: Vec<&str> = match subs {
                        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                        Value::String(s) => vec![s.as_str()],
                        _ => vec![],
                    };
                    for s in subs {
                        if value.contains(s) {
                            errs.push(format!("header {name} contains {s:?}"));
                        }
                    }
                }
            }
            "headers_no_blank" => {
                if got.headers.values().any(|v| v.trim().is_empty()) {
                    errs.push("a header value is blank".into());
                }
            }
            "body_exact" | "body_json" => {
                let zero = matches!(want, Value::Null) || want.as_str() == Some("");
                if zero {
                    if !got.body.is_empty() {
                        errs.push(format!("body not empty: {body_text}"));
                    }
                } else {
                    match serde_json::from_slice::<Value>(&got.body) {
                        Ok(v) if json_eq(&v, want) => {}
                        Ok(v) => errs.push(format!("body {v} != {want}")),
                        Err(_) => errs.push(format!("body not JSON: {body_text:?}")),
                    }
                }
            }
            "body_contains" => {
                let subs: Vec<&str> = match want {
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    Value::String(s) => vec![s.as_str()],
                    _ => vec![],
                };
                for s in subs {
                    if !body_text.contains(s) {
                        errs.push(format!("body lacks {s:?}: {body_text}"));
                    }
                }
            }
            "body_raw" => {
                if want.as_str() != Some(body_text.as_str()) {
                    errs.push(format!("raw body {body_text:?} != {want}"));
                }
            }
            "body_jsonpath" => {
                let parsed: Value = serde_json::from_slice(&got.body).unwrap_or(Value::Null);
                for item in want.as_array().into_iter().flatten() {
                    let path = item["path"].as_str().unwrap_or("$");
                    let found = json_path(&parsed, path);
                    if let Some(eq) = item.get("equals") {
                        if !found.is_some_and(|f| json_eq(f, eq)) {
                            errs.push(format!("{path}: {found:?} != {eq}"));
                        }
                    } else if item.get("absent").is_some() {
                        if found.is_some() {
                            errs.push(format!("{path} present"));
                        }
                    } else if found.is_none() {
                        errs.push(format!("{path} absent"));
                    }
                }
            }
            other => errs.push(format!("runner: unknown expect key {other}")),
        }
    }
    errs
}

fn read_list(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (k.to_owned(), v.trim().to_owned())
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let dir = corpus_dir();
    if !dir.join("cases").is_dir() {
        // Skipped with its reason: the corpus lives beside the repository.
        println!(
            "SKIPPED: conformance corpus not found at {}; set SUPA_CONFORMANCE_DIR",
            dir.display()
        );
        return;
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance");
    let deferred = read_list(&here.join("deferred.txt"));
    let floors = read_list(&here.join("floors.txt"));
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));

    let cases = load_cases(&dir);
    let db = build_database(&dir);
    let pg = supa_testkit::cluster().postgres();
    let mut pg_config = tokio_postgres::Config::new();
    pg_config
        .host("127.0.0.1")
        .port(pg.port())
        .user(supa_tenant::embedded::SUPERUSER)
        .password(pg.password().expose())
        .dbname(&db);

    let mut services: HashMap<String, Arc<Service>> = HashMap::new();
    let mut per_area: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut report = Vec::new();
    let (mut passed, mut failed) = (0usize, 0usize);
    for case in &cases {
        if case.raw["request"]["kind"].as_str() == Some("cli") {
            continue;
        }
        if let Some(f) = &filter
            && !case.id.to_string().starts_with(f.as_str())
            && !case.area.starts_with(f.as_str())
        {
            continue;
        }
        let (key, config) = instance(case);
        let service = match services.get(&key) {
            Some(s) => s.clone(),
            None => {
                let pool = supa_rest::db::pool(pg_config.clone(), 4).expect("pool");
                let s = match Service::new(config, pool) {
                    Ok(s) => Arc::new(s),
                    Err(e) => {
                        eprintln!("case {}: cannot build its instance: {e}", case.id);
                        continue;
                    }
                };
                if key.starts_with("case-") {
                    s.clone()
                } else {
                    services.entry(key.clone()).or_insert(s).clone()
                }
            }
        };
        let response = service.handle(build_request(case), Auth::Header).await;
        let status = response.status().as_u16();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in response.headers() {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            let sep = if k.as_str() == "set-cookie" {
                "\n"
            } else {
                ", "
            };
            headers
                .entry(k.as_str().to_owned())
                .and_modify(|e| {
                    e.push_str(sep);
                    e.push_str(&v);
                })
                .or_insert(v);
        }
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        if !body.is_empty() && !headers.contains_key("content-length") && status != 204 {
            headers.insert("content-length".into(), body.len().to_string());
        }
        let got = Got {
            status,
            reason,
            headers,
            body,
        };
        let errs = check(&case.raw["expect"], &got);
        let is_deferred = deferred.contains_key(&case.id.to_string());
        let entry = per_area.entry(case.area.clone()).or_default();
        if errs.is_empty() {
            passed += 1;
            entry.0 += 1;
        } else {
            failed += 1;
            entry.1 += 1;
        }
        if is_deferred {
            entry.2 += 1;
        }
        report.push(json!({
            "id": case.id, "area": case.area, "passed": errs.is_empty(), "deferred": is_deferred,
            "errors": errs, "status": got.status,
            "body": String::from_utf8_lossy(&got.body).chars().take(600).collect::<String>(),
        }));
    }

    println!(
        "{:<24} {:>6} {:>6} {:>8} {:>7} {:>6}",
        "area", "pass", "fail", "deferred", "rate", "floor"
    );
    let mut below = Vec::new();
    for (area, (p, f, d)) in &per_area {
        let counted = (p + f).saturating_sub(*d).max(1);
        let rate = (*p as f64 / counted as f64 * 100.0).min(100.0);
        let floor: usize = floors.get(area).and_then(|v| v.parse().ok()).unwrap_or(0);
        println!("{area:<24} {p:>6} {f:>6} {d:>8} {rate:>6.1}% {floor:>6}");
        if filter.is_none() && *p < floor {
            below.push(format!("{area}: {p} passed < floor {floor}"));
        }
    }
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/conformance");
    std::fs::create_dir_all(&out_dir).ok();
    std::fs::write(
        out_dir.join("report.json"),
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .ok();
    if std::env::var("SUPA_CONFORMANCE_WRITE_FLOORS").is_ok() && filter.is_none() {
        let mut text = String::from("# Passing cases per area; `make test` fails below these.\n");
        for (area, (p, _, _)) in &per_area {
            text.push_str(&format!("{area} {p}\n"));
        }
        std::fs::write(here.join("floors.txt"), text).expect("write floors");
    }
    println!("{passed} passed, {failed} failed (report: target/conformance/report.json)");
    if !below.is_empty() {
        eprintln!("areas below their floor:\n  {}", below.join("\n  "));
        std::process::exit(1);
    }
}
