-- The client secrets of each project's OAuth providers (a JSON object by
-- provider name), sealed; write-only in the Management API.
ALTER TABLE projects ADD COLUMN provider_secrets_enc bytea;
