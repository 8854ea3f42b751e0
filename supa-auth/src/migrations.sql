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
