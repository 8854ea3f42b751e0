"""supa-rest standalone, configured with PostgREST's PGRST_* settings, as the
`postgrest` client that supabase==2.34.1 ships talks to it.

The database is a real project created through `supa up`; supa-rest logs in
as that project's own authenticator role (least privilege), and requests
carry JWTs minted with the project's secret through the `supa` bindings."""

import re
import subprocess
import time

import httpx
import pytest
from postgrest import APIError, SyncPostgrestClient

import supa
from conftest import create_project, start_supa_rest, stop

SCHEMA_SQL = """
CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL, owner text);
INSERT INTO notes VALUES (1, 'one', 'ann'), (2, 'two', 'bob'), (3, 'three', 'ann');
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY anon_reads ON notes FOR SELECT TO anon USING (true);
CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
CREATE FUNCTION notes_of(who text) RETURNS SETOF notes LANGUAGE sql STABLE AS 'SELECT * FROM notes WHERE owner = who';
"""


@pytest.fixture(scope="module")
def rest(platform):
    project = create_project(platform, "rest", SCHEMA_SQL)
    url, proc = start_supa_rest(platform, project)
    try:
        yield {"url": url, "ref": project["ref"], "secret": project["jwt_secret"]}
    finally:
        stop(proc)


def client(rest, role):
    token = supa.mint_jwt(rest["secret"], rest["ref"], role, int(time.time()))
    return SyncPostgrestClient(
        rest["url"],
        headers={"Authorization": f"Bearer {token}"},
        retry_enabled=False,
    )


def test_select_with_filters_order_limit_single_csv_and_count(rest):
    db = client(rest, "service_role")
    rows = db.from_("notes").select("id,body").eq("owner", "ann").order("id", desc=True).execute()
    assert rows.data == [{"id": 3, "body": "three"}, {"id": 1, "body": "one"}]
    limited = db.from_("notes").select("id").order("id").limit(2).execute()
    assert limited.data == [{"id": 1}, {"id": 2}]
    single = db.from_("notes").select("body").eq("id", 2).single().execute()
    assert single.data == {"body": "two"}
    counted = db.from_("notes").select("id", count="exact").limit(1).execute()
    assert counted.count == 3 and len(counted.data) == 1
    csv = db.from_("notes").select("id,body").order("id").csv().execute()
    assert csv.data == "id,body\n1,one\n2,two\n3,three"
    with pytest.raises(APIError) as missing:
        db.from_("notes").select("id").eq("id", 99).single().execute()
    assert missing.value.code == "PGRST116"


def test_insert_upsert_update_delete(rest):
    db = client(rest, "service_role")
    created = db.from_("notes").insert({"id": 10, "body": "ten", "owner": "cy"}).execute()
    assert created.data == [{"id": 10, "body": "ten", "owner": "cy"}]
    upserted = db.from_("notes").upsert([{"id": 10, "body": "TEN", "owner": "cy"}, {"id": 11, "body": "eleven", "owner": "cy"}]).execute()
    assert sorted(r["body"] for r in upserted.data) == ["TEN", "eleven"]
    updated = db.from_("notes").update({"owner": "dee"}).eq("owner", "cy").execute()
    assert {r["id"] for r in updated.data} == {10, 11}
    deleted = db.from_("notes").delete().eq("owner", "dee").execute()
    assert {r["id"] for r in deleted.data} == {10, 11}
    left = db.from_("notes").select("id").order("id").execute()
    assert [r["id"] for r in left.data] == [1, 2, 3]
    with pytest.raises(APIError) as dup:
        db.from_("notes").insert({"id": 1, "body": "dup"}).execute()
    assert dup.value.code == "23505"


def test_rpc(rest):
    db = client(rest, "anon")
    assert db.rpc("add", {"a": 2, "b": 3}).execute().data == 5
    rows = db.rpc("notes_of", {"who": "bob"}).execute().data
    assert rows == [{"id": 2, "body": "two", "owner": "bob"}]
    with pytest.raises(APIError) as missing:
        db.rpc("nope", {}).execute()
    assert missing.value.code == "PGRST202"


def test_rls_denies_anon_writes_and_service_role_bypasses(rest):
    anon = client(rest, "anon")
    assert len(anon.from_("notes").select("id").execute().data) == 3
    with pytest.raises(APIError) as denied:
        anon.from_("notes").insert({"id": 20, "body": "no"}).execute()
    assert denied.value.code == "42501"
    # No token at all is the anon role too.
    plain = SyncPostgrestClient(rest["url"], retry_enabled=False)
    assert len(plain.from_("notes").select("id").execute().data) == 3
    service = client(rest, "service_role")
    service.from_("notes").insert({"id": 20, "body": "yes"}).execute()
    service.from_("notes").delete().eq("id", 20).execute()


def test_bad_tokens_get_postgrest_errors(rest):
    expired = supa.mint_jwt(rest["secret"], rest["ref"], "anon", int(time.time()) - 3600, 60)
    r = httpx.get(rest["url"] + "/notes", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["code"] == "PGRST303"
    r = httpx.get(rest["url"] + "/notes", headers={"Authorization": "Bearer a.b.c"})
    assert r.status_code == 401 and r.json()["code"] == "PGRST301"
    r = httpx.get(rest["url"] + "/nowhere")
    assert r.status_code == 404 and r.json()["code"] == "PGRST205"


def test_access_log_follows_the_log_level(platform, rest):
    """PostgREST's access log on stdout: at `warn`, client and server errors
    only, one Apache combined line each, with the role that answered."""
    project = {"ref": rest["ref"], "jwt_secret": rest["secret"]}
    url, proc = start_supa_rest(platform, project, {"PGRST_LOG_LEVEL": "warn"}, subprocess.PIPE)
    try:
        assert httpx.get(f"{url}/notes").status_code == 200
        assert httpx.get(f"{url}/missing", headers={"User-Agent": "parity-test"}).status_code == 404
    finally:
        stop(proc)
    lines = proc.stdout.read().decode().splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(r'127\.0\.0\.1 - anon \[[^]]+ \+0000\] "GET /missing HTTP/1\.1" 404 \d+ "" "parity-test"', lines[0]), lines[0]
