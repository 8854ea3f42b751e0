//! `supa-storage`: one database's storage server standalone, configured by
//! Supabase Storage's own environment (`DATABASE_URL`, `AUTH_JWT_SECRET`,
//! `STORAGE_BACKEND`, `FILE_STORAGE_BACKEND_PATH`, `STORAGE_S3_*`,
//! `FILE_SIZE_LIMIT`, `TENANT_ID`, `SERVER_PORT`, `TUS_URL_EXPIRY_MS`,
//! `S3_PROTOCOL_ACCESS_KEY_ID`/`_SECRET`, ...), so it can replace
//! the storage container of Supabase's docker-compose. It creates the
//! storage schema on start when the database has none.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Extension;
use supa_core::{ProjectConfig, ProjectRef};
use supa_storage::{Backend, Storage, storage_env};

/// The one project a standalone server serves.
const REF: &str = "standalonestorageone";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let env = storage_env::read(std::env::vars()).map_err(|e| anyhow::anyhow!(e))?;
    let db: tokio_postgres::Config = env
        .database_url
        .expose()
        .parse()
        .context("DATABASE_URL is not a PostgreSQL URL")?;
    let backend = Backend::new(&env.backend).map_err(|e| anyhow::anyhow!(e))?;
    let project_ref = ProjectRef::parse(REF)?;
    let storage = Storage::single(project_ref, &env.tenant_id, db.clone(), 10, backend)
        .map_err(|e| anyhow::anyhow!(e.message))?
        .with_upload_expiry(env.upload_expiry);
    // The database may start after this server (docker-compose): wait.
    supa_db::when_ready(30, async || storage.migrate(project_ref).await)
        .await
        .map_err(|e| anyhow::anyhow!("cannot prepare the storage schema: {e}"))?;
    let config = ProjectConfig {
        storage: env.settings,
        storage_database: Some(supa_db::login_of(&db)),
        s3_credentials: env.s3_credential.into_iter().collect(),
        publishable_key: env.anon_key,
        ..ProjectConfig::standalone(project_ref, env.jwt_secret)
    };
    tracing::info!(backend = storage.backend().describe(), "supa-storage ready");
    let swept = config.clone();
    tokio::spawn(storage.clone().sweep_forever(
        supa_storage::SWEEP_INTERVAL,
        supa_storage::SWEEP_GRACE,
        move || std::future::ready(vec![swept.clone()]),
    ));
    let app = supa_storage::router(storage).layer(Extension(Arc::new(config)));
    let listener = tokio::net::TcpListener::bind((env.host.as_str(), env.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", env.host, env.port))?;
    tracing::info!(host = %env.host, port = env.port, "supa-storage listening");
    axum::serve(supa_core::serve::nodelay(listener), app)
        .with_graceful_shutdown(supa_core::signal::stopped())
        .await?;
    Ok(())
}
