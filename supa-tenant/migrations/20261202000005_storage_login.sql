-- The password of each project's storage server login (`{ref}_storage`),
-- sealed; null for projects made before the storage server had one.
ALTER TABLE projects ADD COLUMN storage_password_enc bytea;
