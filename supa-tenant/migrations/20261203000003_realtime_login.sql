-- The password of each project's realtime server login (`{ref}_realtime`),
-- sealed like the others; NULL for projects made before it existed.
ALTER TABLE projects ADD COLUMN realtime_password_enc bytea;
