//! `supa-storage`: one database's storage server standalone, configured by
//! Supabase Storage's own environment (`DATABASE_URL`, `AUTH_JWT_SECRET`,
//! `STORAGE_BACKEND`, `FILE_STORAGE_BACKEND_PATH`, `STORAGE_S3_*`,
//! `FILE_SIZE_LIMIT`, `TENANT_ID`, `SERVER_PORT`, ...), so it can replace
//! the storage container of Supabase's docker-compose. It creates the
//! storage schema on start when the database has none.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Extension;
use supa_core::{ProjectConfig, ProjectDatabase, ProjectRef, ProjectStatus, Secret};
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
        .map_err(|e| anyhow::anyhow!(e.message))?;
    // The database may start after this server (docker-compose): wait.
    let mut tries = 0;
    while let Err(e) = storage.migrate(project_ref).await {
        tries += 1;
        anyhow::ensure!(tries < 30, "cannot prepare the storage schema: {e}");
        tracing::warn!(error = %e, "database not ready; retrying");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let host = match db.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".into(),
    };
    let config = ProjectConfig {
        project_ref,
        status: ProjectStatus::ActiveHealthy,
        jwt_secret: env.jwt_secret,
        upstream: Default::default(),
        services: Default::default(),
        postgrest: Default::default(),
        auth: Default::default(),
        storage: env.settings,
        smtp_pass: None,
        auth_secrets: Default::default(),
        database: None,
        auth_database: None,
        storage_database: Some(ProjectDatabase {
            host,
            port: db.get_ports().first().copied().unwrap_or(5432),
            name: db.get_dbname().unwrap_or("postgres").to_owned(),
            user: db.get_user().unwrap_or("postgres").to_owned(),
            password: Secret::new(
                String::from_utf8_lossy(db.get_password().unwrap_or_default()).into_owned(),
            ),
        }),
    };
    tracing::info!(backend = storage.backend().describe(), "supa-storage ready");
    let app = supa_storage::router(storage).layer(Extension(Arc::new(config)));
    let listener = tokio::net::TcpListener::bind((env.host.as_str(), env.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", env.host, env.port))?;
    tracing::info!(host = %env.host, port = env.port, "supa-storage listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await?;
    Ok(())
}
