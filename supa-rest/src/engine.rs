//! Many databases behind one engine: a [`Service`] per project, created on
//! first request, closed after an idle time, reloaded on
//! `NOTIFY pgrst, 'reload schema'`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use futures_util::StreamExt as _;
use supa_core::Secret;

use crate::service::{Auth, Service};
use crate::{Error, RestConfig};

/// How to reach one project's database.
#[derive(Debug, Clone)]
pub struct ProjectDb {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database name (`proj_{ref}`).
    pub database: String,
    /// Login role (`{ref}_authenticator`).
    pub user: String,
    /// Its password.
    pub password: Secret<String>,
}

impl ProjectDb {
    /// As a driver configuration.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .dbname(&self.database)
            .user(&self.user)
            .password(self.password.expose())
            .application_name("supa-rest")
            .connect_timeout(Duration::from_secs(10));
        c
    }
}

/// Serves many projects; cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    services: Arc<Mutex<HashMap<String, Arc<Service>>>>,
    pool_size: usize,
}

impl Engine {
    /// An engine whose per-project pools hold at most `pool_size`
    /// connections and are closed after `idle` without requests.
    pub fn new(pool_size: usize, idle: Duration) -> Self {
        let engine = Self {
            services: Arc::default(),
            pool_size,
        };
        let weak = Arc::downgrade(&engine.services);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(idle.max(Duration::from_secs(1)) / 2);
            loop {
                tick.tick().await;
                let Some(services) = weak.upgrade() else {
                    return;
                };
                let now = supa_keys::unix_now() as u64;
                services
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|_, s| now.saturating_sub(s.last_used()) < idle.as_secs().max(1));
            }
        });
        engine
    }

    /// The service of `key`, created with `config` and `db` when absent.
    pub fn service(
        &self,
        key: &str,
        config: &RestConfig,
        db: &ProjectDb,
    ) -> Result<Arc<Service>, Error> {
        if let Some(s) = self
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return Ok(s.clone());
        }
        let pool = crate::db::pool(db.pg_config(), self.pool_size)?;
        let service = Arc::new(Service::new(config.clone(), pool)?);
        listen_for_reloads(&service, db.pg_config());
        let mut map = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.entry(key.to_owned()).or_insert(service).clone())
    }

    /// Forgets a project (deleted, paused, credentials rotated).
    pub fn evict(&self, key: &str) {
        self.services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// How many projects have a live service.
    pub fn len(&self) -> usize {
        self.services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no project has a live service.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answers a request for the project `key` with claims the caller has
    /// already verified.
    pub async fn handle(
        &self,
        key: &str,
        config: &RestConfig,
        db: &ProjectDb,
        request: Request<Body>,
        auth: Auth,
    ) -> Response<Body> {
        match self.service(key, config, db) {
            Ok(s) => s.handle(request, auth).await,
            Err(e) => crate::service::error_response(&e),
        }
    }
}

/// Listens on channel `pgrst` and drops the schema cache on
/// `reload schema` (or an empty payload), as PostgREST does. The listener
/// ends when the service is dropped.
pub(crate) fn listen_for_reloads(service: &Arc<Service>, config: tokio_postgres::Config) {
    let weak = Arc::downgrade(service);
    tokio::spawn(async move {
        loop {
            let Ok((client, mut connection)) = config.connect(tokio_postgres::NoTls).await else {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if weak.strong_count() == 0 {
                    return;
                }
                continue;
            };
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            let listen = client.batch_execute("LISTEN pgrst");
            let mut listen = std::pin::pin!(listen);
            // Drive the connection while LISTEN completes.
            loop {
                tokio::select! {
                    _ = &mut listen => break,
                    m = messages.next() => { if m.is_none() { break; } }
                }
            }
            while let Some(message) = messages.next().await {
                let Some(service) = weak.upgrade() else {
                    return;
                };
                if let Ok(tokio_postgres::AsyncMessage::Notification(n)) = message
                    && matches!(n.payload(), "" | "reload schema")
                {
                    service.invalidate_schema();
                }
            }
            if weak.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}
