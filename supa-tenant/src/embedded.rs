//! A private PostgreSQL cluster run from the system's own binaries.
//!
//! `supa up` and the test kit both use it: `initdb` once into a data dir,
//! `pg_ctl start` on a loopback port (no Unix socket, so nothing outside the
//! data dir is touched), `pg_ctl stop` on shutdown, and the same cluster is
//! reused by the next start. PostgreSQL refuses to run as root, so when we
//! are root every server binary runs as the `postgres` user and the data dir
//! is handed to that user.

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use supa_core::Secret;

use crate::Error;
use crate::files::{random_bytes, write_private};

/// The superuser every embedded cluster is initialized with.
pub const SUPERUSER: &str = "supa";
/// Where Debian and Ubuntu install PostgreSQL's server binaries.
pub(crate) const PG_LIB: &str = "/usr/lib/postgresql";
/// The OS user PostgreSQL runs as when we are root.
const PG_OS_USER: &str = "postgres";

/// How the cluster trades durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// PostgreSQL's defaults: every commit reaches the disk.
    Full,
    /// `fsync`, `synchronous_commit` and `full_page_writes` off: for
    /// throwaway test clusters, where a crash loses nothing of value.
    Throwaway,
}

/// A running cluster; [`EmbeddedPostgres::stop`] shuts it down.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    pgdata: PathBuf,
    port: u16,
    password: Secret<String>,
}

impl EmbeddedPostgres {
    /// Starts (initializing first if needed) the cluster under `data_dir`,
    /// or attaches to it if it is already running.
    pub fn start(data_dir: &Path, durability: Durability) -> Result<Self, Error> {
        let bin_dir = find_bin_dir()?;
        fs::create_dir_all(data_dir).map_err(|e| Error::io("create the data dir", e))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| Error::io("resolve the data dir", e))?;
        let as_root = running_as_root();
        let cluster_dir = if as_root {
            reachable_cluster_dir(&data_dir)?
        } else {
            data_dir.clone()
        };
        let pgdata = cluster_dir.join("pgdata");
        // The password stays in the data dir, which only we need to read.
        let password_file = data_dir.join("pg_superuser_password");

        if !pgdata.join("PG_VERSION").exists() {
            let password = random_password();
            write_private(&password_file, &password)?;
            init_cluster(
                &bin_dir,
                &cluster_dir,
                &pgdata,
                &password,
                durability,
                as_root,
            )?;
        }
        ensure_logical_decoding(&pgdata)?;
        let password = fs::read_to_string(&password_file)
            .map_err(|e| Error::io("read the superuser password", e))?;
        let mut pg = Self {
            bin_dir,
            pgdata,
            port: 0,
            password: Secret::new(password),
        };

        if let Some(port) = pg.running_port() {
            pg.port = port;
            return Ok(pg);
        }
        pg.port = free_port()?;
        let log = cluster_dir.join("postgres.log");
        if as_root {
            // The log file must be writable by the server's user.
            fs::File::create(&log).map_err(|e| Error::io("create the server log", e))?;
            chown_to_postgres(&log)?;
        }
        pg.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            path_str(&log)?,
            "-o",
            &format!("-p {}", pg.port),
        ])
        .map_err(|e| e.with_context(&format!("see {}", log.display())))?;
        Ok(pg)
    }

    /// The directory holding the cluster's files: `<data dir>/pgdata`, or
    /// a directory under [`FALLBACK_CLUSTERS`] when the `postgres` user
    /// cannot reach the data dir.
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// The loopback port the cluster listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the superuser.
    pub fn url(&self, database: &str) -> Secret<String> {
        Secret::new(format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password.expose(),
            self.port
        ))
    }

    /// The superuser's password.
    pub fn password(&self) -> &Secret<String> {
        &self.password
    }

    /// Stops the cluster, letting open transactions roll back (`-m fast`).
    pub fn stop(&self) -> Result<(), Error> {
        self.pg_ctl(&["stop", "-w", "-m", "fast"])
    }

    /// The port of a server already running on this data dir, read from
    /// `postmaster.pid` once `pg_ctl status` confirms it is alive.
    fn running_port(&self) -> Option<u16> {
        self.pg_ctl(&["status"]).ok()?;
        let pid_file = fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), Error> {
        let mut all = vec!["-D", path_str(&self.pgdata)?];
        all.extend_from_slice(args);
        run(&self.bin_dir, "pg_ctl", &all, running_as_root())
    }

    /// The argv that runs `pg_ctl -D <pgdata> <args>` as the right OS user,
    /// for a process that outlives this one (the test kit's watchdog).
    pub fn pg_ctl_command(&self, args: &[&str]) -> Vec<String> {
        let mut argv = Vec::new();
        if running_as_root() {
            argv.extend(["runuser", "-u", PG_OS_USER, "--"].map(String::from));
        }
        argv.push(self.bin_dir.join("pg_ctl").to_string_lossy().into_owned());
        argv.push("-D".into());
        argv.push(self.pgdata.to_string_lossy().into_owned());
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }
}

fn init_cluster(
    bin_dir: &Path,
    data_dir: &Path,
    pgdata: &Path,
    password: &str,
    durability: Durability,
    as_root: bool,
) -> Result<(), Error> {
    if as_root {
        chown_to_postgres(data_dir)?;
    }
    // initdb reads the password from a file the server's user can read,
    // deleted right after: it never appears on a command line.
    let pwfile = data_dir.join("initdb.pw");
    write_private(&pwfile, password)?;
    if as_root {
        chown_to_postgres(&pwfile)?;
    }
    let result = run(
        bin_dir,
        "initdb",
        &[
            "-D",
            path_str(pgdata)?,
            "-U",
            SUPERUSER,
            "--pwfile",
            path_str(&pwfile)?,
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        as_root,
    );
    let _ = fs::remove_file(&pwfile);
    result?;

    let mut conf = String::from(
        "\n# Set by Supa's embedded launcher.\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = ''\n\
         max_connections = 300\n\
         shared_buffers = 128MB\n",
    );
    if durability == Durability::Throwaway {
        // Commits return before their WAL is flushed, and logical decoding
        // reads only flushed WAL: flush often, so realtime's changes are
        // not held back by the default 200 ms.
        conf.push_str(
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nwal_writer_delay = 10ms\n",
        );
    }
    // pgaudit and pg_cron work only preloaded. Projects then `create
    // extension pgaudit` and set `pgaudit.log` for themselves; pg_cron runs
    // one scheduler per cluster, in the `postgres` database, so a project
    // asking for it gets pg_cron's own refusal naming that database.
    let lib = bin_dir.parent().map(|v| v.join("lib"));
    let preload: Vec<&str> = ["pgaudit", "pg_cron"]
        .into_iter()
        .filter(|l| {
            lib.as_ref()
                .is_some_and(|d| d.join(format!("{l}.so")).exists())
        })
        .collect();
    if !preload.is_empty() {
        conf.push_str(&format!(
            "shared_preload_libraries = '{}'\ncron.database_name = 'postgres'\n",
            preload.join(", ")
        ));
    }
    fs::OpenOptions::new()
        .append(true)
        .open(pgdata.join("postgresql.conf"))
        .and_then(|mut f| f.write_all(conf.as_bytes()))
        .map_err(|e| Error::io("configure the cluster", e))
}

/// What realtime's Postgres changes need: logical decoding, and a
/// replication slot for each project with subscribers.
const LOGICAL_DECODING: &str = "\n# Realtime's Postgres changes (set by Supa's embedded launcher).\n\
     wal_level = logical\n\
     max_replication_slots = 250\n";

/// Turns on logical decoding (in a cluster made before it was), and keeps
/// replication connections to the superuser: the project logins that may
/// decode their own database's changes (`REPLICATION`) must not stream the
/// whole cluster. Takes effect at the next start; changes nothing twice.
fn ensure_logical_decoding(pgdata: &Path) -> Result<(), Error> {
    let conf_path = pgdata.join("postgresql.conf");
    let conf = fs::read_to_string(&conf_path).map_err(|e| Error::io("read postgresql.conf", e))?;
    if !conf.contains("\nwal_level = logical\n") {
        fs::OpenOptions::new()
            .append(true)
            .open(&conf_path)
            .and_then(|mut f| f.write_all(LOGICAL_DECODING.as_bytes()))
            .map_err(|e| Error::io("configure the cluster", e))?;
    }
    let hba_path = pgdata.join("pg_hba.conf");
    let hba = fs::read_to_string(&hba_path).map_err(|e| Error::io("read pg_hba.conf", e))?;
    let restricted: String = hba
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !line.trim_start().starts_with('#')
                && fields.get(1) == Some(&"replication")
                && fields.get(2) == Some(&"all")
            {
                let mut fields = fields;
                fields[2] = SUPERUSER;
                fields.join(" ")
            } else {
                line.to_owned()
            }
        })
        .map(|line| line + "\n")
        .collect();
    if restricted != hba {
        fs::write(&hba_path, restricted).map_err(|e| Error::io("write pg_hba.conf", e))?;
    }
    Ok(())
}

/// Where clusters live whose data dir the `postgres` user cannot reach
/// (a checkout under `/root`, a `mktemp -d` dir): one directory per data
/// dir, named by the SHA-256 of its path, so the next start finds it again.
pub const FALLBACK_CLUSTERS: &str = "/var/lib/supa/clusters";

/// Where the cluster of `data_dir` lives when we run as root: the data dir
/// itself when the `postgres` user can reach its parent, else a directory
/// of its own under [`FALLBACK_CLUSTERS`].
fn reachable_cluster_dir(data_dir: &Path) -> Result<PathBuf, Error> {
    // The data dir itself is handed to `postgres` when the cluster is made;
    // what matters is whether that user can get to it.
    if postgres_can_enter(data_dir.parent().unwrap_or(data_dir)) {
        return Ok(data_dir.to_owned());
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    let dir = Path::new(FALLBACK_CLUSTERS).join(hex::encode(&digest[..8]));
    let unreachable = |why: String| {
        Error::Config(format!(
            "the postgres user cannot reach {} (a parent directory is closed to it) and {why}: \
             choose a --data-dir it can traverse, or open the parents with chmod o+x",
            data_dir.display()
        ))
    };
    fs::create_dir_all(&dir)
        .map_err(|e| unreachable(format!("{} cannot be made: {e}", dir.display())))?;
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| unreachable(format!("{}: {e}", dir.display())))?;
    chown_to_postgres(&dir)?;
    if !postgres_can_enter(&dir) {
        return Err(unreachable(format!(
            "neither can it reach {}",
            dir.display()
        )));
    }
    // Say where, once per start: the operator looks in the data dir first.
    fs::write(
        data_dir.join("CLUSTER_LOCATION"),
        format!(
            "The postgres user cannot reach this directory, so the PostgreSQL cluster lives in\n{}\n",
            dir.display()
        ),
    )
    .map_err(|e| Error::io("write CLUSTER_LOCATION", e))?;
    tracing::warn!(
        data_dir = %data_dir.display(),
        cluster = %dir.display(),
        "the postgres user cannot reach the data dir; the PostgreSQL cluster lives elsewhere"
    );
    Ok(dir)
}

/// Whether the `postgres` OS user can enter `dir` (every parent included).
fn postgres_can_enter(dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", PG_OS_USER, "--", "test", "-x"])
        .arg(dir)
        .current_dir("/")
        .status()
        .is_ok_and(|s| s.success())
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding a server.
fn find_bin_dir() -> Result<PathBuf, Error> {
    let missing = || {
        Error::Config(format!(
            "PostgreSQL server binaries not found under {PG_LIB}/*/bin: \
             install the `postgresql` package (apt-get install postgresql)"
        ))
    };
    let entries = fs::read_dir(PG_LIB).map_err(|_| missing())?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .ok_or_else(missing)
}

fn run(bin_dir: &Path, program: &str, args: &[&str], as_root: bool) -> Result<(), Error> {
    let exe = bin_dir.join(program);
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", PG_OS_USER, "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    // Run from a directory the server's user can enter.
    cmd.args(args).current_dir("/");
    let out = cmd
        .output()
        .map_err(|e| Error::io(&format!("run {program}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let detail = stderr
        .lines()
        .chain(stdout.lines())
        .find(|l| !l.trim().is_empty());
    Err(Error::Embedded(format!(
        "{program} {} failed: {}",
        args.first().unwrap_or(&""),
        detail.unwrap_or("no output").trim()
    )))
}

fn running_as_root() -> bool {
    // `id -u` rather than libc, keeping this crate free of unsafe code; asked
    // once per process, as every server command needs the answer.
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    })
}

/// Gives `path` to the `postgres` OS user (uid and gid from /etc/passwd).
fn chown_to_postgres(path: &Path) -> Result<(), Error> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| Error::io("read /etc/passwd", e))?;
    let (uid, gid) = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&PG_OS_USER) && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| {
            Error::Config(
                "there is no `postgres` OS user to run PostgreSQL as: install the `postgresql` package"
                    .into(),
            )
        })?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| Error::io(&format!("chown {} to postgres", path.display()), e))
}

fn random_password() -> String {
    hex::encode(random_bytes::<24>())
}

fn free_port() -> Result<u16, Error> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::io("find a free port", e))
}

fn path_str(path: &Path) -> Result<&str, Error> {
    path.to_str()
        .ok_or_else(|| Error::Config(format!("{} is not UTF-8", path.display())))
}
