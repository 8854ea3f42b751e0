//! `supa-tenant-manager`: the control plane alone, for deployments where
//! gateways run as separate services (ECS, Kubernetes).
//!
//! The management database and the workers are given by URL and through
//! the Management API; nothing is started locally. Gateways reach it on the
//! internal directory API with the service token.

use anyhow::Context as _;
use clap::Parser;
use std::net::SocketAddr;
use supa_core::env;
use supa_tenant::platform::{self, ControlPlane, SettingsArgs};

/// Supa's tenant manager: Management API and internal directory API.
#[derive(Parser)]
#[command(name = "supa-tenant-manager", version)]
struct Args {
    /// Management database URL (created and migrated if missing).
    #[arg(long, env = env::DATABASE_URL, hide_env_values = true)]
    database_url: String,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Address to listen on.
    #[arg(long, env = env::BIND, default_value = "0.0.0.0")]
    bind: std::net::IpAddr,
    /// Port of the Management and internal APIs.
    #[arg(long, env = env::API_PORT, default_value_t = 8001)]
    port: u16,
    /// The gateways' public URL, shown by Studio with each project.
    #[arg(long, env = env::GATEWAY_URL, default_value = "http://127.0.0.1:8000")]
    gateway_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env::Parsed { args, profile, .. } = env::parse_args::<Args>();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.settings.log)
        .map_err(|e| anyhow::anyhow!("bad log filter {:?}: {e}", args.settings.log))?;
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let plane = ControlPlane::start(
        args.settings
            .into_settings(Some(args.database_url), profile)?,
    )
    .await?;
    // Gateways serve storage; the sweep of orphaned bytes runs here, once.
    plane.spawn_storage_sweep();
    plane.spawn_backup_schedule();
    tracing::info!(%addr, "tenant manager listening");
    let studio = supa_studio::Studio::new(
        plane.tenant.clone(),
        supa_tenant::api::pg_service(plane.tenant.clone(), plane.meta().clone()),
        &plane.tokens.admin,
        &args.gateway_url,
    );
    let router = plane.router().merge(supa_studio::router(studio));
    platform::serve(listener, router, platform::shutdown_signal()).await?;
    plane.shutdown().await?;
    Ok(())
}
