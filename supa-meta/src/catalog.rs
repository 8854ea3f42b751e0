//! One catalog query per endpoint (two for relations with their columns),
//! whose rows [`crate::encode`] turns into postgres-meta's JSON.
//!
//! Every statement takes the same six parameters, bound, never spliced:
//! `$1` schemas to include and `$2` schemas to exclude (`text[]`, NULL for
//! no filter), `$3` limit and `$4` offset (`int8`, NULL for none), `$5`
//! the ids or names looked up (`text[]`, NULL for all) and `$6` the
//! endpoint's flag (system schemas, array types, default roles). The SQL
//! text itself is made only of the constants below.
//!
//! Field names, types, nesting and field order are postgres-meta's answers'
//! (its response schemas where it has them, `jsonb`'s key order where it
//! aggregates with `jsonb`); timestamps are text as PostgreSQL prints them.
//! Lists are ordered by id (postgres-meta leaves the order to the plan).

/// The relations an endpoint lists, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relation {
    Tables,
    Views,
    MaterializedViews,
    ForeignTables,
}

fn schema_filter(column: &str) -> String {
    format!(
        "(($1::text[] IS NULL OR {column} = ANY($1::text[])) AND ($2::text[] IS NULL OR {column} <> ALL($2::text[])))"
    )
}

fn id_filter(expr: &str) -> String {
    format!("($5::text[] IS NULL OR ({expr})::text = ANY($5::text[]))")
}

/// The rows of `columns`, restricted by `filter` (a condition on `c`, `a`,
/// `nc`).
fn column_rows(filter: &str) -> String {
    format!(
        r#"SELECT
  c.oid::int8 AS table_id,
  nc.nspname AS schema,
  c.relname AS table,
  c.oid || '.' || a.attnum AS id,
  a.attnum AS ordinal_position,
  a.attname AS name,
  CASE WHEN a.atthasdef THEN pg_get_expr(ad.adbin, ad.adrelid) END AS default_value,
  CASE
    WHEN bt.oid IS NOT NULL THEN
      CASE
        WHEN bt.typelem <> 0 AND bt.typlen = -1 THEN 'ARRAY'
        WHEN bt.typnamespace = 'pg_catalog'::regnamespace THEN format_type(t.typbasetype, NULL)
        ELSE 'USER-DEFINED'
      END
    WHEN t.typelem <> 0 AND t.typlen = -1 THEN 'ARRAY'
    WHEN t.typnamespace = 'pg_catalog'::regnamespace THEN format_type(a.atttypid, NULL)
    ELSE 'USER-DEFINED'
  END AS data_type,
  coalesce(bt.typname, t.typname) AS format,
  a.attidentity IN ('a', 'd') AS is_identity,
  CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END AS identity_generation,
  a.attgenerated IN ('s') AS is_generated,
  NOT (a.attnotnull OR (t.typtype = 'd' AND t.typnotnull)) AS is_nullable,
  (c.relkind IN ('r', 'p')
    OR (c.relkind IN ('v', 'f') AND pg_column_is_updatable(c.oid, a.attnum, false))) AS is_updatable,
  uq.conrelid IS NOT NULL AS is_unique,
  coalesce(own_enum.labels, element_enum.labels, '[]') AS enums,
  ck.definition AS "check",
  d.description AS comment
FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace nc ON nc.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  LEFT JOIN (
    SELECT DISTINCT conrelid, conkey[1] AS attnum FROM pg_constraint
    WHERE contype = 'u' AND cardinality(conkey) = 1
  ) uq ON uq.conrelid = c.oid AND uq.attnum = a.attnum
  -- The first single-column check of a column, without "CHECK (" and ")".
  LEFT JOIN (
    SELECT DISTINCT ON (conrelid, conkey[1]) conrelid, conkey[1] AS attnum,
      substring(pg_get_constraintdef(oid, true) FROM 8 FOR length(pg_get_constraintdef(oid, true)) - 8) AS definition
    FROM pg_constraint
    WHERE contype = 'c' AND cardinality(conkey) = 1
    ORDER BY conrelid, conkey[1], oid
  ) ck ON ck.conrelid = c.oid AND ck.attnum = a.attnum
  -- An enum's labels, or those of an array's enum element.
  LEFT JOIN (SELECT enumtypid, array_to_json(array_agg(enumlabel ORDER BY enumsortorder)) AS labels FROM pg_enum GROUP BY enumtypid) own_enum
    ON own_enum.enumtypid = coalesce(bt.oid, t.oid)
  LEFT JOIN (SELECT enumtypid, array_to_json(array_agg(enumlabel ORDER BY enumsortorder)) AS labels FROM pg_enum GROUP BY enumtypid) element_enum
    ON element_enum.enumtypid = coalesce(bt.typelem, t.typelem)
  -- Column comments as one hashed set: probing pg_description's index once
  -- per column costs more on large schemas.
  LEFT JOIN (
    SELECT objoid, objsubid, description FROM pg_description
    WHERE classoid = 'pg_class'::regclass AND objsubid > 0 OFFSET 0
  ) d ON d.objoid = c.oid AND d.objsubid = a.attnum
WHERE a.attnum > 0
  AND NOT a.attisdropped
  AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
  AND NOT pg_is_other_temp_schema(nc.oid)
  AND (pg_has_role(c.relowner, 'USAGE')
    OR has_column_privilege(c.oid, a.attnum, 'SELECT, INSERT, UPDATE, REFERENCES'))
  AND {filter}"#
    )
}

/// `GET /columns`: `$5` holds column ids (`table_oid.attnum`); `by_table`
/// makes it hold table ids instead.
pub(crate) fn columns(by_table: bool) -> String {
    let lookup = if by_table {
        id_filter("c.oid")
    } else {
        id_filter("c.oid || '.' || a.attnum")
    };
    format!(
        "{}\nORDER BY c.oid, a.attnum LIMIT $3 OFFSET $4",
        column_rows(&format!("{} AND {lookup}", schema_filter("nc.nspname")))
    )
}

/// `GET /tables`, `/views`, `/materialized-views`, `/foreign-tables`: the
/// relations' rows, and the lists nested in them (columns with
/// `with_columns`; a table's primary keys and relationships).
pub(crate) fn relations(kind: Relation, with_columns: bool) -> (String, Vec<Child>) {
    let (relkinds, fields, privileged) = match kind {
        Relation::Tables => (
            "'r', 'p'",
            r#"c.relrowsecurity AS rls_enabled,
  c.relforcerowsecurity AS rls_forced,
  CASE c.relreplident WHEN 'd' THEN 'DEFAULT' WHEN 'i' THEN 'INDEX' WHEN 'f' THEN 'FULL' ELSE 'NOTHING' END AS replica_identity,
  sz.total::int8 AS bytes,
  pg_size_pretty(sz.total) AS size,
  pg_stat_get_live_tuples(c.oid) AS live_rows_estimate,
  pg_stat_get_dead_tuples(c.oid) AS dead_rows_estimate,
  obj_description(c.oid) AS comment"#,
            true,
        ),
        Relation::Views => (
            "'v'",
            "(pg_relation_is_updatable(c.oid, false) & 20) = 20 AS is_updatable,\n  obj_description(c.oid) AS comment",
            false,
        ),
        Relation::MaterializedViews => (
            "'m'",
            "c.relispopulated AS is_populated,\n  obj_description(c.oid) AS comment",
            false,
        ),
        Relation::ForeignTables => ("'f'", "obj_description(c.oid) AS comment", false),
    };
    let privilege = if privileged {
        "AND NOT pg_is_other_temp_schema(nc.oid)
  AND (pg_has_role(c.relowner, 'USAGE')
    OR has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
    OR has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))"
    } else {
        ""
    };
    let rel = format!(
        r#"WITH rel AS (
  SELECT c.oid FROM pg_class c JOIN pg_namespace nc ON nc.oid = c.relnamespace
  WHERE c.relkind IN ({relkinds}) AND {schema} AND {ids}
  {privilege}
  ORDER BY c.oid LIMIT $3 OFFSET $4
)"#,
        schema = schema_filter("nc.nspname"),
        ids = id_filter("c.oid"),
    );
    // A table's size is read from the file system once (`bytes` and
    // `size` both show it); it is most of the time the statement takes.
    let sizes = if kind == Relation::Tables {
        "\n  CROSS JOIN LATERAL (SELECT pg_total_relation_size(c.oid) AS total) sz"
    } else {
        ""
    };
    let rows = format!(
        r#"{rel}
SELECT
  c.oid::int8 AS id,
  nc.nspname AS schema,
  c.relname AS name,
  {fields}
FROM rel
  JOIN pg_class c ON c.oid = rel.oid
  JOIN pg_namespace nc ON nc.oid = c.relnamespace{sizes}
ORDER BY c.oid"#
    );
    // Their keys, relationships and columns (in the answer's order) come
    // from statements of their own, run beside the first.
    let mut children = Vec::new();
    if kind == Relation::Tables {
        // Fields in the order of postgres-meta's response schema.
        children.push(Child {
            field: "primary_keys",
            key: "table_id",
            keep_key: true,
            sql: format!(
                r#"{rel}
SELECT n.nspname AS schema, c.relname AS table_name, a.attname AS name, c.oid::int8 AS table_id
FROM pg_index i
  JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
WHERE i.indisprimary AND i.indrelid IN (SELECT oid FROM rel)
ORDER BY c.oid, array_position(i.indkey, a.attnum)"#
            ),
        });
        // A table's relationships are the foreign keys it holds or is the
        // target of, one entry per (source column, target column) pair.
        children.push(Child {
            field: "relationships",
            key: "relation",
            keep_key: false,
            sql: format!(
                r#"{rel},
fk AS (
  SELECT k.conrelid, k.confrelid, k.oid::int8 AS id, sn.nspname AS source_schema,
    k.conname AS constraint_name, sc.relname AS source_table_name, tc.relname AS target_table_name,
    sa.attname AS source_column_name, ta.attname AS target_column_name, tn.nspname AS target_table_schema
  FROM pg_constraint k
    JOIN pg_class sc ON sc.oid = k.conrelid
    JOIN pg_namespace sn ON sn.oid = sc.relnamespace
    JOIN pg_attribute sa ON sa.attrelid = k.conrelid AND sa.attnum = ANY(k.conkey)
    JOIN pg_class tc ON tc.oid = k.confrelid
    JOIN pg_namespace tn ON tn.oid = tc.relnamespace
    JOIN pg_attribute ta ON ta.attrelid = k.confrelid AND ta.attnum = ANY(k.confkey)
  WHERE k.contype = 'f'
    AND (k.conrelid IN (SELECT oid FROM rel) OR k.confrelid IN (SELECT oid FROM rel))
)
SELECT e.relation::int8 AS relation, e.id, e.constraint_name, e.source_schema, e.source_table_name,
  e.source_column_name, e.target_table_schema, e.target_table_name, e.target_column_name
FROM (
  SELECT conrelid AS relation, * FROM fk
  UNION ALL
  SELECT confrelid, * FROM fk WHERE confrelid <> conrelid
) e
ORDER BY e.relation, e.id, e.source_column_name, e.target_column_name"#
            ),
        });
    }
    if with_columns {
        children.push(Child {
            field: "columns",
            key: "table_id",
            keep_key: true,
            sql: format!(
                "{rel}\n{}\nORDER BY c.oid, a.attnum",
                column_rows("c.oid IN (SELECT oid FROM rel)")
            ),
        });
    }
    (rows, children)
}

/// A list nested in each relation, from a statement of its own.
pub(crate) struct Child {
    /// The relation's field (`columns`).
    pub(crate) field: &'static str,
    /// The column holding the relation's id.
    pub(crate) key: &'static str,
    /// Whether the key is also a field of the nested objects.
    pub(crate) keep_key: bool,
    /// The statement.
    pub(crate) sql: String,
}

/// `GET /schemas`; `$6`: include `pg_*` schemas.
pub(crate) fn schemas() -> String {
    format!(
        r#"SELECT n.oid::int8 AS id, n.nspname AS name, u.rolname AS owner
FROM pg_namespace n JOIN pg_roles u ON u.oid = n.nspowner
WHERE {schema} AND {ids}
  AND ($6 OR NOT starts_with(n.nspname, 'pg_'))
  AND (pg_has_role(n.nspowner, 'USAGE') OR has_schema_privilege(n.oid, 'CREATE, USAGE'))
  AND NOT starts_with(n.nspname, 'pg_temp_')
  AND NOT starts_with(n.nspname, 'pg_toast_temp_')
ORDER BY n.oid LIMIT $3 OFFSET $4"#,
        schema = schema_filter("n.nspname"),
        ids = id_filter("n.oid"),
    )
}

/// `GET /extensions`; `$5` holds names.
pub(crate) fn extensions() -> String {
    format!(
        r#"SELECT e.name, n.nspname AS schema, e.default_version, x.extversion AS installed_version, e.comment
FROM pg_available_extensions() AS e(name, default_version, comment)
  LEFT JOIN pg_extension x ON x.extname = e.name
  LEFT JOIN pg_namespace n ON n.oid = x.extnamespace
WHERE {ids}
ORDER BY e.name LIMIT $3 OFFSET $4"#,
        ids = id_filter("e.name"),
    )
}

/// `GET /functions` (plain functions, not procedures or aggregates).
pub(crate) fn functions() -> String {
    format!(
        r#"SELECT
  p.oid::int8 AS id,
  n.nspname AS schema,
  p.proname AS name,
  l.lanname AS language,
  CASE WHEN l.lanname = 'internal' THEN '' ELSE p.prosrc END AS definition,
  CASE WHEN l.lanname = 'internal' THEN p.prosrc ELSE pg_get_functiondef(p.oid) END AS complete_statement,
  coalesce((
    SELECT jsonb_agg(jsonb_build_object(
        'mode', CASE arg.mode WHEN 'i' THEN 'in' WHEN 'o' THEN 'out' WHEN 'b' THEN 'inout' WHEN 'v' THEN 'variadic' ELSE 'table' END,
        'name', arg.name,
        'type_id', arg.type_id::int8,
        'has_default', arg.has_default)
      ORDER BY arg.ord)
    FROM unnest(
      coalesce(p.proargmodes::text[], array_fill('i'::text, ARRAY[cardinality(coalesce(p.proallargtypes, p.proargtypes))])),
      coalesce(p.proargnames, array_fill(''::text, ARRAY[cardinality(coalesce(p.proallargtypes, p.proargtypes))])),
      coalesce(p.proallargtypes, p.proargtypes::oid[]),
      array_cat(array_fill(false, ARRAY[p.pronargs - p.pronargdefaults]), array_fill(true, ARRAY[p.pronargdefaults]))
    ) WITH ORDINALITY AS arg(mode, name, type_id, has_default, ord)
  ), '[]') AS args,
  pg_get_function_arguments(p.oid) AS argument_types,
  pg_get_function_identity_arguments(p.oid) AS identity_argument_types,
  p.prorettype::int8 AS return_type_id,
  pg_get_function_result(p.oid) AS return_type,
  nullif(rt.typrelid::int8, 0) AS return_type_relation_id,
  p.proretset AS is_set_returning_function,
  CASE WHEN p.proretset THEN nullif(p.prorows, 0) END AS prorows,
  CASE p.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' WHEN 'v' THEN 'VOLATILE' END AS behavior,
  p.prosecdef AS security_definer,
  (
    SELECT jsonb_object_agg(kv[1], kv[2]) FILTER (WHERE kv[1] IS NOT NULL)
    FROM unnest(p.proconfig) AS setting, LATERAL string_to_array(setting, '=') AS kv
  ) AS config_params
FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  LEFT JOIN pg_language l ON l.oid = p.prolang
  LEFT JOIN pg_type rt ON rt.oid = p.prorettype
WHERE p.prokind = 'f' AND {schema} AND {ids}
ORDER BY p.oid LIMIT $3 OFFSET $4"#,
        schema = schema_filter("n.nspname"),
        ids = id_filter("p.oid"),
    )
}

/// `GET /roles`; `$6`: include the predefined `pg_*` roles.
pub(crate) fn roles() -> String {
    format!(
        r#"SELECT
  r.oid::int8 AS id,
  r.rolname AS name,
  r.rolsuper AS is_superuser,
  r.rolcreatedb AS can_create_db,
  r.rolcreaterole AS can_create_role,
  r.rolinherit AS inherit_role,
  r.rolcanlogin AS can_login,
  r.rolreplication AS is_replication_role,
  r.rolbypassrls AS can_bypass_rls,
  (SELECT count(*) FROM pg_stat_activity s WHERE s.usename = r.rolname) AS active_connections,
  CASE WHEN r.rolconnlimit = -1 THEN current_setting('max_connections')::int8 ELSE r.rolconnlimit END AS connection_limit,
  r.rolpassword AS password,
  r.rolvaliduntil::text AS valid_until,
  (
    SELECT json_object_agg(kv[1], kv[2])
    FROM unnest(r.rolconfig) AS setting, LATERAL string_to_array(setting, '=') AS kv
  ) AS config
FROM pg_roles r
WHERE {ids} AND ($6 OR NOT starts_with(r.rolname, 'pg_'))
ORDER BY r.oid LIMIT $3 OFFSET $4"#,
        ids = id_filter("r.oid"),
    )
}

/// `GET /policies`.
pub(crate) fn policies() -> String {
    format!(
        r#"SELECT
  pol.oid::int8 AS id,
  n.nspname AS schema,
  c.relname AS table,
  c.oid::int8 AS table_id,
  pol.polname AS name,
  CASE WHEN pol.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END AS action,
  CASE
    WHEN pol.polroles = '{{0}}'::oid[] THEN '["public"]'::json
    ELSE array_to_json(ARRAY(SELECT ro.rolname FROM pg_roles ro WHERE ro.oid = ANY(pol.polroles) ORDER BY ro.rolname))
  END AS roles,
  CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' WHEN '*' THEN 'ALL' END AS command,
  pg_get_expr(pol.polqual, pol.polrelid) AS definition,
  pg_get_expr(pol.polwithcheck, pol.polrelid) AS check
FROM pg_policy pol
  JOIN pg_class c ON c.oid = pol.polrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {schema} AND {ids}
ORDER BY pol.oid LIMIT $3 OFFSET $4"#,
        schema = schema_filter("n.nspname"),
        ids = id_filter("pol.oid"),
    )
}

/// `GET /triggers` (user triggers, as `information_schema.triggers` shows
/// them).
pub(crate) fn triggers() -> String {
    format!(
        r#"SELECT
  -- PostgreSQL's JSON has oids as strings; postgres-meta's driver numbers.
  t.oid::int8 AS id,
  t.tgrelid::int8 AS table_id,
  CASE t.tgenabled WHEN 'D' THEN 'DISABLED' WHEN 'O' THEN 'ORIGIN' WHEN 'R' THEN 'REPLICA' WHEN 'A' THEN 'ALWAYS' END AS enabled_mode,
  (string_to_array(encode(t.tgargs, 'escape'), '\000'))[:t.tgnargs] AS function_args,
  it.trigger_name::text AS name,
  it.event_object_table::text AS table,
  it.event_object_schema::text AS schema,
  it.action_condition::text AS condition,
  it.action_orientation::text AS orientation,
  it.action_timing::text AS activation,
  array_agg(it.event_manipulation::text ORDER BY it.action_order, CASE it.event_manipulation WHEN 'INSERT' THEN 1 WHEN 'DELETE' THEN 2 ELSE 3 END) AS events,
  p.proname AS function_name,
  pn.nspname AS function_schema
FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN information_schema.triggers it
    ON it.trigger_name = t.tgname AND it.event_object_table = c.relname AND it.event_object_schema = n.nspname
  JOIN pg_proc p ON p.oid = t.tgfoid
  JOIN pg_namespace pn ON pn.oid = p.pronamespace
WHERE {schema} AND {ids}
GROUP BY t.oid, t.tgrelid, t.tgenabled, t.tgargs, t.tgnargs, it.trigger_name, it.event_object_table,
  it.event_object_schema, it.action_condition, it.action_orientation, it.action_timing, p.proname, pn.nspname
ORDER BY t.oid LIMIT $3 OFFSET $4"#,
        schema = schema_filter("n.nspname"),
        ids = id_filter("t.oid"),
    )
}

/// `GET /types` (base, enum, domain, range and composite types); `$6`:
/// include array types.
pub(crate) fn types() -> String {
    format!(
        r#"SELECT
  t.oid::int8 AS id,
  t.typname AS name,
  n.nspname AS schema,
  format_type(t.oid, NULL) AS format,
  coalesce((SELECT jsonb_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '[]') AS enums,
  coalesce((
    SELECT jsonb_agg(jsonb_build_object('name', a.attname, 'type_id', a.atttypid::int8) ORDER BY a.attnum)
    FROM pg_class tc JOIN pg_attribute a ON a.attrelid = tc.oid
    WHERE tc.oid = t.typrelid AND tc.relkind = 'c' AND NOT a.attisdropped
  ), '[]') AS attributes,
  obj_description(t.oid, 'pg_type') AS comment,
  nullif(t.typrelid::int8, 0) AS type_relation_id
FROM pg_type t
  LEFT JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE (t.typrelid = 0 OR (SELECT tc.relkind = 'c' FROM pg_class tc WHERE tc.oid = t.typrelid))
  AND ($6 OR NOT EXISTS (SELECT FROM pg_type el WHERE el.oid = t.typelem AND el.typarray = t.oid))
  AND {schema} AND {ids}
ORDER BY t.oid LIMIT $3 OFFSET $4"#,
        schema = schema_filter("n.nspname"),
        ids = id_filter("t.oid"),
    )
}

/// `GET /publications`.
pub(crate) fn publications() -> String {
    format!(
        r#"SELECT
  p.oid::int8 AS id,
  p.pubname AS name,
  p.pubowner::regrole::text AS owner,
  p.pubinsert AS publish_insert,
  p.pubupdate AS publish_update,
  p.pubdelete AS publish_delete,
  p.pubtruncate AS publish_truncate,
  CASE WHEN p.puballtables THEN NULL ELSE coalesce((
    SELECT json_agg(json_build_object('id', c.oid::int8, 'name', c.relname, 'schema', nc.nspname) ORDER BY c.oid)
    FROM pg_publication_rel pr
      JOIN pg_class c ON c.oid = pr.prrelid
      JOIN pg_namespace nc ON nc.oid = c.relnamespace
    WHERE pr.prpubid = p.oid
  ), '[]') END AS tables
FROM pg_publication p
WHERE {ids}
ORDER BY p.oid LIMIT $3 OFFSET $4"#,
        ids = id_filter("p.oid"),
    )
}

/// `GET /table-privileges`.
pub(crate) fn table_privileges() -> String {
    format!(
        r#"SELECT
  c.oid::int8 AS relation_id,
  nc.nspname AS schema,
  c.relname AS name,
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized_view'
    WHEN 'f' THEN 'foreign_table' WHEN 'p' THEN 'partitioned_table' END AS kind,
  coalesce((
    SELECT json_agg(json_build_object(
      'grantor', gr.rolname,
      'grantee', CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE ge.rolname END,
      'privilege_type', acl.privilege_type,
      'is_grantable', acl.is_grantable))
    FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) acl
      LEFT JOIN pg_roles gr ON gr.oid = acl.grantor
      LEFT JOIN pg_roles ge ON ge.oid = acl.grantee
  ), '[]') AS privileges
FROM pg_class c
  JOIN pg_namespace nc ON nc.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p')
  AND {schema} AND {ids}
  AND NOT pg_is_other_temp_schema(c.relnamespace)
  AND (pg_has_role(c.relowner, 'USAGE')
    -- MAINTAIN is a table privilege from PostgreSQL 17 on.
    OR has_table_privilege(c.oid, CASE WHEN current_setting('server_version_num')::int >= 170000
      THEN 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER, MAINTAIN'
      ELSE 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER' END)
    OR has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))
ORDER BY c.oid LIMIT $3 OFFSET $4"#,
        schema = schema_filter("nc.nspname"),
        ids = id_filter("c.oid"),
    )
}

/// `GET /column-privileges`: what a table grant gives every column, plus
/// the column's own grants, as `information_schema.column_privileges`
/// computes it (materialized views included).
pub(crate) fn column_privileges() -> String {
    format!(
        r#"SELECT
  x.attrelid || '.' || x.attnum AS column_id,
  nc.nspname AS relation_schema,
  x.relname AS relation_name,
  x.attname AS column_name,
  json_agg(json_build_object(
    'grantor', gr.rolname,
    'grantee', CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE ge.rolname END,
    'privilege_type', x.privilege_type,
    'is_grantable', x.is_grantable)) AS privileges
FROM (
  SELECT a.attrelid, a.attnum, a.attname, c.relname, c.relnamespace,
    acl.grantor, acl.grantee, acl.privilege_type, acl.is_grantable
  FROM pg_class c
    CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) acl
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p')
  UNION
  SELECT a.attrelid, a.attnum, a.attname, c.relname, c.relnamespace,
    acl.grantor, acl.grantee, acl.privilege_type, acl.is_grantable
  FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    CROSS JOIN LATERAL aclexplode(coalesce(a.attacl, acldefault('c', c.relowner))) acl
  WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
) x
  JOIN pg_namespace nc ON nc.oid = x.relnamespace
  JOIN pg_roles gr ON gr.oid = x.grantor
  LEFT JOIN pg_roles ge ON ge.oid = x.grantee
WHERE x.privilege_type IN ('INSERT', 'SELECT', 'UPDATE', 'REFERENCES')
  AND (x.grantee = 0 OR ge.oid IS NOT NULL)
  AND (x.grantee = 0 OR pg_has_role(gr.oid, 'USAGE') OR pg_has_role(ge.oid, 'USAGE'))
  AND {schema} AND {ids}
GROUP BY x.attrelid, x.attnum, nc.nspname, x.relname, x.attname
ORDER BY x.attrelid, x.attnum LIMIT $3 OFFSET $4"#,
        schema = schema_filter("nc.nspname"),
        ids = id_filter("x.attrelid || '.' || x.attnum"),
    )
}

/// `GET /indexes`. An index's attributes are those of its own columns whose
/// number also appears among the indexed table columns, which is how
/// postgres-meta pairs them (an index none of whose numbers match is not
/// listed there either).
pub(crate) fn indexes() -> String {
    format!(
        r#"SELECT
  i.indexrelid::int8 AS id,
  i.indrelid::int8 AS table_id,
  n.nspname AS schema,
  i.indnatts AS number_of_attributes,
  i.indnkeyatts AS number_of_key_attributes,
  i.indisunique AS is_unique,
  i.indisprimary AS is_primary,
  i.indisexclusion AS is_exclusion,
  i.indimmediate AS is_immediate,
  i.indisclustered AS is_clustered,
  i.indisvalid AS is_valid,
  i.indcheckxmin AS check_xmin,
  i.indisready AS is_ready,
  i.indislive AS is_live,
  i.indisreplident AS is_replica_identity,
  i.indkey::smallint[] AS key_attributes,
  i.indcollation::integer[] AS collation,
  i.indclass::integer[] AS class,
  i.indoption::smallint[] AS options,
  i.indpred::text AS index_predicate,
  obj_description(i.indexrelid, 'pg_class') AS comment,
  pg_get_indexdef(i.indexrelid) AS index_definition,
  am.amname AS access_method,
  attrs.list AS index_attributes
FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_am am ON am.oid = c.relam
  CROSS JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object(
        'attribute_number', a.attnum,
        'attribute_name', a.attname,
        'data_type', format_type(a.atttypid, a.atttypmod))
      ORDER BY a.attnum) AS list
    FROM pg_attribute a
    WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
  ) attrs
WHERE attrs.list IS NOT NULL AND {schema} AND {ids}
ORDER BY i.indexrelid LIMIT $3 OFFSET $4"#,
        schema = schema_filter("n.nspname"),
        ids = id_filter("i.indexrelid"),
    )
}

/// `GET /config`: every server setting, by category then name.
pub(crate) fn config() -> String {
    r#"SELECT
  s.name, s.setting, s.category,
  trim(split_part(s.category, '/', 1)) AS group,
  trim(split_part(s.category, '/', 2)) AS subgroup,
  s.unit, s.short_desc, s.extra_desc, s.context, s.vartype, s.source, s.min_val, s.max_val,
  s.enumvals, s.boot_val, s.reset_val, s.sourcefile, s.sourceline, s.pending_restart
FROM pg_settings s
ORDER BY s.category, s.name LIMIT $3 OFFSET $4"#
        .to_owned()
}

/// `GET /config/version`: one object.
pub(crate) fn version() -> String {
    r#"SELECT
  version() AS version,
  current_setting('server_version_num')::int8 AS version_number,
  (SELECT count(*) FROM pg_stat_activity) AS active_connections,
  current_setting('max_connections')::int8 AS max_connections"#
        .to_owned()
}
