//! Starting the control plane from settings: what `supa up` and
//! `supa-tenant-manager` share.
//!
//! With no database URL the management database lives in an embedded
//! cluster in the data dir, and that cluster is registered as worker
//! `local`. Tokens and the master key come from settings or are generated
//! once into the data dir with mode 0600, so a restart keeps them.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use axum::Router;
use supa_core::Secret;

use crate::api::{self, ApiTokens};
use crate::embedded::{Durability, EmbeddedPostgres, SUPERUSER};
use crate::files::{random_bytes, read_private, write_private};
use crate::{Error, MasterKey, NewWorker, Placement, Tenant, WorkerStatus};

/// The worker id `supa up` gives its own cluster.
pub const LOCAL_WORKER: &str = "local";

/// Everything the control plane is started with.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Data dir: embedded cluster, master key and token files.
    pub data_dir: PathBuf,
    /// Management database URL; `None` runs an embedded cluster.
    pub database_url: Option<Secret<String>>,
    /// Master key (base64); generated into the data dir when `None`.
    pub master_key: Option<Secret<String>>,
    /// Management API token; generated into `DIR/admin_token` when `None`.
    pub admin_token: Option<Secret<String>>,
    /// Internal directory API token; generated into `DIR/service_token`.
    pub service_token: Option<Secret<String>>,
    /// Redis URL for publishing invalidations.
    pub redis_url: Option<Secret<String>>,
    /// How projects are spread over workers.
    pub placement: Placement,
    /// Where object bytes live; `None` is the filesystem under
    /// `DIR/storage`.
    pub storage: Option<supa_storage::BackendConfig>,
    /// Where backups are kept; `None` is the filesystem under
    /// `DIR/backups`.
    pub backups: Option<supa_storage::BackendConfig>,
    /// The `deno` that bundles (and, in process, runs) edge functions;
    /// found by [`supa_functions::find_deno`] when `None`.
    pub deno: Option<PathBuf>,
    /// Where functions' bundles, sockets and npm cache live; `DIR/functions`
    /// when `None`.
    pub functions_dir: Option<PathBuf>,
    /// The config profile: `production` refuses unsafe settings at start,
    /// `test` runs the embedded cluster without `fsync`.
    pub profile: supa_core::Profile,
}

impl Settings {
    /// What a profile judges in these settings.
    fn posture(&self) -> supa_core::profile::Posture<'_> {
        fn given(s: &Option<Secret<String>>) -> Option<&str> {
            s.as_ref().map(|s| s.expose().as_str())
        }
        supa_core::profile::Posture {
            embedded_database: self.database_url.is_none(),
            generated_master_key: self.master_key.is_none(),
            redis_url: given(&self.redis_url),
            tokens: vec![
                (supa_core::env::ADMIN_TOKEN, given(&self.admin_token)),
                (supa_core::env::SERVICE_TOKEN, given(&self.service_token)),
            ],
        }
    }
}

/// `SHOW fsync` of the server at `url`, on a connection of its own to its
/// `postgres` database (the management database may not exist yet): it
/// runs before the management database is created or migrated, so a
/// refused server is left untouched.
async fn fsync_of(url: &str) -> Result<String, Error> {
    use sqlx::Connection as _;
    let options: sqlx::postgres::PgConnectOptions = url
        .parse()
        .map_err(|e| Error::Config(format!("bad management database URL: {e}")))?;
    let mut conn = sqlx::PgConnection::connect_with(&options.database("postgres")).await?;
    let fsync = sqlx::query_scalar("SHOW fsync")
        .fetch_one(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(fsync)
}

/// The refusals of active workers that run with `fsync=off` (a worker that
/// cannot be reached now is left to its health checks).
async fn workers_without_fsync(
    tenant: &Tenant,
    profile: &supa_core::Profile,
) -> Result<Vec<String>, Error> {
    let mut refused = Vec::new();
    for worker in tenant.list_workers().await? {
        if worker.status != WorkerStatus::Active {
            continue;
        }
        let fsync = async {
            let pool = tenant.worker_pool(&worker.id).await?;
            Ok::<String, Error>(sqlx::query_scalar("SHOW fsync").fetch_one(&pool).await?)
        };
        match fsync.await {
            Ok(fsync) => {
                refused.extend(profile.refuse_fsync(&format!("worker {}", worker.id), &fsync))
            }
            Err(e) => tracing::warn!(worker = %worker.id, "cannot read fsync: {e}"),
        }
    }
    Ok(refused)
}

/// A started control plane.
#[derive(Debug)]
pub struct ControlPlane {
    /// The tenant store.
    pub tenant: Tenant,
    /// The API tokens in force.
    pub tokens: ApiTokens,
    /// Where the admin token was written, when it was generated.
    pub admin_token_file: Option<PathBuf>,
    embedded: Option<EmbeddedPostgres>,
    meta: supa_meta::Meta,
    objects: supa_storage::Backend,
    functions: Option<supa_functions::FunctionsDir>,
}

impl ControlPlane {
    /// Starts the embedded cluster if needed, connects and migrates the
    /// management database, registers the embedded worker, loads or
    /// generates the tokens and starts publishing invalidations to Redis.
    pub async fn start(settings: Settings) -> Result<Self, Error> {
        let refused = settings.profile.refusals(&settings.posture());
        if !refused.is_empty() {
            return Err(Error::Refused(refused));
        }
        fs::create_dir_all(&settings.data_dir)
            .and_then(|()| {
                fs::set_permissions(&settings.data_dir, fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| Error::io("create the data dir", e))?;
        let key = MasterKey::load_or_generate(
            settings.master_key.as_ref().map(|k| k.expose().as_str()),
            &settings.data_dir,
        )?;

        let (embedded, url) = match &settings.database_url {
            Some(url) => (None, url.clone()),
            None => {
                let dir = settings.data_dir.clone();
                // A test platform's cluster is thrown away after the run.
                let durability = if settings.profile.is_test() {
                    Durability::Throwaway
                } else {
                    Durability::Full
                };
                let pg =
                    tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&dir, durability))
                        .await
                        .map_err(|e| Error::Embedded(format!("startup task failed: {e}")))??;
                let url = pg.url(crate::ADMIN_DATABASE);
                (Some(pg), url)
            }
        };
        let storage =
            settings
                .storage
                .clone()
                .unwrap_or_else(|| supa_storage::BackendConfig::File {
                    root: settings.data_dir.join("storage"),
                    etag: supa_storage::FileEtag::Md5,
                });
        let objects = supa_storage::Backend::new(&storage).map_err(Error::Storage)?;
        if settings.profile.is_production() {
            let fsync = fsync_of(url.expose()).await?;
            if let Some(line) = settings
                .profile
                .refuse_fsync("the management database", &fsync)
            {
                return Err(Error::Refused(vec![line]));
            }
        }
        let backups =
            settings
                .backups
                .clone()
                .unwrap_or_else(|| supa_storage::BackendConfig::File {
                    root: settings.data_dir.join("backups"),
                    etag: supa_storage::FileEtag::Mtime,
                });
        let mut tenant = Tenant::connect(url.expose(), key)
            .await?
            .with_placement(settings.placement)
            .with_object_store(objects.clone())
            .with_backup_store(supa_storage::Backend::new(&backups).map_err(Error::Storage)?);
        let functions = supa_functions::find_deno(settings.deno.as_deref()).map(|deno| {
            supa_functions::FunctionsDir {
                deno,
                dir: settings
                    .functions_dir
                    .clone()
                    .unwrap_or_else(|| settings.data_dir.join("functions")),
            }
        });
        match &functions {
            Some(f) => tenant = tenant.with_function_builder(f.builder().map_err(Error::Config)?),
            None => tracing::warn!(
                "no deno found (set {}): edge function deploys are refused",
                supa_core::env::DENO
            ),
        }
        if let Some(pg) = &embedded {
            tenant
                .upsert_worker(NewWorker {
                    id: LOCAL_WORKER.to_owned(),
                    host: "127.0.0.1".to_owned(),
                    port: pg.port(),
                    admin_user: SUPERUSER.to_owned(),
                    admin_password: pg.password().clone(),
                    max_databases: 1000,
                    weight: 100,
                    status: WorkerStatus::Active,
                })
                .await?;
        }
        if let Some(redis) = &settings.redis_url {
            tenant.publish_to_redis(redis.expose())?;
            tenant.set_usage_source(crate::UsageSource::redis(redis.expose())?);
        }
        if settings.profile.is_production() {
            let refused = workers_without_fsync(&tenant, &settings.profile).await?;
            if !refused.is_empty() {
                return Err(Error::Refused(refused));
            }
        }

        let admin_file = settings.data_dir.join("admin_token");
        let (admin, admin_token_file) = match settings.admin_token {
            Some(t) => (t, None),
            None => (
                load_or_generate_token(&admin_file, "sbp_")?,
                Some(admin_file),
            ),
        };
        let service = match settings.service_token {
            Some(t) => t,
            None => load_or_generate_token(&settings.data_dir.join("service_token"), "supa_svc_")?,
        };
        Ok(Self {
            meta: api::meta_engine(&tenant),
            tenant,
            tokens: ApiTokens { admin, service },
            admin_token_file,
            embedded,
            objects,
            functions,
        })
    }

    /// The Management API and internal directory API.
    pub fn router(&self) -> Router {
        api::router_with_meta(self.tenant.clone(), self.tokens.clone(), self.meta.clone())
    }

    /// The metadata engine the API serves, to share with an in-process
    /// gateway's `/pg`.
    pub fn meta(&self) -> &supa_meta::Meta {
        &self.meta
    }

    /// Where object bytes live, to share with an in-process storage server.
    pub fn object_store(&self) -> &supa_storage::Backend {
        &self.objects
    }

    /// Takes the scheduled backups that are due and deletes expired ones,
    /// once a minute forever in the background (one control plane at a
    /// time does each round).
    pub fn spawn_backup_schedule(&self) {
        let tenant = self.tenant.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                tenant.run_due_backups().await;
            }
        });
    }

    /// Removes, forever in the background, object bytes that a crash left
    /// without a row (one sweeper per platform: the tenant manager, or
    /// `supa up`), for every project.
    pub fn spawn_storage_sweep(&self) {
        let sweeper = supa_storage::Storage::new(
            self.objects.clone(),
            2,
            std::time::Duration::from_secs(300),
        );
        let tenant = self.tenant.clone();
        tokio::spawn(sweeper.sweep_forever(
            supa_storage::SWEEP_INTERVAL,
            supa_storage::SWEEP_GRACE,
            move || {
                let tenant = tenant.clone();
                async move {
                    let mut configs = Vec::new();
                    // A paused project's database takes no connection.
                    let serving = tenant.list_projects().await.unwrap_or_default();
                    for project in serving.iter().filter(|p| p.status.is_serving()) {
                        if let Ok(config) = tenant.project_config(&project.project_ref).await {
                            configs.push(config);
                        }
                    }
                    configs
                }
            },
        ));
    }

    /// Where edge functions run from, when Deno was found.
    pub fn functions(&self) -> Option<&supa_functions::FunctionsDir> {
        self.functions.as_ref()
    }

    /// The embedded cluster, when there is one.
    pub fn embedded(&self) -> Option<&EmbeddedPostgres> {
        self.embedded.as_ref()
    }

    /// Closes the pools and stops the embedded cluster.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.tenant.close().await;
        match self.embedded {
            Some(pg) => tokio::task::spawn_blocking(move || pg.stop())
                .await
                .map_err(|e| Error::Embedded(format!("shutdown task failed: {e}")))?,
            None => Ok(()),
        }
    }
}

/// Reads a token from `path`, or writes a new one there with mode 0600.
fn load_or_generate_token(path: &Path, prefix: &str) -> Result<Secret<String>, Error> {
    if let Some(token) = read_private(path)? {
        return Ok(Secret::new(token));
    }
    let token = format!("{prefix}{}", hex::encode(random_bytes::<20>()));
    write_private(path, &token)?;
    Ok(Secret::new(token))
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// requests in flight finish. Each request knows its peer
/// (`ConnectInfo<SocketAddr>`), for rate limits by client address.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(supa_core::serve::nodelay(listener), service)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::io("serve HTTP", e))
}

/// Resolves on Ctrl-C or SIGTERM (what ECS and Kubernetes send).
pub use supa_core::signal::stopped as shutdown_signal;

/// The control-plane settings every binary shares, as command-line flags
/// with their `SUPA_*` variables (`supa up`, `supa-tenant-manager`).
#[cfg(feature = "clap")]
#[derive(Debug, Clone, clap::Args)]
pub struct SettingsArgs {
    /// Data dir: embedded cluster, master key and token files.
    #[arg(long, env = supa_core::env::DATA_DIR, default_value = ".supa")]
    pub data_dir: PathBuf,
    /// Master key (base64, 32 bytes); generated into the data dir when
    /// unset. Give every replica the same one.
    #[arg(long, env = supa_core::env::MASTER_KEY, hide_env_values = true)]
    pub master_key: Option<String>,
    /// Management API token; generated into DATA_DIR/admin_token when unset.
    #[arg(long, env = supa_core::env::ADMIN_TOKEN, hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Internal directory API token; generated into DATA_DIR/service_token.
    #[arg(long, env = supa_core::env::SERVICE_TOKEN, hide_env_values = true)]
    pub service_token: Option<String>,
    /// Redis URL: invalidations are published on `supa:invalidate`.
    #[arg(long, env = supa_core::env::REDIS_URL, hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Redis password, when not in the URL.
    #[arg(long, env = supa_core::env::REDIS_PASSWORD, hide_env_values = true)]
    pub redis_password: Option<String>,
    /// How new projects are spread over workers.
    #[arg(long, env = supa_core::env::PLACEMENT, default_value = "least-databases")]
    pub placement: Placement,
    /// Log filter (`tracing` syntax, e.g. `info,supa_tenant=debug`).
    #[arg(long, env = supa_core::env::LOG, default_value = "info")]
    pub log: String,
    /// Where object bytes live.
    #[command(flatten)]
    pub storage: supa_storage::StorageArgs,
    /// Where project backups are kept: a directory (default
    /// DATA_DIR/backups) or `s3://BUCKET`, reached with the storage
    /// backend's S3 endpoint, region and path style.
    #[arg(long, env = supa_core::env::BACKUP_LOCATION)]
    pub backup_location: Option<String>,
    /// The deno binary that bundles and runs edge functions (default: the
    /// one the bootstrap installs, else deno on PATH).
    #[arg(long, env = supa_core::env::DENO)]
    pub deno: Option<PathBuf>,
    /// Where functions' bundles, worker sockets and npm cache live
    /// (default DATA_DIR/functions).
    #[arg(long, env = supa_core::env::FUNCTIONS_DIR)]
    pub functions_dir: Option<PathBuf>,
}

#[cfg(feature = "clap")]
impl SettingsArgs {
    /// The Redis URL with the separately given password put in.
    pub fn redis_url(&self) -> Result<Option<String>, Error> {
        supa_core::env::redis_url(self.redis_url.as_deref(), self.redis_password.as_deref())
            .map_err(Error::Config)
    }

    /// Where `--backup-location` says backups go.
    fn backup_store(&self) -> Result<supa_storage::BackendConfig, Error> {
        Ok(match self.backup_location.as_deref() {
            None => supa_storage::BackendConfig::File {
                root: self.data_dir.join("backups"),
                etag: supa_storage::FileEtag::Mtime,
            },
            Some(url) if url.starts_with("s3://") => {
                let bucket = url.trim_start_matches("s3://").trim_end_matches('/');
                if bucket.is_empty() || bucket.contains('/') {
                    return Err(Error::Config(format!(
                        "{}: s3://BUCKET names a bucket and nothing more, not {url:?}",
                        supa_core::env::BACKUP_LOCATION
                    )));
                }
                supa_storage::BackendConfig::S3(supa_storage::S3Config {
                    bucket: bucket.to_owned(),
                    endpoint: self.storage.storage_s3_endpoint.clone(),
                    region: self.storage.storage_s3_region.clone(),
                    force_path_style: self.storage.storage_s3_force_path_style,
                    access_key_id: None,
                    secret_access_key: None,
                })
            }
            Some(dir) => supa_storage::BackendConfig::File {
                root: dir.into(),
                etag: supa_storage::FileEtag::Mtime,
            },
        })
    }

    /// The settings, with the management database at `database_url`
    /// (`None`: an embedded cluster in the data dir).
    pub fn into_settings(
        self,
        database_url: Option<String>,
        profile: supa_core::Profile,
    ) -> Result<Settings, Error> {
        let redis_url = self.redis_url()?;
        Ok(Settings {
            profile,
            storage: Some(
                self.storage
                    .backend(&self.data_dir)
                    .map_err(Error::Config)?,
            ),
            backups: Some(self.backup_store()?),
            data_dir: self.data_dir,
            database_url: database_url.map(Secret::new),
            master_key: self.master_key.map(Secret::new),
            admin_token: self.admin_token.map(Secret::new),
            service_token: self.service_token.map(Secret::new),
            redis_url: redis_url.map(Secret::new),
            placement: self.placement,
            deno: self.deno,
            functions_dir: self.functions_dir,
        })
    }
}
