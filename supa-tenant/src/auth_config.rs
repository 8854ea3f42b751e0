//! A project's auth settings, as Supabase's Management API reads and
//! changes them (`GET/PATCH /v1/projects/{ref}/config/auth`): a PATCH names
//! only the fields it changes, `smtp_pass` is write-only and sealed, and
//! gateways forget the old settings at once.

use serde_json::{Map, Value};
use supa_core::{AUTH_SECRET_FIELDS, AuthSettings, JWT_SIGNING_KEYS, ProjectRef};

use crate::tenant::Invalidation;
use crate::{Error, Tenant};

/// Sealing context of a project's SMTP password.
pub(crate) fn smtp_pass_context(r: &ProjectRef) -> String {
    format!("project:{r}:smtp_pass")
}

/// Sealing context of a project's other write-only auth settings.
pub(crate) fn auth_secrets_context(r: &ProjectRef) -> String {
    format!("project:{r}:auth_secrets")
}

/// The settings as the API shows them: every field, the write-only ones
/// (`smtp_pass`, `external_*_secret`) null.
fn shown(settings: &AuthSettings) -> Value {
    let mut v = serde_json::to_value(settings).unwrap_or_default();
    if let Value::Object(m) = &mut v {
        m.insert("smtp_pass".into(), Value::Null);
        for field in AUTH_SECRET_FIELDS {
            m.insert(field.into(), Value::Null);
        }
    }
    v
}

impl Tenant {
    /// The project's auth settings, in Supabase's shape.
    pub async fn auth_settings(&self, project_ref: &ProjectRef) -> Result<Value, Error> {
        let settings: AuthSettings = self.settings_column(project_ref, "auth").await?;
        Ok(shown(&settings))
    }

    /// Changes the fields `patch` names; nothing changes when one is
    /// unknown or invalid. `smtp_pass` and the other write-only fields are
    /// sealed (null removes one).
    pub async fn update_auth_settings(
        &self,
        project_ref: &ProjectRef,
        mut patch: Map<String, Value>,
    ) -> Result<Value, Error> {
        let smtp_pass = patch.remove("smtp_pass");
        let secrets_patch: Vec<(&str, Value)> = AUTH_SECRET_FIELDS
            .iter()
            .filter_map(|f| patch.remove(*f).map(|v| (*f, v)))
            .collect();
        let mut tx = self.db.begin().await?;
        let current: sqlx::types::Json<AuthSettings> =
            sqlx::query_scalar("SELECT auth FROM projects WHERE ref = $1 FOR UPDATE")
                .bind(project_ref.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        let Value::Object(mut merged) = serde_json::to_value(&current.0).unwrap_or_default() else {
            return Err(Error::invalid("auth", "cannot read the current settings"));
        };
        for (field, value) in patch {
            let Some(slot) = merged.get_mut(&field) else {
                return Err(Error::invalid("auth", format!("unknown field {field:?}")));
            };
            // Each field alone first, so a wrong type names its field.
            let mut probe = serde_json::to_value(AuthSettings::default()).unwrap_or_default();
            probe[&field] = value.clone();
            if let Err(e) = serde_json::from_value::<AuthSettings>(probe) {
                return Err(Error::invalid("auth", format!("{field}: {e}")));
            }
            *slot = value;
        }
        let settings: AuthSettings = serde_json::from_value(Value::Object(merged))
            .map_err(|e| Error::invalid("auth", e.to_string()))?;
        settings.validate().map_err(Error::setting)?;
        let sealed = match smtp_pass {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(p)) if !p.is_empty() => Some(Some(
                self.key
                    .encrypt(&smtp_pass_context(project_ref), p.as_bytes()),
            )),
            Some(_) => {
                return Err(Error::invalid(
                    "smtp_pass",
                    "must be a non-empty string or null",
                ));
            }
        };
        sqlx::query("UPDATE projects SET auth = $2, updated_at = now() WHERE ref = $1")
            .bind(project_ref.as_str())
            .bind(sqlx::types::Json(&settings))
            .execute(&mut *tx)
            .await?;
        if !secrets_patch.is_empty() {
            let mut secrets = self.auth_secrets(&mut tx, project_ref).await?;
            for (field, value) in secrets_patch {
                match value {
                    Value::Null => secrets.remove(field),
                    Value::String(s) if !s.is_empty() => {
                        secrets.insert(field.to_owned(), Value::String(s))
                    }
                    _ => return Err(Error::invalid(field, "must be a non-empty string or null")),
                };
            }
            self.store_auth_secrets(&mut tx, project_ref, secrets)
                .await?;
        }
        if let Some(sealed) = sealed {
            sqlx::query("UPDATE projects SET smtp_pass_enc = $2 WHERE ref = $1")
                .bind(project_ref.as_str())
                .bind(sealed)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.invalidate(Invalidation::Project(*project_ref));
        Ok(shown(&settings))
    }

    /// The project's auth e-mails, newest first: the outbox (the mail
    /// catcher of a project without SMTP, the delivery record of one
    /// with it), optionally only those to `recipient`.
    pub async fn auth_outbox(
        &self,
        project_ref: &ProjectRef,
        recipient: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Value>, Error> {
        let mut conn = self
            .project_connection(project_ref, std::time::Duration::from_secs(10))
            .await?;
        // The auth server makes the outbox the first time it serves a
        // project made before it existed.
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('auth.supa_outbox') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows: Vec<sqlx::types::Json<Value>> = sqlx::query_scalar(
            "SELECT jsonb_build_object('id', id, 'created_at', created_at, 'kind', kind,
                      'recipient', recipient, 'subject', subject, 'body', body,
                      'smtp', smtp, 'sent_at', sent_at, 'attempts', attempts, 'last_error', last_error)
             FROM auth.supa_outbox
             WHERE $1::text IS NULL OR lower(recipient) = lower($1)
             ORDER BY id DESC LIMIT $2",
        )
        .bind(recipient)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&mut conn)
        .await?;
        sqlx::Connection::close(conn).await.ok();
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

impl Tenant {
    /// The project's sealed write-only auth secrets, opened, read in `tx`
    /// (its row locked by the caller).
    async fn auth_secrets(
        &self,
        tx: &mut sqlx::PgConnection,
        project_ref: &ProjectRef,
    ) -> Result<Map<String, Value>, Error> {
        let current: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT auth_secrets_enc FROM projects WHERE ref = $1")
                .bind(project_ref.as_str())
                .fetch_one(&mut *tx)
                .await?;
        Ok(match current {
            Some(sealed) => serde_json::from_str(
                &self
                    .key
                    .decrypt_string(&auth_secrets_context(project_ref), &sealed)?,
            )
            .unwrap_or_default(),
            None => Map::new(),
        })
    }

    /// Seals and stores the project's write-only auth secrets in `tx`.
    async fn store_auth_secrets(
        &self,
        tx: &mut sqlx::PgConnection,
        project_ref: &ProjectRef,
        secrets: Map<String, Value>,
    ) -> Result<(), Error> {
        let sealed = self.key.encrypt(
            &auth_secrets_context(project_ref),
            Value::Object(secrets).to_string().as_bytes(),
        );
        sqlx::query("UPDATE projects SET auth_secrets_enc = $2 WHERE ref = $1")
            .bind(project_ref.as_str())
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// The project's JWT signing keys as Supabase's API lists them: the
    /// ES256 keys (the current one `in_use`, the one before it
    /// `previously_used`, still accepted), public halves only.
    pub async fn signing_keys(&self, project_ref: &ProjectRef) -> Result<Value, Error> {
        let mut tx = self.db.begin().await?;
        let secrets = self.auth_secrets(&mut tx, project_ref).await?;
        tx.commit().await?;
        Ok(shown_keys(&signing_keys_of(&secrets)?))
    }

    /// Makes a new ES256 signing key the project's current one: the auth
    /// server signs access tokens with it from now on; the previous key
    /// still verifies (older keys are dropped), as does the JWT secret.
    pub async fn add_signing_key(
        &self,
        project_ref: &ProjectRef,
        algorithm: &str,
    ) -> Result<Value, Error> {
        if algorithm != "ES256" {
            return Err(Error::invalid(
                "algorithm",
                format!("{algorithm:?} is not supported: ES256 is"),
            ));
        }
        let mut tx = self.db.begin().await?;
        sqlx::query("SELECT 1 FROM projects WHERE ref = $1 FOR UPDATE")
            .bind(project_ref.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        let mut secrets = self.auth_secrets(&mut tx, project_ref).await?;
        let mut keys = signing_keys_of(&secrets)?;
        keys.insert(0, supa_keys::EsSigningKey::generate());
        keys.truncate(2);
        let list: Vec<Value> = keys
            .iter()
            .map(supa_keys::EsSigningKey::private_jwk)
            .collect();
        secrets.insert(
            JWT_SIGNING_KEYS.into(),
            Value::String(Value::Array(list).to_string()),
        );
        self.store_auth_secrets(&mut tx, project_ref, secrets)
            .await?;
        tx.commit().await?;
        self.invalidate(Invalidation::Project(*project_ref));
        Ok(shown_keys(&keys[..1])["keys"][0].clone())
    }
}

/// RFC 7396 merge patch: objects merge key by key, anything else
/// replaces.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(&k) {
                    Some(slot) if v.is_object() => merge(slot, v),
                    _ => {
                        t.insert(k, v);
                    }
                }
            }
        }
        (t, p) => *t = p,
    }
}

impl Tenant {
    /// The project's storage settings, in Supabase's shape.
    pub async fn storage_settings(
        &self,
        project_ref: &ProjectRef,
    ) -> Result<supa_core::StorageSettings, Error> {
        self.settings_column(project_ref, "storage").await
    }

    /// Merges `patch` (nested, as Supabase's PATCH takes `features`) into
    /// the storage settings; an unknown field or a bad value changes
    /// nothing. Gateways forget the old settings at once.
    pub async fn update_storage_settings(
        &self,
        project_ref: &ProjectRef,
        patch: Value,
    ) -> Result<supa_core::StorageSettings, Error> {
        self.merge_settings(
            project_ref,
            "storage",
            patch,
            supa_core::StorageSettings::validate,
        )
        .await
    }

    /// The project's realtime settings, in Supabase's shape.
    pub async fn realtime_settings(
        &self,
        project_ref: &ProjectRef,
    ) -> Result<supa_core::RealtimeSettings, Error> {
        self.settings_column(project_ref, "realtime").await
    }

    /// Merges `patch` into the realtime settings, as for storage.
    pub async fn update_realtime_settings(
        &self,
        project_ref: &ProjectRef,
        patch: Value,
    ) -> Result<supa_core::RealtimeSettings, Error> {
        self.merge_settings(
            project_ref,
            "realtime",
            patch,
            supa_core::RealtimeSettings::validate,
        )
        .await
    }

    /// RFC 7396-merges `patch` into the JSON settings in `column`, checks
    /// the result as `T` (the error names the field's path) with
    /// `validate`, stores it under the row's lock, and tells gateways.
    async fn merge_settings<T>(
        &self,
        project_ref: &ProjectRef,
        column: &'static str,
        patch: Value,
        validate: fn(&T) -> Result<(), supa_core::Error>,
    ) -> Result<T, Error>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Unpin + 'static,
    {
        if !patch.is_object() {
            return Err(Error::invalid(column, "the body must be a JSON object"));
        }
        let mut tx = self.db.begin().await?;
        let current: sqlx::types::Json<T> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {column} FROM projects WHERE ref = $1 FOR UPDATE"
        )))
        .bind(project_ref.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        let mut merged = serde_json::to_value(&current.0).unwrap_or_default();
        merge(&mut merged, patch);
        let settings: T = serde_path_to_error::deserialize(merged)
            .map_err(|e| Error::invalid(column, format!("{}: {}", e.path(), e.inner())))?;
        validate(&settings).map_err(Error::setting)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE projects SET {column} = $2, updated_at = now() WHERE ref = $1"
        )))
        .bind(project_ref.as_str())
        .bind(sqlx::types::Json(&settings))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.invalidate(Invalidation::Project(*project_ref));
        Ok(settings)
    }
}

fn signing_keys_of(secrets: &Map<String, Value>) -> Result<Vec<supa_keys::EsSigningKey>, Error> {
    match secrets.get(JWT_SIGNING_KEYS).and_then(Value::as_str) {
        Some(text) => supa_keys::EsSigningKey::list_from_json(text)
            .map_err(|e| Error::Config(format!("stored signing keys: {e}"))),
        None => Ok(Vec::new()),
    }
}

fn shown_keys(keys: &[supa_keys::EsSigningKey]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            serde_json::json!({
                "id": k.public().kid(),
                "algorithm": "ES256",
                "status": if i == 0 { "in_use" } else { "previously_used" },
                "public_jwk": k.public().jwk(),
            })
        })
        .collect();
    serde_json::json!({ "keys": keys })
}
