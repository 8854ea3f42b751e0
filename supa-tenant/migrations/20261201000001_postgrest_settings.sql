-- Per-project data plane settings (Supabase's /v1/projects/{ref}/postgrest);
-- fields left out take the platform's defaults.
ALTER TABLE projects ADD COLUMN postgrest jsonb NOT NULL DEFAULT '{}';
