//! `supa`: the command line of the Supa platform.
//!
//! Parses arguments and calls `supa-keys`; all logic lives in the libraries.

// A command-line tool's output is its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use supa_core::{KeyKind, ProjectRef, Role};
use supa_keys::JwtKey;

/// Supa: a self-hostable, multi-tenant backend that Supabase clients talk to unchanged.
#[derive(Parser)]
#[command(name = "supa", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate and check opaque API keys (sb_publishable_..., sb_secret_...).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Mint and verify the HS256 JWTs the gateway attaches to requests.
    #[command(subcommand)]
    Jwt(JwtCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new key for a project.
    Gen {
        /// Project ref: 20 lowercase letters.
        #[arg(long = "ref", value_name = "REF")]
        project_ref: ProjectRef,
        /// Kind of key.
        #[arg(long, value_parser = ["publishable", "secret"])]
        kind: String,
    },
    /// Check a key's checksum against a project: prints `valid` and exits 0,
    /// or prints the reason and exits 1.
    Check {
        /// Project ref the key is presented to.
        #[arg(long = "ref", value_name = "REF")]
        project_ref: ProjectRef,
        /// The key.
        key: String,
    },
}

#[derive(Subcommand)]
enum JwtCommand {
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

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("{reason}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<String> {
    let now = supa_keys::unix_now();
    Ok(match cli.command {
        Command::Keys(KeysCommand::Gen { project_ref, kind }) => {
            supa_keys::generate(&project_ref, kind.parse::<KeyKind>()?)
        }
        Command::Keys(KeysCommand::Check { project_ref, key }) => {
            let validation = supa_keys::validate(&project_ref, &key)?;
            validation.to_string()
        }
        Command::Jwt(JwtCommand::Mint {
            secret,
            project_ref,
            role,
            ttl,
        }) => {
            let key = JwtKey::new(secret.as_bytes())?;
            supa_keys::mint_with_ttl(&key, &project_ref, role.parse::<Role>()?, now, ttl)
        }
        Command::Jwt(JwtCommand::Verify { secret, token }) => {
            let key = JwtKey::new(secret.as_bytes())?;
            supa_keys::verify(&key, &token, now)?.to_json()
        }
    })
}
