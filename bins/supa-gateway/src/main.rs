//! `supa-gateway`: the public gateway alone, for deployments where the
//! tenant manager runs as its own service. Project configs and keys come
//! from the tenant manager's internal API (service token), through Redis
//! when given (shared by replicas, and the invalidation channel).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use supa_core::{ProjectDirectory, Secret, env};
use supa_router::{
    Gateway, GatewayConfig, HttpDirectory, Metrics, RedisDirectory, follow_invalidations,
    hand_usage_to_redis, remote_meta,
};

/// Supa's gateway.
#[derive(Parser)]
#[command(name = "supa-gateway", version)]
struct Args {
    /// Base URL of the tenant manager's internal API.
    #[arg(long, env = env::TENANT_URL)]
    tenant_url: url::Url,
    /// Bearer token of the internal API.
    #[arg(long, env = env::SERVICE_TOKEN, hide_env_values = true)]
    service_token: String,
    /// Redis URL: shared cache and invalidations (optional).
    #[arg(long, env = env::REDIS_URL, hide_env_values = true)]
    redis_url: Option<String>,
    /// Redis password, when not in the URL.
    #[arg(long, env = env::REDIS_PASSWORD, hide_env_values = true)]
    redis_password: Option<String>,
    /// Serve `{ref}.{base_domain}` hosts as projects.
    #[arg(long, env = env::BASE_DOMAIN)]
    base_domain: Option<String>,
    /// Requests a second each project may make at this gateway (default:
    /// no limit); over it, 429 with `Retry-After`.
    #[arg(long, env = env::PROJECT_RATE_LIMIT)]
    project_rate_limit: Option<u32>,
    /// Seconds a project's config and a key stay cached in this gateway
    /// (and in Redis).
    #[arg(long, env = env::GATEWAY_CACHE_TTL, default_value_t = 60)]
    cache_ttl: u64,
    /// Seconds past that the last config and key read keep serving while
    /// the tenant manager cannot be reached.
    #[arg(long, env = env::GATEWAY_STALE_IF_ERROR, default_value_t = 3600)]
    stale_if_error: u64,
    /// Seconds a stop (SIGTERM) keeps serving with `Connection: close` on
    /// every response before the listener closes, so the load balancer
    /// moves off this replica's kept-alive connections without a reset.
    #[arg(long, env = env::DRAIN_SECS, default_value_t = 2)]
    drain_secs: u64,
    /// Threads serving the public port (default: one per CPU).
    #[arg(long, env = env::GATEWAY_THREADS)]
    threads: Option<usize>,
    /// Address to listen on.
    #[arg(long, env = env::BIND, default_value = "0.0.0.0")]
    bind: std::net::IpAddr,
    /// Public port.
    #[arg(long, env = env::GATEWAY_PORT, default_value_t = 8000)]
    port: u16,
    /// Admin port: `/metrics` (Prometheus) and `/health`.
    #[arg(long, env = env::API_PORT, default_value_t = 8001)]
    admin_port: u16,
    /// Log filter (`tracing` syntax).
    #[arg(long, env = env::LOG, default_value = "info")]
    log: String,
    /// Seconds a project keeps its realtime replication slot after its
    /// last channel leaves.
    #[arg(long, env = env::REALTIME_SLOT_GRACE, default_value_t = 10)]
    realtime_slot_grace: u64,
    /// The deno binary that runs edge functions (default: the one the
    /// bootstrap installs, else deno on PATH; without one, `/functions/v1`
    /// is not served).
    #[arg(long, env = env::DENO)]
    deno: Option<std::path::PathBuf>,
    /// Where function bundles and worker sockets live.
    #[arg(long, env = env::FUNCTIONS_DIR, default_value = ".supa-functions")]
    functions_dir: std::path::PathBuf,
    /// Seconds an idle edge function worker lives.
    #[arg(long, env = env::FUNCTIONS_IDLE, default_value_t = 60)]
    functions_idle: u64,
    /// Where the file storage backend keeps objects (`DATA_DIR/storage`);
    /// several gateways need `s3` or a shared volume.
    #[arg(long, env = env::DATA_DIR, default_value = ".supa")]
    data_dir: std::path::PathBuf,
    #[command(flatten)]
    storage: supa_storage::StorageArgs,
    #[command(flatten)]
    serve: supa_core::serve::ServeArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env::Parsed {
        mut args, profile, ..
    } = env::parse_args::<Args>();
    args.redis_url = env::redis_url(args.redis_url.as_deref(), args.redis_password.as_deref())
        .map_err(anyhow::Error::msg)?;
    let refused = profile.refusals(&supa_core::profile::Posture {
        redis_url: args.redis_url.as_deref(),
        tokens: vec![(env::SERVICE_TOKEN, Some(&args.service_token))],
        ..Default::default()
    });
    anyhow::ensure!(refused.is_empty(), refused.join("\n"));
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .map_err(|e| anyhow::anyhow!("bad log filter {:?}: {e}", args.log))?;
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let config = GatewayConfig {
        base_domain: args.base_domain,
        project_rate_limit: args.project_rate_limit,
        max_body_bytes: args.serve.max_body_bytes,
        ttl: std::time::Duration::from_secs(args.cache_ttl.max(1)),
        stale_if_error: std::time::Duration::from_secs(args.stale_if_error),
        ..GatewayConfig::default()
    };
    let metrics = Arc::new(Metrics::default());
    let token = Secret::new(args.service_token);
    let http = Arc::new(HttpDirectory::new(args.tenant_url.as_str(), token.clone()));
    let remote: Arc<dyn ProjectDirectory> = http.clone();
    let (directory, l2): (Arc<dyn ProjectDirectory>, _) = match &args.redis_url {
        Some(url) => {
            let l2 = Arc::new(RedisDirectory::new(
                url,
                &token,
                remote,
                config.ttl,
                config.negative_ttl,
                metrics.clone(),
            )?);
            (l2.clone(), Some(l2))
        }
        None => (remote, None),
    };
    let realtime = supa_realtime::Realtime::start(
        args.redis_url.as_deref(),
        supa_realtime::FeedTiming {
            grace: std::time::Duration::from_secs(args.realtime_slot_grace),
            ..Default::default()
        },
    )
    .map_err(anyhow::Error::msg)?;
    let backend = args
        .storage
        .backend(&args.data_dir)
        .map_err(anyhow::Error::msg)?;
    let storage = supa_storage::Storage::new(
        supa_storage::Backend::new(&backend).map_err(|e| anyhow::anyhow!("{e}"))?,
        200,
        std::time::Duration::from_secs(300),
    );
    // `/pg` goes to the tenant manager, which holds the admin logins.
    let mut gateway = Gateway::new(directory, config, metrics.clone())
        .mount("/pg", remote_meta(&args.tenant_url, token.clone()))
        .mount("/auth/v1", supa_auth::router(supa_auth::Auth::default()))
        .mount("/storage/v1", supa_storage::router(storage))
        .mount("/realtime/v1", supa_realtime::router(realtime.clone()));
    // Bundles come from the tenant manager, once per version.
    match supa_functions::find_deno(args.deno.as_deref()) {
        Some(deno) => {
            let dir = supa_functions::FunctionsDir {
                deno,
                dir: args.functions_dir,
            };
            let runtime = dir.runtime(std::time::Duration::from_secs(args.functions_idle));
            let functions =
                supa_functions::Functions::new(runtime, http).map_err(anyhow::Error::msg)?;
            gateway = gateway.mount("/functions/v1", functions.router());
        }
        None => tracing::warn!(
            "no deno found (set {}): /functions/v1 is not served",
            env::DENO
        ),
    }
    let gateway = Arc::new(gateway);
    if let Some(url) = &args.redis_url {
        follow_invalidations(url, gateway.clone(), l2);
        // Studio's per-project charts read the gateways' minutes there.
        hand_usage_to_redis(url, metrics.usage.clone())?;
    }
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let admin_addr = SocketAddr::new(args.bind, args.admin_port);
    let admin_listener = tokio::net::TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("cannot listen on {admin_addr}"))?;
    tracing::info!(%addr, %admin_addr, "gateway listening");
    let drain = supa_core::serve::Drain::default();
    let health_drain = drain.clone();
    let admin = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || async move { metrics.render() }),
        )
        .route(
            "/health",
            axum::routing::get(move || {
                let draining = health_drain.draining();
                async move {
                    if draining {
                        let body = axum::Json(serde_json::json!({"status": "draining"}));
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, body)
                    } else {
                        let body = axum::Json(serde_json::json!({"status": "ok"}));
                        (axum::http::StatusCode::OK, body)
                    }
                }
            }),
        );
    let public = supa_core::serve::per_thread(
        listener,
        drain.layer(gateway.router()),
        args.serve.serving(args.threads),
        // On SIGTERM, requests keep being served through the drain window
        // while realtime sockets are told to reconnect (to another
        // replica); then the listener closes and requests in flight finish.
        async move {
            supa_core::signal::stopped().await;
            let window = std::time::Duration::from_secs(args.drain_secs);
            tokio::join!(
                drain.run(window),
                realtime.drain(window.max(std::time::Duration::from_secs(1)))
            );
        },
    );
    // The admin port outlives the public one, answering health checks
    // with 503 through the drain.
    let (public_done, mut public_stopped) = tokio::sync::watch::channel(false);
    let public = async move {
        let served = public.await;
        let _ = public_done.send(true);
        served
    };
    let admin = axum::serve(admin_listener, admin).with_graceful_shutdown(async move {
        let _ = public_stopped.wait_for(|done| *done).await;
    });
    let (public, admin) = tokio::join!(public, admin);
    public?;
    admin?;
    Ok(())
}
