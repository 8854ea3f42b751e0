//! A project's API keys: one publishable key, any number of named secret
//! keys, each revocable. Secret keys are stored encrypted (so `reveal` can
//! show them) and looked up by their SHA-256.

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::Row;
use supa_core::{KeyKind, KeyRecord, ProjectRef};

use crate::error::has_sqlstate;
use crate::tenant::Invalidation;
use crate::{Error, Tenant};

/// An API key as the Management API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// Key id (UUID).
    pub id: String,
    /// Name (`default` for the keys made at creation).
    pub name: String,
    /// `publishable` or `secret`.
    #[serde(rename = "type")]
    pub kind: KeyKind,
    /// The key; for secret keys masked unless revealed.
    pub api_key: String,
    /// The first six random chars.
    pub prefix: String,
    /// Hex SHA-256 of the whole key.
    pub hash: String,
    /// `{"role":"service_role"}` for secret keys, null otherwise.
    pub secret_jwt_template: Option<serde_json::Value>,
    /// Creation time, ISO 8601.
    pub inserted_at: String,
    /// Last change, ISO 8601.
    pub updated_at: String,
}

/// A secret key to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// Only `secret` keys can be added; a project has one publishable key.
    #[serde(rename = "type")]
    pub kind: KeyKind,
    /// A name unique among the project's live keys.
    pub name: String,
}

fn key_context(id: &str) -> String {
    format!("api_key:{id}")
}

const KEY_COLUMNS: &str =
    "id::text AS id, name, kind, prefix, hash, publishable_key, secret_key_enc,
    to_char(inserted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS inserted_at,
    to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS updated_at";

impl Tenant {
    /// Generates and stores a key; returns it in clear.
    pub(crate) async fn insert_key(
        &self,
        project_ref: &ProjectRef,
        kind: KeyKind,
        name: &str,
    ) -> Result<String, Error> {
        let key = supa_keys::generate(project_ref, kind);
        let prefix = supa_keys::display_prefix(&key)
            .expect("generated keys parse")
            .to_owned();
        let id: String = sqlx::query_scalar("SELECT gen_random_uuid()::text")
            .fetch_one(&self.db)
            .await?;
        let (publishable, sealed) = match kind {
            KeyKind::Publishable => (Some(key.as_str()), None),
            KeyKind::Secret => (
                None,
                Some(self.key.encrypt(&key_context(&id), key.as_bytes())),
            ),
        };
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, project_ref, name, kind, hash, prefix, publishable_key, secret_key_enc)
             VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(project_ref.as_str())
        .bind(name)
        .bind(kind.as_str())
        .bind(supa_keys::hash(&key).to_vec())
        .bind(prefix)
        .bind(publishable)
        .bind(sealed)
        .execute(&self.db)
        .await;
        match inserted {
            Ok(_) => Ok(key),
            Err(e) if has_sqlstate(&e, "23505") => Err(Error::Conflict(format!(
                "project {project_ref} already has a key named {name:?}"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The project's live keys; secret keys masked unless `reveal`.
    pub async fn list_keys(
        &self,
        project_ref: &ProjectRef,
        reveal: bool,
    ) -> Result<Vec<ApiKeyInfo>, Error> {
        self.get_project(project_ref).await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE project_ref = $1 AND revoked_at IS NULL
             ORDER BY kind, inserted_at, name"
        )))
        .bind(project_ref.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| self.key_from_row(row, reveal))
            .collect()
    }

    /// Adds a named secret key.
    pub async fn create_key(
        &self,
        project_ref: &ProjectRef,
        new: NewApiKey,
    ) -> Result<ApiKeyInfo, Error> {
        if new.kind != KeyKind::Secret {
            return Err(Error::invalid(
                "type",
                "only secret keys can be added; a project has one publishable key",
            ));
        }
        let name = new.name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(Error::invalid("name", "must be 1-64 characters"));
        }
        self.get_project(project_ref).await?;
        let key = self.insert_key(project_ref, KeyKind::Secret, name).await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1"
        )))
        .bind(supa_keys::hash(&key).to_vec())
        .fetch_one(&self.db)
        .await?;
        self.key_from_row(&row, true)
    }

    /// Revokes a key; every gateway stops accepting it. Returns the key as
    /// it was (masked).
    pub async fn revoke_key(
        &self,
        project_ref: &ProjectRef,
        id: &str,
    ) -> Result<ApiKeyInfo, Error> {
        self.get_project(project_ref).await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE api_keys SET revoked_at = now(), updated_at = now()
             WHERE project_ref = $1 AND id::text = $2 AND revoked_at IS NULL RETURNING {KEY_COLUMNS}"
        )))
        .bind(project_ref.as_str())
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("API key {id}")))?;
        let revoked = self.key_from_row(&row, false)?;
        self.invalidate(Invalidation::Key(revoked.hash.clone()));
        // The config carries the publishable key (S3 session signatures).
        if revoked.kind == KeyKind::Publishable {
            self.invalidate(Invalidation::Project(*project_ref));
        }
        Ok(revoked)
    }

    /// The live key whose SHA-256 is `hash`, for the gateway's key-auth.
    pub async fn lookup_key(&self, hash: &[u8; 32]) -> Result<Option<KeyRecord>, Error> {
        let row = sqlx::query(
            "SELECT k.id::text AS id, k.project_ref, k.kind FROM api_keys k
             WHERE k.hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(hash.as_slice())
        .fetch_optional(&self.db)
        .await?;
        row.map(|row| {
            let project_ref: String = row.try_get("project_ref")?;
            let kind: String = row.try_get("kind")?;
            Ok(KeyRecord {
                project_ref: ProjectRef::parse(&project_ref)
                    .map_err(|e| Error::Config(e.to_string()))?,
                kind: kind
                    .parse()
                    .map_err(|e: supa_core::Error| Error::Config(e.to_string()))?,
                id: row.try_get("id")?,
            })
        })
        .transpose()
    }

    /// The project's first live secret key in clear (its `default` one if
    /// live), which its functions get as `SUPABASE_SECRET_KEY`.
    pub(crate) async fn secret_key_value(
        &self,
        project_ref: &ProjectRef,
    ) -> Result<Option<supa_core::Secret<String>>, Error> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys
             WHERE project_ref = $1 AND kind = 'secret' AND revoked_at IS NULL
             ORDER BY name = 'default' DESC, inserted_at LIMIT 1"
        )))
        .bind(project_ref.as_str())
        .fetch_optional(&self.db)
        .await?;
        row.map(|row| {
            Ok(supa_core::Secret::new(
                self.key_from_row(&row, true)?.api_key,
            ))
        })
        .transpose()
    }

    fn key_from_row(&self, row: &sqlx::postgres::PgRow, reveal: bool) -> Result<ApiKeyInfo, Error> {
        let id: String = row.try_get("id")?;
        let kind: String = row.try_get("kind")?;
        let kind: KeyKind = kind
            .parse()
            .map_err(|e: supa_core::Error| Error::Config(e.to_string()))?;
        let prefix: String = row.try_get("prefix")?;
        let api_key = match kind {
            KeyKind::Publishable => row
                .try_get::<Option<String>, _>("publishable_key")?
                .unwrap_or_default(),
            KeyKind::Secret if reveal => {
                let sealed: Vec<u8> = row.try_get("secret_key_enc")?;
                self.key.decrypt_string(&key_context(&id), &sealed)?
            }
            KeyKind::Secret => format!("{}{prefix}{}", kind.prefix(), "·".repeat(8)),
        };
        let hash: Vec<u8> = row.try_get("hash")?;
        Ok(ApiKeyInfo {
            name: row.try_get("name")?,
            kind,
            api_key,
            prefix,
            hash: hex::encode(hash),
            secret_jwt_template: (kind == KeyKind::Secret)
                .then(|| serde_json::json!({"role": "service_role"})),
            inserted_at: row.try_get("inserted_at")?,
            updated_at: row.try_get("updated_at")?,
            id,
        })
    }
}
