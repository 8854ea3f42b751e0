//! A project's auth settings, as Supabase's Management API reads and
//! changes them (`GET/PATCH /v1/projects/{ref}/config/auth`): a PATCH names
//! only the fields it changes, `smtp_pass` is write-only and sealed, and
//! gateways forget the old settings at once.

use serde_json::{Map, Value};
use supa_core::{AUTH_SECRET_FIELDS, AuthSettings, ProjectRef};

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
        let settings: sqlx::types::Json<AuthSettings> =
            sqlx::query_scalar("SELECT auth FROM projects WHERE ref = $1")
                .bind(project_ref.as_str())
                .fetch_optional(&self.db)
                .await?
                .ok_or_else(|| Error::NotFound(format!("project {project_ref}")))?;
        Ok(shown(&settings.0))
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
        settings.validate().map_err(|e| match e {
            supa_core::Error::InvalidSetting { field, reason } => Error::invalid(field, reason),
            other => Error::invalid(other.field(), other.to_string()),
        })?;
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
            let current: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT auth_secrets_enc FROM projects WHERE ref = $1")
                    .bind(project_ref.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            let context = auth_secrets_context(project_ref);
            let mut secrets: Map<String, Value> = match current {
                Some(sealed) => serde_json::from_str(&self.key.decrypt_string(&context, &sealed)?)
                    .unwrap_or_default(),
                None => Map::new(),
            };
            for (field, value) in secrets_patch {
                match value {
                    Value::Null => secrets.remove(field),
                    Value::String(s) if !s.is_empty() => {
                        secrets.insert(field.to_owned(), Value::String(s))
                    }
                    _ => return Err(Error::invalid(field, "must be a non-empty string or null")),
                };
            }
            let sealed = self
                .key
                .encrypt(&context, Value::Object(secrets).to_string().as_bytes());
            sqlx::query("UPDATE projects SET auth_secrets_enc = $2 WHERE ref = $1")
                .bind(project_ref.as_str())
                .bind(sealed)
                .execute(&mut *tx)
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
