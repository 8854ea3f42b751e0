//! Project secrets, the environment of its edge functions: stored
//! encrypted, listed only as SHA-256 digests, never returned in clear
//! (only gateways get them, in the project's config).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use supa_core::{ProjectRef, Secret};

use crate::{Error, Tenant};

/// One secret to set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretInput {
    /// `^[A-Z_][A-Z0-9_]*$`, not starting with `SUPABASE_`.
    pub name: String,
    /// The value.
    pub value: Secret<String>,
}

/// A secret as listed: its name and the hex SHA-256 of its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretDigest {
    /// Name.
    pub name: String,
    /// Hex SHA-256 of the value, never the value.
    pub value: String,
}

fn context(project_ref: &ProjectRef, name: &str) -> String {
    format!("secret:{project_ref}:{name}")
}

/// Checks a secret name; the error names the field and the rule.
pub fn validate_secret_name(name: &str) -> Result<(), Error> {
    let mut bytes = name.bytes();
    let well_formed = bytes
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return Err(Error::invalid(
            "name",
            format!("{name:?} must match ^[A-Z_][A-Z0-9_]*$"),
        ));
    }
    if name.starts_with("SUPABASE_") {
        return Err(Error::invalid(
            "name",
            format!("{name:?} must not start with SUPABASE_ (reserved)"),
        ));
    }
    Ok(())
}

impl Tenant {
    /// Creates or replaces secrets; all names are checked before any is stored.
    pub async fn set_secrets(
        &self,
        project_ref: &ProjectRef,
        secrets: Vec<SecretInput>,
    ) -> Result<(), Error> {
        for s in &secrets {
            validate_secret_name(&s.name)?;
        }
        self.get_project(project_ref).await?;
        let mut tx = self.db.begin().await?;
        for s in &secrets {
            sqlx::query(
                "INSERT INTO secrets (project_ref, name, value_enc) VALUES ($1, $2, $3)
                 ON CONFLICT (project_ref, name) DO UPDATE SET value_enc = excluded.value_enc, updated_at = now()",
            )
            .bind(project_ref.as_str())
            .bind(&s.name)
            .bind(self.key.encrypt(&context(project_ref, &s.name), s.value.expose().as_bytes()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        // Functions' environments change with them.
        self.invalidate(crate::Invalidation::Project(*project_ref));
        Ok(())
    }

    /// Every secret's name and value digest, by name.
    pub async fn list_secrets(&self, project_ref: &ProjectRef) -> Result<Vec<SecretDigest>, Error> {
        self.get_project(project_ref).await?;
        Ok(self
            .secret_values(project_ref)
            .await?
            .into_iter()
            .map(|(name, value)| SecretDigest {
                value: hex::encode(Sha256::digest(value.expose().as_bytes())),
                name,
            })
            .collect())
    }

    /// Removes secrets by name; names that do not exist are ignored.
    pub async fn unset_secrets(
        &self,
        project_ref: &ProjectRef,
        names: &[String],
    ) -> Result<(), Error> {
        self.get_project(project_ref).await?;
        sqlx::query("DELETE FROM secrets WHERE project_ref = $1 AND name = ANY($2)")
            .bind(project_ref.as_str())
            .bind(names)
            .execute(&self.db)
            .await?;
        self.invalidate(crate::Invalidation::Project(*project_ref));
        Ok(())
    }

    /// Every secret in clear, for the project's functions.
    pub(crate) async fn secret_values(
        &self,
        project_ref: &ProjectRef,
    ) -> Result<std::collections::BTreeMap<String, Secret<String>>, Error> {
        let rows = sqlx::query("SELECT name, value_enc FROM secrets WHERE project_ref = $1")
            .bind(project_ref.as_str())
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                let value = self
                    .key
                    .decrypt_string(&context(project_ref, &name), row.try_get("value_enc")?)?;
                Ok((name, Secret::new(value)))
            })
            .collect()
    }
}
