//! Many databases behind one engine: a [`Service`] per project, created on
//! first request, closed after an idle time, reloaded on
//! `NOTIFY pgrst, 'reload schema'`. A closed project's schema cache stays
//! (bounded), so its next request pays for a connection, not for reading
//! the catalog again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use futures_util::StreamExt as _;
use supa_core::ProjectDatabase;

use crate::schema::SchemaCache;
use crate::service::{Auth, Service};
use crate::{Error, RestConfig};

/// Serves many projects; cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    services: Arc<Mutex<HashMap<String, Arc<Service>>>>,
    /// Schema caches of projects whose pools were closed (idle or least
    /// recently used), until the project is evicted or the bound is hit.
    /// Not kept by a listening engine: a closed project hears no `NOTIFY`.
    dormant: Option<moka::sync::Cache<String, Arc<SchemaCache>>>,
    pool_size: usize,
    max_projects: usize,
    listen: bool,
}

impl Engine {
    /// An engine whose per-project pools hold at most `pool_size`
    /// connections and are closed after `idle` without requests; at most
    /// `max_projects` pools are open at once (the least recently used one
    /// is closed to make room), which bounds the connections one engine
    /// holds on a worker whatever the number of projects.
    pub fn new(pool_size: usize, idle: Duration, max_projects: usize) -> Self {
        Self::start(pool_size, idle, max_projects, false)
    }

    /// As [`Engine::new`], and also keeps one connection per open project
    /// listening for `NOTIFY pgrst` (for databases changed behind the
    /// control plane's back; otherwise schema changes arrive as
    /// evictions, see [`Engine::evict`]). A closed project hears nothing,
    /// so its schema cache is not kept.
    pub fn listening(pool_size: usize, idle: Duration, max_projects: usize) -> Self {
        Self::start(pool_size, idle, max_projects, true)
    }

    fn start(pool_size: usize, idle: Duration, max_projects: usize, listen: bool) -> Self {
        let engine = Self {
            services: Arc::default(),
            dormant: (!listen).then(|| moka::sync::Cache::new(DORMANT_SCHEMAS)),
            pool_size,
            max_projects: max_projects.max(1),
            listen,
        };
        let weak = Arc::downgrade(&engine.services);
        let dormant = engine.dormant.clone();
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
                    .retain(|key, s| {
                        let open = now.saturating_sub(s.last_used()) < idle.as_secs().max(1);
                        if !open {
                            keep_schema(dormant.as_ref(), key, s);
                        }
                        open
                    });
            }
        });
        engine
    }

    /// The service of `key`, created with `config` and `db` when absent.
    pub fn service(
        &self,
        key: &str,
        config: &RestConfig,
        db: &ProjectDatabase,
    ) -> Result<Arc<Service>, Error> {
        if let Some(s) = self
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return Ok(s.clone());
        }
        let pools = supa_db::ThreadPools::open(
            &supa_db::pg_config(db, "supa-rest"),
            config.pool_size.unwrap_or(self.pool_size),
        )
        .map_err(|e| crate::db::unavailable(&e))?;
        let mut service = Service::with_pools(config.clone(), pools)?;
        if let Some(cache) = self.dormant.as_ref().and_then(|d| d.remove(key)) {
            service = service.with_schema(cache);
        }
        let service = Arc::new(service);
        if self.listen {
            listen_for_reloads(&service, supa_db::pg_config(db, "supa-rest"));
        }
        let mut map = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.max_projects && !map.contains_key(key) {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.last_used())
                .map(|(k, _)| k.clone());
            if let Some((k, s)) = oldest.and_then(|k| map.remove_entry(&k)) {
                keep_schema(self.dormant.as_ref(), &k, &s);
            }
        }
        Ok(map.entry(key.to_owned()).or_insert(service).clone())
    }

    /// Forgets a project (deleted, paused, credentials rotated, schema
    /// changed).
    pub fn evict(&self, key: &str) {
        self.services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        if let Some(dormant) = &self.dormant {
            dormant.invalidate(key);
        }
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
        db: &ProjectDatabase,
        request: Request<Body>,
        auth: Auth,
    ) -> Response<Body> {
        match self.service(key, config, db) {
            Ok(s) => s.handle(request, auth).await,
            Err(e) => crate::service::error_response(&e),
        }
    }
}

/// Closed projects whose schema caches an engine keeps: as many as a
/// gateway caches project configs.
const DORMANT_SCHEMAS: u64 = 10_000;

/// Keeps the schema cache of `service`, whose pool is being closed, when
/// the engine keeps them.
fn keep_schema(
    dormant: Option<&moka::sync::Cache<String, Arc<SchemaCache>>>,
    key: &str,
    service: &Service,
) {
    if let (Some(dormant), Some(cache)) = (dormant, service.loaded_schema()) {
        dormant.insert(key.to_owned(), cache);
    }
}

/// Listens on channel `pgrst` and drops the schema cache on
/// `reload schema` (or an empty payload), as PostgREST does. The listener
/// ends when the service is dropped.
pub fn listen_for_reloads(service: &Arc<Service>, config: tokio_postgres::Config) {
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
