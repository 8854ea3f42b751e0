//! What type generation reads from a database: schemas, relations,
//! columns, relationships (foreign keys, and those views inherit), functions
//! and types, in the order the generated file lists them.
//!
//! Seven catalog statements, run concurrently; each binds `$1` the schemas
//! asked for (NULL: all), `$2` the schemas left out when none are asked for
//! (the system schemas and `excluded_schemas`) and `$3` `excluded_schemas`
//! alone (NULL when empty), for the two filters postgres-meta applies:
//! most collections leave the system schemas out, foreign tables and
//! materialized views do not.

use std::collections::HashMap;

use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use super::collate::key;
use super::nodetree;
use crate::Error;

/// Schemas postgres-meta leaves out unless asked for.
const SYSTEM_SCHEMAS: [&str; 3] = ["information_schema", "pg_catalog", "pg_toast"];

/// Which schemas to describe.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Only these (empty: every schema but the system ones).
    pub(crate) included: Vec<String>,
    /// Not these.
    pub(crate) excluded: Vec<String>,
}

impl Filter {
    fn bound(&self) -> [Option<Vec<String>>; 3] {
        if !self.included.is_empty() {
            return [Some(self.included.clone()), None, None];
        }
        let mut excluded: Vec<String> = SYSTEM_SCHEMAS.iter().map(|s| s.to_string()).collect();
        excluded.extend(self.excluded.iter().cloned());
        let plain = (!self.excluded.is_empty()).then(|| self.excluded.clone());
        [None, Some(excluded), plain]
    }
}

/// `column` in the schemas asked for, system schemas left out.
fn in_schemas(column: &str) -> String {
    format!(
        "(CASE WHEN $1::text[] IS NULL THEN {column} <> ALL($2::text[]) ELSE {column} = ANY($1::text[]) END)"
    )
}

/// `column` in the schemas asked for, system schemas kept.
fn in_schemas_plain(column: &str) -> String {
    format!(
        "(CASE WHEN $1::text[] IS NOT NULL THEN {column} = ANY($1::text[]) WHEN $3::text[] IS NOT NULL THEN {column} <> ALL($3::text[]) ELSE true END)"
    )
}

#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub(crate) id: i64,
    pub(crate) name: String,
}

/// What kind of relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Table,
    ForeignTable,
    View,
    MaterializedView,
}

#[derive(Debug, Clone)]
pub(crate) struct Relation {
    pub(crate) id: i64,
    pub(crate) schema: String,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// Views: insertable (by itself or through triggers and rules).
    pub(crate) insertable: bool,
    /// Views: updatable (likewise).
    pub(crate) updatable: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) table_id: i64,
    pub(crate) schema: String,
    pub(crate) table: String,
    pub(crate) name: String,
    /// The type's name (a domain's base type).
    pub(crate) format: String,
    /// The schema of that type.
    pub(crate) type_schema: String,
    pub(crate) is_identity: bool,
    pub(crate) always_generated_identity: bool,
    pub(crate) is_generated: bool,
    pub(crate) is_nullable: bool,
    pub(crate) is_updatable: bool,
    pub(crate) has_default: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Relationship {
    pub(crate) foreign_key_name: String,
    pub(crate) schema: String,
    pub(crate) relation: String,
    /// `None` where postgres-meta finds no columns (see the query).
    pub(crate) columns: Option<Vec<String>>,
    pub(crate) is_one_to_one: bool,
    pub(crate) referenced_schema: String,
    pub(crate) referenced_relation: String,
    pub(crate) referenced_columns: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    In,
    Out,
    InOut,
    Variadic,
    Table,
}

impl Mode {
    /// Whether PostgREST passes it (in, inout, variadic).
    pub(crate) fn is_input(self) -> bool {
        matches!(self, Mode::In | Mode::InOut | Mode::Variadic)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Arg {
    pub(crate) mode: Mode,
    pub(crate) name: String,
    pub(crate) type_id: i64,
    pub(crate) has_default: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Function {
    pub(crate) id: i64,
    pub(crate) schema: String,
    pub(crate) name: String,
    /// Sorted by name.
    pub(crate) args: Vec<Arg>,
    pub(crate) argument_types: String,
    pub(crate) identity_argument_types: String,
    pub(crate) return_type: String,
    pub(crate) return_type_id: i64,
    pub(crate) return_type_relation_id: Option<i64>,
    pub(crate) is_set_returning_function: bool,
    pub(crate) prorows: Option<f64>,
}

#[derive(Debug, Clone)]
pub(crate) struct PgType {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) schema: String,
    pub(crate) format: String,
    pub(crate) enums: Vec<String>,
    /// A composite type's attributes: name and type id.
    pub(crate) attributes: Vec<(String, i64)>,
    pub(crate) type_relation_id: Option<i64>,
}

/// Everything the generators read, each list in its generated order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metadata {
    pub(crate) schemas: Vec<Schema>,
    pub(crate) tables: Vec<Relation>,
    pub(crate) foreign_tables: Vec<Relation>,
    pub(crate) views: Vec<Relation>,
    pub(crate) materialized_views: Vec<Relation>,
    pub(crate) columns: Vec<Column>,
    pub(crate) relationships: Vec<Relationship>,
    pub(crate) functions: Vec<Function>,
    pub(crate) types: Vec<PgType>,
}

fn schemas_sql() -> String {
    format!(
        "SELECT n.oid::int8, n.nspname::text FROM pg_namespace n JOIN pg_roles u ON u.oid = n.nspowner
WHERE {} AND NOT starts_with(n.nspname, 'pg_')
  AND (pg_has_role(n.nspowner, 'USAGE') OR has_schema_privilege(n.oid, 'CREATE, USAGE'))",
        in_schemas("n.nspname")
    )
}

fn relations_sql() -> String {
    let schemas = in_schemas("n.nspname");
    format!(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text,
  c.relkind = 'v' AND (pg_relation_is_updatable(c.oid, true) & 8) = 8,
  c.relkind = 'v' AND (pg_relation_is_updatable(c.oid, true) & 4) = 4
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (c.relkind IN ('r', 'p') AND {schemas} AND NOT pg_is_other_temp_schema(n.oid)
    AND (pg_has_role(c.relowner, 'USAGE')
      OR has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
      OR has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')))
  OR (c.relkind = 'v' AND {schemas})
  OR (c.relkind IN ('f', 'm') AND {plain})",
        plain = in_schemas_plain("n.nspname"),
    )
}

fn columns_sql() -> String {
    format!(
        "SELECT c.oid::int8, nc.nspname::text, c.relname::text, a.attname::text,
  coalesce(bt.typname, t.typname)::text, coalesce(nbt.nspname, nt.nspname)::text,
  a.attidentity IN ('a', 'd'), a.attidentity = 'a', a.attgenerated IN ('s', 'v'),
  NOT (a.attnotnull OR (t.typtype = 'd' AND t.typnotnull)),
  c.relkind IN ('r', 'p') OR (c.relkind IN ('v', 'f') AND (
    pg_column_is_updatable(c.oid, a.attnum, false)
    -- INSTEAD OF triggers and unconditional INSTEAD rules make every
    -- column of a view writable.
    OR EXISTS (SELECT FROM pg_trigger tg WHERE tg.tgrelid = c.oid AND tg.tgtype & 64 <> 0
      AND tg.tgtype & 20 <> 0 AND NOT tg.tgisinternal)
    OR EXISTS (SELECT FROM pg_rewrite rw WHERE rw.ev_class = c.oid AND rw.is_instead
      AND rw.ev_type IN ('2', '3') AND rw.ev_qual::text = '<>'))),
  a.atthasdef
FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace nc ON nc.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  JOIN pg_namespace nt ON nt.oid = t.typnamespace
  LEFT JOIN (pg_type bt JOIN pg_namespace nbt ON nbt.oid = bt.typnamespace)
    ON t.typtype = 'd' AND bt.oid = t.typbasetype
WHERE {} AND NOT pg_is_other_temp_schema(nc.oid) AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
  AND (pg_has_role(c.relowner, 'USAGE')
    OR has_column_privilege(c.oid, a.attnum, 'SELECT, INSERT, UPDATE, REFERENCES'))",
        in_schemas("nc.nspname")
    )
}

/// Every foreign key, with both ends' columns and what the filter says
/// of it: `listed` (a relationship of the schemas asked for; partitions'
/// copies are not) and `visible` (its schema's quoted name passes the
/// filter, as postgres-meta checks it: when schemas are asked for by name,
/// a key in a schema whose name needs quotes shows no columns, and its
/// referenced end is not matched with views). It is one-to-one when its
/// columns are a primary or unique key's, in the order of the table's
/// columns.
fn foreign_keys_sql() -> String {
    let names = |rel: &str, keys: &str| {
        format!(
            "ARRAY(SELECT a.attname::text FROM unnest(k.{keys}) WITH ORDINALITY AS u(n, o)
    JOIN pg_attribute a ON a.attrelid = k.{rel} AND a.attnum = u.n ORDER BY u.o)"
        )
    };
    format!(
        "SELECT k.conname::text, k.conrelid::int8, ns.nspname::text, tab.relname::text, k.conkey::int4[],
  x.cols, k.confrelid::int8, rns.nspname::text, other.relname::text, k.confkey::int4[], x.refs,
  x.listed, x.visible,
  x.listed AND x.visible AND EXISTS (SELECT FROM pg_constraint u
    WHERE u.conrelid = k.conrelid AND u.contype IN ('p', 'u')
      AND cardinality(u.conkey) = cardinality(k.conkey)
      AND ARRAY(SELECT a.attname::text FROM pg_attribute a
        WHERE a.attrelid = u.conrelid AND a.attnum = ANY(u.conkey) ORDER BY a.attnum) = x.cols)
FROM pg_constraint k
  JOIN pg_namespace ns ON ns.oid = k.connamespace
  JOIN pg_class tab ON tab.oid = k.conrelid
  JOIN pg_class other ON other.oid = k.confrelid
  JOIN pg_namespace rns ON rns.oid = other.relnamespace
  CROSS JOIN LATERAL (SELECT {cols} AS cols, {refs} AS refs,
    k.conparentid = 0 AND {listed} AS listed, {visible} AS visible OFFSET 0) x
WHERE k.contype = 'f'",
        cols = names("conrelid", "conkey"),
        refs = names("confrelid", "confkey"),
        listed = in_schemas("ns.nspname"),
        visible = in_schemas("k.connamespace::regnamespace::text"),
    )
}

/// The rules of views and materialized views, with their column names.
fn view_rules_sql() -> String {
    format!(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, r.ev_action::text,
  ARRAY(SELECT a.attnum::int4 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 ORDER BY a.attnum),
  ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 ORDER BY a.attnum)
FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_rewrite r ON r.ev_class = c.oid
WHERE c.relkind IN ('v', 'm') AND {}",
        in_schemas("n.nspname")
    )
}

fn functions_sql() -> String {
    format!(
        "SELECT p.oid::int8, n.nspname::text, p.proname::text,
  coalesce(p.proargmodes::text[], array_fill('i'::text, ARRAY[cardinality(coalesce(p.proallargtypes, p.proargtypes::oid[]))])),
  coalesce(p.proargnames, array_fill(''::text, ARRAY[cardinality(coalesce(p.proallargtypes, p.proargtypes::oid[]))])),
  coalesce(p.proallargtypes, p.proargtypes::oid[])::int8[],
  p.pronargs::int4, p.pronargdefaults::int4,
  pg_get_function_arguments(p.oid), pg_get_function_identity_arguments(p.oid),
  p.prorettype::int8, pg_get_function_result(p.oid), nullif(rt.typrelid::int8, 0), p.proretset,
  CASE WHEN p.proretset THEN nullif(p.prorows, 0)::float8 END
FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  LEFT JOIN pg_type rt ON rt.oid = p.prorettype
WHERE p.prokind = 'f' AND {}",
        in_schemas("n.nspname")
    )
}

/// The types the file may name: every enum and composite type of every
/// schema (columns name them), and the types the functions of the schemas
/// asked for and the composite types use (they go by id). Row types of
/// relations come with their relation's id.
fn types_sql() -> String {
    let functions = format!(
        "FROM pg_proc p JOIN pg_namespace pn ON pn.oid = p.pronamespace
    WHERE p.prokind = 'f' AND {}",
        in_schemas("pn.nspname")
    );
    format!(
        "WITH used AS (
  SELECT unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) AS oid {functions}
  UNION SELECT p.prorettype {functions}
  UNION SELECT a.atttypid FROM pg_class ac JOIN pg_attribute a ON a.attrelid = ac.oid
    WHERE ac.relkind = 'c' AND NOT a.attisdropped
)
SELECT t.oid::int8, t.typname::text, coalesce(n.nspname::text, ''), format_type(t.oid, NULL),
  CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e
    WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) ELSE '{{}}' END,
  CASE WHEN c.relkind = 'c' THEN ARRAY(SELECT a.attname::text FROM pg_attribute a
    WHERE a.attrelid = c.oid AND NOT a.attisdropped ORDER BY a.attnum) ELSE '{{}}' END,
  CASE WHEN c.relkind = 'c' THEN ARRAY(SELECT a.atttypid::int8 FROM pg_attribute a
    WHERE a.attrelid = c.oid AND NOT a.attisdropped ORDER BY a.attnum) ELSE '{{}}' END,
  nullif(t.typrelid::int8, 0)
FROM pg_type t
  LEFT JOIN pg_namespace n ON n.oid = t.typnamespace
  LEFT JOIN pg_class c ON c.oid = t.typrelid
WHERE (t.typrelid = 0 OR c.relkind IN ('c', 'r', 'v', 'm', 'p', 'f'))
  AND (t.typtype = 'e' OR c.relkind = 'c' OR t.oid IN (SELECT oid FROM used))"
    )
}

fn relation(row: &Row) -> Relation {
    let kind = match row.get::<_, String>(3).as_str() {
        "f" => Kind::ForeignTable,
        "v" => Kind::View,
        "m" => Kind::MaterializedView,
        _ => Kind::Table,
    };
    Relation {
        id: row.get(0),
        schema: row.get(1),
        name: row.get(2),
        kind,
        insertable: row.get(4),
        updatable: row.get(5),
    }
}

fn column(row: &Row) -> Column {
    Column {
        table_id: row.get(0),
        schema: row.get(1),
        table: row.get(2),
        name: row.get(3),
        format: row.get(4),
        type_schema: row.get(5),
        is_identity: row.get(6),
        always_generated_identity: row.get(7),
        is_generated: row.get(8),
        is_nullable: row.get(9),
        is_updatable: row.get(10),
        has_default: row.get(11),
    }
}

fn function(row: &Row) -> Function {
    let modes: Vec<String> = row.get(3);
    let names: Vec<Option<String>> = row.get(4);
    let types: Vec<i64> = row.get(5);
    let (inputs, defaults): (i32, i32) = (row.get(6), row.get(7));
    let count = modes.len().max(names.len()).max(types.len());
    let mut args: Vec<Arg> = (0..count)
        .map(|i| Arg {
            mode: match modes.get(i).map(String::as_str) {
                Some("i") => Mode::In,
                Some("o") => Mode::Out,
                Some("b") => Mode::InOut,
                Some("v") => Mode::Variadic,
                _ => Mode::Table,
            },
            name: names.get(i).cloned().flatten().unwrap_or_default(),
            type_id: types.get(i).copied().unwrap_or_default(),
            // Defaults belong to the last input arguments, counted over all
            // arguments by position (as postgres-meta counts them).
            has_default: (i as i32) < inputs && (i as i32) >= inputs - defaults,
        })
        .collect();
    args.sort_by_cached_key(|a| key(&a.name));
    Function {
        id: row.get(0),
        schema: row.get(1),
        name: row.get(2),
        args,
        argument_types: row.get(8),
        identity_argument_types: row.get(9),
        return_type_id: row.get(10),
        return_type: row.get::<_, Option<String>>(11).unwrap_or_default(),
        return_type_relation_id: row.get(12),
        is_set_returning_function: row.get(13),
        prorows: row.get(14),
    }
}

fn pg_type(row: &Row) -> PgType {
    let names: Vec<String> = row.get(5);
    let ids: Vec<i64> = row.get(6);
    PgType {
        id: row.get(0),
        name: row.get(1),
        schema: row.get(2),
        format: row.get(3),
        enums: row.get(4),
        attributes: names.into_iter().zip(ids).collect(),
        type_relation_id: row.get(7),
    }
}

/// One end of a foreign key: the table and its key columns.
struct KeyEnd {
    /// The referenced end (else the referencing one).
    referenced: bool,
    constraint: String,
    relation: u32,
    schema: String,
    table: String,
    keys: Vec<i32>,
    names: Vec<String>,
}

/// The relationships a foreign key row makes (when listed), and the ends
/// views may show.
fn foreign_key(row: &Row, keys: &mut Vec<Relationship>, ends: &mut Vec<KeyEnd>) {
    let (listed, visible): (bool, bool) = (row.get(11), row.get(12));
    let name: String = row.get(0);
    let columns: Vec<String> = row.get(5);
    let referenced_columns: Vec<String> = row.get(10);
    if listed {
        keys.push(Relationship {
            foreign_key_name: name.clone(),
            schema: row.get(2),
            relation: row.get(3),
            columns: visible.then(|| columns.clone()),
            is_one_to_one: row.get(13),
            referenced_schema: row.get(7),
            referenced_relation: row.get(8),
            referenced_columns: visible.then(|| referenced_columns.clone()),
        });
    }
    ends.push(KeyEnd {
        referenced: false,
        constraint: name.clone(),
        relation: row.get::<_, i64>(1) as u32,
        schema: row.get(2),
        table: row.get(3),
        keys: row.get(4),
        names: columns,
    });
    if visible {
        ends.push(KeyEnd {
            referenced: true,
            constraint: name,
            relation: row.get::<_, i64>(6) as u32,
            schema: row.get(7),
            table: row.get(8),
            keys: row.get(9),
            names: referenced_columns,
        });
    }
}

/// A view's columns that show a table's column, found through its rule
/// and those of the views it reads.
struct KeyDependency {
    table_schema: String,
    table_name: String,
    view_schema: String,
    view_name: String,
    constraint_name: String,
    referenced_side: bool,
    /// Per key column, in key order: the view's columns showing it.
    view_columns: Vec<Vec<String>>,
}

/// The keys (both ends of foreign keys) that views show in full.
fn key_dependencies(views: &[Row], ends: &[KeyEnd]) -> Vec<KeyDependency> {
    struct View {
        schema: String,
        name: String,
        columns: HashMap<i32, String>,
    }
    let mut by_id: HashMap<u32, View> = HashMap::new();
    // (view, view column) -> where it comes from, for every rule.
    let mut origins: Vec<(u32, nodetree::Origin)> = Vec::new();
    let mut sources: HashMap<(u32, i32), Vec<(u32, i32)>> = HashMap::new();
    for row in views {
        let id = row.get::<_, i64>(0) as u32;
        let attnums: Vec<i32> = row.get(4);
        let names: Vec<String> = row.get(5);
        by_id.entry(id).or_insert_with(|| View {
            schema: row.get(1),
            name: row.get(2),
            columns: attnums.into_iter().zip(names).collect(),
        });
        for origin in nodetree::view_origins(row.get(3)) {
            sources
                .entry((id, origin.column))
                .or_default()
                .push((origin.relation, origin.relation_column));
            origins.push((id, origin));
        }
    }
    // Follow views over views: every (view, column) is tied to each
    // relation column on its way down, stopping at cycles.
    let mut seen: Vec<(u32, i32, u32, i32)> = Vec::new();
    for (view, origin) in &origins {
        let mut stack = vec![(
            origin.relation,
            origin.relation_column,
            vec![origin.relation],
        )];
        while let Some((relation, relation_column, path)) = stack.pop() {
            seen.push((*view, origin.column, relation, relation_column));
            if path[..path.len() - 1].contains(&relation) {
                continue;
            }
            if let Some(next) = sources.get(&(relation, relation_column)) {
                for &(r, c) in next.iter().rev() {
                    let mut path = path.clone();
                    path.push(r);
                    stack.push((r, c, path));
                }
            }
        }
    }
    // (view, relation, relation column) -> the view's column names.
    let mut shown: HashMap<(u32, u32, i32), Vec<(i32, String)>> = HashMap::new();
    for (view, column, relation, relation_column) in seen {
        if let Some(name) = by_id.get(&view).and_then(|v| v.columns.get(&column)) {
            shown
                .entry((view, relation, relation_column))
                .or_default()
                .push((column, name.clone()));
        }
    }
    let mut views_by_relation: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(view, relation, _) in shown.keys() {
        let list = views_by_relation.entry(relation).or_default();
        if !list.contains(&view) {
            list.push(view);
        }
    }
    let mut out = Vec::new();
    for end in ends {
        let (relation, keys, names) = (end.relation, &end.keys, &end.names);
        let Some(views) = views_by_relation.get(&relation) else {
            continue;
        };
        let mut views = views.clone();
        views.sort_unstable();
        for view in views {
            let columns: Option<Vec<Vec<String>>> = keys
                .iter()
                .map(|key| {
                    shown.get(&(view, relation, *key)).map(|cols| {
                        let mut cols = cols.clone();
                        cols.sort_by_key(|(n, _)| *n);
                        cols.into_iter().map(|(_, name)| name).collect()
                    })
                })
                .collect();
            let (Some(columns), Some(v)) = (columns, by_id.get(&view)) else {
                continue;
            };
            if columns.is_empty() || names.len() != keys.len() {
                continue;
            }
            out.push(KeyDependency {
                table_schema: end.schema.clone(),
                table_name: end.table.clone(),
                view_schema: v.schema.clone(),
                view_name: v.name.clone(),
                constraint_name: end.constraint.clone(),
                referenced_side: end.referenced,
                view_columns: columns,
            });
        }
    }
    out
}

/// Every choice of one view column per key column, in order.
fn choices(view_columns: &[Vec<String>]) -> Vec<Vec<String>> {
    view_columns.iter().fold(vec![Vec::new()], |acc, options| {
        acc.iter()
            .flat_map(|prefix| {
                options.iter().map(move |option| {
                    let mut next = prefix.clone();
                    next.push(option.clone());
                    next
                })
            })
            .collect()
    })
}

/// The relationships views inherit from the foreign keys of the tables
/// they show: view to table, table to view and view to view.
fn view_relationships(keys: &[Relationship], deps: &[KeyDependency]) -> Vec<Relationship> {
    let mut out = Vec::new();
    for r in keys {
        let from_views: Vec<&KeyDependency> = deps
            .iter()
            .filter(|d| {
                !d.referenced_side
                    && d.table_schema == r.schema
                    && d.table_name == r.relation
                    && d.constraint_name == r.foreign_key_name
            })
            .collect();
        let to_views: Vec<&KeyDependency> = deps
            .iter()
            .filter(|d| {
                d.referenced_side
                    && d.table_schema == r.referenced_schema
                    && d.table_name == r.referenced_relation
                    && d.constraint_name == r.foreign_key_name
            })
            .collect();
        for d in &from_views {
            for columns in choices(&d.view_columns) {
                out.push(Relationship {
                    schema: d.view_schema.clone(),
                    relation: d.view_name.clone(),
                    columns: Some(columns),
                    ..r.clone()
                });
            }
        }
        for d in &to_views {
            for columns in choices(&d.view_columns) {
                out.push(Relationship {
                    referenced_schema: d.view_schema.clone(),
                    referenced_relation: d.view_name.clone(),
                    referenced_columns: Some(columns),
                    ..r.clone()
                });
            }
        }
        for from in &from_views {
            for columns in choices(&from.view_columns) {
                for to in &to_views {
                    for referenced in choices(&to.view_columns) {
                        out.push(Relationship {
                            schema: from.view_schema.clone(),
                            relation: from.view_name.clone(),
                            columns: Some(columns.clone()),
                            referenced_schema: to.view_schema.clone(),
                            referenced_relation: to.view_name.clone(),
                            referenced_columns: Some(referenced),
                            ..r.clone()
                        });
                    }
                }
            }
        }
    }
    out
}

fn by_schema_name(r: &Relation) -> (Vec<u32>, Vec<u32>, i64) {
    (key(&r.schema), key(&r.name), r.id)
}

fn columns_text(columns: &Option<Vec<String>>) -> String {
    serde_json::to_string(columns).unwrap_or_default()
}

/// Reads the metadata of the schemas `filter` picks, over `client`s that
/// take the statements concurrently.
pub(crate) async fn introspect(
    clients: &[&tokio_postgres::Client],
    filter: &Filter,
) -> Result<Metadata, Error> {
    let bound = filter.bound();
    let args: [(&(dyn ToSql + Sync), Type); 3] = [
        (&bound[0], Type::TEXT_ARRAY),
        (&bound[1], Type::TEXT_ARRAY),
        (&bound[2], Type::TEXT_ARRAY),
    ];
    // Spread over the connections in turn, the two longest first.
    let statements = [
        columns_sql(),
        foreign_keys_sql(),
        schemas_sql(),
        relations_sql(),
        view_rules_sql(),
        functions_sql(),
        types_sql(),
    ];
    let args = &args;
    let results = futures_util::future::try_join_all(statements.iter().enumerate().map(
        |(i, sql)| async move {
            let client = clients[i % clients.len()];
            client
                .query_typed(sql, args)
                .await
                .map_err(|e| Error::from_pg(&e))
        },
    ))
    .await?;
    let [
        columns,
        foreign_keys,
        schemas,
        relations,
        rules,
        functions,
        types,
    ] = <[Vec<Row>; 7]>::try_from(results).map_err(|_| Error::Internal("result count".into()))?;

    let mut meta = Metadata {
        schemas: schemas
            .iter()
            .map(|r| Schema {
                id: r.get(0),
                name: r.get(1),
            })
            .collect(),
        ..Metadata::default()
    };
    meta.schemas.sort_by_cached_key(|s| (key(&s.name), s.id));
    for relation in relations.iter().map(relation) {
        match relation.kind {
            Kind::Table => meta.tables.push(relation),
            Kind::ForeignTable => meta.foreign_tables.push(relation),
            Kind::View => meta.views.push(relation),
            Kind::MaterializedView => meta.materialized_views.push(relation),
        }
    }
    for list in [
        &mut meta.tables,
        &mut meta.foreign_tables,
        &mut meta.views,
        &mut meta.materialized_views,
    ] {
        list.sort_by_cached_key(by_schema_name);
    }
    meta.columns = columns.iter().map(column).collect();
    meta.columns
        .sort_by_cached_key(|c| (key(&c.schema), key(&c.table), key(&c.name)));
    let (mut keys, mut ends) = (Vec::new(), Vec::new());
    for row in &foreign_keys {
        foreign_key(row, &mut keys, &mut ends);
    }
    let deps = key_dependencies(&rules, &ends);
    let inherited = view_relationships(&keys, &deps);
    meta.relationships = keys;
    meta.relationships.extend(inherited);
    meta.relationships.sort_by_cached_key(|r| {
        (
            key(&r.foreign_key_name),
            key(&r.referenced_relation),
            key(&columns_text(&r.referenced_columns)),
        )
    });
    meta.functions = functions
        .iter()
        .map(function)
        .filter(|f| f.return_type != "trigger" && f.return_type != "event_trigger")
        .collect();
    meta.functions.sort_by_cached_key(|f| {
        (
            key(&f.schema),
            key(&f.name),
            key(&f.identity_argument_types),
            f.id,
        )
    });
    meta.types = types.iter().map(pg_type).collect();
    meta.types
        .sort_by_cached_key(|t| (key(&t.schema), key(&t.name), t.id));
    Ok(meta)
}
