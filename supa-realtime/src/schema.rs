//! The realtime schema, as Supabase Realtime has it (subscriptions,
//! messages, `realtime.send`, `realtime.broadcast_changes`,
//! `realtime.topic()`), owned by `supabase_realtime_admin`, and the
//! functions through which that role reaches the project's replication
//! slot without being able to decode anything else.

/// The slot's name, computed from the database the call runs in.
const SLOT_NAME_SQL: &str = "left('supa_realtime_' || regexp_replace(lower(regexp_replace(current_database(), '^proj_', '')), '[^a-z0-9_]', '_', 'g'), 63)::name";

/// The role that owns the realtime schema (the realtime server's logins
/// act as it), made once per cluster.
pub const ADMIN_ROLE_SQL: &str = "DO $$ BEGIN
   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'supabase_realtime_admin') THEN
     CREATE ROLE supabase_realtime_admin NOLOGIN NOINHERIT; END IF;
 END $$";

/// Supabase Realtime's schema for a database that has none, run by the
/// role that is to own it (the project template runs it as
/// `supabase_realtime_admin`) in a `realtime` schema that exists.
pub const SCHEMA_SQL: &str = include_str!("schema.sql");

/// The functions the realtime server calls (the slot's among them) and
/// the API roles' grants, run after [`SCHEMA_SQL`] by a role that may
/// decode the WAL (the worker's admin); each replaces its older self.
pub static FUNCTIONS_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| include_str!("functions.sql").replace("@SLOT@", SLOT_NAME_SQL));

/// The slot of the database named `database`, as [`FUNCTIONS_SQL`] names it.
pub fn slot_name(database: &str) -> String {
    let base = database.strip_prefix("proj_").unwrap_or(database);
    let mut name: String = "supa_realtime_"
        .chars()
        .chain(base.chars().map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        }))
        .collect();
    name.truncate(63);
    name
}

/// Creates the realtime schema in a standalone server's database when it
/// has none (as Supabase Realtime migrates on start), brings one made by
/// Supabase Realtime up to what this server needs (the `node` of each
/// subscription), and (re)creates the functions. The login must be able
/// to act as `supabase_realtime_admin` and to decode the WAL (a superuser,
/// as Supabase's `supabase_admin` is). One server at a time does it.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('supa-realtime schema'))",
        &[],
    )
    .await?;
    tx.batch_execute(supa_core::Role::CREATE_SQL).await?;
    tx.batch_execute(ADMIN_ROLE_SQL).await?;
    let missing: bool = tx
        .query_one("SELECT to_regclass('realtime.subscription') IS NULL", &[])
        .await?
        .get(0);
    if missing {
        tx.batch_execute(
            "CREATE SCHEMA IF NOT EXISTS realtime;
             ALTER SCHEMA realtime OWNER TO supabase_realtime_admin;
             SET LOCAL ROLE supabase_realtime_admin",
        )
        .await?;
        tx.batch_execute(SCHEMA_SQL).await?;
        tx.batch_execute("RESET ROLE").await?;
    } else {
        tx.batch_execute(
            "ALTER TABLE realtime.subscription ADD COLUMN IF NOT EXISTS node text NOT NULL DEFAULT ''",
        )
        .await?;
    }
    // What Supabase's database image has: the publication tables join.
    tx.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = 'supabase_realtime') THEN
             CREATE PUBLICATION supabase_realtime; END IF;
         END $$",
    )
    .await?;
    tx.batch_execute(&FUNCTIONS_SQL).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    #[test]
    fn slots_are_named_after_the_database() {
        assert_eq!(
            super::slot_name("proj_abcdefghijabcdefghij"),
            "supa_realtime_abcdefghijabcdefghij"
        );
        assert_eq!(super::slot_name("My-DB"), "supa_realtime_my_db");
        assert!(!super::FUNCTIONS_SQL.contains("@SLOT@"));
    }
}
