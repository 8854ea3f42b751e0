-- Supabase Storage's schema: buckets, objects (the metadata of each
-- stored file; the bytes live in the object store), S3 multipart uploads
-- and their parts, the migrations record, and the functions policies use.
-- Row level security is on for buckets and objects with no policies: a
-- project grants access with its own, as on Supabase. Run by the role that
-- is to own it, in a schema that already exists.

CREATE TABLE storage.buckets (
  id text PRIMARY KEY,
  name text NOT NULL,
  owner uuid,
  owner_id text,
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now(),
  public boolean DEFAULT false,
  avif_autodetection boolean DEFAULT false,
  file_size_limit bigint,
  allowed_mime_types text[],
  CONSTRAINT buckets_name_length CHECK (char_length(name) BETWEEN 1 AND 100)
);
COMMENT ON COLUMN storage.buckets.owner IS 'Field is deprecated, use owner_id instead';
CREATE UNIQUE INDEX bname ON storage.buckets (name);

CREATE TABLE storage.objects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  bucket_id text REFERENCES storage.buckets (id),
  name text COLLATE "C",
  owner uuid,
  owner_id text,
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now(),
  last_accessed_at timestamptz DEFAULT now(),
  metadata jsonb,
  user_metadata jsonb,
  path_tokens text[] GENERATED ALWAYS AS (string_to_array(name, '/')) STORED,
  version text
);
COMMENT ON COLUMN storage.objects.owner IS 'Field is deprecated, use owner_id instead';
CREATE UNIQUE INDEX bucketid_objname ON storage.objects (bucket_id, name);
CREATE INDEX name_prefix_search ON storage.objects (name text_pattern_ops);

CREATE TABLE storage.s3_multipart_uploads (
  id text PRIMARY KEY,
  in_progress_size bigint NOT NULL DEFAULT 0,
  upload_signature text NOT NULL,
  bucket_id text NOT NULL REFERENCES storage.buckets (id),
  key text COLLATE "C" NOT NULL,
  version text NOT NULL,
  owner_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  user_metadata jsonb
);
CREATE INDEX idx_multipart_uploads_list ON storage.s3_multipart_uploads (bucket_id, key, created_at);

CREATE TABLE storage.s3_multipart_uploads_parts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  upload_id text NOT NULL REFERENCES storage.s3_multipart_uploads (id) ON DELETE CASCADE,
  size bigint NOT NULL DEFAULT 0,
  part_number integer NOT NULL,
  bucket_id text NOT NULL REFERENCES storage.buckets (id),
  key text COLLATE "C" NOT NULL,
  etag text NOT NULL,
  owner_id text,
  version text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE storage.migrations (
  id integer PRIMARY KEY,
  name varchar(100) UNIQUE NOT NULL,
  hash varchar(40) NOT NULL,
  executed_at timestamp DEFAULT current_timestamp
);

-- The folders of a name: `storage.foldername('a/b/c.png')` is {a,b}.
CREATE FUNCTION storage.foldername(name text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
  SELECT (string_to_array(name, '/'))[1:array_length(string_to_array(name, '/'), 1) - 1]
$$;

-- The file of a name: `storage.filename('a/b/c.png')` is c.png.
CREATE FUNCTION storage.filename(name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT (string_to_array(name, '/'))[array_length(string_to_array(name, '/'), 1)]
$$;

-- The extension of a name's file: `storage.extension('a/b/c.png')` is png.
CREATE FUNCTION storage.extension(name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT reverse(split_part(reverse(storage.filename(name)), '.', 1))
$$;

-- The entries of a folder as the dashboard lists them: the files at
-- `levels` depth under `prefix` (`search` filtering their names), then
-- the sub-folders, as rows with a null id. Runs as the caller, so row
-- level security decides what is listed.
CREATE FUNCTION storage.search(
  prefix text, bucketname text, limits integer DEFAULT 100, levels integer DEFAULT 1,
  offsets integer DEFAULT 0, search text DEFAULT '', sortcolumn text DEFAULT 'name',
  sortorder text DEFAULT 'asc'
) RETURNS TABLE (
  name text, id uuid, updated_at timestamptz, created_at timestamptz,
  last_accessed_at timestamptz, metadata jsonb
)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_order text := CASE WHEN lower(sortorder) = 'desc' THEN 'DESC' ELSE 'ASC' END;
  v_column text := CASE lower(sortcolumn)
    WHEN 'updated_at' THEN 'updated_at' WHEN 'created_at' THEN 'created_at'
    WHEN 'last_accessed_at' THEN 'last_accessed_at' ELSE 'name' END;
BEGIN
  RETURN QUERY EXECUTE format(
    'WITH entries AS (
       SELECT o.path_tokens[$3] AS name,
              CASE WHEN array_length(o.path_tokens, 1) = $3 THEN o.id END AS id,
              CASE WHEN array_length(o.path_tokens, 1) = $3 THEN o.updated_at END AS updated_at,
              CASE WHEN array_length(o.path_tokens, 1) = $3 THEN o.created_at END AS created_at,
              CASE WHEN array_length(o.path_tokens, 1) = $3 THEN o.last_accessed_at END AS last_accessed_at,
              CASE WHEN array_length(o.path_tokens, 1) = $3 THEN o.metadata END AS metadata
       FROM storage.objects o
       WHERE o.bucket_id = $2 AND o.name ILIKE $1 || ''%%''
         AND array_length(o.path_tokens, 1) >= $3
         AND o.path_tokens[$3] ILIKE ''%%'' || $6 || ''%%''),
     folders AS (
       SELECT DISTINCT e.name, NULL::uuid AS id, NULL::timestamptz AS updated_at,
              NULL::timestamptz AS created_at, NULL::timestamptz AS last_accessed_at,
              NULL::jsonb AS metadata
       FROM entries e WHERE e.id IS NULL)
     SELECT * FROM (SELECT * FROM folders
                    UNION ALL SELECT * FROM entries e WHERE e.id IS NOT NULL) listed
     ORDER BY (listed.id IS NOT NULL), listed.%I %s NULLS LAST
     LIMIT $4 OFFSET $5',
    v_column, v_order)
  USING prefix, bucketname, levels, limits, offsets, search;
END
$$;

ALTER TABLE storage.buckets ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage.migrations ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage.s3_multipart_uploads ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage.s3_multipart_uploads_parts ENABLE ROW LEVEL SECURITY;
