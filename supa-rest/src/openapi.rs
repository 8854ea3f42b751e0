//! The OpenAPI (Swagger 2.0) document PostgREST serves at `/`: one path
//! and one definition per relation of the request's schema, one path per
//! function, with descriptions taken from `COMMENT ON`, in the shape
//! Supabase's API docs and client generators read.
//!
//! What is listed follows `openapi-mode`: under `follow-privileges` only
//! the relations and functions the request's role may use (the caller
//! finds those in the request's own transaction), under
//! `ignore-privileges` everything.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::schema::{Column, Function, Relation, SchemaCache};

/// `openapi-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenApiMode {
    /// Lists what the request's role has privileges on.
    #[default]
    FollowPrivileges,
    /// Lists everything in the schema.
    IgnorePrivileges,
    /// `/` answers 404 PGRST126.
    Disabled,
}

impl std::str::FromStr for OpenApiMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "follow-privileges" => Ok(Self::FollowPrivileges),
            "ignore-privileges" => Ok(Self::IgnorePrivileges),
            "disabled" => Ok(Self::Disabled),
            other => Err(format!(
                "invalid openapi-mode {other:?}: expected follow-privileges, ignore-privileges or disabled"
            )),
        }
    }
}

/// Where clients reach the API, for `host`, `basePath` and `schemes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub host: String,
    /// The path prefix, `/` at least.
    pub base_path: String,
}

impl Server {
    /// Reads `openapi-server-proxy-uri` (`https://example.com/rest/v1/`).
    pub fn from_uri(uri: &str) -> Option<Self> {
        let (scheme, rest) = uri.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return None;
        }
        let host = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if scheme == "https" { 443 } else { 80 })
        };
        Some(Self {
            scheme,
            host,
            base_path: path.to_owned(),
        })
    }
}

/// What the document is built for.
#[derive(Debug)]
pub struct Spec<'a> {
    /// The schema cache.
    pub cache: &'a SchemaCache,
    /// The request's schema.
    pub schema: &'a str,
    /// `oid`s of the relations and functions to list; `None` lists all.
    pub visible: Option<&'a HashSet<u32>>,
    /// Where the API is reached.
    pub server: Server,
    /// `openapi-security-active`.
    pub security_active: bool,
}

const MIME_LIST: [&str; 4] = [
    "application/json",
    "application/vnd.pgrst.object+json;nulls=stripped",
    "application/vnd.pgrst.object+json",
    "text/csv",
];

/// The Swagger type of a PostgreSQL type name (`None` for json/jsonb,
/// which can be anything).
fn swagger_type(t: &str) -> Option<&'static str> {
    Some(match t {
        "character varying" | "character" | "text" => "string",
        "boolean" => "boolean",
        "smallint" | "integer" | "bigint" => "integer",
        "numeric" | "real" | "double precision" => "number",
        "json" | "jsonb" => return None,
        _ if t.ends_with("[]") => "array",
        _ => "string",
    })
}

/// `format`: the integer widths get Swagger's names, the rest keep
/// PostgreSQL's.
fn format_of(t: &str) -> &str {
    match t {
        "smallint" | "integer" => "int32",
        "bigint" => "int64",
        other => other,
    }
}

/// `items` of an array type: the element's Swagger type.
fn items_of(t: &str) -> Option<Value> {
    let element = t.strip_suffix("[]")?;
    let mut items = Map::new();
    if let Some(ty) = swagger_type(element) {
        items.insert("type".into(), ty.into());
    }
    Some(Value::Object(items))
}

/// A column default as a JSON value, when it is a literal: strings lose
/// their `'...'::type` dressing, numbers and booleans are read as JSON.
fn default_value(col: &Column) -> Option<Value> {
    let raw = col.default.as_deref()?;
    let text = if swagger_type(&col.data_type) == Some("string") {
        let bare = raw
            .strip_suffix(&format!("::{}", col.data_type))
            .map_or(raw, |d| d.trim_matches('\''));
        serde_json::to_string(bare).ok()?
    } else {
        raw.to_owned()
    };
    serde_json::from_str(&text).ok()
}

/// Splits a comment into its first line (summary) and the rest
/// (description, leading blank lines dropped).
fn summary_and_rest(text: &str) -> (&str, Option<&str>) {
    match text.split_once('\n') {
        Some((first, rest)) => {
            let rest = rest.trim_start_matches('\n');
            (first, (!rest.is_empty()).then_some(rest))
        }
        None => (text, None),
    }
}

fn reference(kind: &str, name: &str) -> Value {
    json!({ "$ref": format!("#/{kind}/{name}") })
}

impl Spec<'_> {
    fn shows(&self, oid: u32) -> bool {
        self.visible.is_none_or(|v| v.contains(&oid))
    }

    /// The `table.column` a single-column foreign key of `col` points to.
    fn foreign_key_note(&self, rel: &Relation, col: &Column) -> Option<String> {
        let parent = (rel.schema.clone(), rel.name.clone());
        let (outgoing, _) = self.cache.keys_of(&parent);
        let key = outgoing
            .into_iter()
            .find(|f| f.from_columns == [col.name.as_str()] && f.to_columns.len() == 1)?;
        let (table, column) = (&key.to.1, &key.to_columns[0]);
        Some(format!(
            "This is a Foreign Key to `{table}.{column}`.<fk table='{table}' column='{column}'/>"
        ))
    }

    fn property(&self, rel: &Relation, col: &Column) -> Value {
        let mut p = Map::new();
        if let Some(d) = default_value(col) {
            p.insert("default".into(), d);
        }
        let mut notes = vec!["Note:".to_owned()];
        if rel.primary_key.contains(&col.name) {
            notes.push("This is a Primary Key.<pk/>".into());
        }
        notes.extend(self.foreign_key_note(rel, col));
        let description = if notes.len() > 1 {
            let lead = col
                .description
                .as_ref()
                .map(|d| format!("{d}\n\n"))
                .unwrap_or_default();
            Some(lead + &notes.join("\n"))
        } else {
            col.description.clone()
        };
        if let Some(d) = description {
            p.insert("description".into(), d.into());
        }
        if !col.enum_values.is_empty() {
            p.insert("enum".into(), json!(col.enum_values));
        }
        p.insert("format".into(), format_of(&col.data_type).into());
        if let Some(n) = col.max_length {
            p.insert("maxLength".into(), n.into());
        }
        if let Some(t) = swagger_type(&col.data_type) {
            p.insert("type".into(), t.into());
        }
        if let Some(items) = items_of(&col.data_type) {
            p.insert("items".into(), items);
        }
        Value::Object(p)
    }

    fn definition(&self, rel: &Relation) -> Value {
        let mut d = Map::new();
        if let Some(desc) = &rel.description {
            d.insert("description".into(), desc.clone().into());
        }
        let required: Vec<&str> = rel
            .columns
            .iter()
            .filter(|c| !c.nullable)
            .map(|c| c.name.as_str())
            .collect();
        if !required.is_empty() {
            d.insert("required".into(), json!(required));
        }
        let properties: Map<String, Value> = rel
            .columns
            .iter()
            .map(|c| (c.name.clone(), self.property(rel, c)))
            .collect();
        d.insert("properties".into(), Value::Object(properties));
        d.insert("type".into(), "object".into());
        Value::Object(d)
    }

    fn table_path(rel: &Relation) -> Value {
        let row_filters: Vec<Value> = rel
            .columns
            .iter()
            .map(|c| reference("parameters", &format!("rowFilter.{}.{}", rel.name, c.name)))
            .collect();
        let refs = |names: &[&str]| -> Vec<Value> {
            names.iter().map(|n| reference("parameters", n)).collect()
        };
        let body = format!("body.{}", rel.name);
        let operation = |parameters: Vec<Value>, responses: Value| {
            let mut op = Map::new();
            op.insert("tags".into(), json!([rel.name]));
            if let Some(desc) = &rel.description {
                let (summary, rest) = summary_and_rest(desc);
                op.insert("summary".into(), summary.into());
                if let Some(rest) = rest {
                    op.insert("description".into(), rest.into());
                }
            }
            op.insert("parameters".into(), Value::Array(parameters));
            op.insert("responses".into(), responses);
            Value::Object(op)
        };
        let mut path = Map::new();
        let get_params = [
            row_filters.clone(),
            refs(&[
                "select",
                "order",
                "range",
                "rangeUnit",
                "offset",
                "limit",
                "preferCount",
            ]),
        ]
        .concat();
        path.insert(
            "get".into(),
            operation(
                get_params,
                json!({
                    "200": {
                        "description": "OK",
                        "schema": { "type": "array", "items": reference("definitions", &rel.name) }
                    },
                    "206": { "description": "Partial Content" }
                }),
            ),
        );
        if rel.insertable || rel.updatable || rel.deletable {
            path.insert(
                "post".into(),
                operation(
                    refs(&[&body, "select", "preferPost"]),
                    json!({ "201": { "description": "Created" } }),
                ),
            );
            path.insert(
                "delete".into(),
                operation(
                    [row_filters.clone(), refs(&["preferReturn"])].concat(),
                    json!({ "204": { "description": "No Content" } }),
                ),
            );
            path.insert(
                "patch".into(),
                operation(
                    [row_filters, refs(&[&body, "preferReturn"])].concat(),
                    json!({ "204": { "description": "No Content" } }),
                ),
            );
        }
        Value::Object(path)
    }

    fn function_path(func: &Function) -> Value {
        let operation = |parameters: Vec<Value>| {
            let mut op = Map::new();
            op.insert("tags".into(), json!([format!("(rpc) {}", func.name)]));
            if let Some(desc) = &func.description {
                let (summary, rest) = summary_and_rest(desc);
                op.insert("summary".into(), summary.into());
                if let Some(rest) = rest {
                    op.insert("description".into(), rest.into());
                }
            }
            op.insert("produces".into(), json!(&MIME_LIST[..3]));
            op.insert("parameters".into(), Value::Array(parameters));
            op.insert(
                "responses".into(),
                json!({ "200": { "description": "OK" } }),
            );
            Value::Object(op)
        };
        let required = |a: &crate::schema::Arg| !a.has_default && !a.variadic;
        let get_params: Vec<Value> = func
            .args
            .iter()
            .map(|a| {
                let mut p = Map::new();
                p.insert("name".into(), a.name.clone().into());
                p.insert("required".into(), required(a).into());
                p.insert("in".into(), "query".into());
                if a.variadic {
                    let element = a.type_name.strip_suffix("[]").unwrap_or(&a.type_name);
                    p.insert(
                        "type".into(),
                        swagger_type(&a.type_name).unwrap_or("string").into(),
                    );
                    let mut items = Map::new();
                    if let Some(t) = swagger_type(element) {
                        items.insert("type".into(), t.into());
                    }
                    items.insert("format".into(), element.into());
                    p.insert("items".into(), Value::Object(items));
                    p.insert("collectionFormat".into(), "multi".into());
                } else {
                    p.insert("format".into(), format_of(&a.type_name).into());
                    // Arrays are written `{a,b}` in a query, and a type is
                    // required there: json and arrays are strings.
                    let t = match swagger_type(&a.type_name) {
                        Some("array") | None => "string",
                        Some(t) => t,
                    };
                    p.insert("type".into(), t.into());
                }
                Value::Object(p)
            })
            .collect();
        let mut body = Map::new();
        if let Some(d) = &func.description {
            body.insert("description".into(), d.clone().into());
        }
        let names: Vec<&str> = func
            .args
            .iter()
            .filter(|a| required(a))
            .map(|a| a.name.as_str())
            .collect();
        if !names.is_empty() {
            body.insert("required".into(), json!(names));
        }
        let properties: Map<String, Value> = func
            .args
            .iter()
            .map(|a| {
                let mut p = Map::new();
                p.insert("format".into(), format_of(&a.type_name).into());
                if let Some(t) = swagger_type(&a.type_name) {
                    p.insert("type".into(), t.into());
                }
                if let Some(items) = items_of(&a.type_name) {
                    p.insert("items".into(), items);
                }
                (a.name.clone(), Value::Object(p))
            })
            .collect();
        body.insert("properties".into(), Value::Object(properties));
        body.insert("type".into(), "object".into());
        let post_params = vec![
            json!({ "name": "args", "required": true, "in": "body", "schema": Value::Object(body) }),
            reference("parameters", "preferParams"),
        ];
        let mut path = Map::new();
        if func.volatility != 'v' {
            path.insert("get".into(), operation(get_params));
        }
        path.insert("post".into(), operation(post_params));
        Value::Object(path)
    }

    fn prefer(values: &[&str]) -> Value {
        json!({
            "name": "Prefer",
            "description": "Preference",
            "required": false,
            "in": "header",
            "type": "string",
            "enum": values,
        })
    }

    fn parameters(relations: &[&Relation]) -> Map<String, Value> {
        let plain = |name: &str, description: &str, place: &str| json!({ "name": name, "description": description, "required": false, "in": place, "type": "string" });
        let mut p = Map::new();
        p.insert("preferParams".into(), Self::prefer(&[]));
        p.insert(
            "preferReturn".into(),
            Self::prefer(&["return=representation", "return=minimal", "return=none"]),
        );
        p.insert("preferCount".into(), Self::prefer(&["count=none"]));
        p.insert(
            "preferPost".into(),
            Self::prefer(&[
                "return=representation",
                "return=minimal",
                "return=none",
                "resolution=ignore-duplicates",
                "resolution=merge-duplicates",
            ]),
        );
        p.insert(
            "select".into(),
            plain("select", "Filtering Columns", "query"),
        );
        p.insert(
            "on_conflict".into(),
            plain("on_conflict", "On Conflict", "query"),
        );
        p.insert("order".into(), plain("order", "Ordering", "query"));
        p.insert(
            "range".into(),
            plain("Range", "Limiting and Pagination", "header"),
        );
        let mut unit = plain("Range-Unit", "Limiting and Pagination", "header");
        unit["default"] = "items".into();
        p.insert("rangeUnit".into(), unit);
        p.insert(
            "offset".into(),
            plain("offset", "Limiting and Pagination", "query"),
        );
        p.insert(
            "limit".into(),
            plain("limit", "Limiting and Pagination", "query"),
        );
        for rel in relations {
            p.insert(
                format!("body.{}", rel.name),
                json!({
                    "name": rel.name,
                    "description": rel.name,
                    "required": false,
                    "in": "body",
                    "schema": reference("definitions", &rel.name),
                }),
            );
            for col in &rel.columns {
                let mut f = Map::new();
                f.insert("name".into(), col.name.clone().into());
                if let Some(d) = &col.description {
                    f.insert("description".into(), d.clone().into());
                }
                f.insert("required".into(), false.into());
                f.insert("in".into(), "query".into());
                f.insert("type".into(), "string".into());
                p.insert(
                    format!("rowFilter.{}.{}", rel.name, col.name),
                    Value::Object(f),
                );
            }
        }
        p
    }

    /// The document.
    pub fn document(&self) -> Value {
        let mut relations: Vec<&Relation> = self
            .cache
            .relations
            .values()
            .filter(|r| r.schema == self.schema && self.shows(r.oid))
            .collect();
        relations.sort_by(|a, b| a.name.cmp(&b.name));
        let mut functions: Vec<&Function> = self
            .cache
            .functions
            .iter()
            .filter(|((s, _), _)| s == self.schema)
            .flat_map(|(_, overloads)| overloads)
            .filter(|f| self.shows(f.oid))
            .collect();
        functions.sort_by(|a, b| a.name.cmp(&b.name).then(a.oid.cmp(&b.oid)));

        let mut paths = Map::new();
        paths.insert(
            "/".into(),
            json!({
                "get": {
                    "tags": ["Introspection"],
                    "summary": "OpenAPI description (this document)",
                    "produces": ["application/openapi+json", "application/json"],
                    "responses": { "200": { "description": "OK" } }
                }
            }),
        );
        for rel in &relations {
            paths.insert(format!("/{}", rel.name), Self::table_path(rel));
        }
        for func in &functions {
            paths.insert(format!("/rpc/{}", func.name), Self::function_path(func));
        }
        let definitions: Map<String, Value> = relations
            .iter()
            .map(|r| (r.name.clone(), self.definition(r)))
            .collect();

        let (title, description) = match self.cache.schema_descriptions.get(self.schema) {
            Some(d) => {
                let (t, rest) = summary_and_rest(d);
                (t.to_owned(), rest.unwrap_or("").to_owned())
            }
            None => (
                "PostgREST API".to_owned(),
                "This is a dynamic API generated by PostgREST".to_owned(),
            ),
        };
        let mut doc = Map::new();
        doc.insert("swagger".into(), "2.0".into());
        doc.insert(
            "info".into(),
            json!({
                "description": description,
                "title": title,
                "version": env!("CARGO_PKG_VERSION"),
            }),
        );
        doc.insert(
            "externalDocs".into(),
            json!({
                "description": "PostgREST Documentation",
                "url": "https://postgrest.org/en/v14/references/api.html",
            }),
        );
        doc.insert("host".into(), self.server.host.clone().into());
        doc.insert("basePath".into(), self.server.base_path.clone().into());
        doc.insert("schemes".into(), json!([self.server.scheme]));
        doc.insert("consumes".into(), json!(MIME_LIST));
        doc.insert("produces".into(), json!(MIME_LIST));
        doc.insert("paths".into(), Value::Object(paths));
        doc.insert("definitions".into(), Value::Object(definitions));
        doc.insert(
            "parameters".into(),
            Value::Object(Self::parameters(&relations)),
        );
        if self.security_active {
            doc.insert(
                "securityDefinitions".into(),
                json!({
                    "JWT": {
                        "type": "apiKey",
                        "in": "header",
                        "name": "Authorization",
                        "description": "Add the token prepending \"Bearer \" (without quotes) to it",
                    }
                }),
            );
            doc.insert("security".into(), json!([{ "JWT": [] }]));
        }
        Value::Object(doc)
    }
}

/// The relations and functions of `schema` the current role may use, by
/// `oid` (run in the request's transaction, after `SET ROLE`).
pub const VISIBLE_SQL: &str = "
SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
  AND (has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE')
       OR has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE'))
UNION ALL
SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = $1 AND has_function_privilege(p.oid, 'EXECUTE')";

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, data_type: &str, default: Option<&str>) -> Column {
        Column {
            name: name.into(),
            type_name: data_type.into(),
            nullable: true,
            default: default.map(str::to_owned),
            is_json: false,
            data_type: data_type.into(),
            description: None,
            max_length: None,
            enum_values: Vec::new(),
            to_json: None,
            from_text: None,
            from_json: None,
        }
    }

    #[test]
    fn defaults_are_literals_only() {
        let d = |t, v| default_value(&column("c", t, Some(v)));
        assert_eq!(d("text", "'default'::text"), Some(json!("default")));
        assert_eq!(d("date", "'1900-01-01'::date"), Some(json!("1900-01-01")));
        assert_eq!(d("integer", "42"), Some(json!(42)));
        assert_eq!(d("boolean", "false"), Some(json!(false)));
        assert_eq!(d("integer", "nextval('s'::regclass)"), None);
        assert_eq!(d("text", "now()"), Some(json!("now()")));
    }

    #[test]
    fn comments_split_into_summary_and_description() {
        assert_eq!(summary_and_rest("one"), ("one", None));
        assert_eq!(
            summary_and_rest("one\n\ntwo\nthree"),
            ("one", Some("two\nthree"))
        );
        assert_eq!(summary_and_rest("one\n"), ("one", None));
    }

    #[test]
    fn proxy_uri_gives_host_and_base_path() {
        let s = Server::from_uri("https://api.example.com/rest/v1/").unwrap();
        assert_eq!(s.host, "api.example.com:443");
        assert_eq!(s.base_path, "/rest/v1/");
        assert_eq!(s.scheme, "https");
        assert_eq!(Server::from_uri("ftp://x").map(|s| s.host), None);
        assert_eq!(
            Server::from_uri("http://h:8080").map(|s| s.base_path),
            Some("/".into())
        );
    }
}
