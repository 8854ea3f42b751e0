//! Edge functions in the control plane: deploys (bundled here, stored in
//! the management database so any gateway can run them), the functions'
//! metadata as Supabase's Management API reports it, their environment in
//! the project's config, and the log events gateways report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Row as _};
use supa_core::{
    BoxFuture, DirectoryError, FunctionDeployment, FunctionsConfig, ProjectDatabase, ProjectRef,
    Secret,
};
use supa_functions::{BUNDLE_FILE, Bundle, LogEvent, SourceFile, is_bundle};

use crate::{Error, Invalidation, Tenant};

/// Versions whose files are kept per function (the current one included).
const KEPT_VERSIONS: i32 = 5;
/// How long log events are kept.
const LOG_RETENTION: &str = "1 day";
/// Log events one read returns at most.
pub const MAX_LOG_EVENTS: i64 = 1000;

/// A function as Supabase's Management API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    /// Its id.
    pub id: String,
    /// Its slug (the path after `/functions/v1/`).
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// `ACTIVE`.
    pub status: String,
    /// The version traffic goes to; each deploy adds one.
    pub version: i32,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
    /// Whether invoking it needs a project JWT.
    pub verify_jwt: bool,
    /// Whether it has an import map.
    pub import_map: bool,
    /// Its entrypoint, relative to its files.
    pub entrypoint_path: String,
    /// Its import map, if any.
    pub import_map_path: Option<String>,
    /// Hex SHA-256 of what workers run.
    pub ezbr_sha256: String,
}

/// The `metadata` part of a deploy.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeployMetadata {
    /// The entrypoint among the files.
    pub entrypoint_path: String,
    /// An import map among the files.
    #[serde(default)]
    pub import_map_path: Option<String>,
    /// Display name (the slug when absent).
    #[serde(default)]
    pub name: Option<String>,
    /// Whether invoking needs a project JWT (on when absent for a new
    /// function, unchanged for an existing one).
    #[serde(default)]
    pub verify_jwt: Option<bool>,
    /// Accepted for the Supabase CLI; every file sent is kept.
    #[serde(default)]
    pub static_patterns: Option<Vec<String>>,
}

/// What `PATCH .../functions/{slug}` may change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionPatch {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether invoking needs a project JWT.
    #[serde(default)]
    pub verify_jwt: Option<bool>,
}

/// Checks a slug as Supabase does.
pub fn validate_slug(slug: &str) -> Result<(), Error> {
    let mut chars = slug.chars();
    let ok = slug.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "slug",
            format!("{slug:?} must match ^[A-Za-z][A-Za-z0-9_-]{{0,63}}$"),
        ))
    }
}

const FUNCTION_COLUMNS: &str =
    "id::text AS id, slug, name, version, verify_jwt, entrypoint_path, import_map_path, sha256,
    (extract(epoch FROM created_at) * 1000)::bigint AS created_ms,
    (extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms";

fn function_from_row(row: &sqlx::postgres::PgRow) -> Result<Function, Error> {
    let import_map_path: Option<String> = row.try_get("import_map_path")?;
    Ok(Function {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        status: "ACTIVE".into(),
        version: row.try_get("version")?,
        created_at: row.try_get("created_ms")?,
        updated_at: row.try_get("updated_ms")?,
        verify_jwt: row.try_get("verify_jwt")?,
        import_map: import_map_path.is_some(),
        entrypoint_path: row.try_get("entrypoint_path")?,
        import_map_path,
        ezbr_sha256: row.try_get("sha256")?,
    })
}

impl Tenant {
    /// Deploys a new version of `slug` from its files: checked, bundled
    /// (npm packages resolved now, so invocations never fetch), stored,
    /// and then the version traffic goes to, on every gateway at once.
    pub async fn deploy_function(
        &self,
        project_ref: &ProjectRef,
        slug: &str,
        metadata: DeployMetadata,
        files: Vec<SourceFile>,
    ) -> Result<Function, Error> {
        validate_slug(slug)?;
        let entrypoint = supa_functions::normalize_path(&metadata.entrypoint_path)
            .ok_or_else(|| Error::invalid("entrypoint_path", "must be a path among the files"))?;
        let import_map = metadata
            .import_map_path
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(|p| {
                supa_functions::normalize_path(p).ok_or_else(|| {
                    Error::invalid("import_map_path", "must be a path among the files")
                })
            })
            .transpose()?;
        let files = checked_files(files)?;
        self.get_project(project_ref).await?;
        let builder = self.builder.as_ref().ok_or_else(|| {
            Error::Unavailable(
                "edge functions need Deno on the tenant manager: set SUPA_DENO (or --deno)".into(),
            )
        })?;
        let bundle = builder
            .build(files, &entrypoint, import_map.as_deref())
            .await
            .map_err(|e| Error::invalid("file", e))?;
        let sha256 = bundle.sha256();

        let mut tx = self.db.begin().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO functions AS f (project_ref, slug, name, version, verify_jwt, entrypoint_path, import_map_path, bundle_path, sha256)
             VALUES ($1, $2, coalesce($3, $2), 1, coalesce($4, true), $5, $6, $7, $8)
             ON CONFLICT (project_ref, slug) DO UPDATE SET
                name = coalesce($3, f.name), version = f.version + 1,
                verify_jwt = coalesce($4, f.verify_jwt), entrypoint_path = $5, import_map_path = $6,
                bundle_path = $7, sha256 = $8, updated_at = now()
             RETURNING {FUNCTION_COLUMNS}"
        )))
        .bind(project_ref.as_str())
        .bind(slug)
        .bind(metadata.name.filter(|n| !n.is_empty()))
        .bind(metadata.verify_jwt)
        .bind(&entrypoint)
        .bind(&import_map)
        .bind(&bundle.entrypoint)
        .bind(&sha256)
        .fetch_one(&mut *tx)
        .await?;
        let function = function_from_row(&row)?;
        let (paths, contents): (Vec<String>, Vec<Vec<u8>>) = bundle
            .files
            .into_iter()
            .map(|f| (f.path, f.content))
            .unzip();
        sqlx::query(
            "INSERT INTO function_files (project_ref, slug, version, path, content)
             SELECT $1, $2, $3, p, c FROM unnest($4::text[], $5::bytea[]) AS u(p, c)",
        )
        .bind(project_ref.as_str())
        .bind(slug)
        .bind(function.version)
        .bind(&paths)
        .bind(&contents)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM function_files WHERE project_ref = $1 AND slug = $2 AND version <= $3",
        )
        .bind(project_ref.as_str())
        .bind(slug)
        .bind(function.version - KEPT_VERSIONS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.invalidate(Invalidation::Project(*project_ref));
        Ok(function)
    }

    /// The project's functions, by slug.
    pub async fn list_functions(&self, project_ref: &ProjectRef) -> Result<Vec<Function>, Error> {
        self.get_project(project_ref).await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {FUNCTION_COLUMNS} FROM functions WHERE project_ref = $1 ORDER BY slug"
        )))
        .bind(project_ref.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(function_from_row).collect()
    }

    /// One function.
    pub async fn get_function(
        &self,
        project_ref: &ProjectRef,
        slug: &str,
    ) -> Result<Function, Error> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {FUNCTION_COLUMNS} FROM functions WHERE project_ref = $1 AND slug = $2"
        )))
        .bind(project_ref.as_str())
        .bind(slug)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| not_found(project_ref, slug))?;
        function_from_row(&row)
    }

    /// Changes a function's name or `verify_jwt` (its code changes by
    /// deploying).
    pub async fn patch_function(
        &self,
        project_ref: &ProjectRef,
        slug: &str,
        patch: FunctionPatch,
    ) -> Result<Function, Error> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE functions SET name = coalesce($3, name), verify_jwt = coalesce($4, verify_jwt), updated_at = now()
             WHERE project_ref = $1 AND slug = $2 RETURNING {FUNCTION_COLUMNS}"
        )))
        .bind(project_ref.as_str())
        .bind(slug)
        .bind(patch.name.filter(|n| !n.is_empty()))
        .bind(patch.verify_jwt)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| not_found(project_ref, slug))?;
        self.invalidate(Invalidation::Project(*project_ref));
        function_from_row(&row)
    }

    /// Deletes a function, its versions and its logs.
    pub async fn delete_function(&self, project_ref: &ProjectRef, slug: &str) -> Result<(), Error> {
        let deleted = sqlx::query("DELETE FROM functions WHERE project_ref = $1 AND slug = $2")
            .bind(project_ref.as_str())
            .bind(slug)
            .execute(&self.db)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(project_ref, slug));
        }
        self.invalidate(Invalidation::Project(*project_ref));
        Ok(())
    }

    /// The deployed source files of a function's current version (the
    /// bundle left out), with its metadata.
    pub async fn function_body(
        &self,
        project_ref: &ProjectRef,
        slug: &str,
    ) -> Result<(Function, Vec<SourceFile>), Error> {
        let function = self.get_function(project_ref, slug).await?;
        let files = self
            .function_files(project_ref, slug, function.version)
            .await?
            .into_iter()
            .filter(|f| !is_bundle(&f.path))
            .collect();
        Ok((function, files))
    }

    async fn function_files(
        &self,
        project_ref: &ProjectRef,
        slug: &str,
        version: i32,
    ) -> Result<Vec<SourceFile>, Error> {
        // Byte order, as the bundle's digest is taken.
        let rows = sqlx::query(
            r#"SELECT path, content FROM function_files
               WHERE project_ref = $1 AND slug = $2 AND version = $3 ORDER BY path COLLATE "C""#,
        )
        .bind(project_ref.as_str())
        .bind(slug)
        .bind(version)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SourceFile {
                    path: row.try_get("path")?,
                    content: row.try_get("content")?,
                })
            })
            .collect()
    }

    /// A function's log events, newest first: at most `limit`, and only
    /// those after `since` (microseconds since the epoch) when given.
    pub async fn function_logs(
        &self,
        project_ref: &ProjectRef,
        slug: &str,
        limit: i64,
        since: Option<i64>,
    ) -> Result<Vec<Value>, Error> {
        self.get_function(project_ref, slug).await?;
        let rows = sqlx::query(
            "SELECT id, event FROM function_logs
             WHERE project_ref = $1 AND slug = $2
               AND ($4::bigint IS NULL OR at > to_timestamp($4::bigint / 1e6))
             ORDER BY id DESC LIMIT $3",
        )
        .bind(project_ref.as_str())
        .bind(slug)
        .bind(limit.clamp(1, MAX_LOG_EVENTS))
        .bind(since)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                let mut event: Value = row.try_get::<sqlx::types::Json<Value>, _>("event")?.0;
                event["id"] = Value::from(id.to_string());
                Ok(event)
            })
            .collect()
    }

    /// Keeps log events of functions that exist; drops those older than
    /// the retention now and then.
    pub async fn record_function_logs(&self, events: Vec<LogEvent>) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        let mut projects = Vec::with_capacity(events.len());
        let mut slugs = Vec::with_capacity(events.len());
        let mut times = Vec::with_capacity(events.len());
        let mut bodies = Vec::with_capacity(events.len());
        for e in &events {
            projects.push(e.project.as_str().to_owned());
            slugs.push(e.slug.clone());
            times.push(e.timestamp);
            bodies.push(serde_json::to_value(e).unwrap_or(Value::Null));
        }
        sqlx::query(
            "INSERT INTO function_logs (project_ref, slug, at, event)
             SELECT p, s, to_timestamp(t / 1e6), e
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::jsonb[]) WITH ORDINALITY AS u(p, s, t, e, n)
             WHERE EXISTS (SELECT 1 FROM functions f WHERE f.project_ref = u.p AND f.slug = u.s)
             ORDER BY n",
        )
        .bind(&projects)
        .bind(&slugs)
        .bind(&times)
        .bind(&bodies)
        .execute(&self.db)
        .await?;
        let n = self
            .log_batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n.is_multiple_of(100) {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM function_logs WHERE at < now() - interval '{LOG_RETENTION}'"
            )))
            .execute(&self.db)
            .await?;
        }
        Ok(())
    }

    /// A project's functions and their environment, for its config.
    pub(crate) async fn functions_config(
        &self,
        project_ref: &ProjectRef,
        publishable_key: Option<&str>,
        login: Option<&ProjectDatabase>,
    ) -> Result<FunctionsConfig, Error> {
        let rows = sqlx::query(
            "SELECT slug, id::text AS id, version, verify_jwt, sha256 FROM functions WHERE project_ref = $1",
        )
        .bind(project_ref.as_str())
        .fetch_all(&self.db)
        .await?;
        if rows.is_empty() {
            return Ok(FunctionsConfig::default());
        }
        let mut deployments = BTreeMap::new();
        for row in &rows {
            let version: i32 = row.try_get("version")?;
            deployments.insert(
                row.try_get("slug")?,
                FunctionDeployment {
                    id: row.try_get("id")?,
                    version: u32::try_from(version).unwrap_or(0),
                    verify_jwt: row.try_get("verify_jwt")?,
                    sha256: row.try_get("sha256")?,
                },
            );
        }
        let mut env = self.secret_values(project_ref).await?;
        if let Some(key) = publishable_key {
            env.insert("SUPABASE_ANON_KEY".into(), Secret::new(key.to_owned()));
            env.insert(
                "SUPABASE_PUBLISHABLE_KEY".into(),
                Secret::new(key.to_owned()),
            );
        }
        if let Some(key) = self.secret_key_value(project_ref).await? {
            env.insert("SUPABASE_SERVICE_ROLE_KEY".into(), key.clone());
            env.insert("SUPABASE_SECRET_KEY".into(), key);
        }
        if let Some(db) = login {
            env.insert(
                "SUPABASE_DB_URL".into(),
                Secret::new(format!(
                    "postgresql://{}:{}@{}:{}/{}",
                    db.user,
                    percent_encoding::utf8_percent_encode(
                        db.password.expose(),
                        percent_encoding::NON_ALPHANUMERIC
                    ),
                    db.host,
                    db.port,
                    db.name
                )),
            );
        }
        Ok(FunctionsConfig { deployments, env })
    }
}

fn not_found(project_ref: &ProjectRef, slug: &str) -> Error {
    Error::NotFound(format!("function {slug} of project {project_ref}"))
}

/// The deployed files, paths made relative, within the limits.
fn checked_files(files: Vec<SourceFile>) -> Result<Vec<SourceFile>, Error> {
    if files.is_empty() {
        return Err(Error::invalid("file", "a deploy needs at least one file"));
    }
    if files.len() > supa_functions::MAX_FILES {
        return Err(Error::invalid(
            "file",
            format!("at most {} files", supa_functions::MAX_FILES),
        ));
    }
    let total: usize = files.iter().map(|f| f.content.len()).sum();
    if total > supa_functions::MAX_SOURCE_BYTES {
        return Err(Error::invalid(
            "file",
            format!(
                "at most {} MiB of files",
                supa_functions::MAX_SOURCE_BYTES >> 20
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    files
        .into_iter()
        .map(|f| {
            let path = supa_functions::normalize_path(&f.path).ok_or_else(|| {
                Error::invalid("file", format!("{:?} is not a relative path", f.path))
            })?;
            if is_bundle(&path) {
                return Err(Error::invalid("file", format!("{BUNDLE_FILE} is reserved")));
            }
            if !seen.insert(path.clone()) {
                return Err(Error::invalid("file", format!("{path} is sent twice")));
            }
            Ok(SourceFile {
                path,
                content: f.content,
            })
        })
        .collect()
}

impl supa_functions::FunctionStore for Tenant {
    fn bundle<'a>(
        &'a self,
        project: &'a ProjectRef,
        slug: &'a str,
        version: u32,
    ) -> BoxFuture<'a, Result<Option<Bundle>, DirectoryError>> {
        Box::pin(async move {
            let version = i32::try_from(version).map_err(|e| DirectoryError(e.to_string()))?;
            let files = self
                .function_files(project, slug, version)
                .await
                .map_err(|e| DirectoryError(e.to_string()))?;
            let Some(entrypoint) = files.iter().find(|f| is_bundle(&f.path)) else {
                return Ok(None);
            };
            Ok(Some(Bundle {
                entrypoint: entrypoint.path.clone(),
                files,
            }))
        })
    }

    fn record(&self, events: Vec<LogEvent>) -> BoxFuture<'_, Result<(), DirectoryError>> {
        Box::pin(async move {
            self.record_function_logs(events)
                .await
                .map_err(|e| DirectoryError(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_supabase() {
        assert!(validate_slug("hello-world_2").is_ok());
        assert!(validate_slug("2fast").is_err());
        assert!(validate_slug("").is_err());
        assert!(validate_slug("a/b").is_err());
        assert!(validate_slug(&"a".repeat(65)).is_err());
    }

    #[test]
    fn deployed_files_are_relative_unique_and_not_bundles() {
        let file = |p: &str| SourceFile {
            path: p.into(),
            content: b"x".to_vec(),
        };
        let ok = checked_files(vec![file("file:///src/index.ts"), file("src/lib.ts")]).unwrap();
        assert_eq!(ok[0].path, "src/index.ts");
        assert!(checked_files(vec![file("../x.ts")]).is_err());
        assert!(checked_files(vec![file("a.ts"), file("./a.ts")]).is_err());
        assert!(checked_files(vec![file(&format!("x/{BUNDLE_FILE}"))]).is_err());
        assert!(checked_files(vec![]).is_err());
    }
}
