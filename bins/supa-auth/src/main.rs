//! `supa-auth`: one database's auth server standalone, configured by
//! GoTrue's own environment (`GOTRUE_JWT_SECRET`, `DATABASE_URL`,
//! `API_EXTERNAL_URL`, `GOTRUE_SITE_URL`, `GOTRUE_SMTP_*`, ...), so it can
//! replace the auth container of Supabase's docker-compose. It creates or
//! migrates the auth schema on start, as GoTrue does.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Extension;
use supa_auth::{Auth, PublicUrls, gotrue_env};
use supa_core::{ProjectConfig, ProjectRef};

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
    supa_db::when_ready(30, async || auth.migrate(project_ref).await)
        .await
        .map_err(|e| anyhow::anyhow!("cannot prepare the auth schema: {e}"))?;
    let config = ProjectConfig {
        auth: env.settings,
        smtp_pass: env.smtp_pass,
        auth_secrets: env.auth_secrets,
        auth_database: Some(supa_db::login_of(&db)),
        ..ProjectConfig::standalone(project_ref, env.jwt_secret)
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
        supa_core::serve::nodelay(listener),
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(supa_core::signal::stopped())
    .await?;
    Ok(())
}
