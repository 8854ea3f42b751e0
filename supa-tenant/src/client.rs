//! A typed client of the Management API, for the `supa` CLI and for anyone
//! scripting a remote tenant manager from Rust.

use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use supa_core::{ProjectRef, Secret, Upstream};

use crate::api::PROGRESS_MEDIA_TYPE;
use crate::{
    ApiKeyInfo, CreateProject, CreateStep, CreatedProject, Error, Function, NewApiKey, NewWorker,
    Project, SecretDigest, ServicesPatch, Worker,
};

/// A Management API endpoint and its admin token.
#[derive(Debug, Clone)]
pub struct ManagementClient {
    http: reqwest::Client,
    base: String,
    token: Secret<String>,
}

/// Where a service's settings live: `/v1/projects/{ref}/config/{service}`,
/// except PostgREST's, at `/v1/projects/{ref}/postgrest` as on Supabase.
fn config_path(r: &ProjectRef, service: &str) -> Result<String, Error> {
    match service {
        "auth" | "storage" | "realtime" => Ok(format!("/v1/projects/{r}/config/{service}")),
        "postgrest" => Ok(format!("/v1/projects/{r}/postgrest")),
        other => Err(Error::invalid(
            "service",
            format!("{other:?} is not auth, storage, realtime or postgrest"),
        )),
    }
}

/// An HTTP client speaking plain HTTP and HTTPS (rustls on `ring`).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, Error> {
    Ok(supa_core::http::client(timeout))
}

impl ManagementClient {
    /// A client of the API at `base` (`http://127.0.0.1:8001`).
    pub fn new(base: &str, token: Secret<String>) -> Result<Self, Error> {
        Ok(Self {
            // Creating a project takes well under a second; SQL may run 60 s.
            http: http_client(Duration::from_secs(90))?,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
    }

    async fn call<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, Error> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return Err(self.error_of(response).await);
        }
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Transport(format!("unexpected answer from {}: {e}", self.base)))
    }

    /// The API's `{"message"}` of an error answer (its body if not JSON).
    async fn error_of(&self, response: reqwest::Response) -> Error {
        let status = response.status().as_u16();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return self.unreachable(e),
        };
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Error::Remote { status, message }
    }

    fn unreachable(&self, e: reqwest::Error) -> Error {
        Error::Transport(format!(
            "cannot reach the Management API at {} ({e}); is `supa up` running?",
            self.base
        ))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, Error> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.call(request).await
    }

    /// Every project.
    pub async fn list_projects(&self) -> Result<Vec<Project>, Error> {
        self.send(Method::GET, "/v1/projects", None::<&()>).await
    }

    /// One project.
    pub async fn get_project(&self, r: &ProjectRef) -> Result<Project, Error> {
        self.send(Method::GET, &format!("/v1/projects/{r}"), None::<&()>)
            .await
    }

    /// Creates a project, calling `progress` as each step starts.
    pub async fn create_project(
        &self,
        new: &CreateProject,
        mut progress: impl FnMut(CreateStep),
    ) -> Result<CreatedProject, Error> {
        let mut response = self
            .request(Method::POST, "/v1/projects")
            .header(reqwest::header::ACCEPT, PROGRESS_MEDIA_TYPE)
            .json(new)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return Err(self.error_of(response).await);
        }
        let mut pending = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(e))? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line)
                    .map_err(|e| Error::Transport(format!("bad progress line: {e}")))?;
                if let Some(step) = event.get("step") {
                    if let Ok(step) = serde_json::from_value(step.clone()) {
                        progress(step);
                    }
                } else if let Some(project) = event.get("project") {
                    return serde_json::from_value(project.clone())
                        .map_err(|e| Error::Transport(format!("bad project: {e}")));
                } else if let Some(error) = event.get("error") {
                    return Err(Error::Remote {
                        status: error["status"].as_u64().unwrap_or(500) as u16,
                        message: error["message"].as_str().unwrap_or_default().to_owned(),
                    });
                }
            }
        }
        Err(Error::Transport(
            "the Management API closed the stream before the project was created".into(),
        ))
    }

    /// Deletes a project.
    pub async fn delete_project(&self, r: &ProjectRef) -> Result<Value, Error> {
        self.send(Method::DELETE, &format!("/v1/projects/{r}"), None::<&()>)
            .await
    }

    /// Pauses a project (`POST /v1/projects/{ref}/pause`).
    pub async fn pause_project(&self, r: &ProjectRef) -> Result<Project, Error> {
        self.send(
            Method::POST,
            &format!("/v1/projects/{r}/pause"),
            None::<&()>,
        )
        .await
    }

    /// Takes a backup now (`POST /v1/projects/{ref}/database/backups`).
    pub async fn backup_project(&self, r: &ProjectRef) -> Result<crate::Backup, Error> {
        self.send(
            Method::POST,
            &format!("/v1/projects/{r}/database/backups"),
            None::<&()>,
        )
        .await
    }

    /// A project's backups, newest first.
    pub async fn list_backups(&self, r: &ProjectRef) -> Result<Vec<crate::Backup>, Error> {
        #[derive(serde::Deserialize)]
        struct Listed {
            backups: Vec<crate::Backup>,
        }
        let listed: Listed = self
            .send(
                Method::GET,
                &format!("/v1/projects/{r}/database/backups"),
                None::<&()>,
            )
            .await?;
        Ok(listed.backups)
    }

    /// Restores backup `id` into project `r`.
    pub async fn restore_backup(&self, r: &ProjectRef, id: &str) -> Result<Project, Error> {
        self.send(
            Method::POST,
            &format!("/v1/projects/{r}/database/backups/restore"),
            Some(&serde_json::json!({ "backup_id": id })),
        )
        .await
    }

    /// Sets a project's daily backup schedule.
    pub async fn set_backup_schedule(
        &self,
        r: &ProjectRef,
        schedule: &crate::BackupSchedule,
    ) -> Result<crate::BackupSchedule, Error> {
        self.send(
            Method::PUT,
            &format!("/v1/projects/{r}/database/backups/schedule"),
            Some(schedule),
        )
        .await
    }

    /// Resumes a paused project (`POST /v1/projects/{ref}/restore`).
    pub async fn resume_project(&self, r: &ProjectRef) -> Result<Project, Error> {
        self.send(
            Method::POST,
            &format!("/v1/projects/{r}/restore"),
            None::<&()>,
        )
        .await
    }

    /// A project's live keys.
    pub async fn list_keys(&self, r: &ProjectRef, reveal: bool) -> Result<Vec<ApiKeyInfo>, Error> {
        let path = format!("/v1/projects/{r}/api-keys?reveal={reveal}");
        self.send(Method::GET, &path, None::<&()>).await
    }

    /// Adds a secret key.
    pub async fn create_key(&self, r: &ProjectRef, new: &NewApiKey) -> Result<ApiKeyInfo, Error> {
        self.send(
            Method::POST,
            &format!("/v1/projects/{r}/api-keys"),
            Some(new),
        )
        .await
    }

    /// Revokes a key.
    pub async fn revoke_key(&self, r: &ProjectRef, id: &str) -> Result<ApiKeyInfo, Error> {
        let path = format!("/v1/projects/{r}/api-keys/{id}");
        self.send(Method::DELETE, &path, None::<&()>).await
    }

    /// Sets secrets given as `(name, value)` pairs.
    pub async fn set_secrets(
        &self,
        r: &ProjectRef,
        secrets: &[(String, Secret<String>)],
    ) -> Result<Vec<SecretDigest>, Error> {
        let body: Vec<Value> = secrets
            .iter()
            .map(|(name, value)| serde_json::json!({ "name": name, "value": value.expose() }))
            .collect();
        let path = format!("/v1/projects/{r}/secrets");
        self.send(Method::POST, &path, Some(&body)).await
    }

    /// Lists secrets as name and digest.
    pub async fn list_secrets(&self, r: &ProjectRef) -> Result<Vec<SecretDigest>, Error> {
        let path = format!("/v1/projects/{r}/secrets");
        self.send(Method::GET, &path, None::<&()>).await
    }

    /// Removes secrets by name.
    pub async fn unset_secrets(
        &self,
        r: &ProjectRef,
        names: &[String],
    ) -> Result<Vec<SecretDigest>, Error> {
        let path = format!("/v1/projects/{r}/secrets");
        self.send(Method::DELETE, &path, Some(names)).await
    }

    /// The project's auth e-mails, newest first.
    pub async fn auth_outbox(
        &self,
        r: &ProjectRef,
        email: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Value>, Error> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("limit", &limit.to_string());
        if let Some(email) = email {
            query.append_pair("email", email);
        }
        let path = format!("/v1/projects/{r}/auth/outbox?{}", query.finish());
        self.send(Method::GET, &path, None::<&()>).await
    }

    /// A service's settings (`auth`, `storage`, `realtime` or `postgrest`),
    /// as the Management API shows them.
    pub async fn config(&self, r: &ProjectRef, service: &str) -> Result<Value, Error> {
        self.send(Method::GET, &config_path(r, service)?, None::<&()>)
            .await
    }

    /// Changes some of a service's settings; the settings after.
    pub async fn update_config(
        &self,
        r: &ProjectRef,
        service: &str,
        patch: &Value,
    ) -> Result<Value, Error> {
        self.send(Method::PATCH, &config_path(r, service)?, Some(patch))
            .await
    }

    /// Runs SQL in the project's database; the rows of the last statement.
    pub async fn query(&self, r: &ProjectRef, sql: &str) -> Result<Vec<Value>, Error> {
        let path = format!("/v1/projects/{r}/database/query");
        let body = serde_json::json!({ "query": sql });
        self.send(Method::POST, &path, Some(&body)).await
    }

    /// The project's TypeScript types for `schemas` (`public` when empty),
    /// as `supabase gen types` prints them.
    pub async fn typescript_types(
        &self,
        r: &ProjectRef,
        schemas: &[String],
    ) -> Result<String, Error> {
        #[derive(serde::Deserialize)]
        struct Types {
            types: String,
        }
        let schemas = if schemas.is_empty() {
            "public".to_owned()
        } else {
            schemas.join(",")
        };
        let encoded: String =
            percent_encoding::utf8_percent_encode(&schemas, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let path = format!("/v1/projects/{r}/types/typescript?included_schemas={encoded}");
        let types: Types = self.send(Method::GET, &path, None::<&()>).await?;
        Ok(types.types)
    }

    /// Deploys a function from its files (`metadata` as Supabase's deploy
    /// takes it: `entrypoint_path`, `import_map_path`, `verify_jwt`...).
    pub async fn deploy_function(
        &self,
        r: &ProjectRef,
        slug: &str,
        metadata: &Value,
        files: &[supa_functions::SourceFile],
    ) -> Result<Function, Error> {
        let (content_type, body) = supa_functions::multipart_body(metadata, files);
        let slug: String =
            percent_encoding::utf8_percent_encode(slug, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let request = self
            .request(
                Method::POST,
                &format!("/v1/projects/{r}/functions/deploy?slug={slug}"),
            )
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.call(request).await
    }

    /// The project's functions.
    pub async fn list_functions(&self, r: &ProjectRef) -> Result<Vec<Function>, Error> {
        let path = format!("/v1/projects/{r}/functions");
        self.send(Method::GET, &path, None::<&()>).await
    }

    /// Deletes a function.
    pub async fn delete_function(&self, r: &ProjectRef, slug: &str) -> Result<Value, Error> {
        let path = format!("/v1/projects/{r}/functions/{slug}");
        self.send(Method::DELETE, &path, None::<&()>).await
    }

    /// A function's log events, newest first.
    pub async fn function_logs(
        &self,
        r: &ProjectRef,
        slug: &str,
        limit: i64,
    ) -> Result<Vec<Value>, Error> {
        #[derive(serde::Deserialize)]
        struct Logs {
            result: Vec<Value>,
        }
        let path = format!("/v1/projects/{r}/functions/{slug}/logs?limit={limit}");
        let logs: Logs = self.send(Method::GET, &path, None::<&()>).await?;
        Ok(logs.result)
    }

    /// Every worker.
    pub async fn list_workers(&self) -> Result<Vec<Worker>, Error> {
        self.send(Method::GET, "/admin/v1/workers", None::<&()>)
            .await
    }

    /// Registers a worker (platform admin).
    pub async fn register_worker(&self, new: &NewWorker) -> Result<Worker, Error> {
        // Written out because `NewWorker` never serializes its password.
        let body = serde_json::json!({
            "id": new.id,
            "host": new.host,
            "port": new.port,
            "admin_user": new.admin_user,
            "admin_password": new.admin_password.expose(),
            "max_databases": new.max_databases,
            "weight": new.weight,
            "status": new.status,
        });
        self.send(Method::POST, "/admin/v1/workers", Some(&body))
            .await
    }

    /// Points a project's REST API (`services` `None`) or some of its
    /// other services at another upstream (platform admin).
    pub async fn set_upstream(
        &self,
        r: &ProjectRef,
        upstream: Option<&Upstream>,
        services: Option<&ServicesPatch>,
    ) -> Result<Project, Error> {
        let body = serde_json::json!({ "upstream": upstream, "services": services });
        self.send(
            Method::PATCH,
            &format!("/admin/v1/projects/{r}"),
            Some(&body),
        )
        .await
    }
}
