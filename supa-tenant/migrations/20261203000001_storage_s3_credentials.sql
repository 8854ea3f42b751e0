-- The access keys of each project's S3 endpoint (`/storage/v1/s3`), their
-- secrets sealed; a key acts as the project's service role.
CREATE TABLE storage_s3_credentials (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_ref text NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    access_key  text NOT NULL UNIQUE,
    secret_enc  bytea NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX storage_s3_credentials_project ON storage_s3_credentials (project_ref);
