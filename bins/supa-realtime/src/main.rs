//! `supa-realtime`: one database's realtime server standalone, configured
//! by Supabase Realtime's own environment (`PORT`, `DB_HOST`, `DB_PORT`,
//! `DB_USER`, `DB_PASSWORD`, `DB_NAME`, `API_JWT_SECRET`), so it can
//! replace the realtime container of Supabase's docker-compose: the socket
//! at `/socket/websocket` (where Kong sends `/realtime/v1/`), the REST API
//! at `/api`, and the health check docker-compose runs. It creates the
//! realtime schema on start when the database has none.

use std::sync::Arc;

use anyhow::Context as _;
use axum::routing::get;
use axum::{Extension, Json, Router};
use supa_core::{ProjectConfig, ProjectRef};
use supa_realtime::{FeedTiming, Realtime, realtime_env};

/// The one project a standalone server serves.
const REF: &str = "standalonerealtimeon";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let env = realtime_env::read(std::env::vars()).map_err(|e| anyhow::anyhow!(e))?;
    // The database may start after this server (docker-compose): wait.
    supa_db::when_ready(30, async || {
        let (mut client, connection) = supa_db::pg_config(&env.database, "supa-realtime")
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(connection);
        supa_realtime::schema::migrate(&mut client).await
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot prepare the realtime schema: {e}"))?;
    let realtime = Realtime::start(
        env.redis_url.as_deref(),
        FeedTiming {
            grace: env.slot_grace,
            ..FeedTiming::default()
        },
    )
    .map_err(anyhow::Error::msg)?;
    let config = ProjectConfig {
        realtime_database: Some(env.database.clone()),
        ..ProjectConfig::standalone(ProjectRef::parse(REF)?, env.jwt_secret)
    };
    let api = supa_realtime::router(realtime.clone());
    let app = Router::new()
        .route(
            "/api/tenants/{tenant}/health",
            get(|| async { Json(serde_json::json!({"healthy": true})) }),
        )
        .nest("/socket", api.clone())
        .fallback_service(api)
        .layer(Extension(Arc::new(config)));
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", env.port))
        .await
        .with_context(|| format!("cannot listen on port {}", env.port))?;
    tracing::info!(port = env.port, "supa-realtime listening");
    axum::serve(supa_core::serve::nodelay(listener), app)
        .with_graceful_shutdown(async move {
            supa_core::signal::stopped().await;
            // Sockets are told to reconnect before the listener closes.
            realtime.drain(std::time::Duration::from_secs(5)).await;
        })
        .await?;
    Ok(())
}
