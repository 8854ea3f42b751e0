-- The password of each project's auth server login (`{ref}_auth`), sealed;
-- null for projects made before the auth server had one.
ALTER TABLE projects ADD COLUMN auth_password_enc bytea;
