//! The storage schema, as Supabase Storage has it: its tables and columns,
//! the functions policies and clients call, row level security on with no
//! policies (nothing is readable until a project adds some), owned by
//! `supabase_storage_admin`.

/// Supabase Storage's schema for a database that has none, run by the
/// role that is to own it (the project template runs it as
/// `supabase_storage_admin`).
pub const SCHEMA_SQL: &str = include_str!("schema.sql");

/// What the API roles may use of the schema (row level security decides
/// the rest), run after [`SCHEMA_SQL`] by a role that may grant it.
pub const GRANTS_SQL: &str = "GRANT USAGE ON SCHEMA storage TO anon, authenticated, service_role;
GRANT ALL ON storage.buckets, storage.objects, storage.s3_multipart_uploads,
  storage.s3_multipart_uploads_parts TO anon, authenticated, service_role;
";

/// Creates the storage schema in a standalone server's database when it
/// has none (as Supabase Storage migrates on start), with the API roles
/// it grants to. One server at a time does it (an advisory lock).
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('supa-storage schema'))",
        &[],
    )
    .await?;
    let missing: bool = tx
        .query_one("SELECT to_regclass('storage.buckets') IS NULL", &[])
        .await?
        .get(0);
    if missing {
        tx.batch_execute(supa_core::Role::CREATE_SQL).await?;
        tx.batch_execute("CREATE SCHEMA IF NOT EXISTS storage")
            .await?;
        tx.batch_execute(SCHEMA_SQL).await?;
        tx.batch_execute(GRANTS_SQL).await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_schema_names_supabase_storage_objects() {
        for needle in [
            "CREATE TABLE storage.buckets",
            "CREATE TABLE storage.objects",
            "CREATE TABLE storage.s3_multipart_uploads ",
            "CREATE TABLE storage.s3_multipart_uploads_parts",
            "CREATE TABLE storage.migrations",
            "FUNCTION storage.foldername",
            "FUNCTION storage.filename",
            "FUNCTION storage.extension",
            "FUNCTION storage.search",
            "ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY",
            "ALTER TABLE storage.buckets ENABLE ROW LEVEL SECURITY",
        ] {
            assert!(super::SCHEMA_SQL.contains(needle), "{needle}");
        }
    }
}
