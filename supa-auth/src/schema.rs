//! The auth schema: GoTrue's tables (`schema.sql`) and Supa's additions
//! (`migrations.sql`), applied as the schema's owner under an advisory
//! lock, so concurrent starts and gateways apply each part once.

use crate::Error;

/// GoTrue's auth schema, for a database that has none.
pub const SCHEMA_SQL: &str = include_str!("schema.sql");

/// Supa's additions, each part headed by `-- migration: NAME`.
pub const MIGRATIONS_SQL: &str = include_str!("migrations.sql");

const MARK: &str = "\n-- migration: ";

/// The named parts of [`MIGRATIONS_SQL`], in order.
pub(crate) fn migrations() -> Vec<(&'static str, &'static str)> {
    MIGRATIONS_SQL
        .split(MARK)
        .skip(1)
        .filter_map(|part| {
            let (name, sql) = part.split_once('\n')?;
            Some((name.trim(), sql))
        })
        .collect()
}

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS auth.supa_migrations (
  name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());\n";

/// The whole schema as one script, every migration recorded as applied:
/// what a new database (the project template) runs.
pub fn full_script() -> String {
    let mut script = format!("{SCHEMA_SQL}\n{MIGRATIONS_TABLE}");
    for (name, sql) in migrations() {
        // Names are the file's own: letters, digits and underscores.
        script.push_str(sql);
        script.push_str(&format!(
            "\nINSERT INTO auth.supa_migrations (name) VALUES ('{name}');\n"
        ));
    }
    script
}

/// Brings the database's auth schema up to date: GoTrue's tables when
/// `with_base` and they are missing, then every migration not yet
/// recorded. Cheap when there is nothing to do (two queries).
pub async fn migrate(client: &mut tokio_postgres::Client, with_base: bool) -> Result<(), Error> {
    let parts = migrations();
    let recorded: bool = client
        .query_one(
            "SELECT to_regclass('auth.supa_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    let done: i64 = if recorded {
        client
            .query_one("SELECT count(*) FROM auth.supa_migrations", &[])
            .await?
            .get(0)
    } else {
        -1
    };
    if done == parts.len() as i64 {
        return Ok(());
    }
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('supa-auth schema'))",
        &[],
    )
    .await?;
    if with_base {
        let missing: bool = tx
            .query_one("SELECT to_regclass('auth.users') IS NULL", &[])
            .await?
            .get(0);
        if missing {
            tx.batch_execute("CREATE SCHEMA IF NOT EXISTS auth").await?;
            tx.batch_execute(SCHEMA_SQL).await?;
        }
    }
    // Objects belong to the schema's owner when the login is a member of
    // it (a project's `{ref}_auth` of `supabase_auth_admin`).
    if let Some(owner) = tx
        .query_opt(
            "SELECT quote_ident(r.rolname) FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
             WHERE n.nspname = 'auth' AND r.rolname <> current_user AND pg_has_role(r.oid, 'MEMBER')",
            &[],
        )
        .await?
    {
        let owner: String = owner.get(0);
        tx.batch_execute(&format!("SET LOCAL ROLE {owner}")).await?;
    }
    tx.batch_execute(MIGRATIONS_TABLE).await?;
    for (name, sql) in parts {
        let applied = tx
            .execute(
                "INSERT INTO auth.supa_migrations (name) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&name],
            )
            .await?;
        if applied == 1 {
            tx.batch_execute(sql).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_named_and_unique() {
        let parts = super::migrations();
        assert!(!parts.is_empty());
        let mut names: Vec<_> = parts.iter().map(|p| p.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), parts.len());
        assert!(parts.iter().all(|(n, sql)| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && sql.contains("auth.")
        }));
    }
}
