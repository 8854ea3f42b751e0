//! `supa up`: the whole platform in one process.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use supa_core::env;
use supa_router::{Gateway, GatewayConfig, Metrics};
use supa_tenant::platform::{self, ControlPlane, SettingsArgs};

/// How long a stop waits for realtime sockets to leave.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// `supa up` settings; each also has a `SUPA_*` variable.
#[derive(Args)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(flatten)]
    serve: supa_core::serve::ServeArgs,
    /// Management API port.
    #[arg(long, env = env::API_PORT, default_value_t = 8001)]
    api_port: u16,
    /// Public gateway port (the gateway is served from this port).
    #[arg(long, env = env::GATEWAY_PORT, default_value_t = 8000)]
    gateway_port: u16,
    /// Requests a second each project may make (default: no limit); over
    /// it, 429 with `Retry-After`.
    #[arg(long, env = env::PROJECT_RATE_LIMIT)]
    project_rate_limit: Option<u32>,
    /// Threads serving the gateway port (default: one per CPU).
    #[arg(long, env = env::GATEWAY_THREADS)]
    gateway_threads: Option<usize>,
    /// Address to listen on.
    #[arg(long, env = env::BIND, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Management database URL; an embedded cluster in the data dir when unset.
    #[arg(long, env = env::DATABASE_URL, hide_env_values = true)]
    database_url: Option<String>,
    /// Serve `{ref}.{base_domain}` hosts as projects (besides `/project/{ref}`).
    #[arg(long, env = env::BASE_DOMAIN)]
    base_domain: Option<String>,
    /// Seconds a project keeps its realtime replication slot after its
    /// last channel leaves.
    #[arg(long, env = env::REALTIME_SLOT_GRACE, default_value_t = 10)]
    realtime_slot_grace: u64,
    /// Seconds an idle edge function worker lives.
    #[arg(long, env = env::FUNCTIONS_IDLE, default_value_t = 60)]
    functions_idle: u64,
}

pub(crate) async fn run(args: UpArgs, profile: supa_core::Profile) -> anyhow::Result<()> {
    crate::init_logging(&args.settings.log)?;
    let data_dir = args.settings.data_dir.clone();
    let api_addr = SocketAddr::new(args.bind, args.api_port);
    // Bind first: a busy port is reported before anything is started.
    let listener = tokio::net::TcpListener::bind(api_addr)
        .await
        .with_context(|| format!("cannot listen on {api_addr} (use --api-port)"))?;
    let gateway_addr = SocketAddr::new(args.bind, args.gateway_port);
    let gateway_listener = tokio::net::TcpListener::bind(gateway_addr)
        .await
        .with_context(|| format!("cannot listen on {gateway_addr} (use --gateway-port)"))?;
    let redis_url = args.settings.redis_url()?;
    let realtime = supa_realtime::Realtime::start(
        redis_url.as_deref(),
        supa_realtime::FeedTiming {
            grace: std::time::Duration::from_secs(args.realtime_slot_grace),
            ..Default::default()
        },
    )
    .map_err(anyhow::Error::msg)?;
    let plane =
        ControlPlane::start(args.settings.into_settings(args.database_url, profile)?).await?;
    let metrics = Arc::new(Metrics::default());
    let storage = supa_storage::Storage::new(
        plane.object_store().clone(),
        200,
        std::time::Duration::from_secs(300),
    );
    let mut gateway = Gateway::new(
        Arc::new(plane.tenant.clone()),
        GatewayConfig {
            base_domain: args.base_domain.clone(),
            project_rate_limit: args.project_rate_limit,
            max_body_bytes: args.serve.max_body_bytes,
            ..GatewayConfig::default()
        },
        metrics.clone(),
    )
    .mount(
        "/pg",
        supa_tenant::api::pg_service(plane.tenant.clone(), plane.meta().clone()),
    )
    .mount("/auth/v1", supa_auth::router(supa_auth::Auth::default()))
    .mount("/storage/v1", supa_storage::router(storage.clone()))
    .mount("/realtime/v1", supa_realtime::router(realtime.clone()));
    // Without Deno, `/functions/v1` answers that the service is not here.
    if let Some(setup) = plane.functions() {
        let functions = supa_functions::Functions::new(
            setup.runtime(std::time::Duration::from_secs(args.functions_idle)),
            Arc::new(plane.tenant.clone()),
        )
        .map_err(anyhow::Error::msg)?;
        gateway = gateway.mount("/functions/v1", functions.router());
    }
    let gateway = Arc::new(gateway);
    plane.spawn_storage_sweep();
    plane.spawn_backup_schedule();
    // Revocations and deletions reach this gateway's caches at once.
    let hook = gateway.clone();
    plane.tenant.on_invalidate(move |what| {
        let gateway = hook.clone();
        let message = what.message();
        tokio::spawn(async move { gateway.invalidate(&message).await });
    });
    // Studio's per-project charts: gateways elsewhere may share this Redis,
    // so the minutes meet there; alone, Studio reads this gateway's.
    match &redis_url {
        Some(url) => supa_router::hand_usage_to_redis(url, metrics.usage.clone())?,
        None => plane
            .tenant
            .set_usage_source(supa_tenant::UsageSource::Local(metrics.usage.clone())),
    }

    // What a client on this machine dials: loopback when bound to all.
    let local = |addr: SocketAddr| {
        if addr.ip().is_unspecified() {
            format!("http://127.0.0.1:{}", addr.port())
        } else {
            format!("http://{addr}")
        }
    };
    let api_url = local(api_addr);
    let gateway_url = local(gateway_addr);
    let urls = crate::Urls {
        api_url: api_url.clone(),
        gateway_url: gateway_url.clone(),
    };
    std::fs::write(
        data_dir.join(crate::URLS_FILE),
        serde_json::to_vec_pretty(&urls)?,
    )
    .with_context(|| format!("cannot write {}", data_dir.join(crate::URLS_FILE).display()))?;
    println!("Supa is up.");
    println!();
    println!("  Management API   {api_url}");
    match &plane.admin_token_file {
        Some(path) => println!("  Admin token      in {}", path.display()),
        None => println!("  Admin token      as given ({})", env::ADMIN_TOKEN),
    }
    match plane.embedded() {
        Some(pg) => println!(
            "  PostgreSQL       127.0.0.1:{} (embedded, data in {}), worker `local`",
            pg.port(),
            pg.pgdata().display()
        ),
        None => println!("  PostgreSQL       external management database"),
    }
    println!("  Gateway          {gateway_url}/project/<ref>  (the URL Supabase clients take)");
    println!("  Studio           {api_url}/  (sign in with the admin token)");
    println!();
    println!("Next:");
    let dir_flag = if data_dir.as_os_str() == ".supa" {
        String::new()
    } else {
        format!(" --data-dir {}", data_dir.display())
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

    // One signal stops both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        platform::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // The admin listener also serves the gateway's metrics, and Studio.
    let studio = supa_studio::Studio::new(
        plane.tenant.clone(),
        supa_tenant::api::pg_service(plane.tenant.clone(), plane.meta().clone()),
        &plane.tokens.admin,
        &gateway_url,
    );
    let admin = plane.router().merge(supa_studio::router(studio)).route(
        "/metrics",
        axum::routing::get(move || async move { metrics.render() }),
    );
    let api = platform::serve(listener, admin, until_stopped(stopped.clone()));
    let public = async {
        supa_core::serve::per_thread(
            gateway_listener,
            gateway.router(),
            args.serve.serving(args.gateway_threads),
            // Realtime sockets are told to reconnect before the listener
            // closes; requests keep being served meanwhile.
            async move {
                until_stopped(stopped).await;
                realtime.drain(DRAIN).await;
            },
        )
        .await
        .context("serve the gateway")
    };
    let (api, public) = tokio::join!(api, public);
    api?;
    public?;
    tracing::info!("shutting down");
    plane.shutdown().await?;
    Ok(())
}
