//! `supa`: the command line of the Supa platform.
//!
//! Parses arguments and hands each command to a library: `supa up` to the
//! control plane's start-up, the project commands to the Management API
//! client, `keys gen|check` and `jwt` to `supa-keys`.

// A command-line tool's output is its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod config;
mod functions;
mod local;
mod remote;
mod storage;
mod table;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use supa_core::{ProjectRef, env};

/// Supa: a self-hostable, multi-tenant backend that Supabase clients talk to unchanged.
#[derive(Parser)]
#[command(name = "supa", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole platform in this process: an embedded PostgreSQL
    /// cluster in the data dir, registered as worker `local`, and the
    /// Management API.
    Up(Box<up::UpArgs>),
    /// Create, list, show and delete projects.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// A project's API keys; also generate and check keys offline.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The database clusters projects live on (platform admin).
    #[command(subcommand)]
    Workers(WorkersCommand),
    /// A project's secrets (names and SHA-256 digests only are shown).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Run SQL in a project's database as the worker admin; prints the
    /// rows of the last statement.
    Sql {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// The SQL.
        sql: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Mint and verify the HS256 JWTs the gateway attaches to requests.
    #[command(subcommand)]
    Jwt(local::JwtCommand),
    /// Generate code from a project's database.
    #[command(subcommand)]
    Gen(GenCommand),
    /// A project's auth users and e-mails.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// A project's buckets and objects (`ss:///bucket/path`).
    #[command(subcommand)]
    Storage(StorageCommand),
    /// A project's edge functions (Supabase's layout:
    /// `supabase/functions/<slug>/index.ts`).
    #[command(subcommand)]
    Functions(FunctionsCommand),
    /// The settings `supa up` would run with.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Exit 0 when a service's health endpoint answers 2xx, else 1: the
    /// container image's HEALTHCHECK, which has no shell or curl to run.
    Health {
        /// The endpoint: the gateway's or the tenant manager's `/health`,
        /// supa-auth's `/health`, supa-storage's `/status`, ...
        #[arg(
            env = "SUPA_HEALTH_URL",
            default_value = "http://127.0.0.1:8000/health"
        )]
        url: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every setting of `supa up` with where it comes from (flag,
    /// environment, config file, default), secrets masked, and what the
    /// profile refuses; exits 1 when it refuses something.
    Check,
}

#[derive(Subcommand)]
enum FunctionsCommand {
    /// Create `DIR/<slug>/index.ts` from a template.
    New {
        /// The function's slug.
        slug: String,
        /// The functions folder.
        #[arg(long, default_value = "supabase/functions")]
        dir: PathBuf,
    },
    /// Deploy `DIR/<slug>` (every file under it) as a new version.
    Deploy {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// The function's slug.
        slug: String,
        /// The functions folder.
        #[arg(long, default_value = "supabase/functions")]
        dir: PathBuf,
        /// The entrypoint, relative to the function's folder.
        #[arg(long, default_value = "index.ts")]
        entrypoint: String,
        /// An import map, relative to the function's folder.
        #[arg(long)]
        import_map: Option<String>,
        /// Let callers in without a project JWT (webhooks).
        #[arg(long)]
        no_verify_jwt: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the project's functions.
    List {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete a function, its versions and its logs.
    Delete {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// The function's slug.
        slug: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print a function's logs, oldest first.
    Logs {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// The function's slug.
        slug: String,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum StorageCommand {
    /// List the buckets, or the folders and objects under a path.
    Ls {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// `ss:///bucket/prefix`; the buckets when absent.
        path: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Copy a local file to `ss:///bucket/path` (replacing what is there)
    /// or an object to a local file, with a progress bar.
    Cp {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// From.
        from: String,
        /// To.
        to: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove objects.
    Rm {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// `ss:///bucket/path`, one or more.
        #[arg(required = true)]
        paths: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum AuthCommand {
    /// List the project's users (newest last), without their secrets.
    Users {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the e-mails the project's auth server sent, newest first, with
    /// the link each carries (the mail catcher of a project without SMTP).
    Outbox {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// Only those to this address.
        #[arg(long)]
        email: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum GenCommand {
    /// Print a project's TypeScript types (as `supabase gen types
    /// typescript` does), for supabase-js's `createClient<Database>`.
    Types {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// Schemas to include (repeat, or separate with commas; default
        /// public).
        #[arg(long = "schema", value_delimiter = ',')]
        schemas: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Where the Management API is and how to authenticate to it.
#[derive(Args, Clone)]
struct ApiArgs {
    /// Base URL of the Management API; when not given, the one `supa up`
    /// recorded in DATA_DIR/urls.json, else http://127.0.0.1:8001.
    #[arg(long, env = env::API_URL)]
    api_url: Option<String>,
    /// Admin token; read from DATA_DIR/admin_token when not given.
    #[arg(long, env = env::ADMIN_TOKEN, hide_env_values = true)]
    token: Option<String>,
    /// Data dir of `supa up`, where the admin token is kept.
    #[arg(long, env = env::DATA_DIR, default_value = ".supa")]
    data_dir: PathBuf,
    /// Public gateway URL, to print a project's API URL; when not given,
    /// the one `supa up` recorded in DATA_DIR/urls.json, else
    /// http://127.0.0.1:8000.
    #[arg(long, env = env::GATEWAY_URL)]
    gateway_url: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// The file in the data dir where `supa up` records its URLs, so the CLI
/// reaches it whatever ports it was given.
pub(crate) const URLS_FILE: &str = "urls.json";

/// What `supa up` records in [`URLS_FILE`].
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Urls {
    /// The Management API.
    pub(crate) api_url: String,
    /// The gateway.
    pub(crate) gateway_url: String,
}

impl ApiArgs {
    /// The Management API's and the gateway's URLs: the flags, else what
    /// `supa up` recorded, else the defaults.
    fn urls(&self) -> Urls {
        let recorded: Option<Urls> = std::fs::read_to_string(self.data_dir.join(URLS_FILE))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok());
        let (api, gateway) = match recorded {
            Some(u) => (u.api_url, u.gateway_url),
            None => (
                "http://127.0.0.1:8001".into(),
                "http://127.0.0.1:8000".into(),
            ),
        };
        Urls {
            api_url: self.api_url.clone().unwrap_or(api),
            gateway_url: self.gateway_url.clone().unwrap_or(gateway),
        }
    }
}

#[derive(Subcommand)]
enum ProjectsCommand {
    /// Create a project; prints its ref and keys.
    Create {
        /// Display name.
        name: String,
        /// Choose the ref (20 lowercase letters) instead of a random one.
        #[arg(long = "ref", value_name = "REF")]
        project_ref: Option<String>,
        /// Put it on this worker.
        #[arg(long)]
        worker: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List projects.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one project.
    Get {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Pause a project: requests get 503 and its database takes no
    /// connections until it is resumed; its data and keys stay.
    Pause {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Resume a paused project.
    Resume {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Back a project up now: a pg_dump of its database and a copy of its
    /// storage objects, into the backup store (SUPA_BACKUP_LOCATION of the
    /// control plane).
    Backup {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List a project's backups, newest first.
    Backups {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Restore a backup (of this project or another) into a project: its
    /// database and objects become the backup's.
    Restore {
        /// The project restored into.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// The backup's id (`supa projects backups`).
        #[arg(long = "from", value_name = "BACKUP")]
        backup: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Take daily backups of a project, keeping them DAYS days.
    BackupSchedule {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// The hour (UTC) after which each day's backup is taken.
        #[arg(long, default_value_t = 3)]
        hour_utc: u8,
        /// Days a scheduled backup is kept.
        #[arg(long, default_value_t = 7)]
        retention_days: u16,
        /// Turn daily backups off.
        #[arg(long)]
        off: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print the statements a project database is built with, in order:
    /// the cluster's shared roles, the template every project is copied
    /// from, then (given a ref) the project's database and logins, with
    /// passwords masked. Needs no running platform.
    BootstrapSql {
        /// Project ref; without it, the cluster and template statements only.
        #[arg(value_name = "REF")]
        project_ref: Option<ProjectRef>,
        /// One JSON array of `{phase, part, sql}` instead of SQL.
        #[arg(long)]
        json: bool,
    },
    /// Delete a project: its database, role, keys and secrets.
    Delete {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Point one of a project's services at its own server over `http`
    /// (a PostgREST-compatible one for rest, supa-functions or Supabase's
    /// edge-runtime for functions, ...), or back at the gateway's engine
    /// (platform admin).
    Upstream {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// The service.
        #[arg(long, default_value = "rest", value_parser = ["rest", "auth", "storage", "functions"])]
        service: String,
        /// The server's base URL; omit (and --lambda) for the embedded engine.
        #[arg(long, conflicts_with = "lambda")]
        http: Option<url::Url>,
        /// A Lambda Function URL (AWS_IAM auth) the gateway signs with SigV4.
        #[arg(long, requires = "region")]
        lambda: Option<url::Url>,
        /// The Lambda's AWS region.
        #[arg(long, requires = "lambda")]
        region: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum WorkersCommand {
    /// List the database clusters projects are placed on.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Register a database cluster; succeeds without change when the same
    /// id is already registered at the same address, so it can run at every
    /// deploy.
    Register {
        /// Identifier: lowercase letters, digits, `_` and `-`.
        id: String,
        /// Host name or address.
        #[arg(long)]
        host: String,
        /// Port.
        #[arg(long, default_value_t = 5432)]
        port: u16,
        /// A role allowed to create databases and roles.
        #[arg(long)]
        admin_user: String,
        /// Its password.
        #[arg(long, env = "SUPA_WORKER_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: String,
        /// How many project databases it may hold.
        #[arg(long, default_value_t = 1000)]
        max_databases: i32,
        /// Relative share of new projects.
        #[arg(long, default_value_t = 1)]
        weight: i32,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List a project's keys (secret keys masked unless --reveal).
    List {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// Show secret keys in full.
        #[arg(long)]
        reveal: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Add a named secret key.
    Create {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// Key name.
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke a key by id.
    Revoke {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// Key id (from `supa keys list`).
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print a new key for a project (offline; not stored anywhere).
    Gen(local::GenArgs),
    /// Check a key's checksum against a project (offline): prints `valid`
    /// and exits 0, or prints the reason and exits 1.
    Check(local::CheckArgs),
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Set secrets: NAME=VALUE ...
    Set {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// NAME=VALUE pairs.
        #[arg(required = true, value_name = "NAME=VALUE")]
        pairs: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List secret names and value digests.
    List {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove secrets by name.
    Unset {
        /// Project ref.
        #[arg(value_name = "REF")]
        project_ref: ProjectRef,
        /// Names.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn main() -> ExitCode {
    let env::Parsed {
        args: cli,
        profile,
        config,
    } = env::parse_args::<Cli>();
    let result = match cli.command {
        Command::Config(ConfigCommand::Check) => config::check(&profile, config.as_deref()),
        Command::Up(args) => runtime().and_then(|rt| rt.block_on(up::run(*args, profile))),
        Command::Jwt(command) => local::jwt(command),
        Command::Keys(KeysCommand::Gen(args)) => local::gen_key(args),
        Command::Keys(KeysCommand::Check(args)) => local::check_key(args),
        Command::Projects(ProjectsCommand::BootstrapSql { project_ref, json }) => {
            local::bootstrap_sql(project_ref.as_ref(), json)
        }
        command => runtime().and_then(|rt| rt.block_on(run(command))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("{reason}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr through `filter` (`tracing` syntax).
fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("bad log filter {filter:?}: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}

/// `supa health`: one GET, no retries (the orchestrator's probe retries).
async fn health(url: &str, timeout: u64) -> anyhow::Result<()> {
    let response = supa_core::http::client(std::time::Duration::from_secs(timeout))
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{url}: {status}");
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn run(command: Command) -> anyhow::Result<()> {
    use remote::Remote;
    match command {
        Command::Up(_) | Command::Config(_) => unreachable!("handled in main"),
        Command::Health { url, timeout } => health(&url, timeout).await,
        Command::Projects(ProjectsCommand::Create {
            name,
            project_ref,
            worker,
            api,
        }) => {
            Remote::new(&api)?
                .create_project(name, project_ref, worker)
                .await
        }
        Command::Projects(ProjectsCommand::Upstream {
            project_ref,
            service,
            http,
            lambda,
            region,
            api,
        }) => {
            let upstream = match (http, lambda, region) {
                (Some(url), _, _) => supa_core::Upstream::Http { url },
                (None, Some(function_url), Some(region)) => supa_core::Upstream::Lambda {
                    function_url,
                    region,
                },
                _ => supa_core::Upstream::Embedded,
            };
            Remote::new(&api)?
                .set_upstream(&project_ref, &service, upstream)
                .await
        }
        Command::Workers(WorkersCommand::List { api }) => Remote::new(&api)?.list_workers().await,
        Command::Workers(WorkersCommand::Register {
            id,
            host,
            port,
            admin_user,
            admin_password,
            max_databases,
            weight,
            api,
        }) => {
            let new = supa_tenant::NewWorker {
                id,
                host,
                port,
                admin_user,
                admin_password: admin_password.into(),
                max_databases,
                weight,
                status: supa_tenant::WorkerStatus::Active,
            };
            Remote::new(&api)?.register_worker(new).await
        }
        Command::Projects(ProjectsCommand::List { api }) => {
            Remote::new(&api)?.list_projects().await
        }
        Command::Projects(ProjectsCommand::Get { project_ref, api }) => {
            Remote::new(&api)?.get_project(&project_ref).await
        }
        Command::Projects(ProjectsCommand::Pause { project_ref, api }) => {
            Remote::new(&api)?.pause_project(&project_ref, true).await
        }
        Command::Projects(ProjectsCommand::Resume { project_ref, api }) => {
            Remote::new(&api)?.pause_project(&project_ref, false).await
        }
        Command::Projects(ProjectsCommand::Backup { project_ref, api }) => {
            Remote::new(&api)?.backup_project(&project_ref).await
        }
        Command::Projects(ProjectsCommand::Backups { project_ref, api }) => {
            Remote::new(&api)?.list_backups(&project_ref).await
        }
        Command::Projects(ProjectsCommand::Restore {
            project_ref,
            backup,
            api,
        }) => {
            Remote::new(&api)?
                .restore_backup(&project_ref, &backup)
                .await
        }
        Command::Projects(ProjectsCommand::BackupSchedule {
            project_ref,
            hour_utc,
            retention_days,
            off,
            api,
        }) => {
            let schedule = supa_tenant::BackupSchedule {
                enabled: !off,
                hour_utc,
                retention_days,
            };
            Remote::new(&api)?
                .set_backup_schedule(&project_ref, &schedule)
                .await
        }
        Command::Projects(ProjectsCommand::Delete { project_ref, api }) => {
            Remote::new(&api)?.delete_project(&project_ref).await
        }
        Command::Keys(KeysCommand::List {
            project_ref,
            reveal,
            api,
        }) => Remote::new(&api)?.list_keys(&project_ref, reveal).await,
        Command::Keys(KeysCommand::Create {
            project_ref,
            name,
            api,
        }) => Remote::new(&api)?.create_key(&project_ref, name).await,
        Command::Keys(KeysCommand::Revoke {
            project_ref,
            id,
            api,
        }) => Remote::new(&api)?.revoke_key(&project_ref, &id).await,
        Command::Secrets(SecretsCommand::Set {
            project_ref,
            pairs,
            api,
        }) => Remote::new(&api)?.set_secrets(&project_ref, &pairs).await,
        Command::Secrets(SecretsCommand::List { project_ref, api }) => {
            Remote::new(&api)?.list_secrets(&project_ref).await
        }
        Command::Secrets(SecretsCommand::Unset {
            project_ref,
            names,
            api,
        }) => Remote::new(&api)?.unset_secrets(&project_ref, &names).await,
        Command::Sql {
            project_ref,
            sql,
            api,
        } => Remote::new(&api)?.sql(&project_ref, &sql).await,
        Command::Auth(AuthCommand::Users { project_ref, api }) => {
            Remote::new(&api)?.auth_users(&project_ref).await
        }
        Command::Auth(AuthCommand::Outbox {
            project_ref,
            email,
            limit,
            api,
        }) => {
            Remote::new(&api)?
                .auth_outbox(&project_ref, email.as_deref(), limit)
                .await
        }
        Command::Storage(command) => {
            let (project_ref, api) = match &command {
                StorageCommand::Ls {
                    project_ref, api, ..
                }
                | StorageCommand::Cp {
                    project_ref, api, ..
                }
                | StorageCommand::Rm {
                    project_ref, api, ..
                } => (project_ref, api),
            };
            let remote = Remote::new(api)?;
            let cli = storage::StorageCli::new(&remote, project_ref).await?;
            match &command {
                StorageCommand::Ls { path, .. } => {
                    for name in cli.ls(path.as_deref()).await? {
                        println!("{name}");
                    }
                }
                StorageCommand::Cp { from, to, .. } => {
                    let bytes = cli.cp(from, to).await?;
                    eprintln!("Copied {bytes} bytes.");
                }
                StorageCommand::Rm { paths, .. } => {
                    let removed = cli.rm(paths).await?;
                    eprintln!("Removed {removed} of {} objects.", paths.len());
                }
            }
            Ok(())
        }
        Command::Gen(GenCommand::Types {
            project_ref,
            schemas,
            api,
        }) => Remote::new(&api)?.types(&project_ref, &schemas).await,
        Command::Functions(FunctionsCommand::New { slug, dir }) => functions::new(&dir, &slug),
        Command::Functions(FunctionsCommand::Deploy {
            project_ref,
            slug,
            dir,
            entrypoint,
            import_map,
            no_verify_jwt,
            api,
        }) => {
            let deploy = functions::Deploy {
                dir: &dir,
                slug: &slug,
                entrypoint: &entrypoint,
                import_map: import_map.as_deref(),
                verify_jwt: !no_verify_jwt,
            };
            functions::deploy(&Remote::new(&api)?, &project_ref, &deploy).await
        }
        Command::Functions(FunctionsCommand::List { project_ref, api }) => {
            functions::list(&Remote::new(&api)?, &project_ref).await
        }
        Command::Functions(FunctionsCommand::Delete {
            project_ref,
            slug,
            api,
        }) => functions::delete(&Remote::new(&api)?, &project_ref, &slug).await,
        Command::Functions(FunctionsCommand::Logs {
            project_ref,
            slug,
            limit,
            api,
        }) => functions::logs(&Remote::new(&api)?, &project_ref, &slug, limit).await,
        Command::Jwt(_)
        | Command::Keys(KeysCommand::Gen(_) | KeysCommand::Check(_))
        | Command::Projects(ProjectsCommand::BootstrapSql { .. }) => {
            unreachable!("offline commands run without a runtime")
        }
    }
}
