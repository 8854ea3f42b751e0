//! Every `SUPA_*` environment variable, named once.
//!
//! Binaries read settings through these constants (clap's `env = ...`), and
//! [`ALL`] feeds the documentation, so a variable cannot be spelled two ways.

/// Data directory for the embedded PostgreSQL cluster and the generated
/// master key (default `./.supa`).
pub const DATA_DIR: &str = "SUPA_DATA_DIR";
/// Master key (32 bytes, base64 or 64 hex digits) that encrypts secrets at rest; generated into
/// the data dir with mode 0600 when unset.
pub const MASTER_KEY: &str = "SUPA_MASTER_KEY";
/// Connection URL of the management database; when unset `supa up` starts an
/// embedded cluster in the data dir.
pub const DATABASE_URL: &str = "SUPA_DATABASE_URL";
/// Bearer token of the Management API.
pub const ADMIN_TOKEN: &str = "SUPA_ADMIN_TOKEN";
/// Bearer token of the internal directory API that gateways call.
pub const SERVICE_TOKEN: &str = "SUPA_SERVICE_TOKEN";
/// Base URL of a remote tenant manager's internal API, for `supa-gateway`.
pub const TENANT_URL: &str = "SUPA_TENANT_URL";
/// Redis URL for the shared config cache and invalidation channel (optional).
pub const REDIS_URL: &str = "SUPA_REDIS_URL";
/// Redis password, put into `SUPA_REDIS_URL` when that has none (for
/// platforms that inject a secret as its own variable, like ECS).
pub const REDIS_PASSWORD: &str = "SUPA_REDIS_PASSWORD";
/// Domain under which `{ref}.{domain}` hosts resolve to projects.
pub const BASE_DOMAIN: &str = "SUPA_BASE_DOMAIN";
/// Port of the public gateway (default 8000).
pub const GATEWAY_PORT: &str = "SUPA_GATEWAY_PORT";
/// Threads serving the public gateway port (default: one per CPU).
pub const GATEWAY_THREADS: &str = "SUPA_GATEWAY_THREADS";
/// Requests a second each project may make at one gateway (default: no
/// limit); over it, 429 `API rate limit exceeded` with `Retry-After`.
pub const PROJECT_RATE_LIMIT: &str = "SUPA_PROJECT_RATE_LIMIT";
/// Seconds a gateway connection may take to send a request head (and may
/// sit idle between requests) before it is closed (default 75).
pub const HEADER_TIMEOUT: &str = "SUPA_HEADER_TIMEOUT";
/// Connections one client address may hold at a gateway (default 0: no
/// cap); one more is answered 429.
pub const MAX_CONNECTIONS_PER_IP: &str = "SUPA_MAX_CONNECTIONS_PER_IP";
/// The largest request body a gateway passes to a service other than
/// storage (default 64 MiB); past it, 413.
pub const MAX_BODY_BYTES: &str = "SUPA_MAX_BODY_BYTES";
/// Where project backups are kept: a directory (default DATA_DIR/backups)
/// or `s3://BUCKET`.
pub const BACKUP_LOCATION: &str = "SUPA_BACKUP_LOCATION";
/// Seconds a stopping gateway keeps serving with `Connection: close`
/// before its listener closes (default 2).
pub const DRAIN_SECS: &str = "SUPA_DRAIN_SECS";
/// Seconds a gateway keeps a project's config and a key (default 60).
pub const GATEWAY_CACHE_TTL: &str = "SUPA_GATEWAY_CACHE_TTL";
/// Seconds past that a gateway keeps serving the last config and key it
/// read while the tenant manager cannot be reached (default 3600).
pub const GATEWAY_STALE_IF_ERROR: &str = "SUPA_GATEWAY_STALE_IF_ERROR";
/// Port of the Management API and `/metrics` (default 8001).
pub const API_PORT: &str = "SUPA_API_PORT";
/// Address the servers listen on (default `127.0.0.1`).
pub const BIND: &str = "SUPA_BIND";
/// Base URL of the Management API the CLI talks to (default
/// `http://127.0.0.1:8001`).
pub const API_URL: &str = "SUPA_API_URL";
/// Public URL of the gateway, printed with new projects (default
/// `http://127.0.0.1:8000`).
pub const GATEWAY_URL: &str = "SUPA_GATEWAY_URL";
/// How new projects are spread over workers: `least-databases` (default)
/// or `round-robin`.
pub const PLACEMENT: &str = "SUPA_PLACEMENT";
/// Path of an optional TOML config file.
pub const CONFIG: &str = "SUPA_CONFIG";
/// Config profile: `production` (unsafe settings refused), `test` (relaxed
/// durability) or the name of a `[profile.NAME]` table of the config file.
pub const PROFILE: &str = "SUPA_PROFILE";
/// Log filter in `tracing` syntax (default `info`).
pub const LOG: &str = "SUPA_LOG";

/// Where object bytes live: `file` (default) or `s3`.
pub const STORAGE_BACKEND: &str = "SUPA_STORAGE_BACKEND";
/// The file backend's directory (default `DATA_DIR/storage`).
pub const STORAGE_PATH: &str = "SUPA_STORAGE_PATH";
/// The S3 backend's bucket.
pub const STORAGE_S3_BUCKET: &str = "SUPA_STORAGE_S3_BUCKET";
/// The S3 backend's endpoint (AWS when unset).
pub const STORAGE_S3_ENDPOINT: &str = "SUPA_STORAGE_S3_ENDPOINT";
/// The S3 backend's region (default `us-east-1`).
pub const STORAGE_S3_REGION: &str = "SUPA_STORAGE_S3_REGION";
/// Path-style requests to the S3 backend (`true` for most S3-compatible
/// servers).
pub const STORAGE_S3_FORCE_PATH_STYLE: &str = "SUPA_STORAGE_S3_FORCE_PATH_STYLE";
/// How the file storage backend makes ETags: `md5` or `mtime`.
pub const STORAGE_FILE_ETAG: &str = "SUPA_STORAGE_FILE_ETAG";
/// Seconds a project keeps its realtime replication slot after its last
/// channel leaves.
pub const REALTIME_SLOT_GRACE: &str = "SUPA_REALTIME_SLOT_GRACE";
/// The `deno` binary that bundles and runs edge functions.
pub const DENO: &str = "SUPA_DENO";
/// Where edge functions' bundles, worker sockets and npm cache live.
pub const FUNCTIONS_DIR: &str = "SUPA_FUNCTIONS_DIR";
/// Seconds an idle edge function worker lives.
pub const FUNCTIONS_IDLE: &str = "SUPA_FUNCTIONS_IDLE";

/// Every variable with a one-line description, for docs and `--help`.
pub const ALL: &[(&str, &str)] = &[
    (
        STORAGE_BACKEND,
        "where object bytes live: file (default, DATA_DIR/storage) or s3",
    ),
    (STORAGE_PATH, "the file storage backend's directory"),
    (STORAGE_S3_BUCKET, "the S3 storage backend's bucket"),
    (
        STORAGE_S3_ENDPOINT,
        "the S3 storage backend's endpoint (AWS when unset)",
    ),
    (
        STORAGE_S3_REGION,
        "the S3 storage backend's region (default us-east-1)",
    ),
    (
        STORAGE_S3_FORCE_PATH_STYLE,
        "path-style requests to the S3 storage backend",
    ),
    (
        STORAGE_FILE_ETAG,
        "the file storage backend's ETags: md5 (default) or mtime",
    ),
    (
        REALTIME_SLOT_GRACE,
        "seconds a project keeps its realtime replication slot after its last channel leaves (default 10)",
    ),
    (
        DENO,
        "the deno binary that bundles and runs edge functions (default: the one the bootstrap installs, else deno on PATH)",
    ),
    (
        FUNCTIONS_DIR,
        "where edge functions' bundles, worker sockets and npm cache live (default DATA_DIR/functions)",
    ),
    (
        FUNCTIONS_IDLE,
        "seconds an idle edge function worker lives (default 60)",
    ),
    (
        DATA_DIR,
        "data directory for the embedded cluster and master key (default ./.supa)",
    ),
    (
        MASTER_KEY,
        "master key encrypting secrets at rest, 32 bytes as base64 or 64 hex digits (generated when unset)",
    ),
    (
        DATABASE_URL,
        "management database URL (embedded cluster when unset)",
    ),
    (ADMIN_TOKEN, "bearer token of the Management API"),
    (SERVICE_TOKEN, "bearer token of the internal directory API"),
    (
        TENANT_URL,
        "remote tenant manager base URL, for supa-gateway",
    ),
    (
        REDIS_URL,
        "Redis URL for the shared cache and invalidation (optional)",
    ),
    (
        REDIS_PASSWORD,
        "Redis password, added to SUPA_REDIS_URL when that has none",
    ),
    (
        BASE_DOMAIN,
        "domain under which {ref}.{domain} resolves to a project",
    ),
    (GATEWAY_PORT, "public gateway port (default 8000)"),
    (API_PORT, "Management API and metrics port (default 8001)"),
    (BIND, "address the servers listen on (default 127.0.0.1)"),
    (
        API_URL,
        "Management API base URL for the CLI (default http://127.0.0.1:8001)",
    ),
    (
        GATEWAY_URL,
        "public gateway URL printed with new projects (default http://127.0.0.1:8000)",
    ),
    (
        PLACEMENT,
        "worker placement: least-databases (default) or round-robin",
    ),
    (CONFIG, "path of an optional TOML config file"),
    (
        PROFILE,
        "config profile: production (refuses unsafe settings), test, or a [profile.NAME] table",
    ),
    (LOG, "log filter in tracing syntax (default info)"),
];

/// The config-file key of a variable: `SUPA_DATA_DIR` is `data_dir`.
pub fn file_key(var: &str) -> String {
    var.trim_start_matches("SUPA_").to_ascii_lowercase()
}

/// Applies a TOML config file's values as the defaults of every argument
/// (in `command` and all its subcommands) bound to the matching `SUPA_*`
/// variable, so the order of precedence is flag, then environment, then
/// file, then built-in default. With a `profile`, the keys of the file's
/// `[profile.NAME]` table override its top-level keys. An unknown key or
/// profile is an error naming it.
#[cfg(feature = "clap")]
pub fn with_file_defaults(
    command: clap::Command,
    toml_text: &str,
    profile: &crate::Profile,
) -> Result<clap::Command, crate::Error> {
    Ok(apply_defaults(command, &file_values(toml_text, profile)?))
}

/// The `(variable, value)` pairs a config file gives under `profile`.
#[cfg(feature = "clap")]
pub fn file_values(
    toml_text: &str,
    profile: &crate::Profile,
) -> Result<Vec<(&'static str, String)>, crate::Error> {
    let mut table: toml::Table = toml_text
        .parse()
        .map_err(|e| crate::Error::Config(format!("{CONFIG}: {e}")))?;
    let mut profiles = match table.remove("profile") {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(other) => {
            return Err(crate::Error::Config(format!(
                "{CONFIG}: profile must be a table of [profile.NAME] tables, not {}",
                other.type_str()
            )));
        }
    };
    let mut values = pairs(table, "")?;
    if let Some(name) = profile.name() {
        match profiles.remove(name) {
            Some(toml::Value::Table(t)) => {
                for (var, value) in pairs(t, &format!("[profile.{name}] "))? {
                    values.retain(|(v, _)| *v != var);
                    values.push((var, value));
                }
            }
            Some(other) => {
                return Err(crate::Error::Config(format!(
                    "{CONFIG}: profile.{name} must be a table, not {}",
                    other.type_str()
                )));
            }
            None if crate::Profile::is_built_in(name) => {}
            None => {
                let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
                return Err(crate::Error::Config(format!(
                    "{PROFILE}: no [profile.{name}] table in the config file; its profiles: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
    }
    Ok(values)
}

/// A table's keys as `(variable, value)` pairs; `at` names the table in errors.
#[cfg(feature = "clap")]
fn pairs(table: toml::Table, at: &str) -> Result<Vec<(&'static str, String)>, crate::Error> {
    let mut values = Vec::new();
    for (key, value) in table {
        let settable = ALL
            .iter()
            .filter(|(var, _)| *var != CONFIG && *var != PROFILE);
        let Some((var, _)) = settable.clone().find(|(var, _)| file_key(var) == key) else {
            let known: Vec<String> = settable.map(|(v, _)| file_key(v)).collect();
            return Err(crate::Error::Config(format!(
                "{CONFIG}: {at}unknown key {key:?}; known keys: {}",
                known.join(", ")
            )));
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(crate::Error::Config(format!(
                    "{CONFIG}: {at}{key} must be a string, integer or boolean, not {}",
                    other.type_str()
                )));
            }
        };
        values.push((*var, text));
    }
    Ok(values)
}

/// The arguments, as every Supa binary parses them: with the config file
/// named by `--config PATH` or `SUPA_CONFIG` supplying defaults (see
/// [`with_file_defaults`]) under the profile named by `--profile NAME` or
/// `SUPA_PROFILE`.
#[cfg(feature = "clap")]
pub struct Parsed<P> {
    /// The binary's own arguments.
    pub args: P,
    /// The profile they were read under.
    pub profile: crate::Profile,
    /// The config file, if one was given.
    pub config: Option<std::path::PathBuf>,
}

/// Parses the process arguments into `P` (see [`Parsed`]). Exits with
/// clap's message and status on bad arguments, like `P::parse()`, and with
/// a one-line reason when the config file or profile cannot be used.
#[cfg(feature = "clap")]
pub fn parse_args<P: clap::Parser>() -> Parsed<P> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = P::command()
        .arg(
            clap::Arg::new("config")
                .long("config")
                .env(CONFIG)
                .global(true)
                .value_name("PATH")
                .help("TOML file of settings: keys are the SUPA_* variables in lower case without the prefix"),
        )
        .arg(
            clap::Arg::new("profile")
                .long("profile")
                .env(PROFILE)
                .global(true)
                .value_name("NAME")
                .help("production (refuses unsafe settings), test, or a [profile.NAME] table of the config file"),
        );
    let profile = crate::Profile::new(
        flag_value(&args, "--profile", PROFILE).and_then(|p| p.into_string().ok()),
    );
    let config = flag_value(&args, "--config", CONFIG).map(std::path::PathBuf::from);
    let applied = match &config {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| crate::Error::Config(format!("cannot read {}: {e}", path.display())))
            .and_then(|text| with_file_defaults(command, &text, &profile)),
        None => match profile.name() {
            Some(name) if !crate::Profile::is_built_in(name) => Err(crate::Error::Config(format!(
                "{PROFILE}: profile {name:?} needs a config file ({CONFIG}) with a [profile.{name}] table"
            ))),
            _ => Ok(command),
        },
    };
    command = applied.unwrap_or_else(|e| {
        // A binary's startup failure is reported on its stderr.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{e}");
        }
        std::process::exit(2);
    });
    let matches = command.get_matches_from(args);
    Parsed {
        args: P::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()),
        profile,
        config,
    }
}

/// `FLAG VALUE` or `FLAG=VALUE` among `args`, else the variable `var`.
#[cfg(feature = "clap")]
fn flag_value(args: &[std::ffi::OsString], flag: &str, var: &str) -> Option<std::ffi::OsString> {
    let mut iter = args.iter().skip(1);
    let prefix = format!("{flag}=");
    while let Some(arg) = iter.next() {
        if arg == flag {
            return iter.next().cloned();
        }
        if let Some(value) = arg.to_str().and_then(|a| a.strip_prefix(prefix.as_str())) {
            return Some(value.into());
        }
    }
    std::env::var_os(var).filter(|v| !v.is_empty())
}

#[cfg(feature = "clap")]
fn apply_defaults(command: clap::Command, values: &[(&'static str, String)]) -> clap::Command {
    let command = command.mut_args(|arg| {
        let var = arg.get_env().and_then(|v| v.to_str()).map(str::to_owned);
        match var.and_then(|var| values.iter().find(|(v, _)| *v == var)) {
            Some((_, value)) => arg.default_value(value.clone()),
            None => arg,
        }
    });
    let names: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    names.into_iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| apply_defaults(sub, values))
    })
}

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn file_keys_drop_the_prefix() {
        assert_eq!(super::file_key(super::DATA_DIR), "data_dir");
        assert_eq!(super::file_key(super::API_PORT), "api_port");
    }

    #[cfg(feature = "clap")]
    #[test]
    fn file_values_sit_between_environment_and_built_in_defaults() {
        use clap::{Arg, Command};
        let command = || {
            Command::new("t").subcommand(
                Command::new("up")
                    .arg(
                        Arg::new("port")
                            .long("port")
                            .env("SUPA_TEST_UNSET_PORT")
                            .default_value("1"),
                    )
                    .arg(
                        Arg::new("dir")
                            .long("data-dir")
                            .env(super::DATA_DIR)
                            .default_value("d"),
                    ),
            )
        };
        // The keys map to variables by name; this one has no SUPA_TEST_* key,
        // so only data_dir applies.
        let cmd = super::with_file_defaults(command(), "data_dir = \"/srv/supa\"", &P).unwrap();
        let m = cmd.try_get_matches_from(["t", "up"]).unwrap();
        let up = m.subcommand_matches("up").unwrap();
        if std::env::var_os(super::DATA_DIR).is_none() {
            assert_eq!(up.get_one::<String>("dir").unwrap(), "/srv/supa");
        }
        assert_eq!(up.get_one::<String>("port").unwrap(), "1");
        let m = super::with_file_defaults(command(), "data_dir = \"/srv\"", &P)
            .unwrap()
            .try_get_matches_from(["t", "up", "--data-dir", "flag"])
            .unwrap();
        assert_eq!(
            m.subcommand_matches("up")
                .unwrap()
                .get_one::<String>("dir")
                .unwrap(),
            "flag"
        );

        let err = super::with_file_defaults(command(), "colour = \"red\"", &P).unwrap_err();
        assert!(err.to_string().contains("unknown key \"colour\""), "{err}");
        assert!(super::with_file_defaults(command(), "api_port = [1]", &P).is_err());
        assert!(super::with_file_defaults(command(), "not toml", &P).is_err());
    }

    #[cfg(feature = "clap")]
    const P: crate::Profile = crate::Profile::DEFAULT;

    #[cfg(feature = "clap")]
    #[test]
    fn a_profile_table_overrides_the_top_level_keys() {
        let text = "log = \"info\"\nplacement = \"round-robin\"\n\n[profile.production]\nlog = \"warn\"\n\n[profile.ci]\nlog = \"debug\"\n";
        let named = |n: &str| crate::Profile::new(Some(n.to_owned()));
        let values = super::file_values(text, &P).unwrap();
        assert!(values.contains(&(super::LOG, "info".to_owned())));
        let values = super::file_values(text, &named("production")).unwrap();
        assert!(
            values.contains(&(super::LOG, "warn".to_owned())),
            "{values:?}"
        );
        assert!(values.contains(&(super::PLACEMENT, "round-robin".to_owned())));
        assert_eq!(values.iter().filter(|(v, _)| *v == super::LOG).count(), 1);
        let values = super::file_values(text, &named("ci")).unwrap();
        assert!(values.contains(&(super::LOG, "debug".to_owned())));
        // Built-in names need no table; other names do.
        assert!(super::file_values(text, &named("test")).is_ok());
        let err = super::file_values(text, &named("staging"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no [profile.staging] table") && err.contains("ci, production"),
            "{err}"
        );
        let err = super::file_values("[profile.ci]\ncolour = 1", &named("ci"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[profile.ci] unknown key \"colour\""), "{err}");
        assert!(super::file_values("profile = 1", &P).is_err());
    }

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names: Vec<_> = ALL.iter().map(|(n, _)| *n).collect();
        assert!(names.iter().all(|n| n.starts_with("SUPA_")));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}

/// The Redis URL with `password` put in: a secret given in its own
/// variable ([`REDIS_PASSWORD`]) joins the URL that names the server.
pub fn redis_url(url: Option<&str>, password: Option<&str>) -> Result<Option<String>, String> {
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Ok(url.map(str::to_owned));
    };
    let url = url.ok_or_else(|| format!("{REDIS_PASSWORD} is set but {REDIS_URL} is not"))?;
    let mut parsed = url::Url::parse(url).map_err(|_| format!("{REDIS_URL} is not a URL"))?;
    if parsed.password().is_some() {
        return Err(format!(
            "{REDIS_URL} has a password and {REDIS_PASSWORD} is set: give one"
        ));
    }
    parsed
        .set_password(Some(password))
        .map_err(|()| format!("{REDIS_URL} cannot carry a password"))?;
    Ok(Some(parsed.into()))
}

#[cfg(test)]
mod redis_url_tests {
    use super::redis_url;

    #[test]
    fn a_separate_password_joins_the_url_encoded() {
        assert_eq!(
            redis_url(Some("rediss://cache.internal:6379/0"), Some("p@ss/w rd")).unwrap(),
            Some("rediss://:p%40ss%2Fw%20rd@cache.internal:6379/0".to_owned())
        );
        assert_eq!(
            redis_url(Some("redis://h:1"), None).unwrap(),
            Some("redis://h:1".to_owned())
        );
        assert_eq!(redis_url(None, None).unwrap(), None);
    }

    #[test]
    fn conflicting_or_orphaned_passwords_are_refused() {
        assert!(
            redis_url(Some("redis://:a@h:1"), Some("b"))
                .unwrap_err()
                .contains("give one")
        );
        assert!(
            redis_url(None, Some("b"))
                .unwrap_err()
                .contains("SUPA_REDIS_URL is not")
        );
        assert!(redis_url(Some("not a url"), Some("b")).is_err());
    }
}
