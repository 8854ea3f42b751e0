//! `supa-rest`: serves one database standalone with PostgREST's own
//! settings (`PGRST_DB_URI`, `PGRST_DB_SCHEMAS`, `PGRST_DB_ANON_ROLE`,
//! `PGRST_JWT_SECRET`, `PGRST_SERVER_PORT`, `PGRST_DB_MAX_ROWS`,
//! `PGRST_DB_PRE_REQUEST`, `PGRST_DB_TX_END`, ...), so it can replace
//! PostgREST in an existing deployment (Kubernetes, Knative), or serves
//! AWS Lambda invocations when `AWS_LAMBDA_RUNTIME_API` is set.

mod lambda;

use std::sync::Arc;

use anyhow::Context as _;
use supa_core::Secret;
use supa_rest::{RestConfig, Service};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn config() -> anyhow::Result<(RestConfig, tokio_postgres::Config, String, u16)> {
    let uri = var("PGRST_DB_URI").unwrap_or_else(|| "postgresql://".to_owned());
    let db: tokio_postgres::Config = uri
        .parse()
        .context("PGRST_DB_URI is not a PostgreSQL URI")?;
    if var("PGRST_JWT_SECRET_IS_BASE64").as_deref() == Some("true") {
        anyhow::bail!(
            "PGRST_JWT_SECRET_IS_BASE64=true is not supported yet; give the secret as text"
        );
    }
    let secret = var("PGRST_JWT_SECRET");
    let defaults = RestConfig::default();
    let config = RestConfig {
        schemas: var("PGRST_DB_SCHEMAS")
            .or_else(|| var("PGRST_DB_SCHEMA"))
            .map_or(defaults.schemas, |s| supa_rest::config::list(&s)),
        extra_search_path: var("PGRST_DB_EXTRA_SEARCH_PATH")
            .map_or(defaults.extra_search_path, |s| supa_rest::config::list(&s)),
        anon_role: var("PGRST_DB_ANON_ROLE"),
        jwt_secret: secret.map(Secret::new),
        jwt_aud: var("PGRST_JWT_AUD"),
        max_rows: var("PGRST_DB_MAX_ROWS")
            .map(|v| v.parse())
            .transpose()
            .context("PGRST_DB_MAX_ROWS")?,
        pre_request: var("PGRST_DB_PRE_REQUEST"),
        tx_end: var("PGRST_DB_TX_END")
            .map(|v| v.parse())
            .transpose()
            .map_err(|e| anyhow::anyhow!("PGRST_DB_TX_END: {e}"))?
            .unwrap_or_default(),
        aggregates_enabled: var("PGRST_DB_AGGREGATES_ENABLED").as_deref() == Some("true"),
        plan_enabled: var("PGRST_DB_PLAN_ENABLED").as_deref() == Some("true"),
        pool_size: var("PGRST_DB_POOL")
            .map(|p| p.parse())
            .transpose()
            .context("PGRST_DB_POOL")?,
        openapi_mode: var("PGRST_OPENAPI_MODE")
            .map(|v| v.parse())
            .transpose()
            .map_err(|e| anyhow::anyhow!("PGRST_OPENAPI_MODE: {e}"))?
            .unwrap_or_default(),
        openapi_security_active: var("PGRST_OPENAPI_SECURITY_ACTIVE").as_deref() == Some("true"),
        openapi_server_proxy_uri: var("PGRST_OPENAPI_SERVER_PROXY_URI"),
        root_spec: var("PGRST_DB_ROOT_SPEC"),
        server_timing: var("PGRST_SERVER_TIMING_ENABLED").as_deref() == Some("true"),
        trace_header: var("PGRST_SERVER_TRACE_HEADER"),
        // Standalone, CORS is answered here as PostgREST does: any origin
        // unless a list is given.
        cors: Some(supa_rest::config::Cors::parse(
            &var("PGRST_SERVER_CORS_ALLOWED_ORIGINS").unwrap_or_default(),
        )),
        // PostgREST's access log, at its default level.
        access_log: Some(log_level()?),
    };
    let host = var("PGRST_SERVER_HOST").unwrap_or_else(|| "0.0.0.0".to_owned());
    let host = if host == "*" || host == "!4" {
        "0.0.0.0".to_owned()
    } else {
        host
    };
    let port = var("PGRST_SERVER_PORT")
        .map(|p| p.parse())
        .transpose()
        .context("PGRST_SERVER_PORT")?
        .unwrap_or(3000);
    Ok((config, db, host, port))
}

/// `PGRST_LOG_LEVEL` (crit, error, warn, info, debug; error by default).
fn log_level() -> anyhow::Result<supa_rest::config::LogLevel> {
    var("PGRST_LOG_LEVEL")
        .as_deref()
        .unwrap_or("error")
        .parse()
        .map_err(|e| anyhow::anyhow!("PGRST_LOG_LEVEL: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The server's own messages (stderr) follow the same level; tracing
    // has no `crit`, its `error` is the nearest.
    let filter = match log_level()? {
        supa_rest::config::LogLevel::Crit | supa_rest::config::LogLevel::Error => "error",
        supa_rest::config::LogLevel::Warn => "warn",
        supa_rest::config::LogLevel::Info => "info",
        supa_rest::config::LogLevel::Debug => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .init();
    let (config, db, host, port) = config()?;
    let pool = supa_rest::db::pool(db.clone(), config.pool_size.unwrap_or(10))?;
    let service = Arc::new(Service::new(config, pool)?);
    // PostgREST reloads its schema cache on NOTIFY pgrst; so does this.
    supa_rest::listen_for_reloads(&service, db);
    let app = service.router();
    if var("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lambda::serve(app).await;
    }
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    tracing::info!(%host, port, "supa-rest listening");
    axum::serve(
        supa_core::serve::nodelay(listener),
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}
