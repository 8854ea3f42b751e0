//! `supa-auth`: one database's auth server standalone, configured by
//! GoTrue's own environment (`GOTRUE_JWT_SECRET`, `DATABASE_URL`,
//! `API_EXTERNAL_URL`, `GOTRUE_SITE_URL`, `GOTRUE_SMTP_*`, ...), so it can
//! replace the auth container of Supabase's docker-compose. It creates or
//! migrates the auth schema on start, as GoTrue does.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Extension;
use supa_auth::{Auth, PublicUrls, gotrue_env};
use supa_core::{ProjectConfig, ProjectDatabase, ProjectRef, ProjectStatus, Secret};

/// The one project a standalone server serves.
const REF: &str = "standaloneauthserver";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GOTRUE_LOG_LEVEL")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut env = gotrue_env::read(std::env::vars()).map_err(|e| anyhow::anyhow!(e.msg))?;
    env.ignored.retain(|v| v != "GOTRUE_LOG_LEVEL");
    for name in &env.ignored {
        tracing::warn!(variable = %name, "not read by supa-auth; ignored");
    }
    let db: tokio_postgres::Config = env
        .database_url
        .expose()
        .parse()
        .context("DATABASE_URL is not a PostgreSQL URL")?;
    let project_ref = ProjectRef::parse(REF)?;
    let auth = Auth::single(project_ref, db.clone(), 10).map_err(|e| anyhow::anyhow!(e.msg))?;
    // The database may start after this server (docker-compose): wait.
    let mut tries = 0;
    while let Err(e) = auth.migrate(project_ref).await {
        tries += 1;
        anyhow::ensure!(tries < 30, "cannot prepare the auth schema: {e}");
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
        auth: env.settings,
        smtp_pass: env.smtp_pass,
        storage: Default::default(),
        auth_secrets: env.auth_secrets,
        database: None,
        auth_database: Some(ProjectDatabase {
            host,
            port: db.get_ports().first().copied().unwrap_or(5432),
            name: db.get_dbname().unwrap_or("postgres").to_owned(),
            user: db.get_user().unwrap_or("postgres").to_owned(),
            password: Secret::new(
                String::from_utf8_lossy(db.get_password().unwrap_or_default()).into_owned(),
            ),
        }),
        storage_database: None,
    };
    let urls = PublicUrls {
        issuer: env.issuer,
        verify_url: env.verify_url,
        callback_url: env.callback_url,
    };
    let app = supa_auth::router(auth)
        .layer(Extension(Arc::new(config)))
        .layer(Extension(urls));
    let listener = tokio::net::TcpListener::bind((env.host.as_str(), env.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", env.host, env.port))?;
    tracing::info!(host = %env.host, port = env.port, "supa-auth listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    })
    .await?;
    Ok(())
}
