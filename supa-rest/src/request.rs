//! An HTTP request read the way PostgREST reads it: the target, the query
//! parameters sorted into select/filters/order/ranges, the `Prefer`
//! preferences, the wanted media type and the schema (profile).

use std::collections::BTreeMap;

use crate::Error;
use crate::grammar::{self, Filter, LogicTree, OrderTerm, SelectItem};

/// What the path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/` (OpenAPI).
    Root,
    /// `/name`.
    Relation(String),
    /// `/rpc/name`.
    Rpc(String),
}

/// Response media types PostgREST produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// `application/json`.
    Json,
    /// `application/vnd.pgrst.object+json`.
    Object {
        /// `;nulls=stripped`.
        strip_nulls: bool,
    },
    /// `application/vnd.pgrst.array+json;nulls=stripped`.
    ArrayStripped,
    /// `text/csv`.
    Csv,
    /// `text/plain` (scalar results).
    Text,
    /// `application/octet-stream` (scalar bytea results).
    Binary,
    /// `application/openapi+json`.
    OpenApi,
    /// `application/geo+json` (PostGIS): a `FeatureCollection`.
    GeoJson,
}

impl Media {
    /// The `Content-Type` value.
    pub fn content_type(self) -> &'static str {
        match self {
            Media::Json => "application/json; charset=utf-8",
            Media::Object { strip_nulls: false } => {
                "application/vnd.pgrst.object+json; charset=utf-8"
            }
            Media::Object { strip_nulls: true } => {
                "application/vnd.pgrst.object+json;nulls=stripped; charset=utf-8"
            }
            Media::ArrayStripped => {
                "application/vnd.pgrst.array+json;nulls=stripped; charset=utf-8"
            }
            Media::Csv => "text/csv; charset=utf-8",
            Media::Text => "text/plain; charset=utf-8",
            Media::Binary => "application/octet-stream",
            Media::OpenApi => "application/openapi+json; charset=utf-8",
            Media::GeoJson => "application/geo+json; charset=utf-8",
        }
    }

    /// Whether the body is a single object rather than an array.
    pub fn is_singular(self) -> bool {
        matches!(self, Media::Object { .. })
    }
}

/// `Prefer: return=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    /// No body.
    Minimal,
    /// No body, but `Location`.
    HeadersOnly,
    /// The affected rows.
    Representation,
}

/// `Prefer: count=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// `count(*)`.
    Exact,
    /// The planner's estimate.
    Planned,
    /// Exact up to max-rows, then planned.
    Estimated,
}

/// `Prefer: resolution=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// `ON CONFLICT DO UPDATE`.
    MergeDuplicates,
    /// `ON CONFLICT DO NOTHING`.
    IgnoreDuplicates,
}

/// The `Prefer` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefer {
    /// `return=`.
    pub ret: Option<Return>,
    /// `count=`.
    pub count: Option<Count>,
    /// `resolution=`.
    pub resolution: Option<Resolution>,
    /// `missing=default`.
    pub missing_default: bool,
    /// `tx=commit|rollback`.
    pub tx: Option<bool>,
    /// `handling=strict`.
    pub strict: bool,
    /// `handling=` as given (strict: true).
    pub handling: Option<bool>,
    /// `max-affected=N`.
    pub max_affected: Option<i64>,
    /// `params=single-object`.
    pub single_object: bool,
    /// `timezone=`.
    pub timezone: Option<String>,
    /// Preferences not understood (an error under `handling=strict`).
    pub invalid: Vec<String>,
}

impl Prefer {
    /// Parses every `Prefer` header value.
    pub fn parse<'a>(values: impl Iterator<Item = &'a str>) -> Self {
        let mut p = Prefer::default();
        for value in values {
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match item {
                    "return=minimal" => p.ret = Some(Return::Minimal),
                    "return=headers-only" => p.ret = Some(Return::HeadersOnly),
                    "return=representation" => p.ret = Some(Return::Representation),
                    "count=exact" => p.count = Some(Count::Exact),
                    "count=planned" => p.count = Some(Count::Planned),
                    "count=estimated" => p.count = Some(Count::Estimated),
                    "resolution=merge-duplicates" => {
                        p.resolution = Some(Resolution::MergeDuplicates)
                    }
                    "resolution=ignore-duplicates" => {
                        p.resolution = Some(Resolution::IgnoreDuplicates)
                    }
                    "missing=default" => p.missing_default = true,
                    "missing=null" => p.missing_default = false,
                    "tx=commit" => p.tx = Some(true),
                    "tx=rollback" => p.tx = Some(false),
                    "handling=strict" => {
                        p.strict = true;
                        p.handling = Some(true);
                    }
                    "handling=lenient" => {
                        p.strict = false;
                        p.handling = Some(false);
                    }
                    "params=single-object" => p.single_object = true,
                    other => {
                        if let Some(n) = other.strip_prefix("max-affected=")
                            && let Ok(n) = n.parse()
                        {
                            p.max_affected = Some(n);
                        } else if let Some(tz) = other.strip_prefix("timezone=") {
                            p.timezone = Some(tz.to_owned());
                        } else {
                            p.invalid.push(other.to_owned());
                        }
                    }
                }
            }
        }
        p
    }
}

/// Query parameters sorted by role.
#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    /// `select` (absent: `*`).
    pub select: Option<Vec<SelectItem>>,
    /// Root-level filters.
    pub filters: Vec<Filter>,
    /// Root-level `and`/`or` trees.
    pub logic: Vec<LogicTree>,
    /// Filters on embedded resources, by relation path.
    pub embedded_filters: Vec<(Vec<String>, Filter)>,
    /// `order`.
    pub order: Vec<OrderTerm>,
    /// `order`/`limit`/`offset`/`and`/`or` of embedded resources.
    pub embedded_other: Vec<(Vec<String>, String, String)>,
    /// `limit`.
    pub limit: Option<i64>,
    /// `offset`.
    pub offset: Option<i64>,
    /// `on_conflict`.
    pub on_conflict: Option<Vec<String>>,
    /// `columns`.
    pub columns: Option<Vec<String>>,
    /// Every other key=value pair in order (RPC arguments of GET are
    /// among them; the caller decides).
    pub raw: Vec<(String, String)>,
}

/// Decodes a query string PostgREST's way: `+` is a space, `%XX` bytes.
pub fn decode_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn parse_int(name: &str, value: &str) -> Result<i64, Error> {
    value.parse::<i64>().map_err(|_| {
        Error::parse(
            format!("\"failed to parse {name} parameter ({value})\" (line 1, column 1)"),
            "unexpected input expecting digit".to_owned(),
        )
    })
}

impl QueryParams {
    /// Sorts `pairs`; `rpc_args` are names that are function arguments on a
    /// GET `/rpc` call and so are not filters.
    pub fn parse(pairs: &[(String, String)], rpc_args: &[String]) -> Result<Self, Error> {
        let mut q = QueryParams::default();
        for (key, value) in pairs {
            match key.as_str() {
                "select" => q.select = Some(grammar::parse_select(value)?),
                "order" => q.order = grammar::parse_order(value)?,
                "limit" => q.limit = Some(parse_int("limit", value)?),
                "offset" => q.offset = Some(parse_int("offset", value)?),
                "on_conflict" => {
                    q.on_conflict = Some(grammar::parse_columns("on_conflict", value)?)
                }
                "columns" => q.columns = Some(grammar::parse_columns("columns", value)?),
                "and" | "or" | "not.and" | "not.or" => {
                    q.logic.push(grammar::parse_logic(key, value)?)
                }
                _ if rpc_args.iter().any(|a| a == key) => q.raw.push((key.clone(), value.clone())),
                _ => {
                    let (rels, last) = grammar::split_embedded_key(key);
                    if rels.is_empty() {
                        q.filters.push(grammar::parse_filter(key, value)?);
                    } else if matches!(last, "order" | "limit" | "offset" | "and" | "or") {
                        q.embedded_other.push((
                            rels.iter().map(|s| (*s).to_owned()).collect(),
                            last.to_owned(),
                            value.clone(),
                        ));
                    } else {
                        q.embedded_filters.push((
                            rels.iter().map(|s| (*s).to_owned()).collect(),
                            grammar::parse_filter(last, value)?,
                        ));
                    }
                }
            }
        }
        Ok(q)
    }
}

/// Picks the response media type from `Accept`; `None` when nothing
/// acceptable is offered (406 PGRST107).
pub fn negotiate(accept: Option<&str>, allowed: &[Media]) -> Result<Media, Error> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(allowed[0]);
    };
    for mime in preferences(accept) {
        let media = match mime.as_str() {
            "*/*" | "application/*" => Some(allowed[0]),
            other => builtin(other),
        };
        if let Some(m) = media
            && allowed.contains(&m)
        {
            return Ok(m);
        }
    }
    let names: Vec<String> = accept.split(',').map(|s| s.trim().to_owned()).collect();
    Err(Error::api(
        406,
        "PGRST107",
        format!(
            "None of these media types are available: {}",
            names.join(", ")
        ),
    ))
}

/// `EXPLAIN` options PostgREST accepts in `options=`, in its order.
const PLAN_OPTIONS: [&str; 5] = ["analyze", "verbose", "settings", "buffers", "wal"];

/// `Accept: application/vnd.pgrst.plan[+json|+text]; for="..."; options=a|b`:
/// the execution plan of the statement that would answer `for`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRequest {
    /// JSON rather than text.
    pub json: bool,
    /// The media type the planned statement answers, in full form.
    pub for_media: String,
    /// `EXPLAIN` options, each one of [`PLAN_OPTIONS`].
    pub options: Vec<&'static str>,
}

impl PlanRequest {
    /// Reads the first media type of `accept`, if it asks for a plan;
    /// an unknown option is a 406 as PostgREST answers it.
    pub fn parse(accept: &str) -> Result<Option<Self>, Error> {
        let first = accept.split(',').next().unwrap_or("").trim();
        let mut parts = first.split(';').map(str::trim);
        let json = match parts.next().unwrap_or("").to_ascii_lowercase().as_str() {
            "application/vnd.pgrst.plan+json" => true,
            "application/vnd.pgrst.plan" | "application/vnd.pgrst.plan+text" => false,
            _ => return Ok(None),
        };
        let mut plan = Self {
            json,
            for_media: "application/json".to_owned(),
            options: Vec::new(),
        };
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "for" => {
                    plan.for_media = match value.to_ascii_lowercase().as_str() {
                        "application/vnd.pgrst.object" => "application/vnd.pgrst.object+json",
                        "application/vnd.pgrst.array" => "application/vnd.pgrst.array+json",
                        other => other,
                    }
                    .to_owned()
                }
                "options" => {
                    for option in value.split('|') {
                        let Some(known) = PLAN_OPTIONS.iter().find(|o| **o == option) else {
                            return Err(Error::api(
                                406,
                                "PGRST107",
                                format!("None of these media types are available: {first}"),
                            ));
                        };
                        if !plan.options.contains(known) {
                            plan.options.push(known);
                        }
                    }
                }
                _ => {}
            }
        }
        plan.options
            .sort_by_key(|o| PLAN_OPTIONS.iter().position(|p| p == o));
        Ok(Some(plan))
    }

    /// The answer's `Content-Type`.
    pub fn content_type(&self) -> String {
        let mut t = format!(
            "application/vnd.pgrst.plan+{}; for=\"{}\"",
            if self.json { "json" } else { "text" },
            self.for_media
        );
        if !self.options.is_empty() {
            t.push_str("; options=");
            t.push_str(&self.options.join("|"));
        }
        t.push_str("; charset=utf-8");
        t
    }

    /// `EXPLAIN (...)` with the options and format.
    pub fn explain_prefix(&self) -> String {
        let mut parts: Vec<String> = self
            .options
            .iter()
            .map(|o| o.to_ascii_uppercase())
            .collect();
        parts.push(format!(
            "FORMAT {}",
            if self.json { "JSON" } else { "TEXT" }
        ));
        format!("EXPLAIN ({}) ", parts.join(", "))
    }
}

/// The media types of an `Accept` header, most preferred first (by
/// quality, then position), lower-cased, `;nulls=stripped` kept.
pub fn preferences(accept: &str) -> Vec<String> {
    let mut entries: Vec<(f32, usize, String)> = accept
        .split(',')
        .enumerate()
        .map(|(i, part)| {
            let mut pieces = part.split(';').map(str::trim);
            let mut mime = pieces.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0;
            for p in pieces {
                if let Some(v) = p.strip_prefix("q=") {
                    q = v.parse().unwrap_or(1.0);
                } else if p.eq_ignore_ascii_case("nulls=stripped") {
                    mime.push_str(";nulls=stripped");
                }
            }
            (q, i, mime)
        })
        .collect();
    entries.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    entries.into_iter().map(|(_, _, m)| m).collect()
}

/// The media type PostgREST itself produces for a name, if it does.
pub fn builtin(mime: &str) -> Option<Media> {
    Some(match mime {
        "application/json" => Media::Json,
        "application/vnd.pgrst.object+json" | "application/vnd.pgrst.object" => {
            Media::Object { strip_nulls: false }
        }
        "application/vnd.pgrst.object+json;nulls=stripped" => Media::Object { strip_nulls: true },
        "application/vnd.pgrst.array+json;nulls=stripped"
        | "application/vnd.pgrst.array;nulls=stripped" => Media::ArrayStripped,
        "application/vnd.pgrst.array+json" | "application/vnd.pgrst.array" => Media::Json,
        "text/csv" => Media::Csv,
        "text/plain" | "text/*" => Media::Text,
        "application/octet-stream" => Media::Binary,
        "application/openapi+json" => Media::OpenApi,
        "application/geo+json" => Media::GeoJson,
        _ => return None,
    })
}

/// The `Range` header's `a-b` (or `a-`), digits only as PostgREST reads
/// it; anything else (a sign, a number past `i64`) is no range at all.
pub fn parse_range(value: &str) -> Option<(i64, Option<i64>)> {
    let v = value.trim().strip_prefix("items=").unwrap_or(value.trim());
    let (a, b) = v.split_once('-')?;
    let number = |s: &str| {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse::<i64>().ok()
    };
    let a = number(a)?;
    let b = if b.trim().is_empty() {
        None
    } else {
        Some(number(b)?)
    };
    Some((a, b))
}

/// Lower-cased request headers as a JSON object (repeated names joined).
pub fn headers_json(headers: &axum::http::HeaderMap) -> String {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_ascii_lowercase())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
}

/// Cookies as a JSON object.
pub fn cookies_json(headers: &axum::http::HeaderMap) -> String {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for value in headers.get_all(axum::http::header::COOKIE) {
        for pair in String::from_utf8_lossy(value.as_bytes()).split(';') {
            if let Some((k, v)) = pair.split_once('=') {
                map.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_and_accept() {
        let p =
            Prefer::parse(["return=representation, count=exact", "tx=rollback,bogus"].into_iter());
        assert_eq!(p.ret, Some(Return::Representation));
        assert_eq!(p.count, Some(Count::Exact));
        assert_eq!(p.tx, Some(false));
        assert_eq!(p.invalid, ["bogus"]);
        let all = [
            Media::Json,
            Media::Csv,
            Media::Object { strip_nulls: false },
        ];
        assert_eq!(negotiate(Some("text/csv"), &all).unwrap(), Media::Csv);
        assert_eq!(negotiate(None, &all).unwrap(), Media::Json);
        assert_eq!(
            negotiate(Some("text/csv;q=0.5, application/json"), &all).unwrap(),
            Media::Json
        );
        let e = negotiate(Some("text/unknowntype"), &all).unwrap_err();
        assert_eq!(e.status(), 406);
        assert_eq!(
            e.body().message,
            "None of these media types are available: text/unknowntype"
        );
    }

    #[test]
    fn plan_media_types_name_their_target_and_options() {
        let p = PlanRequest::parse(
            "application/vnd.pgrst.plan+json; for=\"application/vnd.pgrst.object\"; options=verbose|analyze",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            p.content_type(),
            "application/vnd.pgrst.plan+json; for=\"application/vnd.pgrst.object+json\"; options=analyze|verbose; charset=utf-8"
        );
        assert_eq!(
            p.explain_prefix(),
            "EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) "
        );
        let text = PlanRequest::parse("application/vnd.pgrst.plan")
            .unwrap()
            .unwrap();
        assert!(!text.json);
        assert_eq!(text.for_media, "application/json");
        assert_eq!(PlanRequest::parse("application/json").unwrap(), None);
        let e = PlanRequest::parse("application/vnd.pgrst.plan; options=drop").unwrap_err();
        assert_eq!(e.status(), 406);
    }

    #[test]
    fn query_strings_decode_plus_as_space() {
        assert_eq!(
            decode_query("a=b+c&d=%2B"),
            [("a".into(), "b c".into()), ("d".into(), "+".into())]
        );
        assert_eq!(parse_range("0-9"), Some((0, Some(9))));
        assert_eq!(parse_range("items=5-"), Some((5, None)));
        assert_eq!(parse_range("x"), None);
        assert_eq!(parse_range("0--1"), None);
        assert_eq!(parse_range("+1-2"), None);
        assert_eq!(parse_range("0-99999999999999999999"), None);
    }
}
