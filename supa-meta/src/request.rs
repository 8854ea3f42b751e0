//! What a metadata request asks for: the endpoint, and its query
//! parameters checked and turned into the catalog queries' bound values.

use std::collections::HashMap;

use crate::Error;

/// postgres-meta's read endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `/schemas`
    Schemas,
    /// `/tables`
    Tables,
    /// `/columns`
    Columns,
    /// `/views`
    Views,
    /// `/materialized-views`
    MaterializedViews,
    /// `/foreign-tables`
    ForeignTables,
    /// `/extensions`
    Extensions,
    /// `/functions`
    Functions,
    /// `/roles`
    Roles,
    /// `/policies`
    Policies,
    /// `/triggers`
    Triggers,
    /// `/types`
    Types,
    /// `/publications`
    Publications,
    /// `/table-privileges`
    TablePrivileges,
    /// `/column-privileges`
    ColumnPrivileges,
    /// `/indexes`
    Indexes,
    /// `/config`
    Config,
    /// `/config/version`
    Version,
}

/// The system schemas postgres-meta leaves out unless asked.
const SYSTEM_SCHEMAS: [&str; 3] = ["information_schema", "pg_catalog", "pg_toast"];

impl Endpoint {
    /// Every endpoint, for tests and listings.
    pub const ALL: [Endpoint; 18] = [
        Endpoint::Schemas,
        Endpoint::Tables,
        Endpoint::Columns,
        Endpoint::Views,
        Endpoint::MaterializedViews,
        Endpoint::ForeignTables,
        Endpoint::Extensions,
        Endpoint::Functions,
        Endpoint::Roles,
        Endpoint::Policies,
        Endpoint::Triggers,
        Endpoint::Types,
        Endpoint::Publications,
        Endpoint::TablePrivileges,
        Endpoint::ColumnPrivileges,
        Endpoint::Indexes,
        Endpoint::Config,
        Endpoint::Version,
    ];

    /// The path segment(s) after the service's prefix.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Schemas => "schemas",
            Endpoint::Tables => "tables",
            Endpoint::Columns => "columns",
            Endpoint::Views => "views",
            Endpoint::MaterializedViews => "materialized-views",
            Endpoint::ForeignTables => "foreign-tables",
            Endpoint::Extensions => "extensions",
            Endpoint::Functions => "functions",
            Endpoint::Roles => "roles",
            Endpoint::Policies => "policies",
            Endpoint::Triggers => "triggers",
            Endpoint::Types => "types",
            Endpoint::Publications => "publications",
            Endpoint::TablePrivileges => "table-privileges",
            Endpoint::ColumnPrivileges => "column-privileges",
            Endpoint::Indexes => "indexes",
            Endpoint::Config => "config",
            Endpoint::Version => "config/version",
        }
    }

    /// The endpoint of a first path segment.
    pub fn from_segment(segment: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.path() == segment && *e != Endpoint::Version)
    }

    /// The noun of postgres-meta's "Cannot find a ... with ID" messages, for
    /// endpoints that look objects up by id.
    pub(crate) fn noun(self) -> Option<&'static str> {
        Some(match self {
            Endpoint::Schemas => "schema",
            Endpoint::Tables => "table",
            Endpoint::Columns => "column",
            Endpoint::Views => "view",
            Endpoint::MaterializedViews => "materialized view",
            Endpoint::ForeignTables => "foreign table",
            Endpoint::Functions => "function",
            Endpoint::Roles => "role",
            Endpoint::Policies => "policy",
            Endpoint::Triggers => "trigger",
            Endpoint::Publications => "publication",
            Endpoint::Indexes => "index",
            _ => return None,
        })
    }

    /// Whether listing leaves the system schemas out unless
    /// `include_system_schemas=true` (materialized views and foreign tables
    /// never filter them in postgres-meta).
    fn hides_system_schemas(self) -> bool {
        !matches!(
            self,
            Endpoint::MaterializedViews
                | Endpoint::ForeignTables
                | Endpoint::Extensions
                | Endpoint::Roles
                | Endpoint::Publications
                | Endpoint::Config
                | Endpoint::Version
        )
    }

    /// Whether relations carry their columns when not told.
    fn columns_by_default(self) -> bool {
        matches!(
            self,
            Endpoint::Tables | Endpoint::Views | Endpoint::ForeignTables
        )
    }
}

/// The bound values of a catalog query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// Schemas to list only (`$1`).
    pub included: Option<Vec<String>>,
    /// Schemas to leave out (`$2`).
    pub excluded: Option<Vec<String>>,
    /// At most this many (`$3`).
    pub limit: Option<i64>,
    /// Skip this many (`$4`).
    pub offset: Option<i64>,
    /// Only these ids or names (`$5`).
    pub ids: Option<Vec<String>>,
    /// The endpoint's flag (`$6`): system schemas, array types, default roles.
    pub flag: bool,
    /// Relations carry their columns.
    pub include_columns: bool,
    /// `$5` holds table ids (`/columns/{table_id}`).
    pub by_table: bool,
}

impl Params {
    /// The parameters of `GET /{endpoint}?...`, as postgres-meta reads them.
    pub fn from_query(endpoint: Endpoint, query: &HashMap<String, String>) -> Result<Self, Error> {
        let include_system = boolean(query, "include_system_schemas")?.unwrap_or(false);
        let list = |name: &str| {
            query
                .get(name)
                .map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        };
        let mut excluded = list("excluded_schemas").unwrap_or_default();
        if endpoint.hides_system_schemas() && !include_system {
            excluded.splice(0..0, SYSTEM_SCHEMAS.iter().map(|s| (*s).to_owned()));
        }
        let included = list("included_schemas").filter(|l| !l.is_empty());
        let flag = match endpoint {
            Endpoint::Types => boolean(query, "include_array_types")?.unwrap_or(false),
            Endpoint::Roles => boolean(query, "include_default_roles")?.unwrap_or(false),
            _ => include_system,
        };
        Ok(Self {
            excluded: (included.is_none() && !excluded.is_empty()).then_some(excluded),
            included,
            limit: count(query, "limit")?,
            offset: count(query, "offset")?,
            ids: None,
            flag,
            include_columns: boolean(query, "include_columns")?
                .unwrap_or(endpoint.columns_by_default()),
            by_table: false,
        })
    }

    /// The parameters of a lookup by id or name: no schema filter, columns
    /// included, as postgres-meta's `retrieve`.
    pub fn lookup(id: &str) -> Self {
        Self {
            ids: Some(vec![id.to_owned()]),
            include_columns: true,
            ..Self::default()
        }
    }
}

fn boolean(query: &HashMap<String, String>, name: &str) -> Result<Option<bool>, Error> {
    match query.get(name).map(String::as_str) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(Error::BadRequest(format!(
            "querystring/{name} must be boolean"
        ))),
    }
}

/// A limit or offset: a non-negative integer; 0 means none, as in
/// postgres-meta.
fn count(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Error> {
    match query.get(name) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(0) => Ok(None),
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(Error::BadRequest(format!(
                "querystring/{name} must be a non-negative integer"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn system_schemas_hidden_unless_asked() {
        let p = Params::from_query(Endpoint::Tables, &query(&[])).unwrap();
        assert_eq!(p.excluded.unwrap(), SYSTEM_SCHEMAS.to_vec());
        assert!(p.include_columns);
        let p = Params::from_query(
            Endpoint::Tables,
            &query(&[("include_system_schemas", "true")]),
        )
        .unwrap();
        assert_eq!(p.excluded, None);
        assert!(p.flag);
        // Materialized views never hide them, and leave columns out.
        let p = Params::from_query(Endpoint::MaterializedViews, &query(&[])).unwrap();
        assert_eq!(p.excluded, None);
        assert!(!p.include_columns);
    }

    #[test]
    fn included_schemas_win_over_exclusions() {
        let q = query(&[
            ("included_schemas", "public,core"),
            ("excluded_schemas", "core"),
        ]);
        let p = Params::from_query(Endpoint::Functions, &q).unwrap();
        assert_eq!(p.included.unwrap(), ["public", "core"]);
        assert_eq!(p.excluded, None);
        let q = query(&[("excluded_schemas", "auth")]);
        let p = Params::from_query(Endpoint::Views, &q).unwrap();
        assert_eq!(
            p.excluded.unwrap(),
            ["information_schema", "pg_catalog", "pg_toast", "auth"]
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for (k, v) in [
            ("limit", "ten"),
            ("limit", "-1"),
            ("offset", "1.5"),
            ("include_columns", "yes"),
            ("include_system_schemas", "1; drop"),
        ] {
            let e = Params::from_query(Endpoint::Tables, &query(&[(k, v)])).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
            assert_eq!(e.status(), 400);
        }
        // Zero means no limit, as postgres-meta reads it.
        let p = Params::from_query(Endpoint::Tables, &query(&[("limit", "0")])).unwrap();
        assert_eq!(p.limit, None);
    }

    #[test]
    fn endpoints_round_trip_their_paths() {
        for e in Endpoint::ALL {
            if e != Endpoint::Version {
                assert_eq!(Endpoint::from_segment(e.path()), Some(e));
            }
        }
        assert_eq!(Endpoint::from_segment("config/version"), None);
        assert_eq!(Endpoint::from_segment("nope"), None);
    }
}
