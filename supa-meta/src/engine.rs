//! The multi-project engine: a small pool per project database, opened on
//! first use, bounded in number and closed when idle.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::Value;
use supa_core::{BoxFuture, DirectoryError, ProjectDatabase, ProjectRef};
use tokio_postgres::types::{ToSql, Type};

use crate::catalog::{self, Relation};
use crate::encode;
use crate::{Endpoint, Error, Params, TypegenOptions};

/// Finds how to log in to a project's database with the rights
/// postgres-meta has (its owner or a superuser): the control plane
/// implements it with the worker's admin login.
pub trait Connector: Send + Sync + 'static {
    /// The login for `project`, or `None` when there is no such project.
    fn admin_login<'a>(
        &'a self,
        project: &'a ProjectRef,
    ) -> BoxFuture<'a, Result<Option<ProjectDatabase>, DirectoryError>>;
}

/// One database for every ref: the standalone service, and tests.
#[derive(Debug, Clone)]
pub struct FixedDatabase(pub ProjectDatabase);

impl Connector for FixedDatabase {
    fn admin_login<'a>(
        &'a self,
        _project: &'a ProjectRef,
    ) -> BoxFuture<'a, Result<Option<ProjectDatabase>, DirectoryError>> {
        Box::pin(async move { Ok(Some(self.0.clone())) })
    }
}

/// How long one metadata statement may run.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Called after a write endpoint changed a project's schema.
type ChangeHook = Arc<dyn Fn(&ProjectRef) + Send + Sync>;

/// Serves the metadata of many project databases; cheap to clone.
#[derive(Clone)]
pub struct Meta {
    connector: Arc<dyn Connector>,
    pools: supa_db::Pools,
    on_change: Option<ChangeHook>,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta")
            .field("open_pools", &self.pools.open())
            .finish_non_exhaustive()
    }
}

impl Meta {
    /// An engine keeping at most `max_projects` pools of two connections,
    /// each closed after `idle` without a request.
    pub fn new(connector: Arc<dyn Connector>, max_projects: u64, idle: Duration) -> Self {
        Self {
            connector,
            pools: supa_db::Pools::new(max_projects, idle),
            on_change: None,
        }
    }

    /// Calls `hook` after every write endpoint's change, besides the
    /// `NOTIFY pgrst` sent in the database (gateways that do not listen
    /// learn it this way).
    pub fn on_change(mut self, hook: impl Fn(&ProjectRef) + Send + Sync + 'static) -> Self {
        self.on_change = Some(Arc::new(hook));
        self
    }

    pub(crate) fn changed(&self, project: &ProjectRef) {
        if let Some(hook) = &self.on_change {
            hook(project);
        }
    }

    /// Forgets a project's pool (deleted, credentials rotated).
    pub fn evict(&self, project: &ProjectRef) {
        self.pools.evict(project);
    }

    async fn pool(&self, project: &ProjectRef) -> Result<Pool, Error> {
        if let Some(pool) = self.pools.get(project) {
            return Ok(pool);
        }
        let login = self
            .connector
            .admin_login(project)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?
            .ok_or_else(|| Error::NotFound(format!("project {project} not found")))?;
        let mut config = supa_db::pg_config(&login, "supa-meta");
        config.options(format!(
            "-c statement_timeout={}",
            STATEMENT_TIMEOUT.as_millis()
        ));
        let pool = supa_db::pool(config, 2).map_err(Error::Internal)?;
        self.pools.insert(*project, pool.clone());
        Ok(pool)
    }

    /// A client of the project's database from its pool.
    pub(crate) async fn client(
        &self,
        project: &ProjectRef,
    ) -> Result<deadpool_postgres::Object, Error> {
        let pool = self.pool(project).await?;
        pool.get().await.map_err(|e| {
            // A login refused now (a rotated password) must not stick.
            self.evict(project);
            Error::Unavailable(e.to_string())
        })
    }

    /// The project's schemas as TypeScript, the file postgres-meta's
    /// `/generators/typescript` prints. The catalog statements share the
    /// pool's connections: a second one is used when free now, so
    /// concurrent calls never wait on each other.
    pub async fn typescript(
        &self,
        project: &ProjectRef,
        options: &TypegenOptions,
    ) -> Result<String, Error> {
        let pool = self.pool(project).await?;
        let mut clients = vec![self.client(project).await?];
        let now = deadpool_postgres::Timeouts {
            wait: Some(Duration::ZERO),
            create: Some(Duration::from_secs(10)),
            recycle: None,
        };
        if let Ok(second) = pool.timeout_get(&now).await {
            clients.push(second);
        }
        let clients: Vec<&tokio_postgres::Client> = clients.iter().map(|c| &***c).collect();
        crate::typegen::typescript(&clients, options).await
    }

    /// The JSON text of a list endpoint.
    pub async fn list(
        &self,
        project: &ProjectRef,
        endpoint: Endpoint,
        params: &Params,
    ) -> Result<String, Error> {
        let relation = match endpoint {
            Endpoint::Tables => Some(Relation::Tables),
            Endpoint::Views => Some(Relation::Views),
            Endpoint::MaterializedViews => Some(Relation::MaterializedViews),
            Endpoint::ForeignTables => Some(Relation::ForeignTables),
            _ => None,
        };
        if let Some(kind) = relation {
            let (sql, children) = catalog::relations(kind, params.include_columns);
            // All statements at once, taking the pool's two connections as
            // they free up; the columns, the longest, ask first.
            let mut order: Vec<usize> = (0..children.len()).collect();
            order.sort_by_key(|&i| children[i].field != "columns");
            let children = &children;
            let nested =
                futures_util::future::try_join_all(order.into_iter().map(|i| async move {
                    let child = &children[i];
                    let rows = self.query(project, &child.sql, params).await?;
                    Ok::<_, Error>((i, encode::group_by(&rows, child.key, child.keep_key)?))
                }));
            let (relations, mut groups) =
                tokio::try_join!(self.query(project, &sql, params), nested)?;
            groups.sort_by_key(|(i, _)| *i);
            let fields: Vec<_> = children
                .iter()
                .map(|c| c.field)
                .zip(groups.iter().map(|(_, g)| g))
                .collect();
            return encode::with_children(&relations, &fields);
        }
        let sql = match endpoint {
            Endpoint::Schemas => catalog::schemas(),
            Endpoint::Columns => catalog::columns(params.by_table),
            Endpoint::Extensions => catalog::extensions(),
            Endpoint::Functions => catalog::functions(),
            Endpoint::Roles => catalog::roles(),
            Endpoint::Policies => catalog::policies(),
            Endpoint::Triggers => catalog::triggers(),
            Endpoint::Types => catalog::types(),
            Endpoint::Publications => catalog::publications(),
            Endpoint::TablePrivileges => catalog::table_privileges(),
            Endpoint::ColumnPrivileges => catalog::column_privileges(),
            Endpoint::Indexes => catalog::indexes(),
            Endpoint::Config => catalog::config(),
            _ => catalog::version(),
        };
        encode::rows(&self.query(project, &sql, params).await?)
    }

    /// Runs one catalog statement with the request's bound values.
    async fn query(
        &self,
        project: &ProjectRef,
        sql: &str,
        params: &Params,
    ) -> Result<Vec<tokio_postgres::Row>, Error> {
        let client = self.client(project).await?;
        let args: [(&(dyn ToSql + Sync), Type); 6] = [
            (&params.included, Type::TEXT_ARRAY),
            (&params.excluded, Type::TEXT_ARRAY),
            (&params.limit, Type::INT8),
            (&params.offset, Type::INT8),
            (&params.ids, Type::TEXT_ARRAY),
            (&params.flag, Type::BOOL),
        ];
        client
            .query_typed(sql, &args)
            .await
            .map_err(|e| Error::from_pg(&e))
    }

    /// The first object a lookup finds, or `None`.
    pub async fn first(
        &self,
        project: &ProjectRef,
        endpoint: Endpoint,
        params: &Params,
    ) -> Result<Option<Value>, Error> {
        let text = self.list(project, endpoint, params).await?;
        let list: Vec<Value> =
            serde_json::from_str(&text).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(list.into_iter().next())
    }
}
