//! Backups of a project: a consistent `pg_dump` of its database and a copy
//! of its storage objects, kept in the platform's backup store (a
//! directory, or an S3 bucket); restores into the same project or another
//! one; a daily schedule per project with its retention.
//!
//! A restore never edits the live database: it builds a fresh one from the
//! project template (the bootstrap every project starts from) beside it,
//! restores into that what the backup holds beyond the template (user
//! schemas and their data, the rows of the service schemas, policies and
//! triggers users put on service tables, publication members), and only
//! then swaps it in for the project's database. A restore that fails before
//! the swap leaves the project as it was.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row as _};
use supa_core::{ProjectDatabase, ProjectRef};
use supa_storage::Backend;

use crate::bootstrap;
use crate::projects::{
    self, close_database_named, database_name, drop_database_named, execute_formatted,
    execute_formatted_all, login_names,
};
use crate::{Error, Invalidation, Tenant};

/// One backup as the Management API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// Backup id (UUID).
    pub id: String,
    /// The project it was taken of.
    pub project_ref: String,
    /// `manual` or `scheduled`.
    pub kind: String,
    /// `COMPLETED` or `FAILED`.
    pub status: String,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Bytes of the database dump.
    pub database_bytes: i64,
    /// Storage objects copied.
    pub objects: i64,
    /// Bytes of those objects.
    pub object_bytes: i64,
    /// When it was taken, ISO 8601.
    pub inserted_at: String,
    /// Always false: backups are logical (`pg_dump`), as Supabase reports
    /// its daily ones.
    pub is_physical_backup: bool,
}

/// A project's daily backup schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSchedule {
    /// Whether daily backups are taken.
    pub enabled: bool,
    /// The hour (UTC, 0-23) after which each day's backup is taken.
    #[serde(default = "default_hour")]
    pub hour_utc: u8,
    /// Scheduled backups older than this many days are deleted.
    #[serde(default = "default_retention")]
    pub retention_days: u16,
}

fn default_hour() -> u8 {
    3
}

fn default_retention() -> u16 {
    7
}

impl Default for BackupSchedule {
    fn default() -> Self {
        Self {
            enabled: false,
            hour_utc: default_hour(),
            retention_days: default_retention(),
        }
    }
}

const BACKUP_COLUMNS: &str = "id::text AS id, project_ref, kind, status, error, database_bytes, objects, object_bytes, to_char(inserted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS inserted_at";

/// Serializes scheduled runs across control-plane replicas.
const SCHEDULE_LOCK: i64 = 0x5355_5041_4241_4b50;

/// The newest installed `name` (`pg_dump`, `pg_restore`): Debian's
/// `/usr/lib/postgresql/<version>/bin`, else whatever PATH finds. It must
/// be at least the workers' major version.
fn pg_tool(name: &str) -> PathBuf {
    std::fs::read_dir(crate::embedded::PG_LIB)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let tool = e.path().join("bin").join(name);
            tool.exists().then_some((version, tool))
        })
        .max()
        .map_or_else(|| PathBuf::from(name), |(_, tool)| tool)
}

/// Runs a PostgreSQL client tool against `login`; its stdout.
async fn run_tool(name: &str, login: &ProjectDatabase, args: &[&str]) -> Result<Vec<u8>, Error> {
    let mut command = tokio::process::Command::new(pg_tool(name));
    if name == "pg_restore" {
        // Triggers (a user's, or the template's own) do not fire while
        // rows are put back; foreign keys are checked when created.
        command.env("PGOPTIONS", "-c session_replication_role=replica");
    }
    command
        .args(["--host", &login.host, "--port", &login.port.to_string()])
        .args(["--username", &login.user, "--no-password"])
        .args(args)
        .env("PGPASSWORD", login.password.expose())
        .env("PGCONNECT_TIMEOUT", "10");
    output_of(command, name).await
}

/// Runs `command` (a PostgreSQL tool, `what` in messages); its stdout, or
/// its stderr as the error.
async fn output_of(mut command: tokio::process::Command, what: &str) -> Result<Vec<u8>, Error> {
    let output = command
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::Io {
            context: format!("run {what}"),
            source: e,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::Backup(format!("{what} failed: {}", stderr.trim())));
    }
    Ok(output.stdout)
}

/// `pg_restore -l` of a dump: its table of contents.
async fn table_of_contents(dump: &Path) -> Result<String, Error> {
    let mut command = tokio::process::Command::new(pg_tool("pg_restore"));
    command.arg("--list").arg(dump);
    let listed = output_of(command, "pg_restore --list").await?;
    Ok(String::from_utf8_lossy(&listed).into_owned())
}

/// An entry of a table of contents without its dump ids and owner
/// (`TABLE public notes`), which is how it is compared with the
/// template's: the same object made by another worker's admin matches.
fn entry_key(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("; ")?;
    let mut rest = rest.splitn(3, ' ');
    let (_, _, described) = (rest.next()?, rest.next()?, rest.next()?);
    let (without_owner, _) = described.rsplit_once(' ')?;
    Some(without_owner)
}

/// The entries of `dump` to restore over a fresh template copy: what the
/// template does not have, and the rows of every table except those the
/// template itself fills (`bookkeeping`, as `schema.table`: migration
/// versions) and the realtime server's (its subscriptions and messages are
/// the state of sockets long gone).
fn entries_to_restore(dump: &str, template: &str, bookkeeping: &HashSet<String>) -> String {
    let known: HashSet<&str> = template
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(entry_key)
        .collect();
    let mut kept = String::new();
    for line in dump.lines().filter(|l| !l.starts_with(';')) {
        let Some(key) = entry_key(line) else { continue };
        if known.contains(key) {
            continue;
        }
        if let Some(table) = key.strip_prefix("TABLE DATA ") {
            // `schema table`
            if table.starts_with("realtime ") || bookkeeping.contains(&table.replacen(' ', ".", 1))
            {
                continue;
            }
        }
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(what: &str) -> Self {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        Self(std::env::temp_dir().join(format!("supa-{what}-{}", hex::encode(nonce))))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where a backup's parts live in the backup store.
fn backup_key(project: &str, id: &str, part: &str) -> supa_storage::ObjectPath {
    supa_storage::ObjectPath::from(format!("{project}/{id}/{part}"))
}

/// Copies every object under `from` to the same relative key under `to`
/// (in `to_store`); how many, and their bytes.
async fn copy_objects(
    from_store: &Backend,
    from: &supa_storage::ObjectPath,
    to_store: &Backend,
    to: &supa_storage::ObjectPath,
) -> Result<(i64, i64), Error> {
    let storage = |e: supa_storage::Error| Error::Storage(e.to_string());
    let mut count = 0i64;
    let mut bytes = 0i64;
    for listed in from_store.list(from).await.map_err(storage)? {
        let Some(relative) = listed.key.prefix_match(from) else {
            continue;
        };
        let target: supa_storage::ObjectPath = to.parts().chain(relative).collect();
        let reading = from_store.read(&listed.key, None).await.map_err(storage)?;
        to_store
            .write(&target, reading.body, u64::MAX)
            .await
            .map_err(|e| storage(e.into()))?;
        count += 1;
        bytes += i64::try_from(listed.size).unwrap_or(i64::MAX);
    }
    Ok((count, bytes))
}

impl Tenant {
    fn backup_store(&self) -> Result<&Backend, Error> {
        self.backups.as_ref().ok_or_else(|| {
            Error::Unavailable(
                "backups are not configured on this control plane (SUPA_BACKUP_LOCATION)".into(),
            )
        })
    }

    /// Takes a backup of `project_ref` now: its database (`pg_dump`, one
    /// snapshot) and then its storage objects, into the backup store. A
    /// failure is recorded too (status `FAILED` with the reason) and
    /// returned.
    pub async fn backup_project(
        &self,
        project_ref: &ProjectRef,
        kind: &str,
    ) -> Result<Backup, Error> {
        let store = self.backup_store()?.clone();
        let login = self.admin_login(project_ref).await?;
        let id: String = sqlx::query_scalar(
            "INSERT INTO backups (project_ref, kind, status) VALUES ($1, $2, 'RUNNING') RETURNING id::text",
        )
        .bind(project_ref.as_str())
        .bind(kind)
        .fetch_one(&self.db)
        .await?;
        let taken: Result<(i64, i64, i64), Error> = async {
            let dump = TempFile::new("backup");
            let path = dump.0.to_string_lossy().into_owned();
            run_tool(
                "pg_dump",
                &login,
                &["--format=custom", "--dbname", &login.name, "--file", &path],
            )
            .await?;
            let database_bytes = tokio::fs::metadata(&dump.0)
                .await
                .map(|m| i64::try_from(m.len()).unwrap_or(i64::MAX))
                .map_err(|e| Error::Io {
                    context: "read the dump".into(),
                    source: e,
                })?;
            put_file(
                &store,
                &backup_key(project_ref.as_str(), &id, "database.dump"),
                &dump.0,
            )
            .await?;
            let (objects, object_bytes) = match &self.objects {
                Some(objects) => {
                    copy_objects(
                        objects,
                        &supa_storage::ObjectPath::from(project_ref.as_str()),
                        &store,
                        &backup_key(project_ref.as_str(), &id, "objects"),
                    )
                    .await?
                }
                None => (0, 0),
            };
            Ok((database_bytes, objects, object_bytes))
        }
        .await;
        let (status, error, sizes) = match &taken {
            Ok(sizes) => ("COMPLETED", None, *sizes),
            Err(e) => ("FAILED", Some(e.to_string()), (0, 0, 0)),
        };
        sqlx::query(
            "UPDATE backups SET status = $2, error = $3, database_bytes = $4, objects = $5, object_bytes = $6
             WHERE id = $1::uuid",
        )
        .bind(&id)
        .bind(status)
        .bind(&error)
        .bind(sizes.0)
        .bind(sizes.1)
        .bind(sizes.2)
        .execute(&self.db)
        .await?;
        taken?;
        self.get_backup(&id).await
    }

    /// One backup, by id.
    pub async fn get_backup(&self, id: &str) -> Result<Backup, Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BACKUP_COLUMNS} FROM backups WHERE id::text = $1"
        )))
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("backup {id}")))?;
        backup_from_row(&row)
    }

    /// A project's backups, newest first.
    pub async fn list_backups(&self, project_ref: &ProjectRef) -> Result<Vec<Backup>, Error> {
        self.get_project(project_ref).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BACKUP_COLUMNS} FROM backups WHERE project_ref = $1 ORDER BY inserted_at DESC"
        )))
        .bind(project_ref.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(backup_from_row).collect()
    }

    /// Deletes a backup and its files.
    pub async fn delete_backup(&self, id: &str) -> Result<(), Error> {
        let backup = self.get_backup(id).await?;
        let store = self.backup_store()?;
        store
            .remove_prefix(&supa_storage::ObjectPath::from(format!(
                "{}/{}",
                backup.project_ref, backup.id
            )))
            .await
            .map_err(|e| Error::Storage(e.to_string()))?;
        sqlx::query("DELETE FROM backups WHERE id::text = $1")
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Restores backup `id` (of this project or another) into
    /// `project_ref`: its database becomes the backup's, and its storage
    /// objects the backup's. The project answers 503 (`RESTORING`) while
    /// the database is swapped.
    pub async fn restore_backup(
        &self,
        project_ref: &ProjectRef,
        id: &str,
    ) -> Result<crate::Project, Error> {
        let backup = self.get_backup(id).await?;
        if backup.status != "COMPLETED" {
            return Err(Error::Conflict(format!(
                "backup {id} is {}, not COMPLETED",
                backup.status
            )));
        }
        let store = self.backup_store()?.clone();
        let project = self.get_project(project_ref).await?;
        projects::refuse_if_paused(project_ref, project.status.as_str())?;
        let worker = project.worker_id.clone();
        let pool = self.worker_pool(&worker).await?;
        self.ensure_cluster_setup(&pool, &worker).await?;
        let live = database_name(project_ref);
        let scratch = format!("{live}_restore");
        // Built beside the live database; nothing of it is touched yet.
        let built = self
            .build_restored(&pool, &store, &backup, project_ref, &scratch)
            .await;
        if let Err(e) = built {
            drop_database_named(&pool, &scratch).await.ok();
            return Err(e);
        }
        sqlx::query("UPDATE projects SET status = 'RESTORING' WHERE ref = $1")
            .bind(project_ref.as_str())
            .execute(&self.db)
            .await?;
        self.invalidate(Invalidation::Project(*project_ref));
        let swapped: Result<(), Error> = async {
            let old = format!("{live}_old");
            drop_database_named(&pool, &old).await?;
            close_database_named(&pool, &live).await?;
            execute_formatted(&pool, "ALTER DATABASE %I RENAME TO %I", &[&live, &old]).await?;
            execute_formatted(&pool, "ALTER DATABASE %I RENAME TO %I", &[&scratch, &live]).await?;
            drop_database_named(&pool, &old).await?;
            if let Some(objects) = &self.objects {
                let prefix = supa_storage::ObjectPath::from(project_ref.as_str());
                objects
                    .remove_prefix(&prefix)
                    .await
                    .map_err(|e| Error::Storage(e.to_string()))?;
                copy_objects(
                    &store,
                    &backup_key(&backup.project_ref, &backup.id, "objects"),
                    objects,
                    &prefix,
                )
                .await?;
            }
            Ok(())
        }
        .await;
        self.settle(project_ref, swapped, "ACTIVE_HEALTHY", "RESTORE_FAILED")
            .await
    }

    /// Builds `scratch` on the project's worker: a copy of the template
    /// with the backup restored over it, open to the project's logins.
    async fn build_restored(
        &self,
        pool: &PgPool,
        store: &Backend,
        backup: &Backup,
        project_ref: &ProjectRef,
        scratch: &str,
    ) -> Result<(), Error> {
        drop_database_named(pool, scratch).await?;
        execute_formatted_all(pool, &[bootstrap::create_database(scratch).call()]).await?;
        let mut login = self.admin_login(project_ref).await?;
        login.name = scratch.to_owned();
        let dump = TempFile::new("restore");
        get_file(
            store,
            &backup_key(&backup.project_ref, &backup.id, "database.dump"),
            &dump.0,
        )
        .await?;
        let template_dump = TempFile::new("template");
        let template_path = template_dump.0.to_string_lossy().into_owned();
        run_tool(
            "pg_dump",
            &login,
            &[
                "--format=custom",
                "--schema-only",
                "--dbname",
                scratch,
                "--file",
                &template_path,
            ],
        )
        .await?;
        let bookkeeping = filled_tables(pool, &login).await?;
        let wanted = entries_to_restore(
            &table_of_contents(&dump.0).await?,
            &table_of_contents(&template_dump.0).await?,
            &bookkeeping,
        );
        let list = TempFile::new("restore-list");
        tokio::fs::write(&list.0, wanted)
            .await
            .map_err(|e| Error::Io {
                context: "write the restore list".into(),
                source: e,
            })?;
        let list_path = list.0.to_string_lossy().into_owned();
        let dump_path = dump.0.to_string_lossy().into_owned();
        run_tool(
            "pg_restore",
            &login,
            &[
                "--no-owner",
                "--single-transaction",
                "--exit-on-error",
                "--use-list",
                &list_path,
                "--dbname",
                scratch,
                &dump_path,
            ],
        )
        .await?;
        // What creating the project did to its database.
        let logins = login_names(project_ref);
        let settings = bootstrap::database_settings(scratch);
        let grants = logins
            .iter()
            .map(|name| bootstrap::connect_grant(scratch, name));
        let statements: Vec<_> = settings.into_iter().chain(grants).collect();
        let calls: Vec<_> = statements.iter().map(bootstrap::Formatted::call).collect();
        execute_formatted_all(pool, &calls).await?;
        Ok(())
    }

    /// A project's daily schedule.
    pub async fn backup_schedule(&self, project_ref: &ProjectRef) -> Result<BackupSchedule, Error> {
        let stored: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT backup_schedule FROM projects WHERE ref = $1")
                .bind(project_ref.as_str())
                .fetch_optional(&self.db)
                .await?
                .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        Ok(stored
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default())
    }

    /// Sets a project's daily schedule; a backup due today under it is
    /// taken at once (in the background).
    pub async fn set_backup_schedule(
        &self,
        project_ref: &ProjectRef,
        schedule: BackupSchedule,
    ) -> Result<BackupSchedule, Error> {
        if schedule.hour_utc > 23 {
            return Err(Error::invalid("hour_utc", "must be 0-23"));
        }
        if schedule.retention_days == 0 {
            return Err(Error::invalid("retention_days", "must be at least 1"));
        }
        if schedule.enabled {
            self.backup_store()?;
        }
        let updated = sqlx::query("UPDATE projects SET backup_schedule = $2 WHERE ref = $1")
            .bind(project_ref.as_str())
            .bind(serde_json::to_value(schedule).unwrap_or_default())
            .execute(&self.db)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::NotFound(format!("project {project_ref}")));
        }
        let tenant = self.clone();
        tokio::spawn(async move { tenant.run_due_backups().await });
        Ok(schedule)
    }

    /// Takes every scheduled backup that is due (the day's hour has come
    /// and no scheduled backup was taken since) and deletes scheduled
    /// backups past their retention. One round at a time across control
    /// planes (an advisory lock).
    pub async fn run_due_backups(&self) {
        if let Err(e) = self.due_backups_round().await {
            tracing::warn!(error = %e, "scheduled backups");
        }
    }

    async fn due_backups_round(&self) -> Result<(), Error> {
        // Rounds wait for each other (here and in other control planes),
        // and each finds what is still due when its turn comes.
        let mut lock = self.db.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(SCHEDULE_LOCK)
            .execute(&mut *lock)
            .await?;
        let round: Result<(), Error> = async {
            let due: Vec<String> = sqlx::query_scalar(
                "SELECT p.ref FROM projects p
                 WHERE (p.backup_schedule->>'enabled')::boolean
                   AND p.status = 'ACTIVE_HEALTHY'
                   AND extract(hour FROM now() AT TIME ZONE 'UTC') >= (p.backup_schedule->>'hour_utc')::int
                   AND NOT EXISTS (
                     SELECT 1 FROM backups b WHERE b.project_ref = p.ref AND b.kind = 'scheduled'
                       AND b.status = 'COMPLETED'
                       AND b.inserted_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')",
            )
            .fetch_all(&self.db)
            .await?;
            for r in due {
                let Ok(r) = ProjectRef::parse(&r) else { continue };
                if let Err(e) = self.backup_project(&r, "scheduled").await {
                    tracing::warn!(project = %r, error = %e, "scheduled backup failed");
                }
            }
            let expired: Vec<String> = sqlx::query_scalar(
                "SELECT b.id::text FROM backups b JOIN projects p ON p.ref = b.project_ref
                 WHERE b.kind = 'scheduled'
                   AND b.inserted_at < now() - make_interval(days => coalesce((p.backup_schedule->>'retention_days')::int, 7))",
            )
            .fetch_all(&self.db)
            .await?;
            for id in expired {
                if let Err(e) = self.delete_backup(&id).await {
                    tracing::warn!(backup = %id, error = %e, "deleting an expired backup failed");
                }
            }
            Ok(())
        }
        .await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(SCHEDULE_LOCK)
            .execute(&mut *lock)
            .await
            .ok();
        round
    }
}

/// Tables of the freshly copied template that already hold rows (the
/// service schemas' migration versions): a backup's rows for them are not
/// restored over these.
async fn filled_tables(pool: &PgPool, login: &ProjectDatabase) -> Result<HashSet<String>, Error> {
    let options = pool
        .connect_options()
        .as_ref()
        .clone()
        .database(&login.name);
    let db = sqlx::PgPool::connect_with(options).await?;
    let found: Result<HashSet<String>, Error> = async {
        let tables: Vec<(String, String)> = sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_%'",
        )
        .fetch_all(&db)
        .await?;
        let mut filled = HashSet::new();
        for (schema, table) in tables {
            let query: String = sqlx::query_scalar(
                "SELECT format('SELECT EXISTS (SELECT 1 FROM %I.%I)', $1::text, $2::text)",
            )
            .bind(&schema)
            .bind(&table)
            .fetch_one(&db)
            .await?;
            let any: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
                .fetch_one(&db)
                .await?;
            if any {
                filled.insert(format!("{schema}.{table}"));
            }
        }
        Ok(filled)
    }
    .await;
    db.close().await;
    found
}

/// Writes the file at `path` to `key` of `store`, streamed.
async fn put_file(
    store: &Backend,
    key: &supa_storage::ObjectPath,
    path: &Path,
) -> Result<(), Error> {
    let file = tokio::fs::File::open(path).await.map_err(|e| Error::Io {
        context: format!("open {}", path.display()),
        source: e,
    })?;
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    store
        .write(key, chunks, u64::MAX)
        .await
        .map_err(|e| Error::Storage(supa_storage::Error::from(e).to_string()))?;
    Ok(())
}

/// Reads `key` of `store` into the file at `path`.
async fn get_file(
    store: &Backend,
    key: &supa_storage::ObjectPath,
    path: &Path,
) -> Result<(), Error> {
    use tokio::io::AsyncWriteExt as _;
    let reading = store
        .read(key, None)
        .await
        .map_err(|e| Error::Storage(format!("backup part {key}: {e}")))?;
    let mut file = tokio::fs::File::create(path).await.map_err(|e| Error::Io {
        context: format!("create {}", path.display()),
        source: e,
    })?;
    let mut body = reading.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::Io {
            context: format!("read backup part {key}"),
            source: e,
        })?;
        file.write_all(&chunk).await.map_err(|e| Error::Io {
            context: format!("write {}", path.display()),
            source: e,
        })?;
    }
    file.flush().await.map_err(|e| Error::Io {
        context: format!("write {}", path.display()),
        source: e,
    })?;
    Ok(())
}

fn backup_from_row(row: &sqlx::postgres::PgRow) -> Result<Backup, Error> {
    Ok(Backup {
        id: row.try_get("id")?,
        project_ref: row.try_get("project_ref")?,
        kind: row.try_get("kind")?,
        status: row.try_get("status")?,
        error: row.try_get("error")?,
        database_bytes: row.try_get("database_bytes")?,
        objects: row.try_get("objects")?,
        object_bytes: row.try_get("object_bytes")?,
        inserted_at: row.try_get("inserted_at")?,
        is_physical_backup: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE_LIST: &str = "\
;
; Archive created at 2026-12-04 10:00:00 UTC
4; 2615 16385 SCHEMA - auth supabase_auth_admin
210; 1259 16400 TABLE auth users supabase_auth_admin
211; 1259 16401 TABLE auth schema_migrations supabase_auth_admin
300; 6104 16500 PUBLICATION - supabase_realtime postgres
";

    const DUMP_LIST: &str = "\
;
4; 2615 16385 SCHEMA - auth supabase_auth_admin
210; 1259 16400 TABLE auth users supabase_auth_admin
211; 1259 16401 TABLE auth schema_migrations supabase_auth_admin
220; 1259 16420 TABLE public notes supa_admin
3400; 0 16400 TABLE DATA auth users supabase_auth_admin
3401; 0 16401 TABLE DATA auth schema_migrations supabase_auth_admin
3402; 0 16420 TABLE DATA public notes supa_admin
3403; 0 16430 TABLE DATA realtime subscription supabase_realtime_admin
3500; 2620 16600 TRIGGER auth users on_auth_user_created supabase_auth_admin
3600; 3256 16700 POLICY storage objects own folder supa_admin
300; 6104 16500 PUBLICATION - supabase_realtime supa_admin
301; 6106 16501 PUBLICATION TABLE public supabase_realtime notes supa_admin
";

    #[test]
    fn a_restore_takes_what_the_template_lacks_and_every_row_but_its_bookkeeping() {
        let bookkeeping = HashSet::from(["auth.schema_migrations".to_owned()]);
        let kept = entries_to_restore(DUMP_LIST, TEMPLATE_LIST, &bookkeeping);
        let kept: Vec<&str> = kept.lines().filter_map(entry_key).collect();
        assert_eq!(
            kept,
            [
                "TABLE public notes",
                "TABLE DATA auth users",
                "TABLE DATA public notes",
                "TRIGGER auth users on_auth_user_created",
                "POLICY storage objects own folder",
                "PUBLICATION TABLE public supabase_realtime notes",
            ]
        );
    }

    #[test]
    fn schedules_default_to_off_at_three_keeping_a_week() {
        let s: BackupSchedule = serde_json::from_str(r#"{"enabled": true}"#).unwrap();
        assert_eq!(
            s,
            BackupSchedule {
                enabled: true,
                hour_utc: 3,
                retention_days: 7
            }
        );
        assert!(
            serde_json::from_str::<BackupSchedule>(r#"{"enabled": true, "hourly": 1}"#).is_err()
        );
    }
}
