//! `supa-tenant-manager`: the control plane alone, for deployments where
//! gateways run as separate services (ECS, Kubernetes).
//!
//! The management database and the workers are given by URL and through
//! the Management API; nothing is started locally. Gateways reach it on the
//! internal directory API with the service token.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use supa_core::{Secret, env};
use supa_tenant::Placement;
use supa_tenant::platform::{self, ControlPlane, Settings};

/// Supa's tenant manager: Management API and internal directory API.
#[derive(Parser)]
#[command(name = "supa-tenant-manager", version)]
struct Args {
    /// Management database URL (created and migrated if missing).
    #[arg(long, env = env::DATABASE_URL, hide_env_values = true)]
    database_url: String,
    /// Master key (base64, 32 bytes). Give the same key to every replica;
    /// when unset one is generated into the data dir.
    #[arg(long, env = env::MASTER_KEY, hide_env_values = true)]
    master_key: Option<String>,
    /// Management API token; generated into DATA_DIR/admin_token when unset.
    #[arg(long, env = env::ADMIN_TOKEN, hide_env_values = true)]
    admin_token: Option<String>,
    /// Internal directory API token; generated into DATA_DIR/service_token.
    #[arg(long, env = env::SERVICE_TOKEN, hide_env_values = true)]
    service_token: Option<String>,
    /// Where generated keys and tokens are kept.
    #[arg(long, env = env::DATA_DIR, default_value = ".supa")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = env::BIND, default_value = "0.0.0.0")]
    bind: std::net::IpAddr,
    /// Port of the Management and internal APIs.
    #[arg(long, env = env::API_PORT, default_value_t = 8001)]
    port: u16,
    /// Redis URL: invalidations are published on `supa:invalidate`.
    #[arg(long, env = env::REDIS_URL, hide_env_values = true)]
    redis_url: Option<String>,
    /// How new projects are spread over workers.
    #[arg(long, env = env::PLACEMENT, default_value = "least-databases")]
    placement: Placement,
    /// Log filter (`tracing` syntax).
    #[arg(long, env = env::LOG, default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = env::parse_args();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .map_err(|e| anyhow::anyhow!("bad log filter {:?}: {e}", args.log))?;
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let plane = ControlPlane::start(Settings {
        data_dir: args.data_dir,
        database_url: Some(Secret::new(args.database_url)),
        master_key: args.master_key.map(Secret::new),
        admin_token: args.admin_token.map(Secret::new),
        service_token: args.service_token.map(Secret::new),
        redis_url: args.redis_url.map(Secret::new),
        placement: args.placement,
    })
    .await?;
    tracing::info!(%addr, "tenant manager listening");
    platform::serve(listener, plane.router(), platform::shutdown_signal()).await?;
    plane.shutdown().await?;
    Ok(())
}
