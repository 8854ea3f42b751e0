//! The control plane through `supa_tenant::client::ManagementClient`: every
//! method is a coroutine in Python, each result a typed record, and every
//! failure one [`ManagementError`] with the HTTP status and the API's
//! message.

use std::collections::HashMap;
use std::sync::Arc;

use supa_core::{KeyKind, ProjectRef, Secret};
use supa_tenant::client;

/// Why a Management API call failed.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ManagementError {
    /// The API answered `status` with `message` (Supabase's `message`), or
    /// the call was refused before it was sent (400: a malformed ref, an
    /// unknown settings service) or never answered (502).
    #[error("{status}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// What went wrong.
        message: String,
    },
}

impl From<supa_tenant::Error> for ManagementError {
    fn from(e: supa_tenant::Error) -> Self {
        ManagementError::Api {
            status: e.status(),
            message: match e {
                supa_tenant::Error::Remote { message, .. } => message,
                other => other.to_string(),
            },
        }
    }
}

fn bad_argument(message: impl std::fmt::Display) -> ManagementError {
    ManagementError::Api {
        status: 400,
        message: message.to_string(),
    }
}

fn parse_ref(r: &str) -> Result<ProjectRef, ManagementError> {
    ProjectRef::parse(r).map_err(bad_argument)
}

/// A project.
#[derive(Debug, uniffi::Record)]
pub struct Project {
    /// Its ref: 20 lowercase letters.
    pub project_ref: String,
    /// Display name.
    pub name: String,
    /// The worker cluster holding its database.
    pub worker_id: String,
    /// `ACTIVE_HEALTHY`, `INACTIVE`...
    pub status: String,
    /// Creation time, ISO 8601.
    pub created_at: String,
}

impl From<supa_tenant::Project> for Project {
    fn from(p: supa_tenant::Project) -> Self {
        Project {
            project_ref: p.project_ref.to_string(),
            name: p.name,
            worker_id: p.worker_id,
            status: p.status.as_str().to_owned(),
            created_at: p.created_at,
        }
    }
}

/// A new project with its two keys, in clear this once.
#[derive(Debug, uniffi::Record)]
pub struct CreatedProject {
    /// The project.
    pub project: Project,
    /// The publishable key (`sb_publishable_...`).
    pub publishable_key: String,
    /// The secret key named `default` (`sb_secret_...`).
    pub secret_key: String,
}

/// One of a project's API keys.
#[derive(Debug, uniffi::Record)]
pub struct ApiKey {
    /// Its id.
    pub id: String,
    /// Its name, unique among the project's live keys.
    pub name: String,
    /// `publishable` or `secret`.
    pub kind: String,
    /// The key: in clear for a publishable key, a new key or when revealed;
    /// masked otherwise.
    pub api_key: String,
    /// The first characters, to tell keys apart.
    pub prefix: String,
}

impl From<supa_tenant::ApiKeyInfo> for ApiKey {
    fn from(k: supa_tenant::ApiKeyInfo) -> Self {
        ApiKey {
            id: k.id,
            name: k.name,
            kind: k.kind.to_string(),
            api_key: k.api_key,
            prefix: k.prefix,
        }
    }
}

/// A project secret as listed: its name and the SHA-256 of its value.
#[derive(Debug, uniffi::Record)]
pub struct SecretDigest {
    /// Name.
    pub name: String,
    /// Hex SHA-256 of the value, never the value.
    pub digest: String,
}

fn digests(listed: Vec<supa_tenant::SecretDigest>) -> Vec<SecretDigest> {
    listed
        .into_iter()
        .map(|s| SecretDigest {
            name: s.name,
            digest: s.value,
        })
        .collect()
}

/// One file of a function to deploy.
#[derive(Debug, uniffi::Record)]
pub struct FunctionFile {
    /// Its path in the function's folder (`index.ts`, `lib/util.ts`).
    pub path: String,
    /// Its bytes.
    pub content: Vec<u8>,
}

/// A deployed edge function.
#[derive(Debug, uniffi::Record)]
pub struct Function {
    /// Its id.
    pub id: String,
    /// Its slug: the path it is invoked at.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// `ACTIVE`...
    pub status: String,
    /// Deployments so far.
    pub version: i32,
    /// Whether calls need a JWT.
    pub verify_jwt: bool,
    /// The file it starts from.
    pub entrypoint_path: String,
}

impl From<supa_tenant::Function> for Function {
    fn from(f: supa_tenant::Function) -> Self {
        Function {
            id: f.id,
            slug: f.slug,
            name: f.name,
            status: f.status,
            version: f.version,
            verify_jwt: f.verify_jwt,
            entrypoint_path: f.entrypoint_path,
        }
    }
}

/// A client of a Management API (the one `supa up` serves, or a tenant
/// manager's) with its admin token.
#[derive(uniffi::Object)]
pub struct ManagementClient {
    inner: client::ManagementClient,
}

#[uniffi::export(async_runtime = "tokio")]
impl ManagementClient {
    /// A client of the API at `api_url` (`http://127.0.0.1:8001`).
    #[uniffi::constructor]
    pub fn new(api_url: String, token: String) -> Result<Arc<Self>, ManagementError> {
        Ok(Arc::new(Self {
            inner: client::ManagementClient::new(&api_url, Secret::new(token))?,
        }))
    }

    /// Every project.
    pub async fn list_projects(&self) -> Result<Vec<Project>, ManagementError> {
        Ok(self
            .inner
            .list_projects()
            .await?
            .into_iter()
            .map(Project::from)
            .collect())
    }

    /// One project.
    pub async fn get_project(&self, project_ref: String) -> Result<Project, ManagementError> {
        Ok(self
            .inner
            .get_project(&parse_ref(&project_ref)?)
            .await?
            .into())
    }

    /// Creates a project, with a chosen ref or a random one, on a chosen
    /// worker or the least loaded one.
    #[uniffi::method(default(project_ref = None, worker_id = None))]
    pub async fn create_project(
        &self,
        name: String,
        project_ref: Option<String>,
        worker_id: Option<String>,
    ) -> Result<CreatedProject, ManagementError> {
        let new = supa_tenant::CreateProject {
            name,
            project_ref,
            worker_id,
        };
        let created = self.inner.create_project(&new, |_| {}).await?;
        Ok(CreatedProject {
            project: created.project.into(),
            publishable_key: created.publishable_key,
            secret_key: created.secret_key.expose().clone(),
        })
    }

    /// Deletes a project: its database, logins, keys, secrets and objects.
    pub async fn delete_project(&self, project_ref: String) -> Result<(), ManagementError> {
        self.inner.delete_project(&parse_ref(&project_ref)?).await?;
        Ok(())
    }

    /// Pauses a project: its requests get 503 until it is resumed.
    pub async fn pause_project(&self, project_ref: String) -> Result<Project, ManagementError> {
        Ok(self
            .inner
            .pause_project(&parse_ref(&project_ref)?)
            .await?
            .into())
    }

    /// Resumes a paused project.
    pub async fn resume_project(&self, project_ref: String) -> Result<Project, ManagementError> {
        Ok(self
            .inner
            .resume_project(&parse_ref(&project_ref)?)
            .await?
            .into())
    }

    /// The project's live keys; secret ones masked unless `reveal`.
    #[uniffi::method(default(reveal = false))]
    pub async fn list_api_keys(
        &self,
        project_ref: String,
        reveal: bool,
    ) -> Result<Vec<ApiKey>, ManagementError> {
        let keys = self
            .inner
            .list_keys(&parse_ref(&project_ref)?, reveal)
            .await?;
        Ok(keys.into_iter().map(ApiKey::from).collect())
    }

    /// Adds a secret key named `name`; the key is in clear this once.
    pub async fn create_api_key(
        &self,
        project_ref: String,
        name: String,
    ) -> Result<ApiKey, ManagementError> {
        let new = supa_tenant::NewApiKey {
            kind: KeyKind::Secret,
            name,
        };
        Ok(self
            .inner
            .create_key(&parse_ref(&project_ref)?, &new)
            .await?
            .into())
    }

    /// Revokes a key by id; the gateways refuse it within their cache TTL
    /// (at once with Redis).
    pub async fn revoke_api_key(
        &self,
        project_ref: String,
        id: String,
    ) -> Result<ApiKey, ManagementError> {
        Ok(self
            .inner
            .revoke_key(&parse_ref(&project_ref)?, &id)
            .await?
            .into())
    }

    /// Runs SQL (one statement or a script) in the project's database as
    /// its owner; the rows of the last statement, as a JSON array.
    pub async fn query_json(
        &self,
        project_ref: String,
        sql: String,
    ) -> Result<String, ManagementError> {
        let rows = self.inner.query(&parse_ref(&project_ref)?, &sql).await?;
        Ok(serde_json::Value::Array(rows).to_string())
    }

    /// Sets secrets (the functions' environment); the names and digests of
    /// all of them after.
    pub async fn set_secrets(
        &self,
        project_ref: String,
        secrets: HashMap<String, String>,
    ) -> Result<Vec<SecretDigest>, ManagementError> {
        let mut pairs: Vec<(String, Secret<String>)> = secrets
            .into_iter()
            .map(|(name, value)| (name, Secret::new(value)))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let listed = self
            .inner
            .set_secrets(&parse_ref(&project_ref)?, &pairs)
            .await?;
        Ok(digests(listed))
    }

    /// The project's secrets as names and digests.
    pub async fn list_secrets(
        &self,
        project_ref: String,
    ) -> Result<Vec<SecretDigest>, ManagementError> {
        Ok(digests(
            self.inner.list_secrets(&parse_ref(&project_ref)?).await?,
        ))
    }

    /// Removes secrets by name; the ones left.
    pub async fn unset_secrets(
        &self,
        project_ref: String,
        names: Vec<String>,
    ) -> Result<Vec<SecretDigest>, ManagementError> {
        Ok(digests(
            self.inner
                .unset_secrets(&parse_ref(&project_ref)?, &names)
                .await?,
        ))
    }

    /// A service's settings (`auth`, `storage`, `realtime`, `postgrest`),
    /// as a JSON object.
    pub async fn get_config_json(
        &self,
        project_ref: String,
        service: String,
    ) -> Result<String, ManagementError> {
        let config = self
            .inner
            .config(&parse_ref(&project_ref)?, &service)
            .await?;
        Ok(config.to_string())
    }

    /// Changes the settings a JSON object names; the settings after.
    pub async fn update_config_json(
        &self,
        project_ref: String,
        service: String,
        patch: String,
    ) -> Result<String, ManagementError> {
        let patch: serde_json::Value = serde_json::from_str(&patch)
            .map_err(|e| bad_argument(format!("the patch is not JSON: {e}")))?;
        let config = self
            .inner
            .update_config(&parse_ref(&project_ref)?, &service, &patch)
            .await?;
        Ok(config.to_string())
    }

    /// Deploys (or redeploys) an edge function from its files.
    #[uniffi::method(default(entrypoint_path = "index.ts", verify_jwt = true, import_map_path = None))]
    pub async fn deploy_function(
        &self,
        project_ref: String,
        slug: String,
        files: Vec<FunctionFile>,
        entrypoint_path: String,
        verify_jwt: bool,
        import_map_path: Option<String>,
    ) -> Result<Function, ManagementError> {
        let mut metadata = serde_json::json!({
            "entrypoint_path": entrypoint_path,
            "name": slug,
            "verify_jwt": verify_jwt,
        });
        if let Some(map) = import_map_path {
            metadata["import_map_path"] = map.into();
        }
        let files: Vec<supa_functions::SourceFile> = files
            .into_iter()
            .map(|f| supa_functions::SourceFile {
                path: f.path,
                content: f.content,
            })
            .collect();
        let deployed = self
            .inner
            .deploy_function(&parse_ref(&project_ref)?, &slug, &metadata, &files)
            .await?;
        Ok(deployed.into())
    }

    /// The project's functions.
    pub async fn list_functions(
        &self,
        project_ref: String,
    ) -> Result<Vec<Function>, ManagementError> {
        let functions = self.inner.list_functions(&parse_ref(&project_ref)?).await?;
        Ok(functions.into_iter().map(Function::from).collect())
    }

    /// Deletes a function.
    pub async fn delete_function(
        &self,
        project_ref: String,
        slug: String,
    ) -> Result<(), ManagementError> {
        self.inner
            .delete_function(&parse_ref(&project_ref)?, &slug)
            .await?;
        Ok(())
    }
}
