//! `supa-functions`: a folder of edge functions served as Supabase's
//! edge-runtime container serves `/home/deno/functions/<slug>/index.ts`
//! (`start --main-service /home/deno/functions/main`, port 9000), with its
//! environment (`JWT_SECRET`, `VERIFY_JWT`, `SUPABASE_URL`,
//! `SUPABASE_ANON_KEY`, `SUPABASE_SERVICE_ROLE_KEY`, `SUPABASE_DB_URL` and
//! any other variable the functions read), so it can replace that
//! container of Supabase's docker-compose. A function is bundled on its
//! first request and again when its files change.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use supa_core::{ProjectConfig, ProjectRef, env};
use supa_functions::{FolderFunctions, Functions, FunctionsDir};

/// Edge functions from a folder.
#[derive(Parser)]
#[command(name = "supa-functions", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the functions beside the main service's folder.
    Start(StartArgs),
}

#[derive(clap::Args)]
struct StartArgs {
    /// edge-runtime's main service; the functions are the folders beside it.
    #[arg(long, default_value = "/home/deno/functions/main")]
    main_service: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    ip: std::net::IpAddr,
    /// Port to listen on.
    #[arg(long, short, default_value_t = 9000)]
    port: u16,
    /// The deno binary (default: the one the bootstrap installs, else deno
    /// on PATH).
    #[arg(long, env = env::DENO)]
    deno: Option<PathBuf>,
    /// Where bundles, worker sockets and the npm cache live.
    #[arg(long, env = env::FUNCTIONS_DIR, default_value = "/tmp/supa-functions")]
    functions_dir: PathBuf,
    /// Seconds an idle worker lives.
    #[arg(long, env = env::FUNCTIONS_IDLE, default_value_t = 60)]
    functions_idle: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let Command::Start(args) = Cli::parse().command;
    let edge = supa_functions::edge_env(std::env::vars()).map_err(anyhow::Error::msg)?;
    let deno = supa_functions::find_deno(args.deno.as_deref())
        .context("no deno found: set SUPA_DENO or --deno")?;
    let functions_root = args
        .main_service
        .parent()
        .context("--main-service has no parent folder")?
        .to_owned();
    let dir = FunctionsDir {
        deno,
        dir: args.functions_dir,
    };
    let builder = dir.builder().map_err(anyhow::Error::msg)?;
    let mut config = ProjectConfig::standalone(
        ProjectRef::parse(supa_functions::STANDALONE_REF)?,
        edge.jwt_secret,
    );
    config.functions.env = edge.function_env;
    let folder = FolderFunctions::new(functions_root.clone(), builder, edge.verify_jwt, config);
    let runtime = dir.runtime(std::time::Duration::from_secs(args.functions_idle));
    let functions = Functions::new(runtime, folder.clone()).map_err(anyhow::Error::msg)?;
    let app = folder.router(functions);
    let addr = SocketAddr::new(args.ip, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, functions = %functions_root.display(), verify_jwt = edge.verify_jwt, "supa-functions listening");
    axum::serve(supa_core::serve::nodelay(listener), app)
        .with_graceful_shutdown(supa_core::signal::stopped())
        .await?;
    Ok(())
}
