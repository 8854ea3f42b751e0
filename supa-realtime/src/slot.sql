-- The project's replication slot, reached only through these functions:
-- they run as the worker's admin (who may decode), name the slot after
-- the current database so a caller can touch no other (each computes the
-- name itself: the schema's owner could replace a shared helper), and
-- decode with
-- wal2json only the tables of the `supabase_realtime` publication and
-- realtime.messages. Run by the worker's admin after the schema; only
-- `supabase_realtime_admin` may call them.

CREATE FUNCTION realtime.supa_slot_name() RETURNS name
LANGUAGE sql STABLE AS $$
  SELECT @SLOT@
$$;

-- Creates the slot if it is missing; true when it did. Serialized with
-- supa_slot_drop, so a subscription committed before this call keeps the
-- slot it finds or makes.
CREATE FUNCTION realtime.supa_slot_open() RETURNS boolean
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
CREATE FUNCTION realtime.supa_slot_drop() RETURNS boolean
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
CREATE FUNCTION realtime.supa_slot_changes(upto pg_lsn, max_changes int)
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
CREATE FUNCTION realtime.supa_slot_advance(upto pg_lsn) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT FROM pg_replication_slot_advance(@SLOT@, upto)
$$;

REVOKE ALL ON FUNCTION realtime.supa_slot_name(),
  realtime.supa_slot_open(), realtime.supa_slot_drop(),
  realtime.supa_slot_changes(pg_lsn, int), realtime.supa_slot_advance(pg_lsn) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION realtime.supa_slot_name(),
  realtime.supa_slot_open(), realtime.supa_slot_drop(),
  realtime.supa_slot_changes(pg_lsn, int), realtime.supa_slot_advance(pg_lsn) TO supabase_realtime_admin;

-- What the API roles may use: realtime.topic() in policies, and
-- realtime.messages and realtime.send under row level security.
GRANT USAGE ON SCHEMA realtime TO anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON realtime.messages TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION realtime.topic(), realtime.send(jsonb, text, text, boolean),
  realtime.broadcast_changes(text, text, text, text, text, record, record, text)
  TO anon, authenticated, service_role;
