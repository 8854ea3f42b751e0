//! supa-meta standalone, a drop-in for the postgres-meta container: it
//! reads postgres-meta's own settings (`PG_META_DB_URL`, or
//! `PG_META_DB_HOST`/`_PORT`/`_NAME`/`_USER`/`_PASSWORD`; `PG_META_HOST`,
//! `PG_META_PORT`) and serves that one database's metadata.

use std::net::SocketAddr;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use supa_core::{ProjectDatabase, ProjectRef, Secret};
use supa_meta::{FixedDatabase, Meta};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The database, as postgres-meta reads its settings.
fn database() -> anyhow::Result<ProjectDatabase> {
    let url = match var("PG_META_DB_URL") {
        Some(url) => url,
        None => format!(
            "postgresql://{}:{}@{}:{}/{}",
            var("PG_META_DB_USER").unwrap_or_else(|| "postgres".into()),
            var("PG_META_DB_PASSWORD").unwrap_or_else(|| "postgres".into()),
            var("PG_META_DB_HOST").unwrap_or_else(|| "localhost".into()),
            var("PG_META_DB_PORT").unwrap_or_else(|| "5432".into()),
            var("PG_META_DB_NAME").unwrap_or_else(|| "postgres".into()),
        ),
    };
    let config = tokio_postgres::Config::from_str(&url).context("PG_META_DB_URL")?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => anyhow::bail!("PG_META_DB_URL: a TCP host is required"),
    };
    Ok(ProjectDatabase {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        name: config.get_dbname().unwrap_or("postgres").to_owned(),
        user: config.get_user().unwrap_or("postgres").to_owned(),
        password: Secret::new(
            config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
        ),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            var("PG_META_LOG_LEVEL").unwrap_or_else(|| "info".into()),
        ))
        .init();
    let meta = Meta::new(
        Arc::new(FixedDatabase(database()?)),
        1,
        Duration::from_secs(300),
    );
    // One database: every request is for the same (placeholder) project.
    let project = ProjectRef::parse("postgresmetapostgres").expect("a valid ref");
    let router = supa_meta::router(meta);
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let router = router.clone();
        async move { supa_meta::serve(router, project, request).await }
    });
    let host = var("PG_META_HOST").unwrap_or_else(|| "0.0.0.0".into());
    let port: u16 = var("PG_META_PORT")
        .map(|p| p.parse())
        .transpose()
        .context("PG_META_PORT")?
        .unwrap_or(1337);
    let addr = SocketAddr::new(host.parse().context("PG_META_HOST")?, port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, "supa-meta serving");
    axum::serve(supa_core::serve::nodelay(listener), app)
        .with_graceful_shutdown(supa_core::signal::stopped())
        .await?;
    Ok(())
}
