-- Where a project's auth, storage and functions requests go when another
-- server runs them (supa_core::ServiceUpstreams; absent keys: embedded).
ALTER TABLE projects ADD COLUMN services jsonb NOT NULL DEFAULT '{}';
