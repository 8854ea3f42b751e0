-- The functions the realtime server calls, run after the schema by a role
-- that may decode the WAL (each is replaced when it exists).
--
-- The project's replication slot is reached only through the slot
-- functions: they run as their owner (who may decode), name the slot
-- after the current database so a caller can touch no other (each
-- computes the name itself: the schema's owner could replace a shared
-- helper), and decode with wal2json only the tables of the
-- `supabase_realtime` publication and realtime.messages. Only
-- `supabase_realtime_admin` may call them.

CREATE OR REPLACE FUNCTION realtime.supa_slot_name() RETURNS name
LANGUAGE sql STABLE AS $$
  SELECT @SLOT@
$$;

-- Creates the slot if it is missing; true when it did. Serialized with
-- supa_slot_drop, so a subscription committed before this call keeps the
-- slot it finds or makes.
CREATE OR REPLACE FUNCTION realtime.supa_slot_open() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('supa_realtime_slot'));
  IF EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = @SLOT@) THEN
    RETURN false;
  END IF;
  PERFORM pg_create_logical_replication_slot(@SLOT@, 'wal2json');
  RETURN true;
END
$$;

-- Drops the slot unless a subscription still needs it; true when it is gone.
CREATE OR REPLACE FUNCTION realtime.supa_slot_drop() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('supa_realtime_slot'));
  IF EXISTS (SELECT 1 FROM realtime.subscription) THEN
    RETURN false;
  END IF;
  PERFORM pg_drop_replication_slot(slot_name) FROM pg_replication_slots
    WHERE slot_name = @SLOT@;
  RETURN true;
END
$$;

-- The changes committed before `upto`, at most about `max_changes` (whole
-- transactions), left in the slot until supa_slot_advance.
CREATE OR REPLACE FUNCTION realtime.supa_slot_changes(upto pg_lsn, max_changes int)
RETURNS TABLE (lsn pg_lsn, data text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT c.lsn, c.data
  FROM pg_logical_slot_peek_changes(@SLOT@, upto, max_changes,
    'format-version', '2', 'include-timestamp', 'true', 'include-pk', 'true',
    'add-tables', (
      SELECT string_agg(
               regexp_replace(schemaname, '([ '',.*\\])', '\\\1', 'g') || '.' ||
               regexp_replace(tablename, '([ '',.*\\])', '\\\1', 'g'), ',')
      FROM (SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = 'supabase_realtime'
            UNION SELECT 'realtime', 'messages') t)) c
$$;

-- Everything before `upto` has been delivered.
CREATE OR REPLACE FUNCTION realtime.supa_slot_advance(upto pg_lsn) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT FROM pg_replication_slot_advance(@SLOT@, upto)
$$;

-- Runs each of `checks` (a query giving one boolean, its argument
-- `args[i]`) as `roles[i]` with `claims[i]` as the JWT claims, and gives
-- the 1-based positions of those that are true: which subscribers row
-- level security lets see a change. Checks without a role run as the
-- caller and come first. The role and claims last until the statement
-- ends. `careful`: a check that fails (a policy that raises, a table gone
-- since) counts as false instead of failing the call, at the price of a
-- subtransaction per check; the caller asks for it after a failure.
CREATE OR REPLACE FUNCTION realtime.supa_check(roles text[], claims text[], checks text[], args jsonb[], careful boolean)
RETURNS SETOF int LANGUAGE plpgsql AS $$
DECLARE
  i int;
  current_role_name text := NULL;
  current_claims text := NULL;
  passed boolean;
  statement text;
  prepared text[];
BEGIN
  -- Each distinct check is prepared once per session: a plan is then
  -- made again only when the role changes (row security is part of it),
  -- not for every subscriber's claims.
  SELECT coalesce(array_agg(name), '{}') INTO prepared FROM pg_prepared_statements
    WHERE name LIKE 'supa_check_%';
  FOR i IN 1 .. coalesce(array_length(checks, 1), 0) LOOP
    statement := 'supa_check_' || md5(checks[i]);
    IF NOT statement = ANY (prepared) THEN
      EXECUTE format('PREPARE %I (jsonb) AS %s', statement, checks[i]);
      prepared := prepared || statement;
    END IF;
    IF roles[i] IS NOT NULL
       AND (roles[i] IS DISTINCT FROM current_role_name OR claims[i] IS DISTINCT FROM current_claims) THEN
      PERFORM set_config('role', roles[i], true);
      PERFORM set_config('request.jwt.claims', claims[i], true);
      current_role_name := roles[i];
      current_claims := claims[i];
    END IF;
    IF careful THEN
      BEGIN
        EXECUTE format('EXECUTE %I(%L)', statement, args[i]) INTO passed;
      EXCEPTION WHEN OTHERS THEN
        passed := false;
      END;
    ELSE
      EXECUTE format('EXECUTE %I(%L)', statement, args[i]) INTO passed;
    END IF;
    IF passed THEN
      RETURN NEXT i;
    END IF;
  END LOOP;
END
$$;

REVOKE ALL ON FUNCTION realtime.supa_check(text[], text[], text[], jsonb[], boolean), realtime.supa_slot_name(),
  realtime.supa_slot_open(), realtime.supa_slot_drop(),
  realtime.supa_slot_changes(pg_lsn, int), realtime.supa_slot_advance(pg_lsn) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION realtime.supa_check(text[], text[], text[], jsonb[], boolean), realtime.supa_slot_name(),
  realtime.supa_slot_open(), realtime.supa_slot_drop(),
  realtime.supa_slot_changes(pg_lsn, int), realtime.supa_slot_advance(pg_lsn) TO supabase_realtime_admin;

-- What the API roles may use: realtime.topic() in policies, and
-- realtime.messages and realtime.send under row level security.
GRANT USAGE ON SCHEMA realtime TO anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON realtime.messages TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION realtime.topic(), realtime.send(jsonb, text, text, boolean),
  realtime.broadcast_changes(text, text, text, text, text, record, record, text)
  TO anon, authenticated, service_role;
