//! Worker clusters: the PostgreSQL servers project databases live on.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Row};
use supa_core::Secret;

use crate::error::has_sqlstate;
use crate::{Error, Tenant};

/// Whether a worker takes new projects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    /// Takes new projects.
    Active,
    /// Serves its projects, takes no new ones.
    Maintenance,
    /// Being emptied; takes no new projects.
    Draining,
}

impl WorkerStatus {
    /// The name the API and the database use.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Active => "active",
            WorkerStatus::Maintenance => "maintenance",
            WorkerStatus::Draining => "draining",
        }
    }
}

/// A worker to register.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWorker {
    /// Identifier: lowercase letters, digits, `_` and `-`.
    pub id: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// A role allowed to create databases and roles.
    pub admin_user: String,
    /// Its password.
    pub admin_password: Secret<String>,
    /// How many project databases it may hold.
    #[serde(default = "default_max_databases")]
    pub max_databases: i32,
    /// Relative share of new projects.
    #[serde(default = "default_weight")]
    pub weight: i32,
    /// Initial status.
    #[serde(default = "default_status")]
    pub status: WorkerStatus,
}

fn default_max_databases() -> i32 {
    1000
}
fn default_weight() -> i32 {
    100
}
fn default_status() -> WorkerStatus {
    WorkerStatus::Active
}

/// Fields a PATCH may change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerPatch {
    /// New capacity.
    pub max_databases: Option<i32>,
    /// New weight.
    pub weight: Option<i32>,
    /// New status.
    pub status: Option<WorkerStatus>,
}

/// A registered worker as the API shows it (never its password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worker {
    /// Identifier.
    pub id: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: i32,
    /// Admin role.
    pub admin_user: String,
    /// Capacity.
    pub max_databases: i32,
    /// Weight.
    pub weight: i32,
    /// Status.
    pub status: WorkerStatus,
    /// Projects living on it.
    pub project_count: i64,
}

const WORKER_COLUMNS: &str =
    "w.id, w.host, w.port, w.admin_user, w.max_databases, w.weight, w.status,
     (SELECT count(*) FROM projects p WHERE p.worker_id = w.id) AS project_count";

fn worker_from_row(row: &sqlx::postgres::PgRow) -> Result<Worker, Error> {
    let status: String = row.try_get("status")?;
    Ok(Worker {
        id: row.try_get("id")?,
        host: row.try_get("host")?,
        port: row.try_get("port")?,
        admin_user: row.try_get("admin_user")?,
        max_databases: row.try_get("max_databases")?,
        weight: row.try_get("weight")?,
        status: crate::from_name(status.clone()).ok_or_else(|| {
            Error::Config(format!("bad worker status {status:?} in the database"))
        })?,
        project_count: row.try_get("project_count")?,
    })
}

fn validate_new_worker(new: &NewWorker) -> Result<(), Error> {
    let id_ok = !new.id.is_empty()
        && new.id.len() <= 63
        && new
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && new.id.as_bytes()[0] != b'_'
        && new.id.as_bytes()[0] != b'-';
    if !id_ok {
        return Err(Error::invalid(
            "id",
            "must be 1-63 chars of a-z, 0-9, '_' and '-', starting with a letter or digit",
        ));
    }
    if new.host.trim().is_empty() {
        return Err(Error::invalid("host", "must not be empty"));
    }
    if new.port == 0 {
        return Err(Error::invalid("port", "must be between 1 and 65535"));
    }
    if new.max_databases <= 0 {
        return Err(Error::invalid("max_databases", "must be positive"));
    }
    if new.weight < 0 {
        return Err(Error::invalid("weight", "must not be negative"));
    }
    Ok(())
}

fn connect_options(host: &str, port: u16, user: &str, password: &str) -> PgConnectOptions {
    PgConnectOptions::new()
        .host(host)
        .port(port)
        .username(user)
        .password(password)
        .database("postgres")
        .application_name("supa-tenant")
}

impl Tenant {
    /// Registers a worker after proving its credentials work and can create
    /// databases and roles; nothing is stored when they do not.
    pub async fn register_worker(&self, new: NewWorker) -> Result<Worker, Error> {
        self.store_worker(new, false).await
    }

    /// Registers a worker, or points an existing one with the same id at the
    /// endpoint and credentials given (capacity, weight and status are kept).
    /// `supa up` uses it for its own cluster, whose port changes per start.
    pub async fn upsert_worker(&self, new: NewWorker) -> Result<Worker, Error> {
        self.store_worker(new, true).await
    }

    async fn store_worker(&self, new: NewWorker, replace: bool) -> Result<Worker, Error> {
        validate_new_worker(&new)?;
        check_worker(&new).await?;

        let sealed = self.key.encrypt(
            &worker_context(&new.id),
            new.admin_password.expose().as_bytes(),
        );
        let on_conflict = if replace {
            "ON CONFLICT (id) DO UPDATE SET host = excluded.host, port = excluded.port,
               admin_user = excluded.admin_user, admin_password_enc = excluded.admin_password_enc,
               updated_at = now()"
        } else {
            ""
        };
        let inserted = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO workers (id, host, port, admin_user, admin_password_enc, max_databases, weight, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) {on_conflict}"
        )))
        .bind(&new.id)
        .bind(&new.host)
        .bind(i32::from(new.port))
        .bind(&new.admin_user)
        .bind(sealed)
        .bind(new.max_databases)
        .bind(new.weight)
        .bind(new.status.as_str())
        .execute(&self.db)
        .await;
        match inserted {
            Ok(_) => {
                self.forget_worker_pool(&new.id).await;
                self.get_worker(&new.id).await
            }
            Err(e) if has_sqlstate(&e, "23505") => {
                Err(Error::Conflict(format!("worker {} already exists", new.id)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every worker.
    pub async fn list_workers(&self) -> Result<Vec<Worker>, Error> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {WORKER_COLUMNS} FROM workers w ORDER BY w.id"
        )))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(worker_from_row).collect()
    }

    /// One worker.
    pub async fn get_worker(&self, id: &str) -> Result<Worker, Error> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {WORKER_COLUMNS} FROM workers w WHERE w.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("worker {id}")))?;
        worker_from_row(&row)
    }

    /// Changes capacity, weight or status.
    pub async fn patch_worker(&self, id: &str, patch: WorkerPatch) -> Result<Worker, Error> {
        if patch.max_databases.is_some_and(|m| m <= 0) {
            return Err(Error::invalid("max_databases", "must be positive"));
        }
        if patch.weight.is_some_and(|w| w < 0) {
            return Err(Error::invalid("weight", "must not be negative"));
        }
        let updated = sqlx::query(
            "UPDATE workers SET max_databases = coalesce($2, max_databases),
                    weight = coalesce($3, weight), status = coalesce($4, status), updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(patch.max_databases)
        .bind(patch.weight)
        .bind(patch.status.map(WorkerStatus::as_str))
        .execute(&self.db)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::NotFound(format!("worker {id}")));
        }
        self.get_worker(id).await
    }

    /// Removes a worker that holds no project.
    pub async fn delete_worker(&self, id: &str) -> Result<(), Error> {
        let worker = self.get_worker(id).await?;
        if worker.project_count > 0 {
            return Err(Error::Conflict(format!(
                "worker {id} still holds {} project(s); delete or move them first",
                worker.project_count
            )));
        }
        let deleted = sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(id)
            .execute(&self.db)
            .await;
        match deleted {
            Ok(_) => {}
            // A project was created on it meanwhile.
            Err(e) if has_sqlstate(&e, "23503") => {
                return Err(Error::Conflict(format!("worker {id} still holds projects")));
            }
            Err(e) => return Err(e.into()),
        }
        self.forget_worker_pool(id).await;
        Ok(())
    }

    /// Closes the cached admin pool of a worker whose endpoint changed or
    /// which is gone.
    async fn forget_worker_pool(&self, id: &str) {
        let pool = self
            .worker_pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
        if let Some(pool) = pool {
            pool.close().await;
        }
    }

    /// The admin pool of a worker, opened on first use.
    pub(crate) async fn worker_pool(&self, id: &str) -> Result<PgPool, Error> {
        if let Some(pool) = self
            .worker_pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
        {
            return Ok(pool.clone());
        }
        let row = sqlx::query(
            "SELECT host, port, admin_user, admin_password_enc FROM workers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("worker {id}")))?;
        let password = self
            .key
            .decrypt_string(&worker_context(id), row.try_get("admin_password_enc")?)?;
        let port: i32 = row.try_get("port")?;
        let options = connect_options(
            row.try_get("host")?,
            u16::try_from(port).unwrap_or(5432),
            row.try_get("admin_user")?,
            &password,
        );
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        self.worker_pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), pool.clone());
        Ok(pool)
    }
}

pub(crate) fn worker_context(id: &str) -> String {
    format!("worker:{id}:admin_password")
}

/// Connects with the given credentials and checks the role may create
/// databases and roles, with an error a person can act on.
async fn check_worker(new: &NewWorker) -> Result<(), Error> {
    let options = connect_options(
        &new.host,
        new.port,
        &new.admin_user,
        new.admin_password.expose(),
    );
    let connect = tokio::time::timeout(
        Duration::from_secs(10),
        PgConnection::connect_with(&options),
    );
    let mut conn = match connect.await {
        Err(_) => {
            return Err(Error::WorkerUnreachable(format!(
                "{}:{} did not answer within 10 s",
                new.host, new.port
            )));
        }
        Ok(Err(e)) if has_sqlstate(&e, "28P01") => {
            return Err(Error::WorkerUnreachable(format!(
                "password authentication failed for user {:?}",
                new.admin_user
            )));
        }
        Ok(Err(e)) => {
            return Err(Error::WorkerUnreachable(format!(
                "{}:{}: {e}",
                new.host, new.port
            )));
        }
        Ok(Ok(conn)) => conn,
    };
    // Amazon RDS and Aurora grant replication through membership of
    // `rds_replication` rather than the REPLICATION attribute.
    let row = sqlx::query(
        "SELECT rolsuper OR (rolcreatedb AND rolcreaterole) AS capable,
                rolsuper OR rolreplication OR EXISTS (
                    SELECT 1 FROM pg_roles r WHERE r.rolname = 'rds_replication'
                    AND pg_has_role(current_user, r.oid, 'member')) AS decodes,
                current_setting('wal_level') AS wal_level
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await?;
    let refused = |why: String| Err(Error::WorkerUnreachable(why));
    if !row.try_get::<bool, _>("capable")? {
        return refused(format!(
            "role {:?} may not create databases and roles (needs CREATEDB and CREATEROLE)",
            new.admin_user
        ));
    }
    // Realtime's Postgres changes decode each project's WAL with wal2json.
    let wal_level: String = row.try_get("wal_level")?;
    if wal_level != "logical" {
        return refused(format!(
            "wal_level is {wal_level:?}: realtime needs logical decoding; set wal_level = logical \
             (and max_replication_slots to at least the number of projects with subscribers) \
             in postgresql.conf and restart the cluster"
        ));
    }
    if !row.try_get::<bool, _>("decodes")? {
        return refused(format!(
            "role {:?} may not decode the WAL for realtime (needs REPLICATION)",
            new.admin_user
        ));
    }
    // A temporary slot proves the decoder is installed; it goes with the
    // session.
    let probe = sqlx::query(
        "SELECT pg_create_logical_replication_slot('supa_probe_' || pg_backend_pid(), 'wal2json', true)",
    )
    .execute(&mut conn)
    .await;
    conn.close().await.ok();
    match probe {
        Ok(_) => Ok(()),
        Err(e) => refused(format!(
            "cannot decode the WAL with wal2json ({e}); install it (Debian: postgresql-15-wal2json) \
             and make sure max_replication_slots leaves a slot free"
        )),
    }
}
