-- Backups of project databases and objects (the files live in the backup
-- store). Rows outlive their project, so a deleted project can still be
-- restored into a new one; scheduled ones expire with their schedule.
CREATE TABLE backups (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_ref text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('manual', 'scheduled')),
    status text NOT NULL CHECK (status IN ('RUNNING', 'COMPLETED', 'FAILED')),
    error text,
    database_bytes bigint NOT NULL DEFAULT 0,
    objects bigint NOT NULL DEFAULT 0,
    object_bytes bigint NOT NULL DEFAULT 0,
    inserted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backups_by_project ON backups (project_ref, inserted_at DESC);

-- {"enabled", "hour_utc", "retention_days"}; NULL: off.
ALTER TABLE projects ADD COLUMN backup_schedule jsonb;
