-- Each project's realtime settings (Supabase's `/config/realtime` shape),
-- as JSON; missing fields take the defaults.
ALTER TABLE projects ADD COLUMN realtime jsonb NOT NULL DEFAULT '{}';
