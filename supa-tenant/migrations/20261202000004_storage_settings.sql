-- Each project's storage settings (Supabase's `/config/storage` shape),
-- as JSON; missing fields take the defaults.
ALTER TABLE projects ADD COLUMN storage jsonb NOT NULL DEFAULT '{}';
