-- Edge functions: each function and the version traffic goes to, the files
-- of its recent versions (the sources and the bundle workers run), the log
-- events gateways report, and each project's functions login
-- (`{ref}_functions`, the `SUPABASE_DB_URL` of its functions), sealed like
-- the others; NULL for projects made before it existed.
CREATE TABLE functions (
    project_ref     text NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    slug            text NOT NULL CHECK (slug ~ '^[A-Za-z][A-Za-z0-9_-]{0,63}$'),
    id              uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    name            text NOT NULL,
    version         integer NOT NULL,
    verify_jwt      boolean NOT NULL,
    entrypoint_path text NOT NULL,
    import_map_path text,
    bundle_path     text NOT NULL,
    sha256          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_ref, slug)
);

CREATE TABLE function_files (
    project_ref text NOT NULL,
    slug        text NOT NULL,
    version     integer NOT NULL,
    path        text NOT NULL,
    content     bytea NOT NULL,
    PRIMARY KEY (project_ref, slug, version, path),
    FOREIGN KEY (project_ref, slug) REFERENCES functions (project_ref, slug) ON DELETE CASCADE
);

CREATE TABLE function_logs (
    id          bigserial PRIMARY KEY,
    project_ref text NOT NULL,
    slug        text NOT NULL,
    at          timestamptz NOT NULL,
    event       jsonb NOT NULL,
    FOREIGN KEY (project_ref, slug) REFERENCES functions (project_ref, slug) ON DELETE CASCADE
);
CREATE INDEX function_logs_by_function ON function_logs (project_ref, slug, id);
CREATE INDEX function_logs_by_time ON function_logs (at);

ALTER TABLE projects ADD COLUMN functions_password_enc bytea;
