//! Type generation: a project's schemas as the TypeScript file
//! postgres-meta's `/generators/typescript` prints, byte for byte.

mod collate;
mod doc;
mod introspect;
mod nodetree;
mod typescript;

use std::collections::HashMap;

/// What to generate types for, as `/generators/typescript` takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypegenOptions {
    /// Only these schemas (empty: every schema but the system ones).
    pub included_schemas: Vec<String>,
    /// Not these schemas.
    pub excluded_schemas: Vec<String>,
    /// Add `isOneToOne` to each relationship.
    pub detect_one_to_one_relationships: bool,
    /// The PostgREST version recorded for `createClient`.
    pub postgrest_version: Option<String>,
}

impl TypegenOptions {
    /// From the query parameters (`included_schemas=a,b`,
    /// `excluded_schemas`, `detect_one_to_one_relationships=true`,
    /// `postgrest_version`).
    pub fn from_query(query: &HashMap<String, String>) -> Self {
        let list = |name: &str| {
            query
                .get(name)
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default()
        };
        Self {
            included_schemas: list("included_schemas"),
            excluded_schemas: list("excluded_schemas"),
            detect_one_to_one_relationships: query
                .get("detect_one_to_one_relationships")
                .is_some_and(|v| v == "true"),
            postgrest_version: query.get("postgrest_version").cloned(),
        }
    }
}

/// Reads the schemas `options` picks over `clients` (statements are spread
/// over them) and prints the file.
pub(crate) async fn typescript(
    clients: &[&tokio_postgres::Client],
    options: &TypegenOptions,
) -> Result<String, crate::Error> {
    let filter = introspect::Filter {
        included: options.included_schemas.clone(),
        excluded: options.excluded_schemas.clone(),
    };
    let meta = introspect::introspect(clients, &filter).await?;
    let print = typescript::Options {
        detect_one_to_one: options.detect_one_to_one_relationships,
        postgrest_version: options.postgrest_version.clone(),
    };
    Ok(typescript::generate(&meta, &print))
}
