//! The schema cache: what PostgREST knows about a database before it plans
//! a request. Loaded with a few catalog queries, swapped whole on reload.

use std::collections::HashMap;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

use crate::Error;

/// A column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Name.
    pub name: String,
    /// `format_type` of its type (`integer`, `character varying(20)`).
    pub type_name: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Default expression.
    pub default: Option<String>,
    /// Whether its type is json or jsonb.
    pub is_json: bool,
    /// `format_type` without the modifier (`character varying`), as the
    /// OpenAPI document names it.
    pub data_type: String,
    /// `COMMENT ON COLUMN`.
    pub description: Option<String>,
    /// The length limit of a `character(n)`/`character varying(n)`.
    pub max_length: Option<i32>,
    /// The labels of an enum type, in order.
    pub enum_values: Vec<String>,
    /// Data representation of a domain column (`CREATE CAST (domain AS
    /// json) WITH FUNCTION f AS IMPLICIT`): `f`, schema-qualified and
    /// quoted, formats the column in answers.
    pub to_json: Option<String>,
    /// The `text AS domain` cast function, applied to filter values.
    pub from_text: Option<String>,
    /// The `json AS domain` cast function, applied to body values.
    pub from_json: Option<String>,
}

/// A table, view, materialized view or foreign table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Primary key columns (views: those of their single base table).
    pub primary_key: Vec<String>,
    /// Whether it is a view of any kind.
    pub is_view: bool,
    /// Whether INSERT is possible.
    pub insertable: bool,
    /// Whether UPDATE is possible.
    pub updatable: bool,
    /// Whether DELETE is possible.
    pub deletable: bool,
    /// `COMMENT ON TABLE|VIEW`.
    pub description: Option<String>,
    /// `pg_class.oid`.
    pub oid: u32,
}

impl Relation {
    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether some column has a data representation in answers.
    pub fn has_representations(&self) -> bool {
        self.columns.iter().any(|c| c.to_json.is_some())
    }
}

/// A function argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// Name (may be empty for unnamed arguments).
    pub name: String,
    /// `format_type` of its type.
    pub type_name: String,
    /// Whether it has a default.
    pub has_default: bool,
    /// `VARIADIC`.
    pub variadic: bool,
}

/// What a function returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Returns {
    /// A scalar type (`format_type`), including domains and arrays.
    Scalar(String),
    /// A row type of a relation `(schema, name)`, or a `RETURNS TABLE`/OUT
    /// record (`None`).
    Composite(Option<(String, String)>),
    /// `void`.
    Void,
}

/// A function callable through `/rpc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// IN and INOUT arguments in order.
    pub args: Vec<Arg>,
    /// Result.
    pub returns: Returns,
    /// `SETOF`.
    pub returns_set: bool,
    /// `i`, `s` or `v`.
    pub volatility: char,
    /// `COMMENT ON FUNCTION`.
    pub description: Option<String>,
    /// `pg_proc.oid`.
    pub oid: u32,
    /// `ROWS 1`: a set-returning function known to give one row.
    pub one_row: bool,
    /// The relation whose row is its only argument.
    pub arg_relation: Option<(String, String)>,
    /// The media type its result is, when it returns a domain named like
    /// one (`RETURNS "text/html"`): the answer is that value itself.
    pub returns_media: Option<String>,
}

impl Function {
    /// Whether it may run in a read-only transaction.
    pub fn is_read_only(&self) -> bool {
        self.volatility != 'v'
    }
}

/// A foreign key, kept for resource embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing relation.
    pub from: (String, String),
    /// Its columns.
    pub from_columns: Vec<String>,
    /// Referenced relation.
    pub to: (String, String),
    /// Referenced columns.
    pub to_columns: Vec<String>,
    /// Whether the referencing columns are unique (a one-to-one key).
    pub from_unique: bool,
}

/// Everything known about the exposed schemas.
#[derive(Debug, Clone, Default)]
pub struct SchemaCache {
    /// Relations by (schema, name).
    pub relations: HashMap<(String, String), Relation>,
    /// Functions by (schema, name); overloads share a key.
    pub functions: HashMap<(String, String), Vec<Function>>,
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
    /// Views selecting from exactly one relation: view -> base.
    pub view_bases: HashMap<(String, String), (String, String)>,
    /// `COMMENT ON SCHEMA` of the exposed schemas that have one.
    pub schema_descriptions: HashMap<String, String>,
    /// Whether PostGIS's `ST_AsGeoJSON(record)` exists (`application/geo+json`).
    pub has_postgis: bool,
    /// Media type handlers: aggregates returning a domain named like a
    /// media type.
    pub media_handlers: Vec<MediaHandler>,
}

/// A media type handler (PostgREST 12+): `CREATE AGGREGATE f(rowtype |
/// anyelement) (stype = "text/csv", ...)` answers `Accept: text/csv` with
/// the aggregate of the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaHandler {
    /// The media type (the domain's name).
    pub media: String,
    /// The relation whose rows it takes; `None` for `anyelement`.
    pub input: Option<(String, String)>,
    /// The aggregate, schema-qualified and quoted.
    pub aggregate: String,
}

/// How an embedded resource relates to its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cardinality {
    /// The parent references one target row (object or null).
    ToOne,
    /// Target rows reference the parent (array).
    ToMany,
    /// Through a junction relation (array).
    ManyToMany {
        /// The junction.
        junction: (String, String),
        /// Junction column -> parent column.
        parent_cols: Vec<(String, String)>,
        /// Junction column -> target column.
        target_cols: Vec<(String, String)>,
    },
}

/// A relationship from a parent to an embeddable target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    /// The target relation.
    pub target: (String, String),
    /// Kind.
    pub cardinality: Cardinality,
    /// (parent column, target column) pairs for direct relationships.
    pub columns: Vec<(String, String)>,
    /// The foreign key constraint's name, or the junction's for a
    /// many-to-many: what a hint names to choose this relationship.
    pub constraint: String,
    /// `many-to-one`, `one-to-many`, `one-to-one` or `many-to-many`.
    pub kind: &'static str,
    /// How PostgREST describes it in PGRST201's details
    /// (`fk using a(x) and b(y)`).
    pub description: String,
    /// A table referencing itself, seen from either end.
    is_self: bool,
    /// A computed relationship: the function giving the target rows from
    /// a parent row (`f(parent) RETURNS SETOF target`).
    pub function: Option<ComputedBy>,
}

/// The function of a computed relationship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputedBy {
    /// Its `(schema, name)`.
    pub function: (String, String),
    /// The relation whose row it takes.
    pub argument: (String, String),
}

impl Relationship {
    fn single_column(&self) -> Option<&(String, String)> {
        match self.columns.as_slice() {
            [one] if !matches!(self.cardinality, Cardinality::ManyToMany { .. }) => Some(one),
            _ => None,
        }
    }

    /// A hint or target naming the parent's column of a one-column key.
    fn matches_column(&self, name: &str) -> bool {
        self.single_column().is_some_and(|(p, _)| p == name)
    }

    /// A hint naming the target's column of a one-column key.
    fn matches_referenced_column(&self, name: &str) -> bool {
        self.single_column().is_some_and(|(_, t)| t == name)
    }

    fn matches_constraint(&self, name: &str) -> bool {
        !matches!(self.cardinality, Cardinality::ManyToMany { .. }) && self.constraint == name
    }

    fn matches_junction(&self, name: &str) -> bool {
        matches!(&self.cardinality, Cardinality::ManyToMany { junction, .. } if junction.1 == name)
    }
}

fn column_list(cols: &[String]) -> String {
    cols.join(", ")
}

impl SchemaCache {
    /// The handler of `media` for rows of `rel`: one over that relation's
    /// rows, else (`any`) one over `anyelement`.
    pub fn media_handler(
        &self,
        media: &str,
        rel: Option<&(String, String)>,
        any: bool,
    ) -> Option<&MediaHandler> {
        let specific = rel.and_then(|rel| {
            self.media_handlers
                .iter()
                .find(|h| h.media == media && h.input.as_ref() == Some(rel))
        });
        specific.or_else(|| {
            any.then(|| {
                self.media_handlers
                    .iter()
                    .find(|h| h.media == media && h.input.is_none())
            })
            .flatten()
        })
    }

    /// A relation.
    pub fn relation(&self, schema: &str, name: &str) -> Option<&Relation> {
        self.relations.get(&(schema.to_owned(), name.to_owned()))
    }

    /// A function's overloads.
    pub fn functions(&self, schema: &str, name: &str) -> &[Function] {
        self.functions
            .get(&(schema.to_owned(), name.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// Relations standing for `base`: itself and the views over it.
    fn aliases(&self, base: &(String, String)) -> Vec<(String, String)> {
        let mut out = vec![base.clone()];
        for (view, b) in &self.view_bases {
            if b == base {
                out.push(view.clone());
            }
        }
        out
    }

    /// Foreign keys as seen from `rel` (a table or a view over one).
    pub(crate) fn keys_of(&self, rel: &(String, String)) -> (Vec<&ForeignKey>, Vec<&ForeignKey>) {
        let base = self
            .view_bases
            .get(rel)
            .cloned()
            .unwrap_or_else(|| rel.clone());
        let outgoing = self
            .foreign_keys
            .iter()
            .filter(|f| f.from == base)
            .collect();
        let incoming = self.foreign_keys.iter().filter(|f| f.to == base).collect();
        (outgoing, incoming)
    }

    /// Relations standing for `base` in the request's `schema`: itself and
    /// the views over it there. As in PostgREST, a request embeds only
    /// relations of its own schema.
    fn standing_for(&self, base: &(String, String), schema: &str) -> Vec<(String, String)> {
        let mut all = self.aliases(base);
        all.retain(|r| r.0 == schema && self.relations.contains_key(r));
        all
    }

    fn is_view(&self, rel: &(String, String)) -> bool {
        self.relations.get(rel).is_some_and(|r| r.is_view)
    }

    /// Every relationship of `parent`: to-one and to-many through each
    /// foreign key, and many-to-many through each junction.
    fn all_relationships(&self, parent: &(String, String)) -> Vec<Relationship> {
        let schema = parent.0.as_str();
        let mut found = Vec::new();
        let (outgoing, incoming) = self.keys_of(parent);
        for f in &outgoing {
            for target in self.standing_for(&f.to, schema) {
                found.push(Relationship {
                    description: format!(
                        "{} using {}({}) and {}({})",
                        f.name,
                        parent.1,
                        column_list(&f.from_columns),
                        target.1,
                        column_list(&f.to_columns)
                    ),
                    target,
                    cardinality: Cardinality::ToOne,
                    columns: f
                        .from_columns
                        .iter()
                        .cloned()
                        .zip(f.to_columns.iter().cloned())
                        .collect(),
                    constraint: f.name.clone(),
                    kind: if f.from_unique {
                        "one-to-one"
                    } else {
                        "many-to-one"
                    },
                    is_self: f.from == f.to,
                    function: None,
                });
            }
        }
        for f in &incoming {
            for target in self.standing_for(&f.from, schema) {
                found.push(Relationship {
                    description: format!(
                        "{} using {}({}) and {}({})",
                        f.name,
                        parent.1,
                        column_list(&f.to_columns),
                        target.1,
                        column_list(&f.from_columns)
                    ),
                    target,
                    // A unique referencing key makes it one-to-one.
                    cardinality: if f.from_unique {
                        Cardinality::ToOne
                    } else {
                        Cardinality::ToMany
                    },
                    columns: f
                        .to_columns
                        .iter()
                        .cloned()
                        .zip(f.from_columns.iter().cloned())
                        .collect(),
                    constraint: f.name.clone(),
                    kind: if f.from_unique {
                        "one-to-one"
                    } else {
                        "one-to-many"
                    },
                    is_self: f.from == f.to,
                    function: None,
                });
            }
        }
        // Many-to-many: a junction (or a view over it) with keys to both.
        let mut m2m = Vec::new();
        for f1 in &incoming {
            for f2 in self
                .foreign_keys
                .iter()
                .filter(|f2| f2.from == f1.from && f2.name != f1.name)
            {
                for junction in self.standing_for(&f1.from, schema) {
                    for target in self.standing_for(&f2.to, schema) {
                        m2m.push(Relationship {
                            description: format!(
                                "{} using {}({}) and {}({})",
                                junction.1,
                                f1.name,
                                column_list(&f1.from_columns),
                                f2.name,
                                column_list(&f2.from_columns)
                            ),
                            target,
                            cardinality: Cardinality::ManyToMany {
                                junction: junction.clone(),
                                parent_cols: f1
                                    .from_columns
                                    .iter()
                                    .cloned()
                                    .zip(f1.to_columns.iter().cloned())
                                    .collect(),
                                target_cols: f2
                                    .from_columns
                                    .iter()
                                    .cloned()
                                    .zip(f2.to_columns.iter().cloned())
                                    .collect(),
                            },
                            columns: Vec::new(),
                            constraint: junction.1.clone(),
                            kind: "many-to-many",
                            is_self: false,
                            function: None,
                        });
                    }
                }
            }
        }
        // Junction tables before the views over them.
        m2m.sort_by_key(|r| match &r.cardinality {
            Cardinality::ManyToMany { junction, .. } => {
                (self.is_view(junction), junction.1.clone())
            }
            _ => (false, String::new()),
        });
        found.extend(m2m);
        // Computed relationships: `f(parent) RETURNS SETOF target`, to-one
        // when declared `ROWS 1`.
        let base = self.view_bases.get(parent).unwrap_or(parent);
        for f in self.functions.values().flatten() {
            let (Some(arg), Returns::Composite(Some(target)), true) =
                (&f.arg_relation, &f.returns, f.returns_set)
            else {
                continue;
            };
            if (arg != parent && arg != base) || f.schema != parent.0 {
                continue;
            }
            found.push(Relationship {
                target: target.clone(),
                cardinality: if f.one_row {
                    Cardinality::ToOne
                } else {
                    Cardinality::ToMany
                },
                columns: Vec::new(),
                constraint: f.name.clone(),
                kind: if f.one_row {
                    "many-to-one"
                } else {
                    "one-to-many"
                },
                description: format!("{} using {}", f.name, parent.1),
                is_self: false,
                function: Some(ComputedBy {
                    function: (f.schema.clone(), f.name.clone()),
                    argument: arg.clone(),
                }),
            });
        }
        found
    }

    /// The relationships from `parent` that `name!hint` names, by
    /// PostgREST's rules: the target relation's name, or without a hint
    /// a constraint or a one-column key's column; a hint names a
    /// constraint, a column of either end or a junction. A table that
    /// references itself gives its children by its own name and its parent
    /// by the key column's name; a hint there names the children's column.
    pub fn relationships(
        &self,
        parent: &(String, String),
        name: &str,
        hint: Option<&str>,
    ) -> Vec<Relationship> {
        self.all_relationships(parent)
            .into_iter()
            .filter(|r| {
                if let Some(computed) = &r.function {
                    return computed.function.1 == name;
                }
                let is_target = r.target.1 == name;
                let to_many = r.cardinality == Cardinality::ToMany;
                let to_view = self.is_view(&r.target);
                if r.is_self {
                    return match hint {
                        None => {
                            (is_target && to_many)
                                || (r.matches_column(name) && r.cardinality == Cardinality::ToOne)
                        }
                        Some(h) => is_target && to_many && r.matches_referenced_column(h),
                    };
                }
                match hint {
                    None => {
                        is_target
                            || (r.matches_constraint(name) && !to_view)
                            || (r.matches_column(name) && !to_view)
                    }
                    Some(h) => {
                        is_target
                            && (r.matches_constraint(h)
                                || r.matches_column(h)
                                || r.matches_referenced_column(h)
                                || r.matches_junction(h))
                    }
                }
            })
            .collect()
    }

    /// Loads the cache for `schemas`, through `spare` too when there is
    /// one.
    ///
    /// The catalog is read with only `pg_catalog` on the search path, so
    /// every other type and default comes schema-qualified and means the
    /// same under any request's search path. Each connection's queries go
    /// out in one flight (unnamed statements, nothing prepared); with a
    /// spare connection the queries are shared between the two, which
    /// plan them at once (planning in a new backend, whose catalog caches
    /// are cold, is most of a cold project's first request).
    pub async fn load(
        client: &Client,
        spare: Option<&Client>,
        schemas: &[String],
    ) -> Result<Self, Error> {
        let unavailable = |e: tokio_postgres::Error| {
            Error::api(
                503,
                "PGRST002",
                "Could not query the database for the schema cache. Retrying.",
            )
            .with_details(e.to_string())
        };
        let db = |e: tokio_postgres::Error| match e.as_db_error() {
            Some(d) => Error::from_db(d, true),
            None => unavailable(e),
        };
        let schemas: Vec<&str> = schemas.iter().map(String::as_str).collect();
        let (first, rest) = match spare {
            Some(spare) => tokio::join!(
                flight(client, &schemas, &CATALOG[..SPLIT]),
                flight(spare, &schemas, &CATALOG[SPLIT..]),
            ),
            None => (flight(client, &schemas, &CATALOG).await, Ok(Vec::new())),
        };
        let mut rows = first.map_err(unavailable)?;
        rows.extend(rest.map_err(unavailable)?);
        // One answer per query, in CATALOG's order.
        let Ok(
            [
                relations,
                columns,
                primary_keys,
                foreign_keys,
                view_bases,
                functions,
                postgis,
                media_handlers,
                descriptions,
            ],
        ) = <[_; CATALOG.len()]>::try_from(rows)
        else {
            unreachable!("flight answers each of its queries")
        };
        let mut cache = SchemaCache::default();

        for row in relations.map_err(db)? {
            let schema: String = row.get("schema");
            let name: String = row.get("name");
            let kind: i8 = row.get("kind");
            let kind = kind as u8 as char;
            cache.relations.insert(
                (schema.clone(), name.clone()),
                Relation {
                    schema,
                    name,
                    columns: Vec::new(),
                    primary_key: Vec::new(),
                    is_view: matches!(kind, 'v' | 'm'),
                    insertable: row.get("insertable"),
                    updatable: row.get("updatable"),
                    deletable: row.get("deletable"),
                    description: row.get("description"),
                    oid: row.get("oid"),
                },
            );
        }

        for row in columns.map_err(db)? {
            let key = (
                row.get::<_, String>("schema"),
                row.get::<_, String>("table"),
            );
            if let Some(rel) = cache.relations.get_mut(&key) {
                rel.columns.push(Column {
                    name: row.get("name"),
                    type_name: row.get("type_name"),
                    nullable: row.get("nullable"),
                    default: row.get("default"),
                    is_json: row.get("is_json"),
                    data_type: row.get("data_type"),
                    description: row.get("description"),
                    max_length: row.get("max_length"),
                    enum_values: row.get("enum_values"),
                    to_json: row.get("to_json"),
                    from_text: row.get("from_text"),
                    from_json: row.get("from_json"),
                });
            }
        }

        for row in primary_keys.map_err(db)? {
            let key = (
                row.get::<_, String>("schema"),
                row.get::<_, String>("table"),
            );
            let cols: Vec<String> = row.get("columns");
            if let Some(rel) = cache.relations.get_mut(&key) {
                rel.primary_key = cols;
            }
        }

        for row in foreign_keys.map_err(db)? {
            cache.foreign_keys.push(ForeignKey {
                name: row.get("name"),
                from: (row.get("from_schema"), row.get("from_table")),
                from_columns: row.get("from_columns"),
                to: (row.get("to_schema"), row.get("to_table")),
                to_columns: row.get("to_columns"),
                from_unique: row.get("from_unique"),
            });
        }

        for row in view_bases.map_err(db)? {
            cache.view_bases.insert(
                (row.get("schema"), row.get("name")),
                (row.get("base_schema"), row.get("base_name")),
            );
        }

        for row in functions.map_err(db)? {
            let schema: String = row.get("schema");
            let name: String = row.get("name");
            let names: Vec<String> = row.get("arg_names");
            let types: Vec<String> = row.get("arg_types");
            let modes: Vec<String> = row.get("arg_modes");
            let n_defaults: i16 = row.get("n_defaults");
            let variadic: bool = row.get("variadic");
            // IN/INOUT/VARIADIC arguments are the callable ones.
            let mut args: Vec<Arg> = names
                .iter()
                .zip(&types)
                .zip(&modes)
                .filter(|((_, _), m)| matches!(m.as_str(), "i" | "b" | "v"))
                .map(|((n, t), m)| Arg {
                    name: n.clone(),
                    type_name: t.clone(),
                    has_default: false,
                    variadic: m == "v",
                })
                .collect();
            let first_default = args.len().saturating_sub(n_defaults as usize);
            for a in args.iter_mut().skip(first_default) {
                a.has_default = true;
            }
            if variadic && let Some(last) = args.last_mut() {
                last.variadic = true;
            }
            let ret_kind: String = row.get("ret_kind");
            let returns = match ret_kind.as_str() {
                "void" => Returns::Void,
                "composite" => Returns::Composite(
                    row.get::<_, Option<String>>("ret_rel_schema")
                        .zip(row.get::<_, Option<String>>("ret_rel_name")),
                ),
                "record" => Returns::Composite(None),
                _ => Returns::Scalar(row.get("ret_type")),
            };
            let volatility: i8 = row.get("volatility");
            cache
                .functions
                .entry((schema.clone(), name.clone()))
                .or_default()
                .push(Function {
                    schema,
                    name,
                    args,
                    returns,
                    returns_set: row.get("returns_set"),
                    volatility: volatility as u8 as char,
                    description: row.get("description"),
                    oid: row.get("oid"),
                    one_row: row.get("one_row"),
                    arg_relation: row
                        .get::<_, Option<String>>("arg_rel_schema")
                        .zip(row.get::<_, Option<String>>("arg_rel_name")),
                    returns_media: row.get("returns_media"),
                });
        }
        cache.has_postgis = postgis.map_err(db)?.first().is_some_and(|row| row.get(0));
        for row in media_handlers.map_err(db)? {
            cache.media_handlers.push(MediaHandler {
                media: row.get("media"),
                input: row
                    .get::<_, Option<String>>("input_schema")
                    .zip(row.get::<_, Option<String>>("input_name")),
                aggregate: row.get("aggregate"),
            });
        }
        for row in descriptions.map_err(db)? {
            cache
                .schema_descriptions
                .insert(row.get("schema"), row.get("description"));
        }
        Ok(cache)
    }
}

/// The catalog queries, in the order [`SchemaCache::load`] reads their
/// answers; whether each takes the schemas as `$1`. The heaviest three
/// come first: a spare connection takes the rest.
const CATALOG: [(&str, bool); 9] = [
    (RELATIONS_SQL, true),
    (COLUMNS_SQL, true),
    (PRIMARY_KEYS_SQL, true),
    (FOREIGN_KEYS_SQL, true),
    (VIEW_BASES_SQL, true),
    (FUNCTIONS_SQL, true),
    (POSTGIS_SQL, false),
    (MEDIA_HANDLERS_SQL, true),
    (SCHEMA_DESCRIPTIONS_SQL, true),
];
const SPLIT: usize = 3;

/// Runs `queries` in one read-only transaction on `client`, sent in one
/// flight: the transaction's start failing is the error, each query's own
/// failure is its answer.
async fn flight(
    client: &Client,
    schemas: &[&str],
    queries: &[(&str, bool)],
) -> Result<Vec<Result<Vec<Row>, tokio_postgres::Error>>, tokio_postgres::Error> {
    let with_schemas: &[(&(dyn ToSql + Sync), Type)] = &[(&schemas, Type::NAME_ARRAY)];
    let answers = futures_util::future::join_all(
        queries
            .iter()
            .map(|(sql, takes)| client.query_typed(sql, if *takes { with_schemas } else { &[] })),
    );
    let (begin, answers, _rollback) = tokio::join!(
        client.batch_execute("BEGIN READ ONLY; SET LOCAL search_path TO pg_catalog"),
        answers,
        client.batch_execute("ROLLBACK"),
    );
    begin.map(|()| answers)
}

const POSTGIS_SQL: &str = "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'st_asgeojson' AND proargtypes[0] = 'record'::regtype)";

const RELATIONS_SQL: &str = "
SELECT n.nspname::text AS schema, c.relname::text AS name, c.relkind::\"char\" AS kind, c.oid,
       (c.relkind IN ('r', 'p', 'f') OR (pg_relation_is_updatable(c.oid::regclass, true) & 8) = 8) AS insertable,
       (c.relkind IN ('r', 'p', 'f') OR (pg_relation_is_updatable(c.oid::regclass, true) & 4) = 4) AS updatable,
       (c.relkind IN ('r', 'p', 'f') OR (pg_relation_is_updatable(c.oid::regclass, true) & 16) = 16) AS deletable,
       obj_description(c.oid, 'pg_class') AS description
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'v', 'm', 'f', 'p')";

const COLUMNS_SQL: &str = "
SELECT n.nspname::text AS schema, c.relname::text AS table, a.attname::text AS name,
       format_type(a.atttypid, a.atttypmod) AS type_name,
       NOT a.attnotnull AS nullable,
       -- A domain's own default stands when the column has none.
       coalesce(pg_get_expr(d.adbin, d.adrelid), CASE WHEN t.typtype = 'd' THEN t.typdefault END) AS default,
       coalesce(bt.typname, t.typname) IN ('json', 'jsonb') AS is_json,
       format_type(a.atttypid, NULL) AS data_type,
       col_description(c.oid, a.attnum) AS description,
       CASE WHEN a.atttypid IN ('bpchar'::regtype, 'varchar'::regtype) AND a.atttypmod > 0
            THEN a.atttypmod - 4 END AS max_length,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = coalesce(bt.oid, t.oid)
             ORDER BY e.enumsortorder) AS enum_values,
       CASE WHEN t.typtype = 'd' THEN (SELECT quote_ident(pn.nspname) || '.' || quote_ident(p.proname)
         FROM pg_cast k JOIN pg_proc p ON p.oid = k.castfunc JOIN pg_namespace pn ON pn.oid = p.pronamespace
         WHERE k.castsource = t.oid AND k.casttarget = 'json'::regtype AND k.castmethod = 'f' AND k.castcontext = 'i') END AS to_json,
       CASE WHEN t.typtype = 'd' THEN (SELECT quote_ident(pn.nspname) || '.' || quote_ident(p.proname)
         FROM pg_cast k JOIN pg_proc p ON p.oid = k.castfunc JOIN pg_namespace pn ON pn.oid = p.pronamespace
         WHERE k.casttarget = t.oid AND k.castsource = 'text'::regtype AND k.castmethod = 'f' AND k.castcontext = 'i') END AS from_text,
       CASE WHEN t.typtype = 'd' THEN (SELECT quote_ident(pn.nspname) || '.' || quote_ident(p.proname)
         FROM pg_cast k JOIN pg_proc p ON p.oid = k.castfunc JOIN pg_namespace pn ON pn.oid = p.pronamespace
         WHERE k.casttarget = t.oid AND k.castsource = 'json'::regtype AND k.castmethod = 'f' AND k.castcontext = 'i') END AS from_json
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY n.nspname, c.relname, a.attnum";

// Tables' primary keys, and for views the primary key of the one table
// they select from when the view exposes all of its columns by name.
const PRIMARY_KEYS_SQL: &str = "
WITH view_bases AS (
  SELECT DISTINCT v.oid AS view_oid, d.refobjid AS base_oid
  FROM pg_class v
  JOIN pg_rewrite r ON r.ev_class = v.oid
  JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass
       AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid
  JOIN pg_class b ON b.oid = d.refobjid AND b.relkind IN ('r', 'p', 'v', 'f')
  WHERE v.relkind IN ('v', 'm')
    AND v.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname = ANY($1))
),
single_base AS (
  SELECT view_oid, min(base_oid::text)::oid AS base_oid FROM view_bases GROUP BY view_oid HAVING count(*) = 1
),
-- Only the keys asked for: the exposed schemas' tables and the views'
-- single bases (the catalogs' own keys are many).
pks AS (
  SELECT c.oid AS relid, array_agg(a.attname::text ORDER BY array_position(con.conkey, a.attnum)) AS columns
  FROM pg_constraint con
  JOIN pg_class c ON c.oid = con.conrelid
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(con.conkey)
  WHERE con.contype = 'p'
    AND (c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname = ANY($1))
         OR c.oid IN (SELECT base_oid FROM single_base))
  GROUP BY c.oid
)
SELECT n.nspname::text AS schema, c.relname::text AS table, p.columns
FROM pks p JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1)
UNION ALL
SELECT n.nspname::text, v.relname::text, p.columns
FROM single_base s
JOIN pks p ON p.relid = s.base_oid
JOIN pg_class v ON v.oid = s.view_oid
JOIN pg_namespace n ON n.oid = v.relnamespace
WHERE n.nspname = ANY($1)
  AND (SELECT count(*) FROM pg_attribute va WHERE va.attrelid = v.oid AND va.attname::text = ANY(p.columns)) = cardinality(p.columns)";

const FOREIGN_KEYS_SQL: &str = "
SELECT con.conname::text AS name,
       fn.nspname::text AS from_schema, fc.relname::text AS from_table,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i) AS from_columns,
       tn.nspname::text AS to_schema, tc.relname::text AS to_table,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i) AS to_columns,
       EXISTS (SELECT 1 FROM pg_constraint u WHERE u.conrelid = con.conrelid AND u.contype IN ('p', 'u')
               AND u.conkey::int2[] @> con.conkey::int2[] AND u.conkey::int2[] <@ con.conkey::int2[]) AS from_unique
FROM pg_constraint con
JOIN pg_class fc ON fc.oid = con.conrelid JOIN pg_namespace fn ON fn.oid = fc.relnamespace
JOIN pg_class tc ON tc.oid = con.confrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
WHERE con.contype = 'f' AND (fn.nspname = ANY($1) OR tn.nspname = ANY($1))";

const FUNCTIONS_SQL: &str = "
SELECT n.nspname::text AS schema, p.proname::text AS name, p.oid,
       obj_description(p.oid, 'pg_proc') AS description,
       coalesce(p.proargnames, array_fill(''::text, ARRAY[coalesce(array_length(p.proallargtypes, 1), p.pronargs)]))::text[] AS arg_names,
       ARRAY(SELECT format_type(t, NULL) FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) t) AS arg_types,
       coalesce(p.proargmodes::text[], array_fill('i'::text, ARRAY[p.pronargs::int])) AS arg_modes,
       p.pronargdefaults AS n_defaults,
       p.provariadic <> 0 AS variadic,
       p.proretset AS returns_set,
       p.provolatile::\"char\" AS volatility,
       format_type(p.prorettype, NULL) AS ret_type,
       CASE WHEN p.prorettype = 'void'::regtype THEN 'void'
            WHEN p.prorettype = 'record'::regtype THEN 'record'
            -- OUT and TABLE columns make a record even with one column.
            WHEN p.proargmodes::text[] && ARRAY['o', 't', 'b'] THEN 'record'
            WHEN rt.typrelid <> 0 THEN 'composite'
            ELSE 'scalar' END AS ret_kind,
       rn.nspname::text AS ret_rel_schema, rc.relname::text AS ret_rel_name,
       p.prorows = 1 AS one_row,
       CASE WHEN rt.typtype = 'd' AND strpos(rt.typname, '/') > 0 THEN rt.typname::text END AS returns_media,
       -- The relation whose row type is the only argument (a computed
       -- relationship or column), if any.
       (SELECT an.nspname::text FROM pg_type at JOIN pg_class ac ON ac.oid = at.typrelid
          JOIN pg_namespace an ON an.oid = ac.relnamespace
        WHERE p.pronargs = 1 AND at.oid = p.proargtypes[0]) AS arg_rel_schema,
       (SELECT ac.relname::text FROM pg_type at JOIN pg_class ac ON ac.oid = at.typrelid
        WHERE p.pronargs = 1 AND at.oid = p.proargtypes[0]) AS arg_rel_name
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_type rt ON rt.oid = p.prorettype
LEFT JOIN pg_class rc ON rc.oid = rt.typrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE n.nspname = ANY($1) AND p.prokind = 'f'";

// Views that stand for one table in embedding: those selecting from
// exactly one table, and those whose every column is a same-named column
// of one of the tables they read (`SELECT * FROM jobs WHERE site_id IN
// (SELECT ... FROM sites)` stands for jobs).
const VIEW_BASES_SQL: &str = "
WITH deps AS (
  SELECT DISTINCT v.oid AS view_oid, d.refobjid AS base_oid, d.refobjsubid AS attnum
  FROM pg_class v
  JOIN pg_rewrite r ON r.ev_class = v.oid
  JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass
       AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid
  JOIN pg_class b ON b.oid = d.refobjid AND b.relkind IN ('r', 'p', 'f')
  WHERE v.relkind IN ('v', 'm')
    AND v.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname = ANY($1))
),
single AS (
  SELECT view_oid, min(base_oid::text)::oid AS base_oid FROM deps GROUP BY view_oid
  HAVING count(DISTINCT base_oid) = 1
),
covering AS (
  SELECT c.view_oid, min(c.base_oid::text)::oid AS base_oid
  FROM (SELECT DISTINCT view_oid, base_oid FROM deps) c
  WHERE NOT EXISTS (
    SELECT 1 FROM pg_attribute va
    WHERE va.attrelid = c.view_oid AND va.attnum > 0 AND NOT va.attisdropped
      AND NOT EXISTS (
        SELECT 1 FROM deps d JOIN pg_attribute ba ON ba.attrelid = d.base_oid AND ba.attnum = d.attnum
        WHERE d.view_oid = c.view_oid AND d.base_oid = c.base_oid AND ba.attname = va.attname))
  GROUP BY c.view_oid HAVING count(*) = 1
),
bases AS (
  SELECT * FROM single
  UNION ALL
  SELECT * FROM covering WHERE view_oid NOT IN (SELECT view_oid FROM single)
)
SELECT vn.nspname::text AS schema, v.relname::text AS name, bn.nspname::text AS base_schema, b.relname::text AS base_name
FROM bases s
JOIN pg_class v ON v.oid = s.view_oid JOIN pg_namespace vn ON vn.oid = v.relnamespace
JOIN pg_class b ON b.oid = s.base_oid JOIN pg_namespace bn ON bn.oid = b.relnamespace
WHERE vn.nspname = ANY($1)";

const SCHEMA_DESCRIPTIONS_SQL: &str = "
SELECT n.nspname::text AS schema, d.description
FROM pg_namespace n JOIN pg_description d ON d.objoid = n.oid AND d.classoid = 'pg_namespace'::regclass
WHERE n.nspname = ANY($1)";

// Aggregates of one argument (a row type or anyelement) returning a domain
// named like a media type.
const MEDIA_HANDLERS_SQL: &str = "
SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname) AS aggregate,
       rt.typname::text AS media,
       icn.nspname::text AS input_schema, ic.relname::text AS input_name
FROM pg_aggregate a
JOIN pg_proc p ON p.oid = a.aggfnoid
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_type rt ON rt.oid = p.prorettype AND rt.typtype = 'd' AND strpos(rt.typname, '/') > 0
LEFT JOIN pg_type it ON it.oid = p.proargtypes[0]
LEFT JOIN pg_class ic ON ic.oid = it.typrelid
LEFT JOIN pg_namespace icn ON icn.oid = ic.relnamespace
WHERE n.nspname = ANY($1) AND p.pronargs = 1
  AND (p.proargtypes[0] = 'anyelement'::regtype OR ic.oid IS NOT NULL)";
