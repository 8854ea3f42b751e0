//! Project lifecycle: create (every step recorded and undone in reverse on
//! failure), get, list, delete.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use std::sync::atomic::Ordering;

use sqlx::{Executor, PgPool, Row};
use supa_core::{
    KeyKind, PostgrestSettings, ProjectConfig, ProjectDatabase, ProjectRef, ProjectStatus, Secret,
    Upstream,
};

use crate::bootstrap::Formatted;
use crate::error::has_sqlstate;
use crate::files::random_bytes;
use crate::tenant::Invalidation;
use crate::{Error, Tenant};

/// Name of the template every project database is copied from.
pub(crate) const TEMPLATE: &str = "supa_template";
/// Serializes cluster-wide setup (API roles, template) between creators.
const SETUP_LOCK: i64 = 0x5375_7061_5345_5450; // "SupaSETP"
/// A project to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Display name.
    pub name: String,
    /// A caller-chosen ref; a random one when absent.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub project_ref: Option<String>,
    /// Put it on this worker rather than the least loaded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
}

/// A change to a project's data plane settings: absent fields stay, and
/// `db_pool: null` returns to the platform's default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgrestPatch {
    /// Exposed schemas, comma-separated.
    pub db_schema: Option<String>,
    /// The most rows one read returns.
    pub max_rows: Option<i64>,
    /// Extra `search_path` schemas, comma-separated.
    pub db_extra_search_path: Option<String>,
    /// Pool size (`null`: the default).
    #[serde(default, deserialize_with = "present")]
    pub db_pool: Option<Option<i64>>,
    /// Whether plans are answered (`Accept: application/vnd.pgrst.plan`).
    pub db_plan_enabled: Option<bool>,
}

/// Tells a field sent as `null` from a field left out.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// The steps of project creation, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateStep {
    /// Choose the worker.
    PickWorker,
    /// Insert the project row (status COMING_UP).
    InsertRow,
    /// Copy the prepared template into `proj_{ref}`.
    CreateDatabase,
    /// Create `{ref}_authenticator` and grant it the API roles.
    CreateRoles,
    /// Issue the publishable key and the `default` secret key.
    IssueKeys,
    /// Mark the project ACTIVE_HEALTHY.
    Activate,
}

impl CreateStep {
    /// Every step, in order.
    pub const ALL: [CreateStep; 6] = [
        CreateStep::PickWorker,
        CreateStep::InsertRow,
        CreateStep::CreateDatabase,
        CreateStep::CreateRoles,
        CreateStep::IssueKeys,
        CreateStep::Activate,
    ];

    /// What the step does, for progress lines.
    pub fn describe(self) -> &'static str {
        match self {
            CreateStep::PickWorker => "choosing a worker",
            CreateStep::InsertRow => "recording the project",
            CreateStep::CreateDatabase => "creating the database",
            CreateStep::CreateRoles => "creating the authenticator role",
            CreateStep::IssueKeys => "issuing API keys",
            CreateStep::Activate => "activating",
        }
    }
}

/// How a new project's worker is chosen when the caller names none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// The active worker with the fewest databases (ties: highest weight).
    #[default]
    LeastDatabases,
    /// Each active worker with room in turn.
    RoundRobin,
}

impl std::str::FromStr for Placement {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        crate::from_name(s.to_owned()).ok_or_else(|| {
            Error::invalid(
                "placement",
                format!("{s:?} is not least-databases or round-robin"),
            )
        })
    }
}

/// Knobs of [`Tenant::create_project_with`].
#[derive(Default)]
pub struct CreateOptions<'a> {
    /// Called as each step starts (the CLI prints a progress line).
    pub progress: Option<&'a (dyn Fn(CreateStep) + Send + Sync)>,
    /// Fail right after this step completes: lets tests prove the rollback.
    pub fail_after: Option<CreateStep>,
}

/// A project as the Management API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// The ref.
    #[serde(rename = "ref")]
    pub project_ref: ProjectRef,
    /// Same as `ref`, as Supabase's API also names it `id`.
    pub id: ProjectRef,
    /// Display name.
    pub name: String,
    /// The worker holding its database.
    pub worker_id: String,
    /// Lifecycle state.
    pub status: ProjectStatus,
    /// Creation time, ISO 8601.
    pub created_at: String,
}

/// A new project with its two keys in clear (shown once at creation;
/// listing keys later masks the secret one unless revealed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedProject {
    /// The project.
    #[serde(flatten)]
    pub project: Project,
    /// The publishable key.
    pub publishable_key: String,
    /// The secret key named `default`.
    #[serde(serialize_with = "supa_core::serialize_exposed")]
    pub secret_key: Secret<String>,
}

pub(crate) fn database_name(r: &ProjectRef) -> String {
    format!("proj_{r}")
}

/// Every login of the project (each with CONNECT on its database).
pub(crate) fn login_names(r: &ProjectRef) -> [String; 5] {
    [
        authenticator_name(r),
        auth_login_name(r),
        storage_login_name(r),
        realtime_login_name(r),
        functions_login_name(r),
    ]
}

pub(crate) fn authenticator_name(r: &ProjectRef) -> String {
    format!("{r}_authenticator")
}

fn jwt_context(r: &ProjectRef) -> String {
    format!("project:{r}:jwt_secret")
}

fn authenticator_context(r: &ProjectRef) -> String {
    format!("project:{r}:authenticator_password")
}

/// The login of the project's auth server: `supabase_auth_admin` in its
/// own database only.
pub(crate) fn auth_login_name(r: &ProjectRef) -> String {
    format!("{r}_auth")
}

fn auth_login_context(r: &ProjectRef) -> String {
    format!("project:{r}:auth_password")
}

/// The login of the project's storage server: `supabase_storage_admin`
/// in its own database, and a member of the API roles, which each request
/// acts as (so RLS decides, as on Supabase).
pub(crate) fn storage_login_name(r: &ProjectRef) -> String {
    format!("{r}_storage")
}

fn storage_login_context(r: &ProjectRef) -> String {
    format!("project:{r}:storage_password")
}

/// The login of the project's realtime server: `supabase_realtime_admin`
/// in its own database (its subscriptions, and its replication slot
/// through the slot functions), and a member of the API roles, which each
/// subscriber's checks act as.
pub(crate) fn realtime_login_name(r: &ProjectRef) -> String {
    format!("{r}_realtime")
}

fn realtime_login_context(r: &ProjectRef) -> String {
    format!("project:{r}:realtime_password")
}

/// The login of the project's edge functions (`SUPABASE_DB_URL`): its
/// sessions act as `service_role`, as a function's server-side work does.
pub(crate) fn functions_login_name(r: &ProjectRef) -> String {
    format!("{r}_functions")
}

fn functions_login_context(r: &ProjectRef) -> String {
    format!("project:{r}:functions_password")
}

const PROJECT_COLUMNS: &str = "ref, name, worker_id, status,
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at";

fn project_from_row(row: &sqlx::postgres::PgRow) -> Result<Project, Error> {
    let r: String = row.try_get("ref")?;
    let project_ref = ProjectRef::parse(&r).map_err(|e| Error::Config(e.to_string()))?;
    let status: String = row.try_get("status")?;
    Ok(Project {
        project_ref,
        id: project_ref,
        name: row.try_get("name")?,
        worker_id: row.try_get("worker_id")?,
        status: crate::from_name(status).unwrap_or(ProjectStatus::Unknown),
        created_at: row.try_get("created_at")?,
    })
}

/// Runs `format(template, args...)` on the server so identifiers and
/// literals are quoted by PostgreSQL itself, then executes the result.
pub(crate) async fn execute_formatted(
    pool: &PgPool,
    template: &str,
    args: &[&str],
) -> Result<(), Error> {
    execute_formatted_all(pool, &[(template, args.to_vec())]).await
}

/// [`execute_formatted`] for several statements, in two round trips for all
/// of them (format, then run) and in one implicit transaction.
pub(crate) async fn execute_formatted_all(
    pool: &PgPool,
    statements: &[(&str, Vec<&str>)],
) -> Result<(), Error> {
    if statements.is_empty() {
        return Ok(());
    }
    let mut calls = Vec::with_capacity(statements.len());
    let mut binds: Vec<&str> = Vec::new();
    for (template, args) in statements {
        let mut call = format!("format('{template}'");
        for arg in args {
            binds.push(arg);
            call.push_str(&format!(", ${}::text", binds.len()));
        }
        call.push(')');
        calls.push(call);
    }
    let query = format!("SELECT concat_ws(E';\\n', {})", calls.join(", "));
    let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(query));
    for arg in binds {
        q = q.bind(arg);
    }
    let script = q.fetch_one(pool).await?;
    sqlx::raw_sql(AssertSqlSafe(script)).execute(pool).await?;
    Ok(())
}

impl Tenant {
    /// Creates a project; see [`Tenant::create_project_with`].
    pub async fn create_project(&self, req: CreateProject) -> Result<CreatedProject, Error> {
        self.create_project_with(req, CreateOptions::default())
            .await
    }

    /// Creates a project step by step; on any failure every completed step
    /// is undone in reverse order, leaving no database, role or row.
    pub async fn create_project_with(
        &self,
        req: CreateProject,
        options: CreateOptions<'_>,
    ) -> Result<CreatedProject, Error> {
        let name = req.name.trim().to_owned();
        if name.is_empty() || name.len() > 256 {
            return Err(Error::invalid("name", "must be 1-256 characters"));
        }
        let project_ref = match &req.project_ref {
            Some(r) => ProjectRef::parse(r).map_err(|e| Error::invalid("ref", e.to_string()))?,
            None => ProjectRef::generate(),
        };

        let mut done: Vec<CreateStep> = Vec::new();
        let mut worker = String::new();
        let result = self
            .run_create_steps(
                &name,
                &project_ref,
                req.worker_id.as_deref(),
                &options,
                &mut done,
                &mut worker,
            )
            .await;
        match result {
            Ok(created) => Ok(created),
            Err(e) => {
                self.undo_create(&project_ref, &worker, &done).await;
                Err(e)
            }
        }
    }

    async fn run_create_steps(
        &self,
        name: &str,
        project_ref: &ProjectRef,
        worker_id: Option<&str>,
        options: &CreateOptions<'_>,
        done: &mut Vec<CreateStep>,
        worker: &mut String,
    ) -> Result<CreatedProject, Error> {
        let jwt_secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let authenticator_password = URL_SAFE_NO_PAD.encode(random_bytes::<24>());
        let auth_password = URL_SAFE_NO_PAD.encode(random_bytes::<24>());
        let storage_password = URL_SAFE_NO_PAD.encode(random_bytes::<24>());
        let realtime_password = URL_SAFE_NO_PAD.encode(random_bytes::<24>());
        let functions_password = URL_SAFE_NO_PAD.encode(random_bytes::<24>());
        // In the order of `login_names`.
        let passwords = [
            authenticator_password.as_str(),
            &auth_password,
            &storage_password,
            &realtime_password,
            &functions_password,
        ];
        let statements = crate::bootstrap::project_formatted(project_ref, &passwords);
        let mut keys = None;
        for step in CreateStep::ALL {
            if let Some(progress) = options.progress {
                progress(step);
            }
            match step {
                CreateStep::PickWorker => *worker = self.pick_worker(worker_id).await?,
                CreateStep::InsertRow => {
                    let inserted = sqlx::query(
                        "INSERT INTO projects (ref, name, worker_id, status, authenticator_password_enc, jwt_secret_enc, auth_password_enc, storage_password_enc, realtime_password_enc, functions_password_enc)
                         VALUES ($1, $2, $3, 'COMING_UP', $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(project_ref.as_str())
                    .bind(name)
                    .bind(worker.as_str())
                    .bind(self.key.encrypt(&authenticator_context(project_ref), authenticator_password.as_bytes()))
                    .bind(self.key.encrypt(&jwt_context(project_ref), jwt_secret.as_bytes()))
                    .bind(self.key.encrypt(&auth_login_context(project_ref), auth_password.as_bytes()))
                    .bind(self.key.encrypt(&storage_login_context(project_ref), storage_password.as_bytes()))
                    .bind(self.key.encrypt(&realtime_login_context(project_ref), realtime_password.as_bytes()))
                    .bind(self.key.encrypt(&functions_login_context(project_ref), functions_password.as_bytes()))
                    .execute(&self.db)
                    .await;
                    match inserted {
                        Ok(_) => {}
                        Err(e) if has_sqlstate(&e, "23505") => {
                            return Err(Error::Conflict(format!(
                                "project {project_ref} already exists"
                            )));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                CreateStep::CreateDatabase | CreateStep::CreateRoles => {
                    let pool = self.worker_pool(worker).await?;
                    if step == CreateStep::CreateDatabase {
                        self.ensure_cluster_setup(&pool, worker).await?;
                    }
                    // CREATE DATABASE refuses to share a transaction; the
                    // rest of the step runs as one.
                    let (alone, together): (Vec<_>, Vec<_>) = statements
                        .iter()
                        .filter(|s| s.step == step)
                        .map(Formatted::call)
                        .partition(|(template, _)| template.starts_with("CREATE DATABASE"));
                    for statement in alone {
                        execute_formatted_all(&pool, &[statement]).await?;
                    }
                    execute_formatted_all(&pool, &together).await?;
                }
                CreateStep::IssueKeys => {
                    let publishable = self
                        .insert_key(project_ref, KeyKind::Publishable, "default")
                        .await?;
                    let secret = self
                        .insert_key(project_ref, KeyKind::Secret, "default")
                        .await?;
                    keys = Some((publishable, secret));
                }
                CreateStep::Activate => {
                    sqlx::query("UPDATE projects SET status = 'ACTIVE_HEALTHY', updated_at = now() WHERE ref = $1")
                        .bind(project_ref.as_str())
                        .execute(&self.db)
                        .await?;
                }
            }
            done.push(step);
            if options.fail_after == Some(step) {
                return Err(Error::Config(format!("injected failure after {step:?}")));
            }
        }
        let (publishable_key, secret_key) = keys.expect("keys are issued before activation");
        Ok(CreatedProject {
            project: self.get_project(project_ref).await?,
            publishable_key,
            secret_key: Secret::new(secret_key),
        })
    }

    /// Undoes completed steps in reverse. Each undo is attempted even when
    /// an earlier one failed, so as much as possible is cleaned up.
    async fn undo_create(&self, project_ref: &ProjectRef, worker: &str, done: &[CreateStep]) {
        for step in done.iter().rev() {
            let undone: Result<(), Error> = async {
                match step {
                    CreateStep::PickWorker | CreateStep::Activate => Ok(()),
                    // Rows go with the project row (ON DELETE CASCADE) but are
                    // removed here too, in case that row's undo fails.
                    CreateStep::IssueKeys => {
                        sqlx::query("DELETE FROM api_keys WHERE project_ref = $1")
                            .bind(project_ref.as_str())
                            .execute(&self.db)
                            .await?;
                        Ok(())
                    }
                    CreateStep::CreateRoles => {
                        let pool = self.worker_pool(worker).await?;
                        drop_logins(&pool, project_ref).await
                    }
                    CreateStep::CreateDatabase => {
                        let pool = self.worker_pool(worker).await?;
                        drop_database(&pool, project_ref).await
                    }
                    CreateStep::InsertRow => {
                        sqlx::query("DELETE FROM projects WHERE ref = $1")
                            .bind(project_ref.as_str())
                            .execute(&self.db)
                            .await?;
                        Ok(())
                    }
                }
            }
            .await;
            if let Err(e) = undone {
                tracing::warn!(%project_ref, ?step, error = %e, "rollback step failed");
            }
        }
    }

    /// The worker asked for if it is active and has room; otherwise one of
    /// the active workers with room, chosen by the [`Placement`] strategy.
    async fn pick_worker(&self, wanted: Option<&str>) -> Result<String, Error> {
        if let Some(id) = wanted {
            let row = sqlx::query(
                "SELECT w.status, w.max_databases,
                        (SELECT count(*) FROM projects p WHERE p.worker_id = w.id) AS used
                 FROM workers w WHERE w.id = $1",
            )
            .bind(id)
            .fetch_optional(&self.db)
            .await?
            .ok_or_else(|| Error::invalid("worker_id", format!("no worker {id:?}")))?;
            let (status, max, used): (String, i32, i64) = (
                row.try_get("status")?,
                row.try_get("max_databases")?,
                row.try_get("used")?,
            );
            if status != "active" || used >= i64::from(max) {
                return Err(Error::invalid(
                    "worker_id",
                    format!("worker {id:?} is {status} and has {used}/{max} databases"),
                ));
            }
            return Ok(id.to_owned());
        }
        // Eligible workers, least loaded first (ties: highest weight, then id).
        let eligible: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM (
               SELECT w.id, w.weight, w.max_databases,
                      (SELECT count(*) FROM projects p WHERE p.worker_id = w.id) AS used
               FROM workers w WHERE w.status = 'active') w
             WHERE used < max_databases
             ORDER BY used, weight DESC, id",
        )
        .fetch_all(&self.db)
        .await?;
        match self.placement {
            Placement::LeastDatabases => eligible.into_iter().next(),
            Placement::RoundRobin => {
                // Walk the workers in a stable (id) order.
                let mut by_id = eligible;
                by_id.sort();
                let turn = self.round_robin.fetch_add(1, Ordering::Relaxed);
                by_id.get(turn % by_id.len().max(1)).cloned()
            }
        }
        .ok_or(Error::NoCapacity)
    }

    /// Creates the API roles and the project template on a worker, once.
    pub(crate) async fn ensure_cluster_setup(
        &self,
        pool: &PgPool,
        worker: &str,
    ) -> Result<(), Error> {
        let mut conn = pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(SETUP_LOCK)
            .execute(&mut *conn)
            .await?;
        let result: Result<(), Error> = async {
            for statement in crate::bootstrap::cluster_statements() {
                sqlx::raw_sql(AssertSqlSafe(statement.sql))
                    .execute(&mut *conn)
                    .await?;
            }
            // The template remembers which bootstrap made it; one made by
            // an older version is rebuilt (existing projects keep theirs).
            let marker = crate::bootstrap::template_marker();
            let found: Option<Option<String>> = sqlx::query_scalar(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            )
            .bind(TEMPLATE)
            .fetch_optional(&mut *conn)
            .await?;
            let current = matches!(&found, Some(Some(m)) if *m == marker);
            if found.is_some() && !current {
                conn.execute(AssertSqlSafe(format!(
                    "ALTER DATABASE {TEMPLATE} WITH IS_TEMPLATE false"
                )))
                .await?;
                conn.execute(AssertSqlSafe(format!("DROP DATABASE {TEMPLATE}")))
                    .await?;
            }
            if !current {
                conn.execute(AssertSqlSafe(format!("CREATE DATABASE {TEMPLATE}")))
                    .await?;
                let options = pool.connect_options().as_ref().clone().database(TEMPLATE);
                // One session: the script's `SET ROLE`s hold for the
                // statements after them.
                let mut template =
                    <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await?;
                let applied: Result<(), sqlx::Error> = async {
                    for statement in crate::bootstrap::template_statements() {
                        sqlx::raw_sql(AssertSqlSafe(statement.sql.as_str()))
                            .execute(&mut template)
                            .await?;
                    }
                    Ok(())
                }
                .await;
                sqlx::Connection::close(template).await.ok();
                if let Err(e) = applied {
                    conn.execute(AssertSqlSafe(format!("DROP DATABASE {TEMPLATE}")))
                        .await
                        .ok();
                    return Err(Error::Config(format!(
                        "cannot prepare the project template on worker {worker}: {e}"
                    )));
                }
                conn.execute(AssertSqlSafe(format!(
                    "ALTER DATABASE {TEMPLATE} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"
                )))
                .await?;
                // The marker is made of hex digits only.
                conn.execute(AssertSqlSafe(format!(
                    "COMMENT ON DATABASE {TEMPLATE} IS '{marker}'"
                )))
                .await?;
            }
            Ok(())
        }
        .await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(SETUP_LOCK)
            .execute(&mut *conn)
            .await
            .ok();
        result
    }

    /// One project.
    pub async fn get_project(&self, project_ref: &ProjectRef) -> Result<Project, Error> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE ref = $1"
        )))
        .bind(project_ref.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        project_from_row(&row)
    }

    /// Every project, oldest first.
    pub async fn list_projects(&self) -> Result<Vec<Project>, Error> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PROJECT_COLUMNS} FROM projects ORDER BY created_at, ref"
        )))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(project_from_row).collect()
    }

    /// What a gateway needs to serve the project, including how an
    /// in-process data plane logs in to its database (embedded upstream).
    pub async fn project_config(&self, project_ref: &ProjectRef) -> Result<ProjectConfig, Error> {
        let row = sqlx::query(
            "SELECT p.status, p.jwt_secret_enc, p.upstream, p.services, p.postgrest, p.authenticator_password_enc,
                    p.auth, p.smtp_pass_enc, p.auth_secrets_enc, p.auth_password_enc, p.storage_password_enc, p.realtime_password_enc, p.functions_password_enc, p.storage, p.realtime, w.host, w.port
             FROM projects p JOIN workers w ON w.id = p.worker_id WHERE p.ref = $1",
        )
        .bind(project_ref.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        let status: String = row.try_get("status")?;
        let upstream: sqlx::types::Json<Upstream> = row.try_get("upstream")?;
        let port: i32 = row.try_get("port")?;
        let host: String = row.try_get("host")?;
        let login = |user: String, password: String| ProjectDatabase {
            host: host.clone(),
            port: u16::try_from(port).unwrap_or(5432),
            name: database_name(project_ref),
            user,
            password: Secret::new(password),
        };
        let database = match upstream.0 {
            Upstream::Embedded => Some(login(
                authenticator_name(project_ref),
                self.key.decrypt_string(
                    &authenticator_context(project_ref),
                    row.try_get("authenticator_password_enc")?,
                )?,
            )),
            _ => None,
        };
        // A service's login, if the project has one (projects made before
        // the service do not).
        let service_login = |column: &str,
                             context: String,
                             name: String|
         -> Result<Option<ProjectDatabase>, Error> {
            row.try_get::<Option<Vec<u8>>, _>(column)?
                .map(|sealed| self.key.decrypt_string(&context, &sealed))
                .transpose()
                .map(|password| password.map(|p| login(name, p)))
        };
        let auth_database = service_login(
            "auth_password_enc",
            auth_login_context(project_ref),
            auth_login_name(project_ref),
        )?;
        let storage_database = service_login(
            "storage_password_enc",
            storage_login_context(project_ref),
            storage_login_name(project_ref),
        )?;
        let realtime_database = service_login(
            "realtime_password_enc",
            realtime_login_context(project_ref),
            realtime_login_name(project_ref),
        )?;
        let publishable_key: Option<String> = sqlx::query_scalar(
            "SELECT publishable_key FROM api_keys
             WHERE project_ref = $1 AND kind = 'publishable' AND revoked_at IS NULL",
        )
        .bind(project_ref.as_str())
        .fetch_optional(&self.db)
        .await?
        .flatten();
        let functions_database = service_login(
            "functions_password_enc",
            functions_login_context(project_ref),
            functions_login_name(project_ref),
        )?;
        Ok(ProjectConfig {
            project_ref: *project_ref,
            status: crate::from_name(status).unwrap_or(ProjectStatus::Unknown),
            jwt_secret: Secret::new(
                self.key
                    .decrypt_string(&jwt_context(project_ref), row.try_get("jwt_secret_enc")?)?,
            ),
            upstream: upstream.0,
            services: row
                .try_get::<sqlx::types::Json<supa_core::ServiceUpstreams>, _>("services")?
                .0,
            postgrest: row
                .try_get::<sqlx::types::Json<PostgrestSettings>, _>("postgrest")?
                .0,
            auth: row
                .try_get::<sqlx::types::Json<supa_core::AuthSettings>, _>("auth")?
                .0,
            storage: row
                .try_get::<sqlx::types::Json<supa_core::StorageSettings>, _>("storage")?
                .0,
            realtime: row
                .try_get::<sqlx::types::Json<supa_core::RealtimeSettings>, _>("realtime")?
                .0,
            functions: self
                .functions_config(
                    project_ref,
                    publishable_key.as_deref(),
                    functions_database.as_ref(),
                )
                .await?,
            smtp_pass: row
                .try_get::<Option<Vec<u8>>, _>("smtp_pass_enc")?
                .map(|sealed| {
                    self.key.decrypt_string(
                        &crate::auth_config::smtp_pass_context(project_ref),
                        &sealed,
                    )
                })
                .transpose()?
                .map(Secret::new),
            auth_secrets: match row.try_get::<Option<Vec<u8>>, _>("auth_secrets_enc")? {
                Some(sealed) => {
                    let text = self.key.decrypt_string(
                        &crate::auth_config::auth_secrets_context(project_ref),
                        &sealed,
                    )?;
                    serde_json::from_str::<std::collections::BTreeMap<String, String>>(&text)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, Secret::new(v)))
                        .collect()
                }
                None => Default::default(),
            },
            publishable_key,
            s3_credentials: self.s3_secrets(project_ref).await?,
            database,
            auth_database,
            storage_database,
            realtime_database,
        })
    }

    /// The worker-side password of the project's auth server login, if the
    /// project has one (projects made before it do not).
    pub async fn auth_login_password(
        &self,
        project_ref: &ProjectRef,
    ) -> Result<Option<Secret<String>>, Error> {
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT auth_password_enc FROM projects WHERE ref = $1")
                .bind(project_ref.as_str())
                .fetch_optional(&self.db)
                .await?
                .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        sealed
            .map(|s| {
                self.key
                    .decrypt_string(&auth_login_context(project_ref), &s)
                    .map(Secret::new)
            })
            .transpose()
    }

    /// The worker-side password of the project's authenticator role.
    pub async fn authenticator_password(
        &self,
        project_ref: &ProjectRef,
    ) -> Result<Secret<String>, Error> {
        let sealed: Vec<u8> =
            sqlx::query_scalar("SELECT authenticator_password_enc FROM projects WHERE ref = $1")
                .bind(project_ref.as_str())
                .fetch_optional(&self.db)
                .await?
                .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        Ok(Secret::new(self.key.decrypt_string(
            &authenticator_context(project_ref),
            &sealed,
        )?))
    }

    /// Deletes a project: its database, its authenticator role, its row, keys
    /// and secrets; then tells every gateway to forget it.
    pub async fn delete_project(&self, project_ref: &ProjectRef) -> Result<(), Error> {
        let worker: String = sqlx::query_scalar(
            "UPDATE projects SET status = 'GOING_DOWN' WHERE ref = $1 RETURNING worker_id",
        )
        .bind(project_ref.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        // Gateways stop routing before the database disappears under them.
        self.invalidate(Invalidation::Project(*project_ref));
        let pool = self.worker_pool(&worker).await?;
        drop_database(&pool, project_ref).await?;
        drop_logins(&pool, project_ref).await?;
        if let Some(objects) = &self.objects {
            let removed = objects
                .remove_prefix(&project_ref.as_str().into())
                .await
                .map_err(|e| Error::Storage(e.to_string()))?;
            tracing::info!(%project_ref, removed, "deleted the project's objects");
        }
        let hashes: Vec<Vec<u8>> =
            sqlx::query_scalar("DELETE FROM api_keys WHERE project_ref = $1 RETURNING hash")
                .bind(project_ref.as_str())
                .fetch_all(&self.db)
                .await?;
        sqlx::query("DELETE FROM projects WHERE ref = $1")
            .bind(project_ref.as_str())
            .execute(&self.db)
            .await?;
        for hash in hashes {
            self.invalidate(Invalidation::Key(hex::encode(hash)));
        }
        Ok(())
    }

    /// Pauses a serving project: gateways stop routing to it (503), then
    /// its database refuses connections and its sessions and replication
    /// slots go, so a paused project holds no connection, memory or WAL on
    /// its worker. Its data, keys and settings stay.
    pub async fn pause_project(&self, project_ref: &ProjectRef) -> Result<Project, Error> {
        let worker = self
            .move_status(project_ref, &["ACTIVE_HEALTHY", "PAUSE_FAILED"], "PAUSING")
            .await?;
        self.invalidate(Invalidation::Project(*project_ref));
        let closed = async {
            let pool = self.worker_pool(&worker).await?;
            close_database(&pool, project_ref).await
        }
        .await;
        self.settle(project_ref, closed, "INACTIVE", "PAUSE_FAILED")
            .await
    }

    /// Brings a paused project back: its database accepts connections
    /// again and gateways route to it.
    pub async fn resume_project(&self, project_ref: &ProjectRef) -> Result<Project, Error> {
        let worker = self
            .move_status(project_ref, &["INACTIVE", "RESTORE_FAILED"], "RESTORING")
            .await?;
        let opened = async {
            let pool = self.worker_pool(&worker).await?;
            execute_formatted(
                &pool,
                "ALTER DATABASE %I WITH ALLOW_CONNECTIONS true",
                &[&database_name(project_ref)],
            )
            .await
        }
        .await;
        self.settle(project_ref, opened, "ACTIVE_HEALTHY", "RESTORE_FAILED")
            .await
    }

    /// Moves the project from one of `from` to `to`, returning its worker;
    /// a project in another state is a conflict.
    async fn move_status(
        &self,
        project_ref: &ProjectRef,
        from: &[&str],
        to: &str,
    ) -> Result<String, Error> {
        let from: Vec<String> = from.iter().map(|s| (*s).to_owned()).collect();
        let moved: Option<String> = sqlx::query_scalar(
            "UPDATE projects SET status = $3 WHERE ref = $1 AND status = ANY($2) RETURNING worker_id",
        )
        .bind(project_ref.as_str())
        .bind(&from)
        .bind(to)
        .fetch_optional(&self.db)
        .await?;
        match moved {
            Some(worker) => Ok(worker),
            None => {
                let project = self.get_project(project_ref).await?;
                Err(Error::Conflict(format!(
                    "project {project_ref} is {}",
                    project.status.as_str()
                )))
            }
        }
    }

    /// Records how a pause or resume ended, then tells every gateway.
    pub(crate) async fn settle(
        &self,
        project_ref: &ProjectRef,
        outcome: Result<(), Error>,
        done: &str,
        failed: &str,
    ) -> Result<Project, Error> {
        let status = if outcome.is_ok() { done } else { failed };
        sqlx::query("UPDATE projects SET status = $2 WHERE ref = $1")
            .bind(project_ref.as_str())
            .bind(status)
            .execute(&self.db)
            .await?;
        self.invalidate(Invalidation::Project(*project_ref));
        outcome?;
        self.get_project(project_ref).await
    }
}

/// Refuses to open a session in a project's database while it is paused
/// (or being paused or resumed): it takes no connections then, and the
/// caller should hear why rather than a connection error.
pub(crate) fn refuse_if_paused(project_ref: &ProjectRef, status: &str) -> Result<(), Error> {
    match status {
        "INACTIVE" | "PAUSING" | "PAUSE_FAILED" | "RESTORING" | "RESTORE_FAILED" => {
            Err(Error::Unavailable(format!(
                "project {project_ref} is paused ({status}): resume it first"
            )))
        }
        _ => Ok(()),
    }
}

/// Closes the project's database: no new session, every session ended,
/// and its replication slots dropped, which would otherwise keep it (and
/// retain WAL).
async fn close_database(pool: &PgPool, project_ref: &ProjectRef) -> Result<(), Error> {
    close_database_named(pool, &database_name(project_ref)).await
}

/// [`close_database`] by the database's name.
pub(crate) async fn close_database_named(pool: &PgPool, db: &str) -> Result<(), Error> {
    // No new session (a realtime server polling its slot) comes back
    // between closing the sessions and dropping the slot.
    execute_formatted(
        pool,
        "ALTER DATABASE %I WITH ALLOW_CONNECTIONS false",
        &[db],
    )
    .await?;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .execute(pool)
    .await?;
    // A terminated session releases its slot a moment later.
    let mut tries = 0;
    loop {
        let dropped = sqlx::query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
        )
        .bind(db)
        .execute(pool)
        .await;
        match dropped {
            Ok(_) => return Ok(()),
            Err(e) if tries < 50 && has_sqlstate(&e, "55006") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Drops the project's database, closing it first.
async fn drop_database(pool: &PgPool, project_ref: &ProjectRef) -> Result<(), Error> {
    drop_database_named(pool, &database_name(project_ref)).await
}

/// [`drop_database`] by the database's name (a restore's scratch copy).
pub(crate) async fn drop_database_named(pool: &PgPool, db: &str) -> Result<(), Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(db)
            .fetch_one(pool)
            .await?;
    if exists {
        close_database_named(pool, db).await?;
    }
    execute_formatted(pool, "DROP DATABASE IF EXISTS %I WITH (FORCE)", &[db]).await
}

/// Drops each of the project's logins that exists.
async fn drop_logins(pool: &PgPool, project_ref: &ProjectRef) -> Result<(), Error> {
    for name in login_names(project_ref) {
        drop_role(pool, &name).await?;
    }
    Ok(())
}

/// Drops a login role and the privileges it holds on shared objects (its
/// database's CONNECT grant), if it exists.
async fn drop_role(pool: &PgPool, role: &str) -> Result<(), Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(pool)
            .await?;
    if exists {
        let mut conn = pool.acquire().await?;
        let drop_owned: String = sqlx::query_scalar("SELECT format('DROP OWNED BY %I', $1::text)")
            .bind(role)
            .fetch_one(&mut *conn)
            .await?;
        conn.execute(AssertSqlSafe(drop_owned)).await?;
        let drop: String = sqlx::query_scalar("SELECT format('DROP ROLE IF EXISTS %I', $1::text)")
            .bind(role)
            .fetch_one(&mut *conn)
            .await?;
        conn.execute(AssertSqlSafe(drop)).await?;
    }
    Ok(())
}

impl Tenant {
    /// The project's data plane settings.
    pub async fn postgrest_settings(
        &self,
        project_ref: &ProjectRef,
    ) -> Result<PostgrestSettings, Error> {
        self.settings_column(project_ref, "postgrest").await
    }

    /// A project's settings kept as JSON in `column` (one of the project
    /// row's settings columns, never a caller's string).
    pub(crate) async fn settings_column<T>(
        &self,
        project_ref: &ProjectRef,
        column: &'static str,
    ) -> Result<T, Error>
    where
        T: serde::de::DeserializeOwned + Send + Unpin + 'static,
    {
        let settings: sqlx::types::Json<T> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT {column} FROM projects WHERE ref = $1"
        )))
        .bind(project_ref.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        Ok(settings.0)
    }

    /// Changes the data plane settings `patch` names; nothing changes when
    /// one is invalid. Gateways forget the old ones at once (in process) or
    /// on the invalidation channel.
    pub async fn update_postgrest_settings(
        &self,
        project_ref: &ProjectRef,
        patch: PostgrestPatch,
    ) -> Result<PostgrestSettings, Error> {
        // The row stays locked from read to write, so two PATCHes of
        // different fields both take effect.
        let mut tx = self.db.begin().await?;
        let current: sqlx::types::Json<PostgrestSettings> =
            sqlx::query_scalar("SELECT postgrest FROM projects WHERE ref = $1 FOR UPDATE")
                .bind(project_ref.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        let mut settings = current.0;
        if let Some(v) = patch.db_schema {
            settings.db_schema = v;
        }
        if let Some(v) = patch.max_rows {
            settings.max_rows = v;
        }
        if let Some(v) = patch.db_extra_search_path {
            settings.db_extra_search_path = v;
        }
        if let Some(v) = patch.db_pool {
            settings.db_pool = v;
        }
        if let Some(v) = patch.db_plan_enabled {
            settings.db_plan_enabled = v;
        }
        settings.validate().map_err(Error::setting)?;
        sqlx::query("UPDATE projects SET postgrest = $2, updated_at = now() WHERE ref = $1")
            .bind(project_ref.as_str())
            .bind(sqlx::types::Json(&settings))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.invalidate(Invalidation::Project(*project_ref));
        Ok(settings)
    }

    /// Points a project's API at another upstream (an HTTP server or a
    /// Lambda Function URL instead of the embedded data plane), and its
    /// other services at their own servers; what is `None` stays. Gateways
    /// forget the old ones at once.
    pub async fn set_upstream(
        &self,
        project_ref: &ProjectRef,
        upstream: Option<Upstream>,
        services: Option<ServicesPatch>,
    ) -> Result<Project, Error> {
        if let Some(upstream) = &upstream {
            upstream
                .validate()
                .map_err(|e| Error::invalid("upstream", e.to_string()))?;
        }
        if let Some(services) = &services {
            services.check()?;
        }
        let updated = sqlx::query(
            "UPDATE projects SET upstream = coalesce($2, upstream), services = services || coalesce($3, '{}'),
                    updated_at = now()
             WHERE ref = $1",
        )
        .bind(project_ref.as_str())
        .bind(upstream.as_ref().map(sqlx::types::Json))
        .bind(services.as_ref().map(sqlx::types::Json))
        .execute(&self.db)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::NotFound(format!("project {project_ref}")));
        }
        self.invalidate(Invalidation::Project(*project_ref));
        self.get_project(project_ref).await
    }
}

/// Some of a project's service upstreams, as `PATCH /admin/v1/projects/{ref}`
/// takes them under `services`: the ones given replace the stored ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesPatch {
    /// `/auth/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Upstream>,
    /// `/storage/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Upstream>,
    /// `/realtime/v1`: embedded only (its WebSockets stay in the gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime: Option<Upstream>,
    /// `/functions/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functions: Option<Upstream>,
}

impl ServicesPatch {
    /// Services other than the data plane go to plain HTTP servers only:
    /// realtime's WebSockets stay in the gateway, and Lambda speaks for
    /// the data plane alone.
    fn check(&self) -> Result<(), Error> {
        let all = [
            ("services.auth", &self.auth),
            ("services.storage", &self.storage),
            ("services.realtime", &self.realtime),
            ("services.functions", &self.functions),
        ];
        for (field, upstream) in all {
            match upstream {
                None | Some(Upstream::Embedded) => {}
                Some(Upstream::Http { .. }) if field == "services.realtime" => {
                    return Err(Error::invalid(
                        field,
                        "realtime runs in the gateway: an http upstream cannot carry its WebSockets",
                    ));
                }
                Some(http @ Upstream::Http { .. }) => http
                    .validate()
                    .map_err(|e| Error::invalid(field, e.to_string()))?,
                Some(Upstream::Lambda { .. }) => {
                    return Err(Error::invalid(
                        field,
                        "only the data plane (upstream) can be a Lambda function",
                    ));
                }
            }
        }
        Ok(())
    }
}
