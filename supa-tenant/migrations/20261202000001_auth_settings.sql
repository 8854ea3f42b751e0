-- Per-project auth settings (Supabase's /v1/projects/{ref}/config/auth);
-- fields left out take GoTrue's defaults. The SMTP password is sealed apart.
ALTER TABLE projects ADD COLUMN auth jsonb NOT NULL DEFAULT '{}';
ALTER TABLE projects ADD COLUMN smtp_pass_enc bytea;
