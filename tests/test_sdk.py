"""The Python SDK: the Management API client through the bindings (async,
typed, one error with the HTTP status), the tenant bootstrap as data held
against a real project's database, migrations in the Supabase CLI's
layout, and the plugin's fixtures as this suite uses them."""

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import supa
from supa.platform import Migrations, Platform

from conftest import ROOT, SUPA, free_port

EXAMPLE = ROOT / "examples" / "notes-app"


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def management(platform):
    return supa.ManagementClient(platform.api_url, platform.token)


def test_projects_live_and_die_through_the_client(management, platform):
    async def lifecycle():
        created = await management.create_project("sdk", project_ref=REF)
        listed = await management.list_projects()
        got = await management.get_project(created.project.project_ref)
        paused = await management.pause_project(got.project_ref)
        resumed = await management.resume_project(got.project_ref)
        alive = httpx.get(rest, headers={"apikey": created.publishable_key}).status_code
        await management.delete_project(got.project_ref)
        gone = httpx.get(rest, headers={"apikey": created.publishable_key}).status_code
        return created, listed, got, paused, resumed, (alive, gone)

    REF = "sdkprojectlifecycles"
    rest = f"{platform.gateway_url}/project/{REF}/rest/v1/"
    created, listed, got, paused, resumed, statuses = run(lifecycle())
    assert isinstance(created, supa.CreatedProject) and isinstance(got, supa.Project)
    assert got.project_ref == REF and got.name == "sdk"
    assert got.status == "ACTIVE_HEALTHY" and re.match(r"\d{4}-\d\d-\d\dT", got.created_at)
    assert REF in [p.project_ref for p in listed]
    assert (paused.status, resumed.status) == ("INACTIVE", "ACTIVE_HEALTHY")
    assert supa.validate_key(got.project_ref, created.publishable_key).kind == "publishable"
    assert supa.validate_key(got.project_ref, created.secret_key).kind == "secret"
    # Records print their fields, the secret key masked.
    assert created.secret_key not in repr(created) and created.secret_key[:16] in repr(created)
    assert f"project_ref='{REF}'" in str(got)
    # The keys work at the gateway until the project is gone.
    assert statuses == (200, 401)
    with pytest.raises(supa.ManagementError) as gone:
        run(management.get_project(got.project_ref))
    assert gone.value.status == 404 and "not found" in gone.value.message


def test_keys_sql_secrets_and_settings(management, supa_project):
    ref = supa_project.ref

    async def calls():
        added = await management.create_api_key(ref, "ci")
        masked = await management.list_api_keys(ref)
        revealed = await management.list_api_keys(ref, reveal=True)
        revoked = await management.revoke_api_key(ref, added.id)
        rows = await management.query(ref, "create table t (n int); insert into t values (1), (2); "
                                           "select n, n * 2 as twice from t order by n")
        set_ = await management.set_secrets(ref, {"STRIPE_KEY": "sk_test_1", "OTHER": "x"})
        left = await management.unset_secrets(ref, ["OTHER"])
        auth = await management.update_config(ref, "auth", {"site_url": "https://app.example.com"})
        postgrest = await management.update_config(ref, "postgrest", {"max_rows": 5})
        return added, masked, revealed, revoked, rows, set_, left, auth, postgrest

    added, masked, revealed, revoked, rows, set_, left, auth, postgrest = run(calls())
    assert added.kind == "secret" and added.api_key.startswith("sb_secret_")
    assert supa.validate_key(ref, added.api_key).checksum_verified
    ci_masked = next(k for k in masked if k.name == "ci")
    assert ci_masked.api_key != added.api_key and ci_masked.api_key.startswith(f"sb_secret_{ci_masked.prefix}")
    assert next(k for k in revealed if k.name == "ci").api_key == added.api_key
    assert revoked.id == added.id
    assert "ci" not in [k.name for k in run(management.list_api_keys(ref))]
    assert rows == [{"n": 1, "twice": 2}, {"n": 2, "twice": 4}]
    assert {s.name: s.digest for s in set_}["STRIPE_KEY"] == hashlib.sha256(b"sk_test_1").hexdigest()
    assert [s.name for s in left] == ["STRIPE_KEY"]
    assert auth["site_url"] == "https://app.example.com"
    assert postgrest["max_rows"] == 5
    assert supa_project.config("postgrest")["max_rows"] == 5
    # The data plane uses the new setting from the next request.
    client = supa_project.client("secret")
    client.table("t").insert([{"n": i} for i in range(3, 10)]).execute()
    assert len(client.table("t").select("n").execute().data) == 5


def test_functions_deploy_list_and_delete(management, supa_project):
    source = b'Deno.serve(() => new Response(JSON.stringify({hello: "sdk"}), ' \
             b'{headers: {"content-type": "application/json"}}))'
    ref = supa_project.ref
    deployed = run(management.deploy_function(ref, "hello", [supa.FunctionFile(path="index.ts", content=source)],
                                              verify_jwt=False))
    assert (deployed.slug, deployed.version, deployed.verify_jwt) == ("hello", 1, False)
    assert [f.slug for f in run(management.list_functions(ref))] == ["hello"]
    r = httpx.post(f"{supa_project.url}/functions/v1/hello", headers={"apikey": supa_project.publishable_key},
                   timeout=60)
    assert r.json() == {"hello": "sdk"}
    run(management.delete_function(ref, "hello"))
    assert run(management.list_functions(ref)) == []


@pytest.mark.parametrize("call, status, message", [
    (lambda m: m.get_project("short"), 400, "invalid project ref"),
    (lambda m: m.get_project("nosuchprojectatallxx"), 404, "not found"),
    (lambda m: m.get_config("abcdefghijklmnopqrst", "mail"), 400, "not auth, storage, realtime or postgrest"),
    (lambda m: m.update_config_json("abcdefghijklmnopqrst", "auth", "{not json"), 400, "not JSON"),
    (lambda m: m.create_project(""), 400, "name"),
])
def test_failures_carry_the_status_and_the_apis_message(management, call, status, message):
    with pytest.raises(supa.ManagementError) as e:
        run(call(management))
    assert e.value.status == status
    assert message in e.value.message


def test_a_wrong_token_is_401_and_no_server_is_502(platform):
    with pytest.raises(supa.ManagementError) as e:
        run(supa.ManagementClient(platform.api_url, "sbp_wrong").list_projects())
    assert e.value.status == 401
    with pytest.raises(supa.ManagementError) as e:
        run(supa.ManagementClient(f"http://127.0.0.1:{free_port()}", "x").list_projects())
    assert e.value.status == 502 and "cannot reach" in e.value.message


def test_the_bootstrap_is_what_a_project_database_has(supa_project):
    statements = supa.bootstrap_statements(supa_project.ref)
    phases = [s.phase for s in statements]
    assert phases == sorted(phases, key=["cluster", "template", "project"].index)
    assert phases[0] == "cluster" and phases[-1] == "project"
    # Every schema and extension the template creates is in the project.
    sql = [s.sql for s in statements if s.phase == "template"]
    schemas = {m for s in sql for m in re.findall(r"CREATE SCHEMA IF NOT EXISTS (\w+)", s)}
    extensions = {m.strip('"') for s in sql for m in re.findall(r'CREATE EXTENSION IF NOT EXISTS ("?[\w-]+"?)', s)}
    assert {"auth", "storage", "realtime", "extensions", "graphql_public"} <= schemas
    found = supa_project.query("select nspname from pg_namespace")
    assert schemas <= {r["nspname"] for r in found}
    assert extensions <= {r["extname"] for r in supa_project.query("select extname from pg_extension")}
    # Every login the project phase creates exists, a member of what its
    # GRANT names; passwords are never shown.
    project = [s.sql for s in statements if s.phase == "project"]
    grants = {}
    for s in project:
        if m := re.match(r'GRANT ([\w, ]+) TO "(\w+)"$', s):
            grants[m[2]] = set(m[1].split(", "))
    assert len(grants) == 5 and all(name.startswith(supa_project.ref) for name in grants)
    memberships = supa_project.query(
        "select r.rolname as login, array_agg(g.rolname::text) as member_of from pg_roles r "
        "join pg_auth_members m on m.member = r.oid join pg_roles g on g.oid = m.roleid "
        f"where r.rolname like '{supa_project.ref}%' group by r.rolname")
    assert {r["login"]: set(r["member_of"]) for r in memberships} == grants
    assert all("PASSWORD '********'" in s for s in project if s.startswith("CREATE ROLE"))
    assert project[0] == f'CREATE DATABASE "proj_{supa_project.ref}" TEMPLATE "supa_template"'


def test_the_cli_prints_the_same_bootstrap(platform):
    ref = "abcdefghijklmnopqrst"
    printed = json.loads(subprocess.run([str(SUPA), "projects", "bootstrap-sql", ref, "--json"],
                                        capture_output=True, text=True, check=True).stdout)
    assert printed == [{"phase": s.phase, "part": s.part, "sql": s.sql} for s in supa.bootstrap_statements(ref)]
    text = subprocess.run([str(SUPA), "projects", "bootstrap-sql"], capture_output=True, text=True,
                          check=True).stdout
    assert "-- phase template: auth schema (in the template database)" in text
    assert "phase project" not in text
    with pytest.raises(supa.SupaError):
        supa.bootstrap_statements("Not-A-Ref")


def test_migrations_in_the_supabase_cli_layout_are_applied_and_recorded(platform):
    migrations = Migrations.find(EXAMPLE)
    assert [p.name for p in migrations.files] == sorted(p.name for p in (EXAMPLE / "supabase/migrations").glob("*.sql"))
    project = platform.create_project(migrations=migrations)
    try:
        recorded = project.query("select version, name, statements[1] as sql from "
                                 "supabase_migrations.schema_migrations order by version")
        assert [(r["version"], r["name"]) for r in recorded] == [
            (p.stem.split("_", 1)[0], p.stem.split("_", 1)[1]) for p in migrations.files]
        assert recorded[0]["sql"] == migrations.files[0].read_text()
        assert project.query("select body from announcements") == [{"body": "Welcome to Notes!"}]
    finally:
        project.delete()


def test_a_failing_migration_names_its_file_and_leaves_no_project(platform, tmp_path):
    folder = tmp_path / "supabase" / "migrations"
    folder.mkdir(parents=True)
    (folder / "20260101000000_good.sql").write_text("create table fine (id int);")
    (folder / "20260101000100_bad.sql").write_text("create tabel broken (id int);")
    before = {p.project_ref for p in platform.run(platform.management.list_projects())}
    with pytest.raises(supa.ManagementError) as e:
        platform.create_project(migrations=Migrations.find(tmp_path))
    assert e.value.status == 400 and e.value.message.startswith("20260101000100_bad.sql: ")
    assert 'syntax error at or near "tabel"' in e.value.message
    assert {p.project_ref for p in platform.run(platform.management.list_projects())} == before
    with pytest.raises(FileNotFoundError):
        Migrations.find(tmp_path / "nowhere")


def test_each_migration_commits_before_the_next_runs(platform, tmp_path):
    """A new enum value cannot be used in the transaction that added it: the
    Supabase CLI's layout relies on each file being its own."""
    folder = tmp_path / "supabase" / "migrations"
    folder.mkdir(parents=True)
    (folder / "1_kinds.sql").write_text("create type kind as enum ('a'); alter type kind add value 'b';")
    (folder / "2_use.sql").write_text("create table k (v kind default 'b'); insert into k default values;")
    (tmp_path / "supabase" / "seed.sql").write_text("insert into k values ('a');")
    project = platform.create_project(migrations=Migrations.find(tmp_path))
    try:
        assert project.query("select v::text from k order by v") == [{"v": "a"}, {"v": "b"}]
    finally:
        project.delete()
    (tmp_path / "supabase" / "seed.sql").write_text("insert into k values ('c');")
    with pytest.raises(supa.ManagementError) as e:
        platform.create_project(migrations=Migrations.find(tmp_path))
    assert e.value.message.startswith("seed.sql: ") and "invalid input value for enum kind" in e.value.message


def test_the_fixtures_hand_each_test_a_fresh_project(supa_project, supabase_client, supabase_admin_client):
    supa_project.query("create table seen (who text); alter table seen enable row level security;"
                       "insert into seen values ('admin only')")
    assert supabase_client.table("seen").select("*").execute().data == []
    assert supabase_admin_client.table("seen").select("*").execute().data == [{"who": "admin only"}]
    assert supa_project.url.endswith(f"/project/{supa_project.ref}")
    claims = supa.verify_jwt(supa_project.jwt_secret,
                             supa.mint_jwt(supa_project.jwt_secret, supa_project.ref, "authenticated", 0, 2**40),
                             1)
    assert claims.project_ref == supa_project.ref


def test_the_next_test_does_not_see_the_last_ones_project(supa_project):
    assert supa_project.query("select to_regclass('public.seen') is null as fresh") == [{"fresh": True}]


def test_supa_is_found_from_its_environment(tmp_path, monkeypatch):
    from supa.platform import find_supa

    monkeypatch.setenv("SUPA_BIN", str(SUPA))
    assert find_supa() == SUPA
    monkeypatch.delenv("SUPA_BIN")
    # A script named supa on PATH (the wheel's console script) is not it.
    (tmp_path / "supa").write_text("#!/bin/sh\nexec true\n")
    (tmp_path / "supa").chmod(0o755)
    binary = tmp_path / "bin"
    binary.mkdir()
    shutil.copy(SUPA, binary / "supa")
    monkeypatch.setenv("PATH", f"{tmp_path}:{binary}")
    assert find_supa() == binary / "supa"
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make wheel"):
        find_supa()


def test_a_killed_test_run_leaves_no_platform_behind(tmp_path):
    """`supa up` is told to stop when the process that started it dies, even
    by SIGKILL (it then stops its PostgreSQL as on any SIGTERM)."""
    script = ("import os, signal, sys\nfrom supa.platform import Platform\n"
              f"p = Platform.start(binary={str(SUPA)!r})\n"
              "print(p.process.pid, p.data_dir, flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, r.stderr
    pid, data_dir = r.stdout.split()
    pid, data_dir = int(pid), Path(data_dir)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "supa up outlived the test run that started it"
    # What the killed run left (its data, in memory) goes at the next start.
    assert data_dir.exists()
    with Platform.start(binary=SUPA):
        assert not data_dir.exists()

