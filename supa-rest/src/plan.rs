//! From a parsed request and the schema cache to one SQL statement that
//! builds the whole response body inside PostgreSQL, PostgREST's way:
//! a `pgrst_source` CTE for the rows, then one row of
//! `total, page_total, body, location, response_headers, response_status`.

use crate::Error;
use crate::grammar::{
    Aggregate, CmpOp, Field, Filter, IsValue, JsonKey, LogicTree, Operation, OrderTerm, Quantifier,
    SelectItem,
};
use crate::request::{Media, Resolution};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::schema::{Cardinality, Function, Relation, Returns, SchemaCache};
use crate::sql::{Sql, array_literal, quote_ident};

/// Pushes `qualifier."name"->$k::text->>idx`; a path into a column of
/// `rel` that is not json (a composite, an array) goes through
/// `to_jsonb`, as PostgREST does.
fn push_field(sql: &mut Sql, qualifier: &str, field: &Field, rel: Option<&Relation>) {
    let convert = !field.path.is_empty()
        && rel
            .and_then(|r| r.column(&field.name))
            .is_some_and(|c| !c.is_json);
    if convert {
        sql.push("to_jsonb(");
    }
    sql.push(qualifier).push(".").ident(&field.name);
    if convert {
        sql.push(")");
    }
    for step in &field.path {
        sql.push(if step.as_text { "->>" } else { "->" });
        match &step.key {
            JsonKey::Key(k) => {
                sql.param(k.clone()).push("::text");
            }
            JsonKey::Index(i) => {
                sql.push(&i.to_string());
            }
        }
    }
}

fn like_pattern(v: &str) -> String {
    v.replace('*', "%")
}

/// Pushes an array of filter values, each parsed by `parse` when the
/// column has a `text AS domain` cast.
fn push_values(sql: &mut Sql, array: String, parse: Option<&str>) {
    match parse {
        Some(f) => sql
            .push("ARRAY(SELECT ")
            .push(f)
            .push("(pgrst_v) FROM unnest(")
            .param(array)
            .push("::text[]) pgrst_v)"),
        None => sql.param(array),
    };
}

/// Pushes one filter condition on a column of `rel` (when known).
pub fn push_filter(sql: &mut Sql, qualifier: &str, filter: &Filter, rel: Option<&Relation>) {
    if filter.negated {
        sql.push("NOT ");
    }
    // A domain with a `text AS domain` cast parses the values.
    let parse = rel
        .filter(|_| filter.field.path.is_empty())
        .and_then(|r| r.column(&filter.field.name))
        .and_then(|c| c.from_text.as_deref());
    match &filter.op {
        Operation::Cmp(op, quant, value) => {
            let value = match op {
                CmpOp::Like | CmpOp::Ilike => like_pattern(value),
                _ => value.clone(),
            };
            push_field(sql, qualifier, &filter.field, rel);
            sql.push(" ").push(op.sql()).push(" ");
            match (quant, parse) {
                (None, None) => {
                    sql.param(value);
                }
                (None, Some(f)) => {
                    sql.push(f).push("(").param(value).push("::text)");
                }
                (Some(q), _) => {
                    sql.push(if *q == Quantifier::Any {
                        "ANY("
                    } else {
                        "ALL("
                    });
                    push_values(sql, value, parse);
                    sql.push(")");
                }
            }
        }
        Operation::In(items) => {
            push_field(sql, qualifier, &filter.field, rel);
            sql.push(" = ANY(");
            push_values(sql, array_literal(items), parse);
            sql.push(")");
        }
        Operation::Is(v) => {
            push_field(sql, qualifier, &filter.field, rel);
            sql.push(match v {
                IsValue::Null => " IS NULL",
                IsValue::NotNull => " IS NOT NULL",
                IsValue::True => " IS TRUE",
                IsValue::False => " IS FALSE",
                IsValue::Unknown => " IS UNKNOWN",
            });
        }
        Operation::Fts(op, lang, value) => {
            push_field(sql, qualifier, &filter.field, rel);
            sql.push(" @@ ").push(op.function()).push("(");
            if let Some(lang) = lang {
                sql.param(lang.clone()).push("::regconfig, ");
            }
            sql.param(value.clone()).push(")");
        }
    }
}

fn push_logic(sql: &mut Sql, qualifier: &str, tree: &LogicTree, rel: Option<&Relation>) {
    match tree {
        LogicTree::Filter(f) => push_filter(sql, qualifier, f, rel),
        LogicTree::Expr {
            negated,
            or,
            children,
        } => {
            if *negated {
                sql.push("NOT ");
            }
            sql.push("(");
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    sql.push(if *or { " OR " } else { " AND " });
                }
                push_logic(sql, qualifier, child, rel);
            }
            sql.push(")");
        }
    }
}

/// `WHERE` conditions of a request on `rel` (when known), or nothing.
pub fn push_where(
    sql: &mut Sql,
    qualifier: &str,
    filters: &[Filter],
    logic: &[LogicTree],
    rel: Option<&Relation>,
) {
    let mut first = true;
    for f in filters {
        sql.push(if first { " WHERE " } else { " AND " });
        first = false;
        push_filter(sql, qualifier, f, rel);
    }
    for t in logic {
        sql.push(if first { " WHERE " } else { " AND " });
        first = false;
        push_logic(sql, qualifier, t, rel);
    }
}

/// Lateral joins of embedded resources, and what each is called.
#[derive(Debug, Default)]
pub struct Joins {
    /// The `JOIN LATERAL` clauses.
    pub sql: Vec<Sql>,
    /// (label, relation name, lateral alias, to-one) per embed.
    pub named: Vec<(String, String, String, bool)>,
}

fn push_order(
    sql: &mut Sql,
    qualifier: &str,
    order: &[OrderTerm],
    joins: &Joins,
    parent: &str,
    rel: Option<&Relation>,
) -> Result<(), Error> {
    let terms: Vec<&OrderTerm> = order.iter().collect();
    if terms.is_empty() {
        return Ok(());
    }
    sql.push(" ORDER BY ");
    for (i, t) in terms.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        match &t.relation {
            None => push_field(sql, qualifier, &t.field, rel),
            Some(rel) => {
                let Some((_, _, lateral, to_one)) = joins
                    .named
                    .iter()
                    .find(|(label, name, _, _)| label == rel || name == rel)
                else {
                    return Err(Error::api(
                        400,
                        "PGRST108",
                        format!("'{rel}' is not an embedded resource in this request"),
                    )
                    .with_hint(format!(
                        "Verify that '{rel}' is included in the 'select' query parameter."
                    )));
                };
                if !to_one {
                    return Err(Error::api(400, "PGRST118", format!("A related order on '{rel}' is not possible"))
                        .with_details(format!("'{parent}' and '{rel}' do not form a many-to-one or one-to-one relationship")));
                }
                push_field(sql, lateral, &t.field, None);
            }
        }
        sql.push(if t.desc { " DESC" } else { " ASC" });
        match t.nulls_first {
            Some(true) => {
                sql.push(" NULLS FIRST");
            }
            Some(false) => {
                sql.push(" NULLS LAST");
            }
            None => {}
        }
    }
    Ok(())
}

/// Checks a `::type` written by the client: bare words (`double
/// precision`, `int4[]`) only, so a cast can never leave its `CAST(...)`.
fn cast_type(t: &str) -> Result<&str, Error> {
    let core = t.trim_end_matches("[]");
    let ok = !core.is_empty()
        && core.split(' ').all(|w| {
            !w.is_empty()
                && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !w.chars().next().is_some_and(|c| c.is_ascii_digit())
        })
        && t[core.len()..].chars().all(|c| c == '[' || c == ']');
    if ok {
        Ok(t)
    } else {
        Err(Error::api(
            400,
            "PGRST100",
            format!("invalid cast type {t:?}"),
        ))
    }
}

/// The select list; `Err` for embedding (not supported yet).
/// What embedding needs: the schema cache, the parent relation and the
/// embedded filters and options still to place.
#[derive(Debug)]
pub struct EmbedCtx<'a> {
    /// The schema cache.
    pub cache: &'a SchemaCache,
    /// The relation whose rows are being selected.
    pub parent: (String, String),
    /// Filters on embedded resources by path.
    pub filters: &'a [(Vec<String>, Filter)],
    /// `order`/`limit`/`offset`/`and`/`or` of embedded resources by path.
    pub other: &'a [(Vec<String>, String, String)],
    /// The path of the resource being selected.
    pub path: Vec<String>,
    /// Numbers the aliases of one statement.
    pub counter: &'a AtomicUsize,
}

/// Pushes the select list over rows of `rel` (when known: its domain
/// columns are then formatted by their data representation).
fn push_projection(
    target: &mut Sql,
    qualifier: &str,
    items: &[SelectItem],
    group_by: &mut Vec<Sql>,
    embed: Option<&EmbedCtx<'_>>,
    joins: &mut Joins,
    rel: Option<&Relation>,
) -> Result<bool, Error> {
    let mut has_aggregate = false;
    let mut first = true;
    for item in items {
        // Each item is built apart: an embed used only for filtering
        // (`rel()`) adds a join but no column.
        let mut out = Sql::default();
        let sql = &mut out;
        match item {
            SelectItem::Star => {
                match rel.filter(|r| r.has_representations()) {
                    Some(rel) => {
                        for (i, col) in rel.columns.iter().enumerate() {
                            if i > 0 {
                                sql.push(", ");
                            }
                            if let Some(f) = &col.to_json {
                                sql.push(f).push("(");
                            }
                            sql.push(qualifier).push(".").ident(&col.name);
                            if col.to_json.is_some() {
                                sql.push(") AS ").ident(&col.name);
                            }
                        }
                    }
                    None => {
                        sql.push(qualifier).push(".*");
                    }
                }
                let mut g = Sql::default();
                g.push(qualifier).push(".*");
                group_by.push(g);
            }
            SelectItem::CountAll { alias, cast } => {
                has_aggregate = true;
                match cast {
                    Some(c) => sql
                        .push("CAST(pg_catalog.count(*) AS ")
                        .push(cast_type(c)?)
                        .push(")"),
                    None => sql.push("pg_catalog.count(*)"),
                };
                sql.push(" AS ").ident(alias.as_deref().unwrap_or("count"));
            }
            SelectItem::Field {
                field,
                alias,
                cast,
                aggregate,
                aggregate_cast,
            } => {
                let mut column = Sql::default();
                push_field(&mut column, qualifier, field, rel);
                // A plain domain column comes out in its representation.
                let format = rel
                    .filter(|_| field.path.is_empty() && aggregate.is_none())
                    .and_then(|r| r.column(&field.name))
                    .and_then(|c| c.to_json.as_deref());
                let mut value = Sql::default();
                match format {
                    Some(f) => {
                        value.push(f).push("(").append(&column).push(")");
                    }
                    None => {
                        value.append(&column);
                    }
                }
                let mut expr = Sql::default();
                match cast {
                    Some(c) => {
                        expr.push("CAST(")
                            .append(&value)
                            .push(" AS ")
                            .push(cast_type(c)?)
                            .push(")");
                    }
                    None => {
                        expr.append(&value);
                    }
                }
                let name = match (alias, aggregate) {
                    (Some(a), _) => a.clone(),
                    (None, Some(agg)) => agg.sql().to_owned(),
                    (None, None) => field.output_name(),
                };
                match aggregate {
                    Some(agg) => {
                        has_aggregate = true;
                        let func = if *agg == Aggregate::Count {
                            "pg_catalog.count"
                        } else {
                            agg.sql()
                        };
                        if aggregate_cast.is_some() {
                            sql.push("CAST(");
                        }
                        sql.push(func).push("(").append(&expr).push(")");
                        if let Some(c) = aggregate_cast {
                            sql.push(" AS ").push(cast_type(c)?).push(")");
                        }
                    }
                    None => {
                        sql.append(&expr);
                        // json has no equality: group by the column itself.
                        group_by.push(if format.is_some() { column } else { expr });
                    }
                }
                sql.push(" AS ").ident(&name);
            }
            SelectItem::Embed {
                name,
                alias,
                hint,
                inner,
                spread,
                items,
            } => {
                let Some(ctx) = embed else {
                    return Err(Error::api(
                        400,
                        "PGRST200",
                        format!("Could not find a relationship for '{name}' in the schema cache"),
                    ));
                };
                push_embed(
                    sql,
                    group_by,
                    qualifier,
                    ctx,
                    joins,
                    name,
                    alias.as_deref(),
                    hint.as_deref(),
                    *inner,
                    *spread,
                    items,
                )?;
            }
        }
        if !out.text.is_empty() {
            if !first {
                target.push(", ");
            }
            first = false;
            target.append(&out);
        }
    }
    Ok(has_aggregate)
}

/// Reads of rows: source, filters, order and range.
#[derive(Debug, Default)]
pub struct ReadSpec<'a> {
    /// `select` items.
    pub select: Option<&'a [SelectItem]>,
    /// Filters.
    pub filters: &'a [Filter],
    /// Logic trees.
    pub logic: &'a [LogicTree],
    /// Order.
    pub order: &'a [OrderTerm],
    /// LIMIT.
    pub limit: Option<i64>,
    /// OFFSET.
    pub offset: i64,
    /// More conditions (join conditions of embedded resources).
    pub extra: Vec<Sql>,
    /// Embedding context; `None` where embedding is impossible.
    pub embed: Option<&'a EmbedCtx<'a>>,
}

/// Builds `SELECT <projection> FROM <from> WHERE .. ORDER BY .. LIMIT ..`
/// and the matching count query (without range) over `from`, whose rows
/// are named by `qualifier`.
pub fn select_rows(from: &Sql, qualifier: &str, spec: &ReadSpec<'_>) -> Result<(Sql, Sql), Error> {
    let mut sql = Sql::default();
    sql.push("SELECT ");
    let star = [SelectItem::Star];
    let items = spec.select.unwrap_or(&star);
    let mut group_by = Vec::new();
    let mut joins = Joins::default();
    let rel = spec
        .embed
        .and_then(|e| e.cache.relation(&e.parent.0, &e.parent.1));
    let aggregated = push_projection(
        &mut sql,
        qualifier,
        items,
        &mut group_by,
        spec.embed,
        &mut joins,
        rel,
    )?;
    let mut from_joined = Sql::default();
    from_joined.append(from);
    for j in &joins.sql {
        from_joined.push(" ").append(j);
    }
    sql.push(" FROM ").append(&from_joined);
    // `rel=is.null` / `rel=not.is.null` filter on an embedded resource.
    let (embed_filters, plain): (Vec<&Filter>, Vec<&Filter>) = spec.filters.iter().partition(|f| {
        f.field.path.is_empty()
            && matches!(f.op, Operation::Is(IsValue::Null | IsValue::NotNull))
            && joins
                .named
                .iter()
                .any(|(label, _, _, _)| *label == f.field.name)
    });
    let plain: Vec<Filter> = plain.into_iter().cloned().collect();
    let mut conditions = Sql::default();
    push_where(&mut conditions, qualifier, &plain, spec.logic, rel);
    for f in embed_filters {
        let (_, _, lateral, to_one) = joins
            .named
            .iter()
            .find(|(label, _, _, _)| *label == f.field.name)
            .expect("partitioned on this");
        let is_null = matches!(f.op, Operation::Is(IsValue::Null)) != f.negated;
        conditions.push(if conditions.text.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        match (to_one, is_null) {
            (true, true) => conditions.push(lateral).push(" IS NULL"),
            (true, false) => conditions.push(lateral).push(" IS NOT NULL"),
            (false, true) => conditions
                .push("jsonb_array_length(")
                .push(lateral)
                .push(".pgrst_agg) = 0"),
            (false, false) => conditions
                .push("jsonb_array_length(")
                .push(lateral)
                .push(".pgrst_agg) > 0"),
        };
    }
    for extra in &spec.extra {
        conditions.push(if conditions.text.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        conditions.append(extra);
    }
    sql.append(&conditions);
    if aggregated && !group_by.is_empty() {
        sql.push(" GROUP BY ");
        for (i, g) in group_by.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.append(g);
        }
    }
    let parent = spec.embed.map_or("", |e| e.parent.1.as_str());
    push_order(&mut sql, qualifier, spec.order, &joins, parent, rel)?;
    if let Some(limit) = spec.limit {
        sql.push(&format!(" LIMIT {limit}"));
    }
    if spec.offset > 0 {
        sql.push(&format!(" OFFSET {}", spec.offset));
    }
    let mut count = Sql::default();
    count
        .push("SELECT 1 FROM ")
        .append(&from_joined)
        .append(&conditions);
    Ok((sql, count))
}

/// The body expression for `media`.
fn body_expr(media: Media, scalar: bool) -> &'static str {
    match (media, scalar) {
        (Media::Object { strip_nulls: true }, _) => {
            "coalesce(json_strip_nulls(json_agg(_postgrest_t)->0)::text, 'null')"
        }
        (Media::Object { .. }, false) => "coalesce((json_agg(_postgrest_t)->0)::text, 'null')",
        (Media::Object { .. }, true) => {
            "coalesce((json_agg(_postgrest_t.pgrst_scalar)->0)::text, 'null')"
        }
        (Media::ArrayStripped, _) => {
            "coalesce(json_agg(json_strip_nulls(row_to_json(_postgrest_t))), '[]')::text"
        }
        (Media::Csv, _) => {
            "(SELECT coalesce(string_agg(a.k, ','), '') FROM (SELECT json_object_keys(r)::text AS k FROM (SELECT row_to_json(hh) AS r FROM pgrst_source AS hh LIMIT 1) s) a) || chr(10) || coalesce(string_agg(substring(_postgrest_t::text, 2, length(_postgrest_t::text) - 2), chr(10)), '')"
        }
        (Media::Text, _) => "coalesce(string_agg(_postgrest_t.pgrst_scalar::text, ''), '')",
        // PostGIS makes each row a Feature (its first geometry column the
        // geometry, the others the properties), found on the search path.
        (Media::GeoJson, _) => {
            "json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(ST_AsGeoJSON(_postgrest_t)::json), '[]'))::text"
        }
        (Media::Binary, _) => {
            "coalesce(encode(string_agg(_postgrest_t.pgrst_scalar, ''::bytea), 'base64'), '')"
        }
        (_, true) => "coalesce(json_agg(_postgrest_t.pgrst_scalar), '[]')::text",
        _ => "coalesce(json_agg(_postgrest_t), '[]')::text",
    }
}

/// What the final statement wraps and computes besides the body.
#[derive(Debug, Default)]
pub struct Wrap<'a> {
    /// The `pgrst_source` query.
    pub source: Sql,
    /// `SELECT ... FROM pgrst_source` shaping the rows (writes with
    /// `select=`); all columns when absent.
    pub rows: Option<Sql>,
    /// Rows to count for an exact total.
    pub count: Option<Sql>,
    /// Rows that already existed before an upsert (200 vs 201).
    pub existing: Option<Sql>,
    /// Primary key columns for `Location`.
    pub location: Option<&'a [String]>,
    /// Whether the body is built.
    pub with_body: bool,
    /// Rows are `pgrst_scalar` values of a function.
    pub scalar: bool,
    /// The body's expression from a media type handler, in place of the
    /// media type's own.
    pub handler: Option<String>,
}

/// The body a media type handler makes of the rows: its aggregate over
/// them (typed as its relation's rows when it takes those).
pub fn handler_body(h: &crate::schema::MediaHandler) -> String {
    match &h.input {
        Some((schema, name)) => format!(
            "{}(CAST(ROW(_postgrest_t.*) AS {}.{}))",
            h.aggregate,
            quote_ident(schema),
            quote_ident(name)
        ),
        None => format!("{}(_postgrest_t)", h.aggregate),
    }
}

/// The body of a function returning a media type's domain: its value.
pub const MEDIA_VALUE_BODY: &str = "(array_agg(_postgrest_t.pgrst_scalar))[1]";

/// Wraps a `pgrst_source` query into the final one-row statement.
pub fn wrap(w: &Wrap<'_>, media: Media) -> Sql {
    let mut sql = Sql::default();
    sql.push("WITH pgrst_source AS (")
        .append(&w.source)
        .push(") SELECT ");
    match &w.count {
        Some(c) => {
            sql.push("(SELECT pg_catalog.count(*) FROM (")
                .append(c)
                .push(") pgrst_count)");
        }
        None => {
            sql.push("NULL::bigint");
        }
    }
    sql.push(" AS total, pg_catalog.count(_postgrest_t) AS page_total, ");
    if let Some(h) = &w.handler {
        sql.push(h);
    } else if w.with_body {
        sql.push(body_expr(media, w.scalar));
    } else {
        sql.push("''");
    }
    sql.push(" AS body, ");
    match w.location {
        // From the written rows, not the shaped ones (`select=` may drop the key).
        Some(pk) if !pk.is_empty() => {
            sql.push("(SELECT array_to_string(array_agg(concat_ws('&'");
            for col in pk {
                sql.push(", ")
                    .param(format!("{col}=eq."))
                    .push("::text || coalesce(pgrst_loc.")
                    .ident(col)
                    .push("::text, '')");
            }
            sql.push(")), ',') FROM pgrst_source pgrst_loc)");
        }
        _ => {
            sql.push("NULL::text");
        }
    }
    sql.push(" AS location, ");
    match &w.existing {
        Some(e) => {
            sql.push("(").append(e).push(")");
        }
        None => {
            sql.push("NULL::bigint");
        }
    }
    sql.push(
        " AS existing, nullif(current_setting('response.headers', true), '') AS response_headers, \
         nullif(current_setting('response.status', true), '') AS response_status FROM (",
    );
    match &w.rows {
        Some(rows) => {
            sql.append(rows);
        }
        None => {
            sql.push("SELECT * FROM pgrst_source");
        }
    }
    sql.push(") _postgrest_t");
    sql
}

/// `SELECT <select> FROM pgrst_source` for shaping the written rows of
/// `rel` (none needed for all columns without data representations).
pub fn shape_rows(
    select: Option<&[SelectItem]>,
    rel: &Relation,
    embed: &EmbedCtx<'_>,
) -> Result<Option<Sql>, Error> {
    let star = [SelectItem::Star];
    let items = match select {
        Some(items) => items,
        None if rel.has_representations() => &star,
        None => return Ok(None),
    };
    let mut from = Sql::default();
    from.push("pgrst_source");
    // The written rows, with what they embed as the table was before the
    // statement (a statement does not see its own writes).
    let spec = ReadSpec {
        select: Some(items),
        embed: Some(embed),
        ..ReadSpec::default()
    };
    let (sql, _) = select_rows(&from, "pgrst_source", &spec)?;
    Ok(Some(sql))
}

/// Counts payload rows whose conflict columns match an existing row.
pub fn existing_rows(spec: &WriteSpec<'_>, payload: &str) -> Sql {
    let rel = spec.rel;
    let mut sql = Sql::default();
    sql.push("SELECT pg_catalog.count(*)");
    push_payload_rows(&mut sql, spec, payload);
    sql.push(", ")
        .qualified(&rel.schema, &rel.name)
        .push(" pgrst_old WHERE ");
    for (i, col) in spec.on_conflict.iter().enumerate() {
        if i > 0 {
            sql.push(" AND ");
        }
        sql.push("pgrst_old.").ident(col).push(" = ");
        push_written(&mut sql, rel, col);
    }
    if spec.on_conflict.is_empty() {
        sql.push("false");
    }
    sql
}

/// Where mutated rows come from.
#[derive(Debug)]
pub struct WriteSpec<'a> {
    /// The relation.
    pub rel: &'a Relation,
    /// Columns to write (from `columns` or the payload's keys).
    pub columns: Vec<String>,
    /// `on_conflict` columns, or the primary key.
    pub on_conflict: Vec<String>,
    /// Upsert behaviour.
    pub resolution: Option<Resolution>,
    /// `missing=default`.
    pub missing_default: bool,
    /// Filters of PATCH/DELETE.
    pub filters: &'a [Filter],
    /// Logic trees of PATCH/DELETE.
    pub logic: &'a [LogicTree],
}

/// Every written row comes back: the body, `Location` and counts use them.
fn returning(sql: &mut Sql, rel: &Relation) {
    sql.push(" RETURNING ")
        .qualified(&rel.schema, &rel.name)
        .push(".*");
}

/// `AS pgrst_row(<col> <type>, ...)`: the record definition that reads
/// `columns` of `rel` out of a JSON object, and nothing else (keys not
/// written are ignored, as with PostgREST's `?columns=`). A domain with a
/// `json AS domain` cast is read as raw `json` for its cast function.
fn push_record_definition(sql: &mut Sql, rel: &Relation, columns: &[&String]) {
    sql.push(" AS pgrst_row(");
    for (i, name) in columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(name).push(" ");
        match rel.column(name) {
            Some(c) if c.from_json.is_some() => sql.push("json"),
            Some(c) => sql.push(&c.type_name),
            None => sql.push("text"),
        };
    }
    sql.push(")");
}

/// The columns a statement reads from the payload: those written and the
/// conflict columns.
fn read_columns<'a>(spec: &'a WriteSpec<'_>) -> Vec<&'a String> {
    let mut cols: Vec<&String> = spec.columns.iter().collect();
    for c in &spec.on_conflict {
        if !cols.contains(&c) {
            cols.push(c);
        }
    }
    cols
}

/// The value written to `col` from `pgrst_row`, through the column's
/// `json AS domain` cast function when it has one.
fn push_written(sql: &mut Sql, rel: &Relation, col: &str) {
    match rel.column(col).and_then(|c| c.from_json.as_deref()) {
        Some(f) => {
            sql.push(f).push("(pgrst_row.").ident(col).push(")");
        }
        None => {
            sql.push("pgrst_row.").ident(col);
        }
    }
}

/// `FROM` items giving the payload's objects as rows `pgrst_row` (an
/// object is a one-element array); each object is also `pgrst_elem` when
/// the statement needs it (`missing=default`, no columns).
fn push_payload_rows(sql: &mut Sql, spec: &WriteSpec<'_>, payload: &str) {
    let rel = spec.rel;
    sql.push(" FROM (SELECT CASE WHEN json_typeof(pgrst_p.j) = 'array' THEN pgrst_p.j ELSE json_build_array(pgrst_p.j) END AS val FROM (SELECT ")
        .param(payload.to_owned())
        .push("::json AS j) pgrst_p) pgrst_body");
    let columns = read_columns(spec);
    if columns.is_empty() {
        sql.push(", json_array_elements(pgrst_body.val) pgrst_elem");
    } else if spec.missing_default {
        sql.push(
            ", json_array_elements(pgrst_body.val) pgrst_elem, LATERAL json_to_record(pgrst_elem)",
        );
        push_record_definition(sql, rel, &columns);
    } else {
        sql.push(", json_to_recordset(pgrst_body.val)");
        push_record_definition(sql, rel, &columns);
    }
}

/// `INSERT` (with `ON CONFLICT` for upserts and PUT).
pub fn insert(spec: &WriteSpec<'_>, payload: &str) -> Sql {
    let rel = spec.rel;
    let mut sql = Sql::default();
    sql.push("INSERT INTO ").qualified(&rel.schema, &rel.name);
    if !spec.columns.is_empty() {
        sql.push("(");
        for (i, col) in spec.columns.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.ident(col);
        }
        sql.push(")");
    }
    // With no columns, each object inserts a row of defaults.
    sql.push(" SELECT ");
    for (i, col) in spec.columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        let default = rel.column(col).and_then(|c| c.default.as_deref());
        match default {
            // Keys absent from an object take the column default.
            Some(default) if spec.missing_default => {
                sql.push("CASE WHEN (pgrst_elem::jsonb) ? ")
                    .param(col.clone())
                    .push(" THEN ");
                push_written(&mut sql, rel, col);
                sql.push(" ELSE ").push(default).push(" END");
            }
            _ => push_written(&mut sql, rel, col),
        }
    }
    push_payload_rows(&mut sql, spec, payload);
    if let Some(res) = spec.resolution {
        sql.push(" ON CONFLICT(");
        for (i, col) in spec.on_conflict.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.ident(col);
        }
        sql.push(")");
        if res == Resolution::IgnoreDuplicates || spec.columns.is_empty() {
            sql.push(" DO NOTHING");
        } else {
            sql.push(" DO UPDATE SET ");
            for (i, col) in spec.columns.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.ident(col).push(" = EXCLUDED.").ident(col);
            }
        }
    }
    returning(&mut sql, rel);
    sql
}

/// `UPDATE ... SET` from the payload object.
pub fn update(spec: &WriteSpec<'_>, payload: &str) -> Sql {
    let rel = spec.rel;
    let mut sql = Sql::default();
    sql.push("UPDATE ")
        .qualified(&rel.schema, &rel.name)
        .push(" SET ");
    for (i, col) in spec.columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(col).push(" = ");
        push_written(&mut sql, rel, col);
    }
    sql.push(" FROM json_to_record(")
        .param(payload.to_owned())
        .push("::json)");
    push_record_definition(&mut sql, rel, &spec.columns.iter().collect::<Vec<_>>());
    let qualifier = format!("{}.{}", quote_ident(&rel.schema), quote_ident(&rel.name));
    push_where(&mut sql, &qualifier, spec.filters, spec.logic, Some(rel));
    returning(&mut sql, rel);
    sql
}

/// `DELETE`.
pub fn delete(spec: &WriteSpec<'_>) -> Sql {
    let rel = spec.rel;
    let mut sql = Sql::default();
    sql.push("DELETE FROM ").qualified(&rel.schema, &rel.name);
    let qualifier = format!("{}.{}", quote_ident(&rel.schema), quote_ident(&rel.name));
    push_where(&mut sql, &qualifier, spec.filters, spec.logic, Some(rel));
    returning(&mut sql, rel);
    sql
}

/// How arguments reach a function.
#[derive(Debug)]
pub enum RpcArgs<'a> {
    /// Each named argument's text (GET): bound untyped.
    Text(&'a [(String, String)]),
    /// A JSON object whose keys are arguments (POST).
    Json {
        /// The object.
        payload: &'a str,
        /// Argument names present.
        keys: &'a [String],
    },
    /// The whole body as the single unnamed json/jsonb argument.
    Single(&'a str),
    /// A raw body for the single unnamed argument: hex of bytes (`true`)
    /// or text.
    Raw(&'a str, bool),
}

/// Pushes `[VARIADIC] "name" := <value>` for each argument, comma-separated.
fn push_named_args<'a, T>(
    call: &mut Sql,
    args: &mut dyn Iterator<Item = (&'a crate::schema::Arg, T)>,
    value: impl Fn(&mut Sql, &(&'a crate::schema::Arg, T)),
) {
    for (i, item) in args.enumerate() {
        if i > 0 {
            call.push(", ");
        }
        if item.0.variadic {
            call.push("VARIADIC ");
        }
        call.ident(&item.0.name).push(" := ");
        value(call, &item);
    }
}

/// `FROM` of a function call: `"s"."fn"(...)` producing rows named
/// `pgrst_call` (composite) or a column `pgrst_scalar`.
pub fn call(func: &Function, args: &RpcArgs<'_>) -> Sql {
    let mut call = Sql::default();
    call.qualified(&func.schema, &func.name).push("(");
    match args {
        RpcArgs::Text(pairs) => {
            let mut given = func.args.iter().filter_map(|arg| {
                let values: Vec<String> = pairs
                    .iter()
                    .filter(|(k, _)| *k == arg.name)
                    .map(|(_, v)| v.clone())
                    .collect();
                (!values.is_empty()).then_some((arg, values))
            });
            push_named_args(&mut call, &mut given, |call, (arg, values)| {
                if arg.variadic || arg.type_name.ends_with("[]") && values.len() > 1 {
                    call.param(array_literal(values));
                } else {
                    call.param(values[values.len() - 1].clone());
                }
            });
        }
        RpcArgs::Json { keys, .. } => {
            let mut given = func
                .args
                .iter()
                .filter(|a| keys.contains(&a.name))
                .map(|a| (a, ()));
            push_named_args(&mut call, &mut given, |call, (arg, ())| {
                call.push("pgrst_args.").ident(&arg.name);
            });
        }
        RpcArgs::Raw(value, true) => {
            call.push("decode(")
                .param((*value).to_owned())
                .push(", 'hex')");
        }
        RpcArgs::Raw(value, false) => {
            call.param((*value).to_owned());
            let t = func.args.first().map_or("text", |a| a.type_name.as_str());
            call.push("::")
                .push(if t == "xml" { "xml" } else { "text" });
        }
        RpcArgs::Single(payload) => {
            call.param((*payload).to_owned());
            let t = func.args.first().map_or("json", |a| a.type_name.as_str());
            call.push("::")
                .push(if t == "jsonb" { "jsonb" } else { "json" });
        }
    }
    call.push(")");

    let mut from = Sql::default();
    if let RpcArgs::Json { payload, keys } = args
        && !keys.is_empty()
    {
        // The object's values typed as the chosen overload's arguments.
        from.push("json_to_record(")
            .param((*payload).to_owned())
            .push("::json) AS pgrst_args(");
        let given = func.args.iter().filter(|a| keys.contains(&a.name));
        for (i, arg) in given.enumerate() {
            if i > 0 {
                from.push(", ");
            }
            from.ident(&arg.name).push(" ").push(&arg.type_name);
        }
        from.push("), LATERAL ");
    }
    match func.returns {
        Returns::Composite(_) => {
            from.append(&call).push(" pgrst_call");
        }
        _ => {
            // Scalars become a one-column relation.
            let mut sub = Sql::default();
            if func.returns_set {
                sub.append(&call).push(" pgrst_call(pgrst_scalar)");
            } else {
                sub.push("(SELECT ")
                    .append(&call)
                    .push(" AS pgrst_scalar) pgrst_call");
            }
            from.append(&sub);
        }
    }
    from
}

/// Output column names of a select list over `rel`: a spread embed's
/// columns come out flat, under their own names.
fn output_names(cache: &SchemaCache, items: &[SelectItem], rel: Option<&Relation>) -> Vec<String> {
    let mut names = Vec::new();
    for item in items {
        match item {
            SelectItem::Star => names.extend(
                rel.into_iter()
                    .flat_map(|r| r.columns.iter().map(|c| c.name.clone())),
            ),
            SelectItem::Field {
                field,
                alias,
                aggregate,
                ..
            } => names.push(match (alias, aggregate) {
                (Some(a), _) => a.clone(),
                (None, Some(a)) => a.sql().to_owned(),
                (None, None) => field.output_name(),
            }),
            SelectItem::CountAll { alias, .. } => {
                names.push(alias.clone().unwrap_or_else(|| "count".into()))
            }
            SelectItem::Embed {
                name,
                hint,
                spread: true,
                items,
                ..
            } => {
                // Already resolved once when its SQL was built.
                let target = rel
                    .map(|r| (r.schema.clone(), r.name.clone()))
                    .and_then(|p| {
                        cache
                            .relationships(&p, name, hint.as_deref())
                            .into_iter()
                            .next()
                    })
                    .and_then(|r| cache.relation(&r.target.0, &r.target.1));
                names.extend(output_names(cache, items, target));
            }
            SelectItem::Embed { name, alias, .. } => {
                names.push(alias.clone().unwrap_or_else(|| name.clone()))
            }
        }
    }
    names
}

/// Whether a select list aggregates, directly or in a spread inside it.
fn aggregates(items: &[SelectItem]) -> bool {
    items.iter().any(|i| match i {
        SelectItem::CountAll { .. } => true,
        SelectItem::Field { aggregate, .. } => aggregate.is_some(),
        SelectItem::Embed {
            spread: true,
            items,
            ..
        } => aggregates(items),
        _ => false,
    })
}

/// Pushes `lateral."col" AS "col"` for each name (a spread's columns),
/// each also a grouping expression.
fn push_lateral_columns(sql: &mut Sql, group_by: &mut Vec<Sql>, lateral: &str, names: &[String]) {
    for (i, col) in names.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        let mut expr = Sql::default();
        expr.push(lateral).push(".").ident(col);
        sql.append(&expr).push(" AS ").ident(col);
        group_by.push(expr);
    }
}

#[allow(clippy::too_many_arguments)]
fn push_embed(
    sql: &mut Sql,
    group_by: &mut Vec<Sql>,
    qualifier: &str,
    ctx: &EmbedCtx<'_>,
    joins: &mut Joins,
    name: &str,
    alias: Option<&str>,
    hint: Option<&str>,
    inner: Option<bool>,
    spread: bool,
    items: &[SelectItem],
) -> Result<(), Error> {
    let found = ctx.cache.relationships(&ctx.parent, name, hint);
    let rel = match found.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(Error::api(
                400,
                "PGRST200",
                format!("Could not find a relationship between '{}' and '{name}' in the schema cache", ctx.parent.1),
            )
            .with_details(format!(
                "Searched for a foreign key relationship between '{}' and '{name}'{} in the schema '{}', but no matches were found.",
                ctx.parent.1,
                hint.map(|h| format!(" using the hint '{h}'")).unwrap_or_default(),
                ctx.parent.0
            )));
        }
        _ => {
            let details: Vec<serde_json::Value> = found
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "cardinality": r.kind,
                        "embedding": format!("{} with {}", ctx.parent.1, r.target.1),
                        "relationship": r.description,
                    })
                })
                .collect();
            return Err(Error::api(
                300,
                "PGRST201",
                format!("Could not embed because more than one relationship was found for '{}' and '{name}'", ctx.parent.1),
            )
            .with_hint(format!(
                "Try changing '{name}' to one of the following: {}. Find the desired relationship in the 'details' key.",
                found.iter().map(|r| format!("'{}!{}'", r.target.1, r.constraint)).collect::<Vec<_>>().join(", ")
            ))
            .with_details_json(serde_json::Value::Array(details)));
        }
    };
    let n = ctx.counter.fetch_add(1, Ordering::Relaxed) + 1;
    // PostgREST's alias for an embedded relation, which its errors name
    // (`column messages_1.sum does not exist`).
    let inner_alias = quote_ident(&format!("{}_{}", rel.target.1, ctx.path.len() + 1));
    let lateral = quote_ident(&format!("pgrst_l{n}"));
    let label = alias.unwrap_or(name).to_owned();
    let mut path = ctx.path.clone();
    path.push(label.clone());
    let mut by_name = ctx.path.clone();
    by_name.push(name.to_owned());
    let on_path = |p: &Vec<String>| *p == path || *p == by_name;

    let filters: Vec<Filter> = ctx
        .filters
        .iter()
        .filter(|(p, _)| on_path(p))
        .map(|(_, f)| f.clone())
        .collect();
    let mut order = Vec::new();
    let mut logic = Vec::new();
    let (mut limit, mut offset) = (None, 0);
    for (p, key, value) in ctx.other.iter().filter(|(p, _, _)| on_path(p)) {
        match key.as_str() {
            "order" => order = crate::grammar::parse_order(value)?,
            "limit" => limit = value.parse().ok(),
            "offset" => offset = value.parse().unwrap_or(0),
            "and" | "or" => logic.push(crate::grammar::parse_logic(key, value)?),
            _ => {}
        }
        let _ = p;
    }

    let mut from = Sql::default();
    match &rel.function {
        // The function gives the related rows of the parent row.
        Some(computed) => {
            let (schema, function) = &computed.function;
            from.qualified(schema, function)
                .push("(CAST(ROW(")
                .push(qualifier)
                .push(".*) AS ")
                .qualified(&computed.argument.0, &computed.argument.1)
                .push("))");
        }
        None => {
            from.qualified(&rel.target.0, &rel.target.1);
        }
    }
    from.push(" AS ").push(&inner_alias);
    let mut cond = Sql::default();
    match &rel.cardinality {
        _ if rel.function.is_some() => {}
        Cardinality::ToOne | Cardinality::ToMany => {
            for (i, (pc, tc)) in rel.columns.iter().enumerate() {
                if i > 0 {
                    cond.push(" AND ");
                }
                cond.push(&inner_alias)
                    .push(".")
                    .ident(tc)
                    .push(" = ")
                    .push(qualifier)
                    .push(".")
                    .ident(pc);
            }
        }
        Cardinality::ManyToMany {
            junction,
            parent_cols,
            target_cols,
        } => {
            let j = quote_ident(&format!("pgrst_j{n}"));
            from.push(", ")
                .qualified(&junction.0, &junction.1)
                .push(" AS ")
                .push(&j);
            let mut first = true;
            for (jc, pc) in parent_cols {
                if !first {
                    cond.push(" AND ");
                }
                first = false;
                cond.push(&j)
                    .push(".")
                    .ident(jc)
                    .push(" = ")
                    .push(qualifier)
                    .push(".")
                    .ident(pc);
            }
            for (jc, tc) in target_cols {
                cond.push(" AND ")
                    .push(&j)
                    .push(".")
                    .ident(jc)
                    .push(" = ")
                    .push(&inner_alias)
                    .push(".")
                    .ident(tc);
            }
        }
    }
    let child = EmbedCtx {
        cache: ctx.cache,
        parent: rel.target.clone(),
        filters: ctx.filters,
        other: ctx.other,
        path,
        counter: ctx.counter,
    };
    let spec = ReadSpec {
        select: Some(items),
        filters: &filters,
        logic: &logic,
        order: &order,
        limit,
        offset,
        extra: if cond.text.is_empty() {
            Vec::new()
        } else {
            vec![cond]
        },
        embed: Some(&child),
    };
    if spread && rel.cardinality != Cardinality::ToOne && aggregates(items) {
        return Err(
            Error::api(400, "PGRST127", "Feature not implemented").with_details(
                "Aggregates are not implemented for one-to-many or many-to-many spreads.",
            ),
        );
    }
    let (inner_sql, _) = select_rows(&from, &inner_alias, &spec)?;
    let join_kind = if inner == Some(true) { "INNER" } else { "LEFT" };
    let mut join = Sql::default();
    match rel.cardinality {
        Cardinality::ToOne => {
            // At most one row anyway; the LIMIT keeps the subquery from
            // being flattened into a join that would reorder the parent's
            // rows (adding an embed does not change the order of a read).
            let limit = if spec.limit.is_none() { " LIMIT 1" } else { "" };
            join.push(join_kind)
                .push(" JOIN LATERAL (")
                .append(&inner_sql)
                .push(limit)
                .push(") AS ")
                .push(&lateral)
                .push(" ON TRUE");
            if spread {
                let target = ctx.cache.relation(&rel.target.0, &rel.target.1);
                let names = output_names(ctx.cache, items, target);
                push_lateral_columns(sql, group_by, &lateral, &names);
            } else if !items.is_empty() {
                // jsonb, as PostgREST has it: it can be grouped by.
                let mut expr = Sql::default();
                expr.push("row_to_json(").push(&lateral).push(".*)::jsonb");
                sql.append(&expr).push(" AS ").ident(&label);
                group_by.push(expr);
            }
        }
        _ if spread => {
            // PostgREST 13+: each spread column of a to-many relationship
            // becomes an array of its values.
            let target = ctx.cache.relation(&rel.target.0, &rel.target.1);
            let names = output_names(ctx.cache, items, target);
            join.push(join_kind)
                .push(" JOIN LATERAL (SELECT pg_catalog.count(*) AS pgrst_n");
            for col in &names {
                join.push(", coalesce(jsonb_agg(pgrst_a.")
                    .ident(col)
                    .push("), '[]') AS ")
                    .ident(col);
            }
            join.push(" FROM (")
                .append(&inner_sql)
                .push(") AS pgrst_a) AS ")
                .push(&lateral)
                .push(" ON ");
            if inner == Some(true) {
                join.push(&lateral).push(".pgrst_n > 0");
            } else {
                join.push("TRUE");
            }
            push_lateral_columns(sql, group_by, &lateral, &names);
        }
        _ => {
            join.push(join_kind)
                .push(
                    " JOIN LATERAL (SELECT coalesce(jsonb_agg(pgrst_a), '[]') AS pgrst_agg FROM (",
                )
                .append(&inner_sql)
                .push(") AS pgrst_a) AS ")
                .push(&lateral)
                .push(" ON ");
            if inner == Some(true) {
                join.push("jsonb_array_length(")
                    .push(&lateral)
                    .push(".pgrst_agg) > 0");
            } else {
                join.push("TRUE");
            }
            if !items.is_empty() {
                let mut expr = Sql::default();
                expr.push(&lateral).push(".pgrst_agg");
                sql.append(&expr).push(" AS ").ident(&label);
                group_by.push(expr);
            }
        }
    }
    let to_one = rel.cardinality == Cardinality::ToOne;
    joins.sql.push(join);
    joins.named.push((label, name.to_owned(), lateral, to_one));
    Ok(())
}

/// Every embedded filter or option must name a resource embedded by
/// `select` (PGRST108 otherwise).
pub fn check_embedded_paths(
    select: Option<&[SelectItem]>,
    filters: &[(Vec<String>, Filter)],
    other: &[(Vec<String>, String, String)],
) -> Result<(), Error> {
    fn embedded<'a>(items: &'a [SelectItem], path: &[String]) -> Option<&'a [SelectItem]> {
        let (first, rest) = path.split_first()?;
        items.iter().find_map(|i| match i {
            SelectItem::Embed {
                name, alias, items, ..
            } if name == first || alias.as_deref() == Some(first.as_str()) => {
                if rest.is_empty() {
                    Some(items.as_slice())
                } else {
                    embedded(items, rest)
                }
            }
            _ => None,
        })
    }
    let items = select.unwrap_or(&[]);
    let paths = filters
        .iter()
        .map(|(p, _)| p)
        .chain(other.iter().map(|(p, _, _)| p));
    for path in paths {
        if embedded(items, path).is_none() {
            let name = path.last().cloned().unwrap_or_default();
            return Err(Error::api(
                400,
                "PGRST108",
                format!("'{name}' is not an embedded resource in this request"),
            )
            .with_hint(format!(
                "Verify that '{name}' is included in the 'select' query parameter."
            )));
        }
    }
    Ok(())
}
