//! The storage schema, as Supabase Storage has it: its tables and columns,
//! the functions policies and clients call, row level security on with no
//! policies (nothing is readable until a project adds some), owned by
//! `supabase_storage_admin`.

/// Supabase Storage's schema for a database that has none, run by the
/// role that is to own it (the project template runs it as
/// `supabase_storage_admin`).
pub const SCHEMA_SQL: &str = include_str!("schema.sql");

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
