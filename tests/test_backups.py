"""Backups and restores through `supa projects backup|backups|restore` and
the Management API: a pg_dump of the project database plus its storage
objects, restored into the same project (the drill: write, back up, write
more, restore, compare) or into a new one, a daily schedule, and the
backup store on a real S3-compatible server (moto)."""

import json
import time
import uuid

import httpx
import pytest
from supabase import create_client

from conftest import configure_auth, create_project, moto_s3, running_platform

SCHEMA = """
create table notes (id int primary key, body text not null, owner uuid);
alter table notes enable row level security;
create policy "own notes" on notes for select to authenticated using (owner = auth.uid());
create table profiles (id uuid primary key, email text);
create function public.on_signup() returns trigger language plpgsql security definer as $$
begin insert into public.profiles (id, email) values (new.id, new.email); return new; end $$;
create trigger on_signup after insert on auth.users for each row execute function public.on_signup();
create policy "read own folder" on storage.objects for select to authenticated
  using (bucket_id = 'docs' and (storage.foldername(name))[1] = auth.uid()::text);
alter publication supabase_realtime add table notes;
insert into notes select i, 'note ' || i from generate_series(1, 50) i;
"""


def sql(platform, project, query):
    with platform.client() as api:
        r = api.post(f"/v1/projects/{project['ref']}/database/query", json={"query": query})
        assert r.status_code == 201, r.text
        return r.json()


def secret(project):
    return create_client(project["url"], project["secret_key"])


def state(platform, project):
    """What a restore must bring back: rows, users and their profiles,
    the policies and trigger on service tables, publication members, and
    every object's bytes."""
    db = secret(project)
    objects = sorted(f["name"] for f in db.storage.from_("docs").list("a"))
    return {
        "notes": sql(platform, project, "select id, body from notes order by id"),
        "users": sql(platform, project, "select email from auth.users order by email"),
        "profiles": sql(platform, project, "select email from profiles order by email"),
        "policies": sql(platform, project, "select schemaname, tablename, policyname from pg_policies "
                                           "order by 1, 2, 3"),
        "triggers": sql(platform, project, "select tgname from pg_trigger where not tgisinternal "
                                           "and tgrelid = 'auth.users'::regclass"),
        "published": sql(platform, project, "select tablename from pg_publication_tables "
                                            "where pubname = 'supabase_realtime'"),
        "objects": {name: db.storage.from_("docs").download(f"a/{name}") for name in objects},
    }


def backup(platform, project):
    out = platform.cli("projects", "backup", project["ref"], "--json")
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def project(platform):
    created = create_project(platform, "backed-up", SCHEMA)
    configure_auth(platform, created, mailer_autoconfirm=True)
    db = secret(created)
    db.storage.create_bucket("docs")
    for i in range(3):
        db.storage.from_("docs").upload(f"a/{i}.bin", uuid.uuid4().bytes * (i + 1) * 100)
    anon = create_client(created["url"], created["publishable_key"])
    anon.auth.sign_up({"email": "first@example.com", "password": "first-password"})
    return created


def test_write_back_up_write_more_restore_compare(platform, project):
    before = state(platform, project)
    assert len(before["notes"]) == 50 and before["profiles"] == [{"email": "first@example.com"}]
    taken = backup(platform, project)
    assert taken["status"] == "COMPLETED" and taken["kind"] == "manual", taken
    assert taken["database_bytes"] > 0 and taken["objects"] == 3, taken

    # More writes of every kind after the backup.
    sql(platform, project, "insert into notes values (51, 'after'); delete from notes where id = 1; "
                           "update notes set body = 'changed' where id = 2")
    db = secret(project)
    db.storage.from_("docs").upload("a/late.bin", b"late")
    db.storage.from_("docs").remove(["a/0.bin"])
    create_client(project["url"], project["publishable_key"]).auth.sign_up(
        {"email": "second@example.com", "password": "second-password"})
    assert state(platform, project) != before

    restored = platform.cli("projects", "restore", project["ref"], "--from", taken["id"])
    assert f"Restored backup {taken['id']} into {project['ref']}" in restored.stdout
    after = state(platform, project)
    assert after == before
    # The project serves with its keys, and the restored trigger fires.
    create_client(project["url"], project["publishable_key"]).auth.sign_up(
        {"email": "third@example.com", "password": "third-password"})
    profiles = sql(platform, project, "select email from profiles order by email")
    assert profiles == [{"email": "first@example.com"}, {"email": "third@example.com"}]
    session = create_client(project["url"], project["publishable_key"]).auth.sign_in_with_password(
        {"email": "first@example.com", "password": "first-password"}).session
    assert session.access_token
    # It is listed, in Supabase's shape.
    with platform.client() as api:
        listed = api.get(f"/v1/projects/{project['ref']}/database/backups").json()
    assert listed["pitr_enabled"] is False and listed["walg_enabled"] is False
    assert [b["id"] for b in listed["backups"]][:1] == [taken["id"]]
    assert listed["backups"][0]["is_physical_backup"] is False


def test_a_backup_restores_into_a_new_project(platform, project):
    taken = backup(platform, project)
    before = state(platform, project)
    other = create_project(platform, "restored-copy")
    platform.cli("projects", "restore", other["ref"], "--from", taken["id"])
    assert state(platform, other) == before
    # Its own keys open the copy; the user signs in to it with the same password.
    session = create_client(other["url"], other["publishable_key"]).auth.sign_in_with_password(
        {"email": "first@example.com", "password": "first-password"}).session
    assert session.user.email == "first@example.com"
    # The original is untouched by the copy's writes.
    sql(platform, other, "delete from notes")
    assert len(sql(platform, project, "select id from notes")) == len(before["notes"])


def test_bad_requests_are_clear(platform, project):
    with platform.client() as api:
        base = f"/v1/projects/{project['ref']}/database/backups"
        r = api.post(f"{base}/restore", json={"backup_id": str(uuid.uuid4())})
        assert r.status_code == 404 and "not found" in r.json()["message"], r.text
        r = api.post(f"{base}/restore", json={"backup": "x"})
        assert r.status_code == 400, r.text
        r = api.post("/v1/projects/abcdefghijklmnopqrst/database/backups")
        assert r.status_code == 404, r.text
        r = api.put(f"{base}/schedule", json={"enabled": True, "hour_utc": 24})
        assert r.status_code == 400 and "hour_utc" in r.json()["message"], r.text
        r = api.put(f"{base}/schedule", json={"enabled": True, "weekly": True})
        assert r.status_code == 400, r.text
    failed = platform.cli("projects", "restore", project["ref"], "--from", "nope", check=False)
    assert failed.returncode != 0 and "not found" in failed.stderr


def test_a_daily_schedule_takes_todays_backup(platform):
    scheduled = create_project(platform, "scheduled", "create table t (id int); insert into t values (1)")
    out = platform.cli("projects", "backup-schedule", scheduled["ref"], "--hour-utc", "0", "--retention-days", "3")
    assert "Daily backups of" in out.stdout and "kept 3 days" in out.stdout
    deadline = time.monotonic() + 30
    while True:
        listed = json.loads(platform.cli("projects", "backups", scheduled["ref"], "--json").stdout)
        if listed and all(b["status"] != "RUNNING" for b in listed):
            break
        assert time.monotonic() < deadline, f"no scheduled backup was taken: {listed}"
        time.sleep(0.5)
    assert [(b["kind"], b["status"]) for b in listed] == [("scheduled", "COMPLETED")]
    with platform.client() as api:
        got = api.get(f"/v1/projects/{scheduled['ref']}/database/backups/schedule").json()
    assert got == {"enabled": True, "hour_utc": 0, "retention_days": 3}


@pytest.fixture(scope="module")
def s3_server():
    with moto_s3("supa-backups") as server:
        yield server


def test_backups_on_s3(s3_server):
    endpoint, s3 = s3_server
    env = {"SUPA_BACKUP_LOCATION": "s3://supa-backups", "SUPA_STORAGE_S3_ENDPOINT": endpoint,
           "SUPA_STORAGE_S3_FORCE_PATH_STYLE": "true", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
    with running_platform(extra_env=env) as p:
        project = create_project(p, "on-s3", "create table t (id int); insert into t values (1), (2)")
        db = secret(project)
        db.storage.create_bucket("docs")
        db.storage.from_("docs").upload("a/x.bin", b"kept on s3")
        taken = json.loads(p.cli("projects", "backup", project["ref"], "--json").stdout)
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="supa-backups")["Contents"])
        prefix = f"{project['ref']}/{taken['id']}"
        assert f"{prefix}/database.dump" in keys and any(k.startswith(f"{prefix}/objects/") for k in keys), keys
        with p.client() as api:
            api.post(f"/v1/projects/{project['ref']}/database/query", json={"query": "delete from t"})
        db.storage.from_("docs").remove(["a/x.bin"])
        p.cli("projects", "restore", project["ref"], "--from", taken["id"])
        assert sql(p, project, "select id from t order by id") == [{"id": 1}, {"id": 2}]
        assert secret(project).storage.from_("docs").download("a/x.bin") == b"kept on s3"
        r = httpx.get(f"{p.api_url}/v1/projects/{project['ref']}/database/backups",
                      headers={"Authorization": f"Bearer {p.token}"})
        assert [b["id"] for b in r.json()["backups"]] == [taken["id"]]
