-- Supa's additions to the auth schema, idempotent: applied to the project
-- template, by the standalone server on start, and by the multi-project
-- engine the first time it opens a project's pool (projects made before
-- an addition get it then). Each part starts with a `-- migration: NAME`
-- line and is recorded in `auth.supa_migrations` once applied.

-- migration: 20261202_outbox
-- The mail outbox: every e-mail the auth server sends, written in the
-- transaction that makes its token, so no mail is lost and none is sent
-- for a change that rolled back. Without SMTP settings it is the mail
-- catcher (`supa auth outbox REF`); with them, the record of delivery.
CREATE TABLE IF NOT EXISTS auth.supa_outbox (
  id bigserial PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  kind text NOT NULL,
  recipient text NOT NULL,
  subject text NOT NULL,
  body text NOT NULL,
  smtp boolean NOT NULL DEFAULT false,
  sent_at timestamptz,
  attempts integer NOT NULL DEFAULT 0,
  last_error text
);
CREATE INDEX IF NOT EXISTS supa_outbox_created_at_idx ON auth.supa_outbox (created_at DESC);
COMMENT ON TABLE auth.supa_outbox IS 'Supa: e-mails sent by the auth server (the outbox without SMTP).';

-- migration: 20261202_oauth_server
-- The OAuth 2.1 server: clients registered by admins (or dynamically),
-- authorization requests waiting for a user's consent, the consents
-- given, and which sessions a client holds. Secrets and codes are stored
-- as SHA-256 hashes only.
CREATE TABLE IF NOT EXISTS auth.supa_oauth_clients (
  id uuid PRIMARY KEY,
  client_secret_hash text,
  registration_type text NOT NULL,
  client_type text NOT NULL,
  token_endpoint_auth_method text NOT NULL,
  client_name text,
  client_uri text,
  logo_uri text,
  redirect_uris text[] NOT NULL,
  grant_types text[] NOT NULL,
  response_types text[] NOT NULL,
  scope text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS auth.supa_oauth_authorizations (
  id uuid PRIMARY KEY,
  client_id uuid NOT NULL REFERENCES auth.supa_oauth_clients (id) ON DELETE CASCADE,
  user_id uuid REFERENCES auth.users (id) ON DELETE CASCADE,
  redirect_uri text NOT NULL,
  scope text NOT NULL,
  state text,
  code_challenge text NOT NULL,
  code_hash text UNIQUE,
  status text NOT NULL DEFAULT 'pending',
  created_at timestamptz NOT NULL DEFAULT now(),
  approved_at timestamptz
);
CREATE TABLE IF NOT EXISTS auth.supa_oauth_consents (
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  client_id uuid NOT NULL REFERENCES auth.supa_oauth_clients (id) ON DELETE CASCADE,
  scopes text NOT NULL,
  granted_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, client_id)
);
CREATE TABLE IF NOT EXISTS auth.supa_oauth_sessions (
  session_id uuid PRIMARY KEY REFERENCES auth.sessions (id) ON DELETE CASCADE,
  client_id uuid NOT NULL REFERENCES auth.supa_oauth_clients (id) ON DELETE CASCADE
);
