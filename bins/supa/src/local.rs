//! Offline commands: keys and JWTs computed here, no server involved.

use clap::{Args, Subcommand};
use supa_core::{KeyKind, ProjectRef, Role};
use supa_keys::JwtKey;

/// `supa keys gen`.
#[derive(Args)]
pub(crate) struct GenArgs {
    /// Project ref: 20 lowercase letters.
    #[arg(long = "ref", value_name = "REF")]
    project_ref: ProjectRef,
    /// Kind of key.
    #[arg(long, value_parser = ["publishable", "secret"])]
    kind: String,
}

/// `supa keys check`.
#[derive(Args)]
pub(crate) struct CheckArgs {
    /// Project ref the key is presented to.
    #[arg(long = "ref", value_name = "REF")]
    project_ref: ProjectRef,
    /// The key.
    key: String,
}

/// `supa jwt ...`.
#[derive(Subcommand)]
pub(crate) enum JwtCommand {
    /// Print a token as the gateway mints it.
    Mint {
        /// The project's JWT secret (at least 32 bytes).
        #[arg(long)]
        secret: String,
        /// Project ref.
        #[arg(long = "ref", value_name = "REF")]
        project_ref: ProjectRef,
        /// Role claim.
        #[arg(long, value_parser = ["anon", "authenticated", "service_role"])]
        role: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = supa_keys::DEFAULT_TTL_SECS,
              value_parser = clap::value_parser!(i64).range(1..=31_536_000))]
        ttl: i64,
    },
    /// Verify a token: prints its claims as JSON and exits 0, or prints the
    /// reason and exits 1.
    Verify {
        /// The project's JWT secret.
        #[arg(long)]
        secret: String,
        /// The token.
        token: String,
    },
}

pub(crate) fn gen_key(args: GenArgs) -> anyhow::Result<()> {
    println!(
        "{}",
        supa_keys::generate(&args.project_ref, args.kind.parse::<KeyKind>()?)
    );
    Ok(())
}

pub(crate) fn check_key(args: CheckArgs) -> anyhow::Result<()> {
    println!("{}", supa_keys::validate(&args.project_ref, &args.key)?);
    Ok(())
}

pub(crate) fn jwt(command: JwtCommand) -> anyhow::Result<()> {
    let now = supa_keys::unix_now();
    let out = match command {
        JwtCommand::Mint {
            secret,
            project_ref,
            role,
            ttl,
        } => {
            let key = JwtKey::new(secret.as_bytes())?;
            supa_keys::mint_with_ttl(&key, &project_ref, role.parse::<Role>()?, now, ttl)
        }
        JwtCommand::Verify { secret, token } => {
            let key = JwtKey::new(secret.as_bytes())?;
            supa_keys::verify(&key, &token, now)?.to_json()
        }
    };
    println!("{out}");
    Ok(())
}

pub(crate) fn bootstrap_sql(project_ref: Option<&ProjectRef>, json: bool) -> anyhow::Result<()> {
    let statements = supa_tenant::bootstrap::statements(project_ref);
    let out = if json {
        serde_json::to_string_pretty(&statements)? + "\n"
    } else {
        as_sql(&statements)
    };
    // Piped into `head`, the rest is not wanted: not an error.
    match std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The statements as one SQL text, a comment heading each part.
fn as_sql(statements: &[supa_tenant::bootstrap::Statement]) -> String {
    use std::fmt::Write as _;
    use supa_tenant::bootstrap::Phase;
    let mut out = String::new();
    let mut part = None;
    for s in statements {
        if part != Some((s.phase, s.part)) {
            part = Some((s.phase, s.part));
            let database = match s.phase {
                Phase::Template => "the template database",
                Phase::Cluster | Phase::Project => "the maintenance database",
            };
            let _ = writeln!(
                out,
                "\n-- phase {}: {} (in {database})",
                s.phase.as_str(),
                s.part
            );
        }
        // A statement may end in a comment line; its semicolon goes below.
        let end = match s.sql.rsplit('\n').next() {
            _ if s.sql.ends_with(';') => "",
            Some(last) if last.trim_start().starts_with("--") => "\n;",
            _ => ";",
        };
        let _ = writeln!(out, "{}{end}", s.sql);
    }
    out
}
