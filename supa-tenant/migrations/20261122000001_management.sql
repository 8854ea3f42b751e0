-- The management database: workers, projects, api_keys, secrets.
-- Every bytea column named *_enc holds AES-256-GCM ciphertext under the
-- platform master key; nothing secret is stored in clear.

CREATE TABLE workers (
    id             text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    host           text NOT NULL,
    port           integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    admin_user     text NOT NULL,
    admin_password_enc bytea NOT NULL,
    max_databases  integer NOT NULL CHECK (max_databases > 0),
    weight         integer NOT NULL DEFAULT 100 CHECK (weight >= 0),
    status         text NOT NULL DEFAULT 'active'
                   CHECK (status IN ('active', 'maintenance', 'draining')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    ref            text PRIMARY KEY CHECK (ref ~ '^[a-z]{20}$'),
    name           text NOT NULL,
    worker_id      text NOT NULL REFERENCES workers (id),
    status         text NOT NULL,
    authenticator_password_enc bytea NOT NULL,
    jwt_secret_enc bytea NOT NULL,
    upstream       jsonb NOT NULL DEFAULT '{"kind": "embedded"}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_worker_id ON projects (worker_id);

CREATE TABLE api_keys (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_ref    text NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    name           text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('publishable', 'secret')),
    hash           bytea NOT NULL UNIQUE,
    prefix         text NOT NULL,
    -- Publishable keys are public; secret keys are kept only encrypted.
    publishable_key text,
    secret_key_enc bytea,
    revoked_at     timestamptz,
    inserted_at    timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'publishable') = (publishable_key IS NOT NULL)),
    CHECK ((kind = 'secret') = (secret_key_enc IS NOT NULL))
);
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (project_ref, kind, name) WHERE revoked_at IS NULL;
-- One live publishable key per project.
CREATE UNIQUE INDEX api_keys_one_publishable ON api_keys (project_ref) WHERE kind = 'publishable' AND revoked_at IS NULL;

CREATE TABLE secrets (
    project_ref    text NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    name           text NOT NULL CHECK (name ~ '^[A-Z_][A-Z0-9_]*$' AND name NOT LIKE 'SUPABASE\_%'),
    value_enc      bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_ref, name)
);
