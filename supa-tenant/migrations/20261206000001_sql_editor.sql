-- Studio's SQL editor: the queries run per project (the newest 50 kept)
-- and the snippets saved by name.
CREATE TABLE sql_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_ref text NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    query       text NOT NULL,
    error       text,
    row_count   integer,
    ran_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sql_history_project ON sql_history (project_ref, id DESC);

CREATE TABLE sql_snippets (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_ref text NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    query       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_ref, name)
);
