-- Supabase Realtime's schema: the Postgres changes subscriptions, the
-- messages that broadcasts from the database and the authorization of
-- private channels go through, and the functions SQL calls
-- (`realtime.send`, `realtime.broadcast_changes`, `realtime.topic()`).
-- Run by the role that is to own it (`supabase_realtime_admin`), in a
-- schema that already exists.

CREATE TYPE realtime.equality_op AS ENUM ('eq', 'neq', 'lt', 'lte', 'gt', 'gte', 'in');
CREATE TYPE realtime.action AS ENUM ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'ERROR');
CREATE TYPE realtime.user_defined_filter AS (
  column_name text,
  op realtime.equality_op,
  value text
);

CREATE FUNCTION realtime.to_regrole(role_name text) RETURNS regrole
LANGUAGE sql IMMUTABLE AS $$ SELECT role_name::regrole $$;

-- One row per Postgres changes binding of a joined channel; `node` names
-- the Supa server holding the subscriber's socket.
CREATE TABLE realtime.subscription (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id uuid NOT NULL,
  entity regclass NOT NULL,
  filters realtime.user_defined_filter[] NOT NULL DEFAULT '{}',
  claims jsonb NOT NULL,
  claims_role regrole NOT NULL GENERATED ALWAYS AS (realtime.to_regrole(claims ->> 'role')) STORED,
  created_at timestamp NOT NULL DEFAULT timezone('utc', now()),
  action_filter text DEFAULT '*' CHECK (action_filter IN ('*', 'INSERT', 'UPDATE', 'DELETE')),
  node text NOT NULL DEFAULT ''
);
CREATE INDEX ix_realtime_subscription_entity ON realtime.subscription (entity);
CREATE INDEX ix_realtime_subscription_node ON realtime.subscription (node, subscription_id);

-- Broadcasts sent from the database, delivered to the channel named by
-- `topic` (private or public) through the project's replication slot.
-- Row level security is on with no policies: a project authorizes private
-- channels with its own policies, which see the channel as
-- `realtime.topic()`.
CREATE TABLE realtime.messages (
  topic text NOT NULL,
  extension text NOT NULL,
  payload jsonb,
  event text,
  private boolean DEFAULT false,
  updated_at timestamp NOT NULL DEFAULT now(),
  inserted_at timestamp NOT NULL DEFAULT now(),
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  PRIMARY KEY (id, inserted_at)
);
CREATE INDEX messages_inserted_at_topic_index ON realtime.messages (inserted_at DESC, topic);
ALTER TABLE realtime.messages ENABLE ROW LEVEL SECURITY;

-- The channel a policy on realtime.messages is asked about.
CREATE FUNCTION realtime.topic() RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('realtime.topic', true), '')::text
$$;

-- Broadcasts `payload` as `event` to channel `topic` when the calling
-- transaction commits. Failures are warnings, never the caller's error.
CREATE FUNCTION realtime.send(payload jsonb, event text, topic text, private boolean DEFAULT true)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    PERFORM set_config('realtime.topic', topic, true);
    INSERT INTO realtime.messages (payload, event, topic, private, extension)
    VALUES (payload, event, topic, private, 'broadcast');
  EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'ErrorSendingBroadcastMessage: %', SQLERRM;
  END;
END
$$;

-- A row trigger's change, broadcast to `topic_name` as
-- `{old_record, record, operation, table, schema}`.
CREATE FUNCTION realtime.broadcast_changes(
  topic_name text, event_name text, operation text, table_name text,
  table_schema text, new record, old record, level text DEFAULT 'ROW'
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF level = 'STATEMENT' THEN
    RAISE EXCEPTION 'function can only be triggered for each row, not for each statement';
  END IF;
  IF operation NOT IN ('INSERT', 'UPDATE', 'DELETE') THEN
    RAISE EXCEPTION 'Unexpected operation type: %', operation;
  END IF;
  PERFORM realtime.send(
    jsonb_build_object(
      'old_record', CASE WHEN $7 IS NULL THEN NULL ELSE to_jsonb($7) END,
      'record', CASE WHEN $6 IS NULL THEN NULL ELSE to_jsonb($6) END,
      'operation', operation, 'table', table_name, 'schema', table_schema),
    event_name, topic_name);
END
$$;

CREATE TABLE realtime.schema_migrations (
  version bigint PRIMARY KEY,
  inserted_at timestamp(0)
);
INSERT INTO realtime.schema_migrations (version, inserted_at) VALUES (20261203000000, now());
