//! What a project's edge functions need from the control plane: the
//! deployed functions (the version traffic goes to) and the environment
//! every function of the project gets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Secret;

/// The deployed version of one function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionDeployment {
    /// The function's id (Supabase's `id`).
    pub id: String,
    /// The version traffic goes to.
    pub version: u32,
    /// Whether a valid project JWT is required to invoke it.
    pub verify_jwt: bool,
    /// Hex SHA-256 of the version's bundle, so a cached copy is known good.
    pub sha256: String,
}

/// A project's functions and their environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionsConfig {
    /// Active functions by slug.
    #[serde(default)]
    pub deployments: BTreeMap<String, FunctionDeployment>,
    /// Every function's environment: the project's secrets and the
    /// `SUPABASE_*` variables the control plane knows (keys, database
    /// URL); `SUPABASE_URL` is added where requests arrive, as clients
    /// reach the project there.
    #[serde(
        default,
        serialize_with = "crate::secret::serialize_exposed_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub env: BTreeMap<String, Secret<String>>,
}
