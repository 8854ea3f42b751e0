//! `supa up`: the whole platform in one process.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use supa_core::{Secret, env};
use supa_tenant::Placement;
use supa_tenant::platform::{self, ControlPlane, Settings};

/// `supa up` settings; each also has a `SUPA_*` variable.
#[derive(Args)]
pub(crate) struct UpArgs {
    /// Data dir: embedded cluster, master key, tokens.
    #[arg(long, env = env::DATA_DIR, default_value = ".supa")]
    data_dir: PathBuf,
    /// Management API port.
    #[arg(long, env = env::API_PORT, default_value_t = 8001)]
    api_port: u16,
    /// Public gateway port (the gateway is served from this port).
    #[arg(long, env = env::GATEWAY_PORT, default_value_t = 8000)]
    gateway_port: u16,
    /// Address to listen on.
    #[arg(long, env = env::BIND, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Management database URL; an embedded cluster in the data dir when unset.
    #[arg(long, env = env::DATABASE_URL, hide_env_values = true)]
    database_url: Option<String>,
    /// Master key (base64, 32 bytes); generated into the data dir when unset.
    #[arg(long, env = env::MASTER_KEY, hide_env_values = true)]
    master_key: Option<String>,
    /// Management API token; generated into DATA_DIR/admin_token when unset.
    #[arg(long, env = env::ADMIN_TOKEN, hide_env_values = true)]
    admin_token: Option<String>,
    /// Internal directory API token; generated into DATA_DIR/service_token.
    #[arg(long, env = env::SERVICE_TOKEN, hide_env_values = true)]
    service_token: Option<String>,
    /// Redis URL: invalidations are published on `supa:invalidate`.
    #[arg(long, env = env::REDIS_URL, hide_env_values = true)]
    redis_url: Option<String>,
    /// How new projects are spread over workers.
    #[arg(long, env = env::PLACEMENT, default_value = "least-databases")]
    placement: Placement,
    /// Log filter (`tracing` syntax, e.g. `info,supa_tenant=debug`).
    #[arg(long, env = env::LOG, default_value = "info")]
    log: String,
}

pub(crate) async fn run(args: UpArgs) -> anyhow::Result<()> {
    crate::init_logging(&args.log)?;
    let api_addr = SocketAddr::new(args.bind, args.api_port);
    // Bind first: a busy port is reported before anything is started.
    let listener = tokio::net::TcpListener::bind(api_addr)
        .await
        .with_context(|| format!("cannot listen on {api_addr} (use --api-port)"))?;
    let plane = ControlPlane::start(Settings {
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.map(Secret::new),
        master_key: args.master_key.map(Secret::new),
        admin_token: args.admin_token.map(Secret::new),
        service_token: args.service_token.map(Secret::new),
        redis_url: args.redis_url.map(Secret::new),
        placement: args.placement,
    })
    .await?;

    let api_url = format!("http://{api_addr}");
    println!("Supa is up.");
    println!();
    println!("  Management API   {api_url}");
    match &plane.admin_token_file {
        Some(path) => println!("  Admin token      in {}", path.display()),
        None => println!("  Admin token      as given ({})", env::ADMIN_TOKEN),
    }
    match plane.embedded_port() {
        Some(port) => println!(
            "  PostgreSQL       127.0.0.1:{port} (embedded, data in {}), worker `local`",
            args.data_dir.join("pgdata").display()
        ),
        None => println!("  PostgreSQL       external management database"),
    }
    println!(
        "  Gateway          port {} is reserved for the public gateway",
        args.gateway_port
    );
    println!();
    println!("Next:");
    let dir_flag = if args.data_dir.as_os_str() == ".supa" {
        String::new()
    } else {
        format!(" --data-dir {}", args.data_dir.display())
    };
    let url_flag = if api_url == "http://127.0.0.1:8001" {
        String::new()
    } else {
        format!(" --api-url {api_url}")
    };
    println!("  supa projects create demo{dir_flag}{url_flag}");
    println!("  supa projects list{dir_flag}{url_flag}");
    println!();
    println!("Ctrl-C stops the platform (and the embedded PostgreSQL).");

    platform::serve(listener, plane.router(), platform::shutdown_signal()).await?;
    tracing::info!("shutting down");
    plane.shutdown().await?;
    Ok(())
}
