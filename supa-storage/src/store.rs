//! The storage schema as the API reads and writes it: transactions that
//! act as the caller (role and JWT claims set, so RLS decides), and the
//! few reads the server makes as `supabase_storage_admin` (a bucket's
//! limits, public buckets, signed URLs), as Supabase Storage makes them.

use deadpool_postgres::Transaction;
use supa_db::Object;

use crate::Error;

/// Who a request acts as: its verified JWT's role and claims.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// `anon`, `authenticated`, `service_role`.
    pub role: String,
    /// The claims, as JSON (`request.jwt.claims`).
    pub claims: String,
    /// The `sub` claim: the owner of what the caller writes.
    pub sub: Option<String>,
}

/// A timestamp as Supabase Storage's JSON shows it.
pub(crate) fn iso(column: &str) -> String {
    format!(r#"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#)
}

/// The deprecated `owner` column's uuid of the `sub` in parameter `$n`
/// (null when the subject is not a uuid).
pub(crate) fn owner_uuid(n: usize) -> String {
    format!(
        "CASE WHEN ${n}::text ~* '^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$' \
         THEN ${n}::text::uuid END"
    )
}

/// Begins a transaction that acts as `caller`.
pub(crate) async fn begin_as<'a>(
    client: &'a mut Object,
    caller: &Caller,
) -> Result<Transaction<'a>, Error> {
    let tx = client.transaction().await?;
    set_caller(&tx, caller).await?;
    Ok(tx)
}

/// Makes the rest of `tx` act as `caller`.
pub(crate) async fn set_caller(tx: &Transaction<'_>, caller: &Caller) -> Result<(), Error> {
    // Prepared once per connection (the pool keeps a statement cache), so
    // each statement of a request costs one round trip, not two.
    let statement = tx
        .prepare_cached(
            "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true),
                    set_config('request.jwt.claim.role', $1, true),
                    set_config('request.jwt.claim.sub', coalesce($3, ''), true)",
        )
        .await?;
    tx.execute(&statement, &[&caller.role, &caller.claims, &caller.sub])
        .await?;
    Ok(())
}

/// A bucket's limits, read as `supabase_storage_admin`.
#[derive(Debug, Clone)]
pub(crate) struct BucketLimits {
    pub public: bool,
    pub file_size_limit: Option<i64>,
    pub allowed_mime_types: Option<Vec<String>>,
}

/// The limits of bucket `id`, or `NoSuchBucket`.
pub(crate) async fn bucket_limits(
    client: &impl deadpool_postgres::GenericClient,
    id: &str,
) -> Result<BucketLimits, Error> {
    let statement = client
        .prepare_cached(
            "SELECT public, file_size_limit, allowed_mime_types FROM storage.buckets WHERE id = $1",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&id])
        .await?
        .ok_or_else(Error::no_such_bucket)?;
    Ok(BucketLimits {
        public: row.get::<_, Option<bool>>(0).unwrap_or(false),
        file_size_limit: row.get(1),
        allowed_mime_types: row.get(2),
    })
}

/// What a download needs of an object row.
#[derive(Debug, Clone)]
pub(crate) struct ObjectRow {
    pub version: Option<String>,
    pub metadata: serde_json::Value,
    /// `updated_at` as an HTTP date (`Last-Modified`).
    pub last_modified: Option<String>,
}

/// The object `bucket/name` as `client` may see it.
pub(crate) async fn find_object(
    client: &impl deadpool_postgres::GenericClient,
    bucket: &str,
    name: &str,
) -> Result<ObjectRow, Error> {
    let sql = "SELECT version, coalesce(metadata, '{}'::jsonb),
                to_char(updated_at AT TIME ZONE 'UTC', 'Dy, DD Mon YYYY HH24:MI:SS \"GMT\"')
         FROM storage.objects WHERE bucket_id = $1 AND name = $2";
    let statement = client.prepare_cached(sql).await?;
    let row = client
        .query_opt(&statement, &[&bucket, &name])
        .await?
        .ok_or_else(Error::no_such_key)?;
    Ok(ObjectRow {
        version: row.get(0),
        metadata: row.get(1),
        last_modified: row.get(2),
    })
}
