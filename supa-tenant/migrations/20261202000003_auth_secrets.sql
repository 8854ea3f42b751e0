-- The write-only secrets of each project's auth settings other than the
-- SMTP password (OAuth client secrets, hook signing secrets): a JSON
-- object by field name, sealed.
ALTER TABLE projects ADD COLUMN auth_secrets_enc bytea;
