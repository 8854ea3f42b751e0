//! The TypeScript file: a `Database` type with each schema's tables, views,
//! functions, enums and composite types, the helper types that read it,
//! and the enums' values as constants, laid out exactly as postgres-meta's
//! `/generators/typescript` prints them (its formatter's rules, 80
//! columns, no semicolons).
//!
//! The file is built as a small tree of TypeScript types ([`Ty`]) that is
//! then laid out by [`super::doc`]; which functions appear, and how
//! overloads, computed fields and set-returning functions are typed,
//! follow postgres-meta's generator rule for rule.

use std::collections::HashMap;

use super::collate::{self, compare};
use super::doc::{
    Doc, align, concat, group, if_break, indent, join, line, print, print_at, softline, text, width,
};
use super::introspect::{Arg, Column, Function, Metadata, PgType, Relation, Relationship, Schema};

/// What the caller may choose.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Add `isOneToOne` to each relationship.
    pub(crate) detect_one_to_one: bool,
    /// Record the PostgREST version for `createClient` (`__InternalSupabase`).
    pub(crate) postgrest_version: Option<String>,
}

/// The file's fixed start.
const JSON_TYPE: &str = "export type Json =
  | string
  | number
  | boolean
  | null
  | { [key: string]: Json | undefined }
  | Json[]

";

/// The helper types (`Tables`, `TablesInsert`, `Enums`, ...), fixed text.
const HELPERS: &str = include_str!("helpers.ts");

/// Argument types PostgREST accepts for a single unnamed argument (json,
/// jsonb, text).
const UNNAMED_ARG_TYPES: [i64; 3] = [114, 3802, 25];

/// A TypeScript type.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    /// Printed as it is (keywords, references).
    Plain(String),
    /// A string literal type.
    Str(String),
    Array(Box<Ty>),
    Union(Vec<Ty>),
    Intersection(Vec<Ty>),
    /// Members; `true`: always on several lines.
    Object(Vec<Member>, bool),
    Tuple(Vec<Ty>),
}

#[derive(Debug, Clone, PartialEq)]
struct Member {
    /// `None`: the `[_ in never]` of an empty section.
    key: Option<String>,
    optional: bool,
    ty: Ty,
    /// Comment lines above the member.
    comments: &'static [&'static str],
}

fn plain(s: &str) -> Ty {
    Ty::Plain(s.to_owned())
}

fn member(key: &str, optional: bool, ty: Ty) -> Member {
    Member {
        key: Some(key.to_owned()),
        optional,
        ty,
        comments: &[],
    }
}

/// `{ [_ in never]: never }` for an empty section, else the members.
fn section(members: Vec<Member>) -> Ty {
    if members.is_empty() {
        return Ty::Object(
            vec![Member {
                key: None,
                optional: false,
                ty: plain("never"),
                comments: &[],
            }],
            true,
        );
    }
    Ty::Object(members, true)
}

/// `a | b`, flattened as the source text `a | b` parses.
fn union(a: Ty, b: Ty) -> Ty {
    let mut members = Vec::new();
    for t in [a, b] {
        match t {
            Ty::Union(inner) => members.extend(inner),
            other => members.push(other),
        }
    }
    Ty::Union(members)
}

/// `t` followed by `[]` in the source text: it binds to the last member of
/// a union or intersection.
fn array_of_text(t: Ty) -> Ty {
    match t {
        Ty::Union(mut v) if !v.is_empty() => {
            let last = v.pop().map(array_of_text);
            v.extend(last);
            Ty::Union(v)
        }
        Ty::Intersection(mut v) if !v.is_empty() => {
            let last = v.pop().map(array_of_text);
            v.extend(last);
            Ty::Intersection(v)
        }
        other => Ty::Array(Box::new(other)),
    }
}

/// A string literal as the formatter prints it: double quotes unless the
/// text has more double quotes than single ones.
pub(crate) fn quote(s: &str) -> String {
    let json = serde_json::to_string(s).unwrap_or_default();
    let raw = &json[1..json.len() - 1];
    let doubles = raw.matches('"').count();
    let singles = raw.matches('\'').count();
    let (enclosing, other) = if doubles > singles {
        ('\'', '"')
    } else {
        ('"', '\'')
    };
    let mut out = String::with_capacity(raw.len() + 2);
    out.push(enclosing);
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e) if e == other => out.push(e),
                Some(e) => {
                    let keep = matches!(e, '\n' | '\r' | '"' | '\'' | '0'..='7' | '\\' | 'b' | 'f' | 'n' | 'r' | 't'..='v' | 'x' | '\u{2028}' | '\u{2029}');
                    if keep {
                        out.push('\\');
                    }
                    out.push(e);
                }
                None => out.push('\\'),
            }
        } else if c == enclosing {
            out.push('\\');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out.push(enclosing);
    out
}

/// A property key: bare when it is an identifier, quoted otherwise.
fn key(name: &str) -> String {
    let mut chars = name.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c == '$' || c == '_' || c.is_alphabetic())
        && chars.all(|c| {
            c == '$' || c == '_' || c.is_alphanumeric() || c == '\u{200c}' || c == '\u{200d}'
        });
    if identifier {
        name.to_owned()
    } else {
        quote(name)
    }
}

fn is_object(t: &Ty) -> bool {
    matches!(t, Ty::Object(..))
}

/// Whether a union is printed inline (`{ ... } | null`).
fn hugs(types: &[Ty]) -> bool {
    let nulls = types
        .iter()
        .filter(|t| matches!(t, Ty::Plain(s) if s == "null" || s == "void"))
        .count();
    types.len() - 1 == nulls && types.iter().any(is_object)
}

fn ty_doc(t: &Ty, in_array: bool) -> Doc {
    match t {
        Ty::Plain(s) => text(s.clone()),
        Ty::Str(s) => text(quote(s)),
        Ty::Array(inner) => concat(vec![ty_doc(inner, true), text("[]")]),
        Ty::Union(types) => {
            if hugs(types) {
                let doc = join(
                    text(" | "),
                    types.iter().map(|t| ty_doc(t, false)).collect(),
                );
                return if in_array {
                    concat(vec![text("("), doc, text(")")])
                } else {
                    doc
                };
            }
            let code = concat(vec![
                if_break(concat(vec![line(), text("| ")]), text("")),
                join(
                    concat(vec![line(), text("| ")]),
                    types.iter().map(|t| align(2, ty_doc(t, false))).collect(),
                ),
            ]);
            if in_array {
                concat(vec![
                    text("("),
                    group(concat(vec![indent(code), softline()]), false),
                    text(")"),
                ])
            } else {
                group(indent(code), false)
            }
        }
        Ty::Intersection(types) => {
            let mut parts = Vec::new();
            let mut was_indented = false;
            for (i, t) in types.iter().enumerate() {
                let doc = ty_doc(t, false);
                if i == 0 {
                    parts.push(doc);
                } else if !is_object(&types[i - 1]) && !is_object(t) {
                    parts.push(indent(concat(vec![text(" &"), line(), doc])));
                } else if is_object(&types[i - 1]) && is_object(t) {
                    parts.push(text(" & "));
                    parts.push(if was_indented { indent(doc) } else { doc });
                } else {
                    if i > 1 {
                        was_indented = true;
                    }
                    parts.push(text(" & "));
                    parts.push(if i > 1 { indent(doc) } else { doc });
                }
            }
            let doc = group(concat(parts), false);
            if in_array {
                concat(vec![text("("), doc, text(")")])
            } else {
                doc
            }
        }
        Ty::Object(members, expanded) => {
            if members.is_empty() {
                return text("{}");
            }
            let members = members.iter().map(member_doc).collect();
            group(
                concat(vec![
                    text("{"),
                    indent(concat(vec![
                        line(),
                        join(concat(vec![if_break(text(""), text(";")), line()]), members),
                    ])),
                    line(),
                    text("}"),
                ]),
                *expanded,
            )
        }
        Ty::Tuple(items) => {
            if items.is_empty() {
                return text("[]");
            }
            let items = items
                .iter()
                .map(|t| group(ty_doc(t, false), false))
                .collect();
            group(
                concat(vec![
                    text("["),
                    indent(concat(vec![
                        softline(),
                        join(concat(vec![text(","), line()]), items),
                        if_break(text(","), text("")),
                    ])),
                    softline(),
                    text("]"),
                ]),
                false,
            )
        }
    }
}

/// The file's width.
const WIDTH: usize = 80;

/// Whether `t` holds an object that is always on several lines.
fn forced(t: &Ty) -> bool {
    match t {
        Ty::Object(members, expanded) => *expanded || members.iter().any(|m| forced(&m.ty)),
        Ty::Union(v) | Ty::Intersection(v) | Ty::Tuple(v) => v.iter().any(forced),
        Ty::Array(t) => forced(t),
        Ty::Plain(_) | Ty::Str(_) => false,
    }
}

/// `t` on one line, as [`ty_doc`] prints it flat.
fn flat(t: &Ty, in_array: bool, out: &mut String) {
    let joined = |out: &mut String, items: &[Ty], separator: &str| {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(separator);
            }
            flat(item, false, out);
        }
    };
    match t {
        Ty::Plain(s) => out.push_str(s),
        Ty::Str(s) => out.push_str(&quote(s)),
        Ty::Array(inner) => {
            flat(inner, true, out);
            out.push_str("[]");
        }
        Ty::Union(items) | Ty::Intersection(items) => {
            let separator = if matches!(t, Ty::Union(_)) {
                " | "
            } else {
                " & "
            };
            if in_array {
                out.push('(');
            }
            joined(out, items, separator);
            if in_array {
                out.push(')');
            }
        }
        Ty::Object(members, _) if members.is_empty() => out.push_str("{}"),
        Ty::Object(members, _) => {
            out.push_str("{ ");
            for (i, m) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str("; ");
                }
                flat_member(m, out);
            }
            out.push_str(" }");
        }
        Ty::Tuple(items) => {
            out.push('[');
            joined(out, items, ", ");
            out.push(']');
        }
    }
}

fn flat_member(m: &Member, out: &mut String) {
    match &m.key {
        Some(name) => out.push_str(&key(name)),
        None => out.push_str("[_ in never]"),
    }
    out.push_str(if m.optional { "?: " } else { ": " });
    flat(&m.ty, false, out);
}

fn spaces(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes an object that is always on several lines, its `{` at the
/// current column and its members indented from `indentation`. This is
/// what [`print`] makes of it, without building the layout of the whole
/// file: most members fit on their line, and only those that do not (or
/// that hold other layouts) are laid out by the printer.
fn write_object(out: &mut String, members: &[Member], indentation: usize) {
    if members.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push_str("{\n");
    for m in members {
        let inner = indentation + 2;
        spaces(out, inner);
        for comment in m.comments {
            out.push_str(comment);
            out.push('\n');
            spaces(out, inner);
        }
        match &m.ty {
            Ty::Object(object, true) => {
                out.push_str(
                    &m.key
                        .as_deref()
                        .map_or_else(|| "[_ in never]".to_owned(), key),
                );
                out.push_str(if m.optional { "?: " } else { ": " });
                write_object(out, object, inner);
            }
            t if !forced(t) => {
                let start = out.len();
                flat_member(m, out);
                if inner + width(&out[start..]) > WIDTH {
                    out.truncate(start);
                    print_at(out, &member_doc(m), inner, WIDTH);
                }
            }
            _ => print_at(out, &member_doc(m), inner, WIDTH),
        }
        out.push('\n');
    }
    spaces(out, indentation);
    out.push('}');
}

fn member_doc(m: &Member) -> Doc {
    let mut parts = Vec::new();
    for comment in m.comments {
        parts.push(text(*comment));
        parts.push(Doc::HardLine);
    }
    parts.push(group(
        concat(vec![
            text(
                m.key
                    .as_deref()
                    .map_or_else(|| "[_ in never]".to_owned(), key),
            ),
            text(if m.optional { "?: " } else { ": " }),
            ty_doc(&m.ty, false),
        ]),
        false,
    ));
    concat(parts)
}

/// A function PostgREST can call, with its input arguments.
struct Callable<'m> {
    function: &'m Function,
    inputs: Vec<&'m Arg>,
}

/// One schema's part of the file.
#[derive(Default)]
struct Parts<'m> {
    tables: Vec<(&'m Relation, Vec<&'m Relationship>)>,
    /// Views and materialized views (which are never writable).
    views: Vec<(&'m Relation, bool, bool, Vec<&'m Relationship>)>,
    functions: Vec<Callable<'m>>,
    enums: Vec<&'m PgType>,
    composites: Vec<&'m PgType>,
}

struct Generator<'m> {
    meta: &'m Metadata,
    options: &'m Options,
    types_by_id: HashMap<i64, &'m PgType>,
    /// The row types of relations, by type id.
    relation_types: HashMap<i64, &'m PgType>,
    enums_by_name: HashMap<&'m str, Vec<&'m PgType>>,
    composites_by_name: HashMap<&'m str, Vec<&'m PgType>>,
    /// Relations by name: `Tables` (tables, then foreign tables) before
    /// `Views` (views, then materialized views).
    relations_by_name: HashMap<&'m str, Vec<(&'static str, &'m Relation)>>,
    relation_names: HashMap<i64, &'m str>,
    columns: HashMap<i64, Vec<&'m Column>>,
    parts: HashMap<&'m str, Parts<'m>>,
}

impl<'m> Generator<'m> {
    fn new(meta: &'m Metadata, options: &'m Options) -> Self {
        let mut g = Generator {
            meta,
            options,
            types_by_id: HashMap::new(),
            relation_types: HashMap::new(),
            enums_by_name: HashMap::new(),
            composites_by_name: HashMap::new(),
            relations_by_name: HashMap::new(),
            relation_names: HashMap::new(),
            columns: HashMap::new(),
            parts: meta
                .schemas
                .iter()
                .map(|s| (s.name.as_str(), Parts::default()))
                .collect(),
        };
        let kinds = [
            ("Tables", &meta.tables),
            ("Tables", &meta.foreign_tables),
            ("Views", &meta.views),
            ("Views", &meta.materialized_views),
        ];
        for (kind, list) in kinds {
            for relation in list {
                g.relations_by_name
                    .entry(relation.name.as_str())
                    .or_default()
                    .push((kind, relation));
                g.relation_names.insert(relation.id, relation.name.as_str());
                g.columns.entry(relation.id).or_default();
            }
        }
        for column in &meta.columns {
            if let Some(list) = g.columns.get_mut(&column.table_id) {
                list.push(column);
            }
        }
        for t in &meta.types {
            g.types_by_id.insert(t.id, t);
            if t.type_relation_id.is_some() {
                g.relation_types.insert(t.id, t);
            }
            if !t.enums.is_empty() {
                g.enums_by_name.entry(t.name.as_str()).or_default().push(t);
            }
            if !t.attributes.is_empty() {
                g.composites_by_name
                    .entry(t.name.as_str())
                    .or_default()
                    .push(t);
            }
            if let Some(parts) = g.parts.get_mut(t.schema.as_str()) {
                if !t.enums.is_empty() {
                    parts.enums.push(t);
                }
                if !t.attributes.is_empty() {
                    parts.composites.push(t);
                }
            }
        }
        let mut relationships: HashMap<String, Vec<&'m Relationship>> = HashMap::new();
        for r in &meta.relationships {
            relationships
                .entry(format!("{}.{}", r.schema, r.relation))
                .or_default()
                .push(r);
        }
        let of = |relation: &Relation| -> Vec<&'m Relationship> {
            relationships
                .get(&format!("{}.{}", relation.schema, relation.name))
                .map(|list| {
                    list.iter()
                        .copied()
                        .filter(|r| r.referenced_schema == relation.schema)
                        .collect()
                })
                .unwrap_or_default()
        };
        for table in meta.tables.iter().chain(&meta.foreign_tables) {
            if let Some(parts) = g.parts.get_mut(table.schema.as_str()) {
                parts.tables.push((table, of(table)));
            }
        }
        for view in &meta.views {
            if let Some(parts) = g.parts.get_mut(view.schema.as_str()) {
                parts
                    .views
                    .push((view, view.insertable, view.updatable, of(view)));
            }
        }
        for view in &meta.materialized_views {
            if let Some(parts) = g.parts.get_mut(view.schema.as_str()) {
                parts.views.push((view, false, false, of(view)));
            }
        }
        for function in &meta.functions {
            if !g.parts.contains_key(function.schema.as_str()) {
                continue;
            }
            let inputs: Vec<&Arg> = function.args.iter().filter(|a| a.mode.is_input()).collect();
            if g.callable(&inputs)
                && let Some(parts) = g.parts.get_mut(function.schema.as_str())
            {
                parts.functions.push(Callable { function, inputs });
            }
        }
        for parts in g.parts.values_mut() {
            parts.tables.sort_by_cached_key(|t| collate::key(&t.0.name));
            parts.views.sort_by_cached_key(|v| collate::key(&v.0.name));
            parts
                .functions
                .sort_by_cached_key(|c| collate::key(&c.function.name));
            parts.enums.sort_by_cached_key(|t| collate::key(&t.name));
            parts
                .composites
                .sort_by_cached_key(|t| collate::key(&t.name));
        }
        g
    }

    /// Whether PostgREST can call a function with these inputs: none, all
    /// named, unnamed ones only with defaults and of json/jsonb/text, or a
    /// single unnamed one of those types or of a relation's row type.
    fn callable(&self, inputs: &[&Arg]) -> bool {
        inputs.is_empty()
            || !inputs.iter().any(|a| a.name.is_empty())
            || inputs.iter().all(|a| {
                !a.name.is_empty() || (a.has_default && UNNAMED_ARG_TYPES.contains(&a.type_id))
            })
            || (inputs.len() == 1
                && inputs[0].name.is_empty()
                && (UNNAMED_ARG_TYPES.contains(&inputs[0].type_id)
                    || self.relation_types.contains_key(&inputs[0].type_id)))
    }

    fn has_schema(&self, name: &str) -> bool {
        self.parts.contains_key(name)
    }

    /// A PostgreSQL type's TypeScript type; `type_schema` is the schema the
    /// type belongs to, when known.
    fn ts_type(&self, schema: &Schema, pg_type: &str, type_schema: Option<&str>) -> Ty {
        match pg_type {
            "bool" => return plain("boolean"),
            "int2" | "int4" | "int8" | "float4" | "float8" | "numeric" => return plain("number"),
            "bytea" | "bpchar" | "varchar" | "date" | "text" | "citext" | "time" | "timetz"
            | "timestamp" | "timestamptz" | "uuid" | "vector" | "interval" => {
                return plain("string");
            }
            "json" | "jsonb" => return plain("Json"),
            "void" => return plain("undefined"),
            "record" => return plain("Record<string, unknown>"),
            _ => {}
        }
        if let Some(element) = pg_type.strip_prefix('_') {
            return Ty::Array(Box::new(self.ts_type(schema, element, type_schema)));
        }
        let preferred = type_schema.unwrap_or(&schema.name);
        let pick = |list: &Vec<&'m PgType>| -> &'m PgType {
            list.iter()
                .copied()
                .find(|t| t.schema == preferred)
                .unwrap_or(list[0])
        };
        if let Some(list) = self.enums_by_name.get(pg_type) {
            let t = pick(list);
            if self.has_schema(&t.schema) {
                return Ty::Plain(format!(
                    "Database[{}][\"Enums\"][{}]",
                    quote(&t.schema),
                    quote(&t.name)
                ));
            }
            let mut labels = t.enums.iter().map(|l| Ty::Str(l.clone()));
            let first = labels.next().unwrap_or_else(|| plain("never"));
            return labels.fold(first, union);
        }
        if let Some(list) = self.composites_by_name.get(pg_type) {
            let t = pick(list);
            if self.has_schema(&t.schema) {
                return Ty::Plain(format!(
                    "Database[{}][\"CompositeTypes\"][{}]",
                    quote(&t.schema),
                    quote(&t.name)
                ));
            }
            return plain("unknown");
        }
        if let Some(list) = self.relations_by_name.get(pg_type) {
            let (kind, relation) = list
                .iter()
                .find(|(_, r)| r.schema == preferred)
                .unwrap_or(&list[0]);
            if self.has_schema(&relation.schema) {
                return Ty::Plain(format!(
                    "Database[{}][\"{kind}\"][{}][\"Row\"]",
                    quote(&relation.schema),
                    quote(&relation.name)
                ));
            }
        }
        plain("unknown")
    }

    fn type_of_id(&self, schema: &Schema, id: i64) -> Ty {
        match self.types_by_id.get(&id) {
            Some(t) => self.ts_type(schema, &t.name, Some(&t.schema)),
            None => plain("unknown"),
        }
    }

    fn column(&self, schema: &Schema, column: &Column, nullable: bool, optional: bool) -> Member {
        let ty = self.ts_type(schema, &column.format, Some(&column.type_schema));
        member(&column.name, optional, nullable_type(ty, nullable))
    }

    /// The name of the relation a function returns rows of (its composite
    /// type's name for a composite type).
    fn returned_relation(&self, function: &Function) -> Option<&'m str> {
        let relation = function.return_type_relation_id.filter(|id| *id != 0)?;
        if let Some(name) = self.relation_names.get(&relation) {
            return Some(name);
        }
        self.relation_types
            .get(&function.return_type_id)
            .map(|t| t.name.as_str())
    }

    fn returns(&self, schema: &Schema, function: &Function) -> Ty {
        let table_columns: Vec<&Arg> = function
            .args
            .iter()
            .filter(|a| a.mode == super::introspect::Mode::Table)
            .collect();
        if !table_columns.is_empty() {
            return Ty::Object(
                table_columns
                    .iter()
                    .map(|a| member(&a.name, false, self.type_of_id(schema, a.type_id)))
                    .collect(),
                true,
            );
        }
        let parts = &self.parts[schema.name.as_str()];
        let relation = function.return_type_relation_id.and_then(|id| {
            parts
                .tables
                .iter()
                .map(|(r, _)| *r)
                .find(|r| r.id == id)
                .or_else(|| parts.views.iter().map(|v| v.0).find(|r| r.id == id))
        });
        if let Some(relation) = relation {
            return Ty::Object(
                self.columns[&relation.id]
                    .iter()
                    .map(|c| self.column(schema, c, c.is_nullable, false))
                    .collect(),
                true,
            );
        }
        self.type_of_id(schema, function.return_type_id)
    }

    /// `Returns` (an array for a set, unless it is one row of a relation)
    /// and the `SetofOptions` that let a client select from the rows.
    fn returns_with_options(&self, function: &Function, returns: Ty) -> (Ty, Option<Ty>) {
        let table = self.returned_relation(function);
        let set_of_table =
            function.is_set_returning_function && function.return_type_relation_id.is_some();
        let many = function.prorows.is_some_and(|rows| rows > 1.0);
        let options = |from: &str, to: &str, one: bool, set: bool| {
            Ty::Object(
                vec![
                    member("from", false, Ty::Str(from.to_owned())),
                    member("to", false, Ty::Str(to.to_owned())),
                    member(
                        "isOneToOne",
                        false,
                        plain(if one { "true" } else { "false" }),
                    ),
                    member(
                        "isSetofReturn",
                        false,
                        plain(if set { "true" } else { "false" }),
                    ),
                ],
                true,
            )
        };
        let mut setof = table.map(|t| options("*", t, !many, function.is_set_returning_function));
        if let [arg] = function.args.as_slice()
            && let (Some(row_type), Some(table)) = (self.relation_types.get(&arg.type_id), table)
        {
            setof = Some(if set_of_table {
                options(&row_type.format, table, !many, true)
            } else {
                options(&row_type.format, table, true, false)
            });
        }
        let one_row = !many && table.is_some();
        let returns = if function.is_set_returning_function && !one_row {
            array_of_text(returns)
        } else {
            returns
        };
        (returns, setof)
    }

    fn args_object(&self, schema: &Schema, inputs: &[&Arg]) -> Ty {
        Ty::Object(
            inputs
                .iter()
                .map(|a| member(&a.name, a.has_default, self.type_of_id(schema, a.type_id)))
                .collect(),
            false,
        )
    }

    /// Overloads PostgREST cannot tell apart, as its error message.
    fn conflict(
        &self,
        schema: &Schema,
        group: &[&Callable<'m>],
        this: &Callable<'m>,
    ) -> Option<String> {
        if group.len() <= 1 {
            return None;
        }
        let others = || group.iter().filter(|c| c.function.id != this.function.id);
        let name = &this.function.name;
        if this.inputs.is_empty() {
            let other = others().find(|c| {
                c.inputs.len() == 1 && c.inputs[0].name.is_empty() && c.inputs[0].has_default
            })?;
            let returns = self
                .types_by_id
                .get(&other.function.return_type_id)
                .map_or("unknown", |t| t.name.as_str());
            return Some(format!(
                "Could not choose the best candidate function between: {s}.{name}(), {s}.{name}( => {returns}). Try renaming the parameters or the function itself in the database so function overloading can be resolved",
                s = schema.name
            ));
        }
        if this.inputs.len() == 1 && !this.inputs[0].name.is_empty() {
            let arg = this.inputs[0];
            let mut all: Vec<&Callable<'m>> = vec![this];
            all.extend(others().filter(|c| {
                c.inputs.len() == 1
                    && c.inputs[0].name == arg.name
                    && c.inputs[0].type_id != arg.type_id
            }));
            if all.len() == 1 {
                return None;
            }
            all.sort_by_key(|c| c.inputs.first().map_or(0, |a| a.type_id));
            let list: Vec<String> = all
                .iter()
                .map(|c| {
                    let args: Vec<String> = c
                        .inputs
                        .iter()
                        .map(|a| {
                            let t = self
                                .types_by_id
                                .get(&a.type_id)
                                .map_or("unknown", |t| t.name.as_str());
                            format!("{} => {t}", a.name)
                        })
                        .collect();
                    format!("{}.{name}({})", schema.name, args.join(", "))
                })
                .collect();
            return Some(format!(
                "Could not choose the best candidate function between: {}. Try renaming the parameters or the function itself in the database so function overloading can be resolved",
                list.join(", ")
            ));
        }
        None
    }

    fn signature(&self, schema: &Schema, group: &[&Callable<'m>], c: &Callable<'m>) -> Ty {
        let function = c.function;
        let mut args = plain("Record<PropertyKey, never>");
        let mut returns = self.returns(schema, function);
        let table_row_error = c.inputs.len() == 1
            && c.inputs[0].name.is_empty()
            && self.relation_types.contains_key(&c.inputs[0].type_id)
            && self.returned_relation(function).is_none();
        let error = self.conflict(schema, group, c).or_else(|| {
            table_row_error.then(|| format!(
                "the function {}.{} with parameter or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache",
                schema.name, function.name
            ))
        });
        if !c.inputs.is_empty() {
            args = self.args_object(schema, &c.inputs);
        }
        if let Some(message) = error {
            returns = Ty::Intersection(vec![
                Ty::Object(vec![member("error", false, plain("true"))], false),
                Ty::Str(message),
            ]);
        }
        let (returns, setof) = self.returns_with_options(function, returns);
        let mut members = vec![
            member("Args", false, args),
            member("Returns", false, returns),
        ];
        if let Some(setof) = setof {
            members.push(member("SetofOptions", false, setof));
        }
        Ty::Object(members, false)
    }

    fn is_computed_field_of(&self, c: &Callable<'m>, relation: &Relation) -> bool {
        if let [arg] = c.inputs.as_slice()
            && let Some(t) = self.relation_types.get(&arg.type_id)
        {
            return t.type_relation_id == Some(relation.id);
        }
        c.function.argument_types == relation.name
    }

    fn relationships(&self, list: &[&Relationship]) -> Ty {
        let columns = |c: &Option<Vec<String>>| match c {
            Some(c) => Ty::Tuple(c.iter().map(|s| Ty::Str(s.clone())).collect()),
            None => plain("null"),
        };
        Ty::Tuple(
            list.iter()
                .map(|r| {
                    let mut members = vec![
                        member("foreignKeyName", false, Ty::Str(r.foreign_key_name.clone())),
                        member("columns", false, columns(&r.columns)),
                    ];
                    if self.options.detect_one_to_one {
                        let one = if r.is_one_to_one { "true" } else { "false" };
                        members.push(member("isOneToOne", false, plain(one)));
                    }
                    members.push(member(
                        "referencedRelation",
                        false,
                        Ty::Str(r.referenced_relation.clone()),
                    ));
                    members.push(member(
                        "referencedColumns",
                        false,
                        columns(&r.referenced_columns),
                    ));
                    Ty::Object(members, true)
                })
                .collect(),
        )
    }

    /// A relation's `Row`: its columns, then its computed fields.
    fn row(&self, schema: &Schema, relation: &Relation, parts: &Parts<'m>) -> Member {
        let mut members: Vec<Member> = self.columns[&relation.id]
            .iter()
            .map(|c| self.column(schema, c, c.is_nullable, false))
            .collect();
        members.extend(
            parts
                .functions
                .iter()
                .filter(|c| self.is_computed_field_of(c, relation))
                .map(|c| {
                    let ty = nullable_type(self.returns(schema, c.function), true);
                    member(&c.function.name, false, ty)
                }),
        );
        member("Row", false, Ty::Object(members, true))
    }

    fn schema(&self, schema: &Schema) -> Ty {
        let parts = &self.parts[schema.name.as_str()];
        let never = |c: &Column| c.always_generated_identity || c.is_generated;
        let tables = parts
            .tables
            .iter()
            .map(|(table, relationships)| {
                let columns = &self.columns[&table.id];
                let insert = columns
                    .iter()
                    .map(|c| {
                        if never(c) {
                            member(&c.name, true, plain("never"))
                        } else {
                            let optional = c.is_nullable || c.is_identity || c.has_default;
                            self.column(schema, c, c.is_nullable, optional)
                        }
                    })
                    .collect();
                let update = columns
                    .iter()
                    .map(|c| {
                        if never(c) {
                            member(&c.name, true, plain("never"))
                        } else {
                            self.column(schema, c, c.is_nullable, true)
                        }
                    })
                    .collect();
                member(
                    &table.name,
                    false,
                    Ty::Object(
                        vec![
                            self.row(schema, table, parts),
                            member("Insert", false, Ty::Object(insert, true)),
                            member("Update", false, Ty::Object(update, true)),
                            member("Relationships", false, self.relationships(relationships)),
                        ],
                        true,
                    ),
                )
            })
            .collect();
        let views = parts
            .views
            .iter()
            .map(|(view, insertable, updatable, relationships)| {
                let writable = || {
                    Ty::Object(
                        self.columns[&view.id]
                            .iter()
                            .map(|c| {
                                if c.is_updatable {
                                    self.column(schema, c, true, true)
                                } else {
                                    member(&c.name, true, plain("never"))
                                }
                            })
                            .collect(),
                        true,
                    )
                };
                let mut members = vec![self.row(schema, view, parts)];
                if *insertable {
                    members.push(member("Insert", false, writable()));
                }
                if *updatable {
                    members.push(member("Update", false, writable()));
                }
                members.push(member(
                    "Relationships",
                    false,
                    self.relationships(relationships),
                ));
                member(&view.name, false, Ty::Object(members, true))
            })
            .collect();
        let mut groups: Vec<(&str, Vec<&Callable<'m>>)> = Vec::new();
        for c in &parts.functions {
            match groups.iter_mut().find(|(n, _)| *n == c.function.name) {
                Some((_, list)) => list.push(c),
                None => groups.push((&c.function.name, vec![c])),
            }
        }
        let functions = groups
            .into_iter()
            .map(|(name, mut group)| {
                group.sort_by(|a, b| {
                    compare(&a.function.argument_types, &b.function.argument_types)
                        .then_with(|| compare(&a.function.return_type, &b.function.return_type))
                });
                let mut signatures = group.iter().map(|c| self.signature(schema, &group, c));
                let first = signatures.next().unwrap_or_else(|| plain("never"));
                let rest: Vec<Ty> = signatures.collect();
                let ty = if rest.is_empty() {
                    first
                } else {
                    let mut all = vec![first];
                    all.extend(rest);
                    Ty::Union(all)
                };
                member(name, false, ty)
            })
            .collect();
        let enums = parts
            .enums
            .iter()
            .map(|t| {
                let mut labels = t.enums.iter().map(|l| Ty::Str(l.clone()));
                let first = labels.next().unwrap_or_else(|| plain("never"));
                member(&t.name, false, labels.fold(first, union))
            })
            .collect();
        let composites = parts
            .composites
            .iter()
            .map(|t| {
                let attributes = t
                    .attributes
                    .iter()
                    .map(|(name, type_id)| {
                        let ty = match self.types_by_id.get(type_id) {
                            Some(at) => nullable_type(
                                self.ts_type(schema, &at.name, Some(&at.schema)),
                                true,
                            ),
                            None => plain("unknown"),
                        };
                        member(name, false, ty)
                    })
                    .collect();
                member(&t.name, false, Ty::Object(attributes, true))
            })
            .collect();
        Ty::Object(
            vec![
                member("Tables", false, section(tables)),
                member("Views", false, section(views)),
                member("Functions", false, section(functions)),
                member("Enums", false, section(enums)),
                member("CompositeTypes", false, section(composites)),
            ],
            true,
        )
    }

    fn database(&self) -> Ty {
        let mut members = Vec::new();
        if let Some(version) = self
            .options
            .postgrest_version
            .as_deref()
            .filter(|v| !v.is_empty())
        {
            members.push(Member {
                key: Some("__InternalSupabase".into()),
                optional: false,
                ty: Ty::Object(
                    vec![member(
                        "PostgrestVersion",
                        false,
                        Ty::Str(version.to_owned()),
                    )],
                    true,
                ),
                comments: &[
                    "// Allows to automatically instantiate createClient with right options",
                    "// instead of createClient<Database, { PostgrestVersion: 'XX' }>(URL, KEY)",
                ],
            });
        }
        members.extend(
            self.meta
                .schemas
                .iter()
                .map(|s| member(&s.name, false, self.schema(s))),
        );
        Ty::Object(members, true)
    }

    /// `Constants`: each schema's enums and their values.
    fn constants(&self) -> Doc {
        let object = |members: Vec<Doc>| {
            if members.is_empty() {
                return text("{}");
            }
            group(
                concat(vec![
                    text("{"),
                    indent(concat(vec![
                        line(),
                        join(concat(vec![text(","), line()]), members),
                    ])),
                    if_break(text(","), text("")),
                    line(),
                    text("}"),
                ]),
                true,
            )
        };
        let property =
            |name: &str, value: Doc| group(concat(vec![text(key(name)), text(": "), value]), false);
        let schemas = self
            .meta
            .schemas
            .iter()
            .map(|s| {
                let enums = self.parts[s.name.as_str()]
                    .enums
                    .iter()
                    .map(|t| {
                        let values = if t.enums.is_empty() {
                            text("[]")
                        } else {
                            group(
                                concat(vec![
                                    text("["),
                                    indent(concat(vec![
                                        softline(),
                                        join(
                                            concat(vec![text(","), line()]),
                                            t.enums.iter().map(|l| text(quote(l))).collect(),
                                        ),
                                        if_break(text(","), text("")),
                                    ])),
                                    softline(),
                                    text("]"),
                                ]),
                                false,
                            )
                        };
                        property(&t.name, values)
                    })
                    .collect();
                property(&s.name, object(vec![property("Enums", object(enums))]))
            })
            .collect();
        object(schemas)
    }
}

/// `t | null` when nullable (`Json` not null is `NonNullable<Json>`;
/// `unknown` already holds null).
fn nullable_type(t: Ty, nullable: bool) -> Ty {
    match &t {
        Ty::Plain(s) if s == "Json" && !nullable => plain("NonNullable<Json>"),
        Ty::Plain(s) if s == "unknown" || s == "any" => t,
        _ if !nullable => t,
        _ => union(t, plain("null")),
    }
}

/// The whole TypeScript file for `meta`.
pub(crate) fn generate(meta: &Metadata, options: &Options) -> String {
    let generator = Generator::new(meta, options);
    let constants = concat(vec![
        text("export const Constants = "),
        generator.constants(),
        text(" as const"),
    ]);
    let mut out = String::with_capacity(64 * 1024);
    out.push_str(JSON_TYPE);
    out.push_str("export type Database = ");
    match generator.database() {
        Ty::Object(members, _) => write_object(&mut out, &members, 0),
        other => out.push_str(&print(&ty_doc(&other, false), WIDTH)),
    }
    out.push_str("\n\n");
    out.push_str(HELPERS);
    out.push_str(&print(&constants, WIDTH));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_take_the_quote_that_needs_fewer_escapes() {
        assert_eq!(quote("plain"), r#""plain""#);
        assert_eq!(quote(r#"it"s"#), r#"'it"s'"#);
        assert_eq!(quote("it's"), r#""it's""#);
        assert_eq!(quote(r#"it's "quoted""#), r#"'it\'s "quoted"'"#);
        assert_eq!(quote("line\nbreak\\"), r#""line\nbreak\\""#);
    }

    #[test]
    fn keys_are_bare_when_they_are_identifiers() {
        assert_eq!(key("users"), "users");
        assert_eq!(key("ünïcödé"), "ünïcödé");
        assert_eq!(key("$_x1"), "$_x1");
        assert_eq!(key("my-table"), r#""my-table""#);
        assert_eq!(key("1st"), r#""1st""#);
        assert_eq!(key(""), r#""""#);
    }

    #[test]
    fn long_unions_break_with_a_leading_bar() {
        let mut out = String::new();
        let members = vec![
            member("short", false, union(plain("string"), plain("null"))),
            member(
                "a_column_whose_name_is_long_enough",
                true,
                union(
                    plain(r#"Database["public"]["Enums"]["a_long_enum_name"]"#),
                    plain("null"),
                ),
            ),
        ];
        write_object(&mut out, &members, 0);
        assert_eq!(
            out,
            "{\n  short: string | null\n  a_column_whose_name_is_long_enough?:\n    | Database[\"public\"][\"Enums\"][\"a_long_enum_name\"]\n    | null\n}"
        );
        // The same members laid out by the printer alone.
        assert_eq!(
            print(&ty_doc(&Ty::Object(members, true), false), WIDTH),
            out
        );
    }
}
