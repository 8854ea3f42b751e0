//! The access keys of a project's S3 endpoint
//! (`/v1/projects/{ref}/storage/s3-credentials`): created with a random
//! access key id and secret, the secret shown once and kept sealed, listed
//! without it, revoked by id. Gateways forget the project's config on each
//! change, so a revoked key stops working at once.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::Row as _;
use supa_core::{ProjectRef, Secret};

use crate::files::random_bytes;
use crate::tenant::Invalidation;
use crate::{Error, Tenant};

/// Sealing context of one access key's secret.
fn context(r: &ProjectRef, access_key: &str) -> String {
    format!("project:{r}:s3:{access_key}")
}

const SHOWN: &str = "id::text, access_key, description,
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at";

fn shown(row: &sqlx::postgres::PgRow) -> Result<Value, Error> {
    Ok(json!({
        "id": row.try_get::<String, _>("id")?,
        "access_key": row.try_get::<String, _>("access_key")?,
        "description": row.try_get::<String, _>("description")?,
        "created_at": row.try_get::<String, _>("created_at")?,
    }))
}

impl Tenant {
    /// A new access key; the answer is the only place its secret appears.
    pub async fn create_s3_credential(
        &self,
        project_ref: &ProjectRef,
        description: &str,
    ) -> Result<Value, Error> {
        if description.len() > 256 {
            return Err(Error::invalid("description", "at most 256 bytes"));
        }
        self.get_project(project_ref).await?;
        let access_key = hex::encode(random_bytes::<16>());
        let secret = hex::encode(random_bytes::<32>());
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO storage_s3_credentials (project_ref, access_key, secret_enc, description)
             VALUES ($1, $2, $3, $4) RETURNING {SHOWN}"
        )))
        .bind(project_ref.as_str())
        .bind(&access_key)
        .bind(
            self.key
                .encrypt(&context(project_ref, &access_key), secret.as_bytes()),
        )
        .bind(description)
        .fetch_one(&self.db)
        .await?;
        self.invalidate(Invalidation::Project(*project_ref));
        let mut value = shown(&row)?;
        value["secret_key"] = Value::String(secret);
        Ok(value)
    }

    /// The project's access keys, without their secrets, oldest first.
    pub async fn list_s3_credentials(&self, project_ref: &ProjectRef) -> Result<Value, Error> {
        self.get_project(project_ref).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SHOWN} FROM storage_s3_credentials WHERE project_ref = $1 ORDER BY created_at, id"
        )))
        .bind(project_ref.as_str())
        .fetch_all(&self.db)
        .await?;
        let data = rows.iter().map(shown).collect::<Result<Vec<_>, _>>()?;
        Ok(json!({ "data": data }))
    }

    /// Revokes an access key.
    pub async fn delete_s3_credential(
        &self,
        project_ref: &ProjectRef,
        id: &str,
    ) -> Result<Value, Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM storage_s3_credentials WHERE project_ref = $1 AND id::text = $2 RETURNING {SHOWN}"
        )))
        .bind(project_ref.as_str())
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("S3 credential {id}")))?;
        self.invalidate(Invalidation::Project(*project_ref));
        shown(&row)
    }

    /// The secrets of the project's access keys, for its config.
    pub(crate) async fn s3_secrets(
        &self,
        project_ref: &ProjectRef,
    ) -> Result<BTreeMap<String, Secret<String>>, Error> {
        let rows = sqlx::query(
            "SELECT access_key, secret_enc FROM storage_s3_credentials WHERE project_ref = $1",
        )
        .bind(project_ref.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                let access_key: String = row.try_get("access_key")?;
                let secret = self.key.decrypt_string(
                    &context(project_ref, &access_key),
                    row.try_get("secret_enc")?,
                )?;
                Ok((access_key, Secret::new(secret)))
            })
            .collect()
    }
}
