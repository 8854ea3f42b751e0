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
    /// What the uploader attached (S3's `x-amz-meta-*`).
    pub user_metadata: Option<serde_json::Value>,
}

/// The object `bucket/name` of a public bucket, in one statement (a
/// private or missing bucket is `NoSuchBucket`, as Supabase answers).
pub(crate) async fn find_public_object(
    client: &impl deadpool_postgres::GenericClient,
    bucket: &str,
    name: &str,
) -> Result<ObjectRow, Error> {
    let sql = "SELECT coalesce(b.public, false), o.id IS NOT NULL, o.version,
                coalesce(o.metadata, '{}'::jsonb),
                to_char(o.updated_at AT TIME ZONE 'UTC', 'Dy, DD Mon YYYY HH24:MI:SS \"GMT\"'),
                o.user_metadata
         FROM storage.buckets b
         LEFT JOIN storage.objects o ON o.bucket_id = b.id AND o.name = $2
         WHERE b.id = $1";
    let statement = client.prepare_cached(sql).await?;
    let row = client
        .query_opt(&statement, &[&bucket, &name])
        .await?
        .filter(|r| r.get::<_, bool>(0))
        .ok_or_else(Error::no_such_bucket)?;
    if !row.get::<_, bool>(1) {
        return Err(Error::no_such_key());
    }
    Ok(ObjectRow {
        version: row.get(2),
        metadata: row.get(3),
        last_modified: row.get(4),
        user_metadata: row.get(5),
    })
}

/// The object `bucket/name` as `client` may see it.
pub(crate) async fn find_object(
    client: &impl deadpool_postgres::GenericClient,
    bucket: &str,
    name: &str,
) -> Result<ObjectRow, Error> {
    let sql = "SELECT version, coalesce(metadata, '{}'::jsonb),
                to_char(updated_at AT TIME ZONE 'UTC', 'Dy, DD Mon YYYY HH24:MI:SS \"GMT\"'),
                user_metadata
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
        user_metadata: row.get(3),
    })
}

/// How a read reaches an object.
pub(crate) enum Reader<'a> {
    /// As the caller: row level security decides.
    Caller(&'a Caller),
    /// Through a public bucket, as the server.
    Public,
    /// By a signed URL, whose token the handler has checked, as the server.
    Signed,
}

/// The object `bucket/name` as `reader` reaches it; the connection goes
/// back to the pool before the bytes are served.
pub(crate) async fn find_as(
    mut client: Object,
    reader: Reader<'_>,
    bucket: &str,
    name: &str,
) -> Result<ObjectRow, Error> {
    match reader {
        Reader::Caller(caller) => {
            let tx = begin_as(&mut client, caller).await?;
            let row = find_object(&tx, bucket, name).await?;
            tx.commit().await?;
            Ok(row)
        }
        Reader::Public => find_public_object(&client, bucket, name).await,
        Reader::Signed => find_object(&client, bucket, name).await,
    }
}

/// Locks the row of `bucket/name` (read as the server, before acting as
/// a caller who may not see it) and gives the version a write replacing
/// it makes unreachable.
pub(crate) async fn lock_version(
    tx: &Transaction<'_>,
    bucket: &str,
    name: &str,
) -> Result<Option<String>, Error> {
    let statement = tx
        .prepare_cached(
            "SELECT version FROM storage.objects WHERE bucket_id = $1 AND name = $2 FOR UPDATE",
        )
        .await?;
    Ok(tx
        .query_opt(&statement, &[&bucket, &name])
        .await?
        .and_then(|r| r.get(0)))
}

/// One entry of a listing page: an object, or a folder (a common prefix
/// up to and including the delimiter).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The object's name, or the folder's prefix.
    pub key: String,
    pub folder: bool,
    pub id: Option<String>,
    pub updated_at: Option<String>,
    pub created_at: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// Up to `limit + 1` entries of `bucket` under `prefix` after `cursor`
/// (exclusive) in byte order, or before it when `descending`; with a
/// `delimiter`, the names that have it after the prefix are rolled up into
/// one folder entry each (S3's common prefixes). The extra entry tells the
/// caller there is a next page.
pub(crate) async fn list_page(
    client: &impl deadpool_postgres::GenericClient,
    bucket: &str,
    prefix: &str,
    cursor: Option<&str>,
    delimiter: Option<&str>,
    descending: bool,
    limit: i64,
) -> Result<Vec<Entry>, Error> {
    // After a folder, the cursor skips everything under it (U+10FFFF sorts
    // after any character in byte order).
    let cursor = cursor.map(|c| match delimiter {
        Some(d) if c.ends_with(d) && !descending => format!("{c}\u{10FFFF}"),
        _ => c.to_owned(),
    });
    let (cmp, order) = if descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let sql = format!(
        "SELECT k, folder IS NOT NULL, id::text, {}, {}, metadata FROM (
           SELECT DISTINCT ON (coalesce(folder, name) COLLATE \"C\") coalesce(folder, name) AS k, folder, id,
                  updated_at, created_at, metadata
           FROM (SELECT CASE WHEN $4::text <> '' AND strpos(substr(name, char_length($2) + 1), $4) > 0
                        THEN substr(name, 1, char_length($2) + strpos(substr(name, char_length($2) + 1), $4)
                                         + char_length($4) - 1)
                        END AS folder, *
                 FROM storage.objects
                 WHERE bucket_id = $1 AND starts_with(name, $2)
                   AND ($3::text IS NULL OR name COLLATE \"C\" {cmp} $3)) o
           ORDER BY coalesce(folder, name) COLLATE \"C\" {order}) d
         ORDER BY k COLLATE \"C\" {order} LIMIT $5",
        iso("updated_at"),
        iso("created_at")
    );
    let rows = client
        .query(
            &sql,
            &[
                &bucket,
                &prefix,
                &cursor,
                &delimiter.unwrap_or(""),
                &(limit + 1),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Entry {
            key: row.get(0),
            folder: row.get(1),
            id: row.get(2),
            updated_at: row.get(3),
            created_at: row.get(4),
            metadata: row.get(5),
        })
        .collect())
}

/// A bucket to create.
pub(crate) struct NewBucket<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// The creator's `sub`.
    pub owner: &'a Option<String>,
    pub public: bool,
    pub file_size_limit: Option<i64>,
    pub allowed_mime_types: Option<Vec<String>>,
}

/// Creates a bucket (`BucketAlreadyExists` when the id is taken).
pub(crate) async fn insert_bucket(
    client: &impl deadpool_postgres::GenericClient,
    bucket: NewBucket<'_>,
) -> Result<(), Error> {
    let sql = format!(
        "INSERT INTO storage.buckets (id, name, owner, owner_id, public, file_size_limit, allowed_mime_types)
         VALUES ($1, $2, {}, $3, $4, $5, $6)",
        owner_uuid(3)
    );
    match client
        .execute(
            &sql,
            &[
                &bucket.id,
                &bucket.name,
                bucket.owner,
                &bucket.public,
                &bucket.file_size_limit,
                &bucket.allowed_mime_types,
            ],
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            Err(Error::bucket_exists())
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes an empty bucket (`ResourceNotEmpty` when it holds objects).
pub(crate) async fn delete_bucket(
    client: &impl deadpool_postgres::GenericClient,
    id: &str,
) -> Result<(), Error> {
    match client
        .execute("DELETE FROM storage.buckets WHERE id = $1", &[&id])
        .await
    {
        Ok(0) => Err(Error::no_such_bucket()),
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) => {
            Err(Error::bucket_not_empty())
        }
        Err(e) => Err(e.into()),
    }
}
