//! The realtime schema, as Supabase Realtime has it (subscriptions,
//! messages, `realtime.send`, `realtime.broadcast_changes`,
//! `realtime.topic()`), owned by `supabase_realtime_admin`, and the
//! functions through which that role reaches the project's replication
//! slot without being able to decode anything else.

/// The slot's name, computed from the database the call runs in.
const SLOT_NAME_SQL: &str = "left('supa_realtime_' || regexp_replace(lower(regexp_replace(current_database(), '^proj_', '')), '[^a-z0-9_]', '_', 'g'), 63)::name";

/// Supabase Realtime's schema for a database that has none, run by the
/// role that is to own it (the project template runs it as
/// `supabase_realtime_admin`) in a `realtime` schema that exists.
pub const SCHEMA_SQL: &str = include_str!("schema.sql");

/// The slot functions and the API roles' grants, run after
/// [`SCHEMA_SQL`] by a role that may decode the WAL (the worker's admin).
pub static SLOT_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| include_str!("slot.sql").replace("@SLOT@", SLOT_NAME_SQL));

/// The slot of the database named `database`, as [`SLOT_SQL`] names it.
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

#[cfg(test)]
mod tests {
    #[test]
    fn slots_are_named_after_the_database() {
        assert_eq!(
            super::slot_name("proj_abcdefghijabcdefghij"),
            "supa_realtime_abcdefghijabcdefghij"
        );
        assert_eq!(super::slot_name("My-DB"), "supa_realtime_my_db");
        assert!(!super::SLOT_SQL.contains("@SLOT@"));
    }
}
