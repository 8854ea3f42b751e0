"""The control plane end to end: `supa up` as a subprocess, driven through
the Management API over HTTP and through the `supa` CLI."""

import hashlib
import os
import subprocess
import json

import httpx
import pytest

import supa
from conftest import SUPA
from keyspec import is_valid_key

REF_ALPHABET = set("abcdefghijklmnopqrstuvwxyz")


@pytest.fixture(scope="module")
def api(platform):
    with platform.client() as client:
        yield client


@pytest.fixture(scope="module")
def project(api):
    response = api.post("/v1/projects", json={"name": "pytest"})
    assert response.status_code == 201, response.text
    return response.json()


def query(api, ref, sql):
    return api.post(f"/v1/projects/{ref}/database/query", json={"query": sql})


def test_created_project_is_active_with_a_valid_ref(project, api):
    ref = project["ref"]
    assert len(ref) == 20 and set(ref) <= REF_ALPHABET
    assert project["status"] == "ACTIVE_HEALTHY"
    assert project["name"] == "pytest"
    listed = api.get("/v1/projects").json()
    assert ref in [p["ref"] for p in listed]
    assert api.get(f"/api/v1/projects/{ref}").json()["status"] == "ACTIVE_HEALTHY"


def test_api_keys_are_one_publishable_and_one_secret_valid_for_the_ref(project, api):
    ref = project["ref"]
    keys = api.get(f"/v1/projects/{ref}/api-keys", params={"reveal": "true"}).json()
    assert sorted(k["type"] for k in keys) == ["publishable", "secret"]
    for k in keys:
        assert k["name"] == "default"
        assert is_valid_key(ref, k["type"], k["api_key"]), k
        assert k["hash"] == hashlib.sha256(k["api_key"].encode()).hexdigest()
        assert supa.validate_key(ref, k["api_key"]) is not None
    secret = next(k for k in keys if k["type"] == "secret")
    assert secret["secret_jwt_template"] == {"role": "service_role"}
    assert secret["api_key"] == project["secret_key"]

    masked = api.get(f"/v1/projects/{ref}/api-keys").json()
    masked_secret = next(k for k in masked if k["type"] == "secret")["api_key"]
    assert masked_secret != project["secret_key"]
    assert not is_valid_key(ref, "secret", masked_secret)
    # A key is valid for its own project only.
    other_ref = "a" * 20
    assert not is_valid_key(other_ref, "secret", project["secret_key"])


def test_sql_crud_through_the_query_endpoint(project, api):
    ref = project["ref"]
    r = query(api, ref, "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL, tags text[], meta jsonb, at timestamptz DEFAULT now())")
    assert (r.status_code, r.json()) == (201, [])
    r = query(api, ref, """INSERT INTO notes (body, tags, meta) VALUES ('one', '{a,b}', '{"k": 1}'), ('two', NULL, NULL) RETURNING id, body, tags, meta""")
    assert r.status_code == 201
    assert r.json() == [
        {"id": 1, "body": "one", "tags": ["a", "b"], "meta": {"k": 1}},
        {"id": 2, "body": "two", "tags": None, "meta": None},
    ]
    r = query(api, ref, "UPDATE notes SET body = 'uno' WHERE id = 1 RETURNING body")
    assert r.json() == [{"body": "uno"}]
    r = query(api, ref, "DELETE FROM notes WHERE id = 2 RETURNING id")
    assert r.json() == [{"id": 2}]
    rows = query(api, ref, "SELECT id, body, at FROM notes ORDER BY id").json()
    assert [(row["id"], row["body"]) for row in rows] == [(1, "uno")]
    assert "T" in rows[0]["at"]  # ISO 8601

    bad = query(api, ref, "SELECT * FROM missing_table")
    assert bad.status_code == 400
    assert bad.json() == {
        "message": 'Failed to run sql query: ERROR:  42P01: relation "missing_table" does not exist'
    }


def test_secrets_set_list_unset(project, api):
    path = f"/v1/projects/{project['ref']}/secrets"
    r = api.post(path, json=[{"name": "STRIPE_KEY", "value": "sk_test_123"}, {"name": "_X1", "value": ""}])
    assert r.status_code == 201, r.text
    listed = {s["name"]: s["value"] for s in api.get(path).json()}
    assert listed == {
        "STRIPE_KEY": hashlib.sha256(b"sk_test_123").hexdigest(),
        "_X1": hashlib.sha256(b"").hexdigest(),
    }
    for bad in ["lowercase", "SUPABASE_ANYTHING", "9LIVES", "WITH-DASH"]:
        r = api.post(path, json=[{"name": bad, "value": "v"}])
        assert r.status_code == 400, bad
        assert r.json()["message"].startswith("name:")
    r = api.request("DELETE", path, json=["STRIPE_KEY"])
    assert r.status_code == 200
    assert [s["name"] for s in api.get(path).json()] == ["_X1"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer sbp_0000000000000000000000000000000000000000", "Basic admin"],
)
def test_admin_token_missing_or_wrong_is_401(platform, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in [("GET", "/v1/projects"), ("POST", "/v1/projects"), ("GET", "/admin/v1/workers")]:
        r = httpx.request(method, platform.api_url + path, headers=headers, json={"name": "x"})
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/json"
        assert r.json()["message"].startswith("Unauthorized")


def test_bad_input_is_a_json_400_or_404(api):
    r = api.post("/v1/projects", json={"name": "x", "region": "eu"})
    assert r.status_code == 400 and "region" in r.json()["message"]
    r = api.post("/v1/projects", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = api.get("/v1/projects/zzzzzzzzzzzzzzzzzzzz")
    assert r.status_code == 404 and "zzzzzzzzzzzzzzzzzzzz" in r.json()["message"]


def test_delete_removes_the_database_and_role(api):
    doomed = api.post("/v1/projects", json={"name": "doomed"}).json()["ref"]
    witness = api.post("/v1/projects", json={"name": "witness"}).json()["ref"]
    catalog = (
        f"SELECT (SELECT count(*) FROM pg_database WHERE datname = 'proj_{doomed}') AS dbs, "
        f"(SELECT count(*) FROM pg_roles WHERE rolname = '{doomed}_authenticator') AS roles"
    )
    assert query(api, witness, catalog).json() == [{"dbs": 1, "roles": 1}]
    r = api.delete(f"/v1/projects/{doomed}")
    assert r.status_code == 200
    assert r.json()["ref"] == doomed
    assert query(api, witness, catalog).json() == [{"dbs": 0, "roles": 0}]
    assert api.get(f"/v1/projects/{doomed}").status_code == 404
    assert api.get(f"/v1/projects/{doomed}/api-keys").status_code == 404


def test_cli_creates_lists_and_deletes(platform):
    created = platform.cli("projects", "create", "from-cli")
    assert "[1/6] choosing a worker" in created.stderr
    assert "[6/6] activating" in created.stderr
    assert "ACTIVE_HEALTHY" in created.stdout
    # The API URL printed is the gateway this platform runs, on its own port.
    assert f"API URL          {platform.gateway_url}/project/" in created.stdout
    # Without --api-url, the CLI finds the platform through the data dir.
    listed = subprocess.run(
        [str(SUPA), "projects", "list", "--data-dir", str(platform.data_dir)],
        capture_output=True, text=True, timeout=60, check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SUPA_")},
    )
    assert "from-cli" in listed.stdout

    as_json = json.loads(platform.cli("projects", "create", "cli-json", "--json").stdout)
    ref = as_json["ref"]
    assert is_valid_key(ref, "publishable", as_json["publishable_key"])
    assert is_valid_key(ref, "secret", as_json["secret_key"])
    listed = platform.cli("projects", "list").stdout
    assert ref in listed and "cli-json" in listed

    rows = json.loads(platform.cli("sql", ref, "SELECT 1 + 1 AS two", "--json").stdout)
    assert rows == [{"two": 2}]
    failed = platform.cli("sql", ref, "SELEC", check=False)
    assert failed.returncode == 1
    assert "42601" in failed.stderr

    keys = json.loads(platform.cli("keys", "list", ref, "--reveal", "--json").stdout)
    assert {k["api_key"] for k in keys} == {as_json["publishable_key"], as_json["secret_key"]}
    extra = json.loads(platform.cli("keys", "create", ref, "ci", "--json").stdout)
    platform.cli("keys", "revoke", ref, extra["id"])
    names = [k["name"] for k in json.loads(platform.cli("keys", "list", ref, "--json").stdout)]
    assert names.count("ci") == 0

    platform.cli("secrets", "set", ref, "A_B=1")
    assert "A_B" in platform.cli("secrets", "list", ref).stdout
    platform.cli("projects", "delete", ref)
    missing = platform.cli("projects", "get", ref, check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_cli_pauses_and_resumes_a_project(platform, api):
    ref = json.loads(platform.cli("projects", "create", "to-pause", "--json").stdout)["ref"]
    assert query(api, ref, "create table kept (v text); insert into kept values ('still here')").status_code == 201
    paused = platform.cli("projects", "pause", ref)
    assert paused.stdout.strip() == f"Project {ref} is INACTIVE."
    # A paused database answers nothing, clearly, through the Management API.
    r = query(api, ref, "select 1")
    assert r.status_code == 503 and r.json()["message"], r.text
    # Resuming twice: the second is refused with the state it found.
    assert json.loads(platform.cli("projects", "resume", ref, "--json").stdout)["status"] == "ACTIVE_HEALTHY"
    again = platform.cli("projects", "resume", ref, check=False)
    assert again.returncode != 0 and "ACTIVE_HEALTHY" in again.stderr
    assert query(api, ref, "select v from kept").json() == [{"v": "still here"}]
    missing = api.post(f"/v1/projects/{'z' * 20}/pause")
    assert missing.status_code == 404, missing.text
