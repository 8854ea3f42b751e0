//! Supa's storage server: Supabase Storage's `/storage/v1` for every
//! project, as storage3 (supabase-py) and storage-js call it.
//!
//! So far this crate owns the storage schema every project database is
//! made with ([`schema::SCHEMA_SQL`]: Supabase's `storage.buckets`,
//! `storage.objects`, the S3 multipart tables, `storage.migrations` and
//! the helper functions policies use), so SQL and row level security
//! policies written for Supabase Storage work unchanged; the HTTP engine
//! comes next.

#![forbid(unsafe_code)]

pub mod schema;
