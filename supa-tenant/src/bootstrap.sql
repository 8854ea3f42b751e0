-- Applied once per worker to the template every project database is copied
-- from: the Supabase conventions PostgREST-style requests rely on.
CREATE SCHEMA IF NOT EXISTS extensions;
CREATE SCHEMA IF NOT EXISTS auth;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA extensions;

-- The claims of the request's JWT, as the data plane sets them per transaction.
CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
$$;

CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT nullif(auth.jwt() ->> 'sub', '')::uuid
$$;

CREATE OR REPLACE FUNCTION auth.role() RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT nullif(auth.jwt() ->> 'role', '')
$$;

-- Supabase's convention: the API roles get privileges by default and row
-- level security narrows them.
GRANT USAGE ON SCHEMA public, extensions TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA auth TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
-- Nobody but the owner creates objects in public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- What SQL and clients written for Supabase expect to find: the Realtime
-- publication (empty until tables are added to it) and the GraphQL schema
-- clients list.
CREATE SCHEMA IF NOT EXISTS graphql_public;
GRANT USAGE ON SCHEMA graphql_public TO anon, authenticated, service_role;
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = 'supabase_realtime') THEN
    CREATE PUBLICATION supabase_realtime;
  END IF;
END $$;

-- The auth schema of Supabase's auth server (GoTrue v2.18x): its tables,
-- columns, types and indexes, owned by `supabase_auth_admin`, so SQL
-- written for Supabase (`references auth.users(id) on delete cascade`, a
-- trigger `after insert on auth.users`) works unchanged. Password hashes
-- are bcrypt in `encrypted_password`, as GoTrue stores them.
ALTER SCHEMA auth OWNER TO supabase_auth_admin;
SET ROLE supabase_auth_admin;

-- @auth-schema: supa_auth::SCHEMA_SQL, then its migrations.
-- The e-mail of the request's JWT, as Supabase has it.
CREATE OR REPLACE FUNCTION auth.email() RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT nullif(auth.jwt() ->> 'email', '')
$$;

RESET ROLE;
GRANT EXECUTE ON FUNCTION auth.email() TO anon, authenticated, service_role;
-- The API roles see none of these tables; the auth server writes them.

-- Supabase Storage's schema, owned by `supabase_storage_admin`: the API
-- roles may use its tables, and row level security (on, with no policies)
-- decides what each request sees, so policies written for Supabase
-- Storage work unchanged.
CREATE SCHEMA IF NOT EXISTS storage;
ALTER SCHEMA storage OWNER TO supabase_storage_admin;
SET ROLE supabase_storage_admin;
-- @storage-schema: supa_storage::schema::SCHEMA_SQL
RESET ROLE;
-- @storage-grants: supa_storage::schema::GRANTS_SQL

-- Supabase Realtime's schema, owned by `supabase_realtime_admin` (the
-- realtime server's logins act as it), then the functions it calls,
-- created by this script's role, which may decode the WAL.
CREATE SCHEMA IF NOT EXISTS realtime;
ALTER SCHEMA realtime OWNER TO supabase_realtime_admin;
SET ROLE supabase_realtime_admin;
-- @realtime-schema: supa_realtime::schema::SCHEMA_SQL
RESET ROLE;
-- @realtime-functions: supa_realtime::schema::FUNCTIONS_SQL
