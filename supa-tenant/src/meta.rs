//! The control plane as supa-meta's connector: a project's database as its
//! worker's admin logs in to it (postgres-meta reads and changes the whole
//! catalog, which the API roles cannot).

use sqlx::Row as _;
use supa_core::{BoxFuture, DirectoryError, ProjectDatabase, ProjectRef, Secret};

use crate::projects::database_name;
use crate::workers::worker_context;
use crate::{Error, Tenant};

impl Tenant {
    /// The worker admin's login to `project_ref`'s database.
    pub async fn admin_login(&self, project_ref: &ProjectRef) -> Result<ProjectDatabase, Error> {
        let row = sqlx::query(
            "SELECT p.status, w.id, w.host, w.port, w.admin_user, w.admin_password_enc
             FROM projects p JOIN workers w ON w.id = p.worker_id WHERE p.ref = $1",
        )
        .bind(project_ref.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        crate::projects::refuse_if_paused(project_ref, row.try_get("status")?)?;
        let worker: String = row.try_get("id")?;
        let port: i32 = row.try_get("port")?;
        Ok(ProjectDatabase {
            host: row.try_get("host")?,
            port: u16::try_from(port).unwrap_or(5432),
            name: database_name(project_ref),
            user: row.try_get("admin_user")?,
            password: Secret::new(
                self.key
                    .decrypt_string(&worker_context(&worker), row.try_get("admin_password_enc")?)?,
            ),
        })
    }
}

impl supa_meta::Connector for Tenant {
    fn admin_login<'a>(
        &'a self,
        project: &'a ProjectRef,
    ) -> BoxFuture<'a, Result<Option<ProjectDatabase>, DirectoryError>> {
        Box::pin(async move {
            match Tenant::admin_login(self, project).await {
                Ok(login) => Ok(Some(login)),
                Err(Error::NotFound(_)) => Ok(None),
                Err(e) => Err(DirectoryError(e.to_string())),
            }
        })
    }
}
