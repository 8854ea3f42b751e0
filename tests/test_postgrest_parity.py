"""PostgREST 14 behaviours through the gateway, as the real `supabase`
client (and its `postgrest` client) and raw HTTP meet them: to-many spreads,
self-references, two keys to one table, defaults with `columns`,
max-affected on RPC, estimated counts, plans behind the per-project
setting, GeoJSON and the extensions a project may create, the OpenAPI
document."""

import httpx
import pytest
from postgrest import APIError
from supabase import create_client

from conftest import create_project

SCHEMA = """
CREATE TABLE channels (id int PRIMARY KEY, name text NOT NULL);
COMMENT ON TABLE channels IS 'Chat channels';
CREATE TABLE messages (id int PRIMARY KEY, channel_id int REFERENCES channels(id), body text,
                       likes int NOT NULL DEFAULT 0, status text NOT NULL DEFAULT 'sent');
CREATE TABLE employees (id int PRIMARY KEY, name text NOT NULL, manager_id int REFERENCES employees(id));
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE transfers (id int PRIMARY KEY, sender_id int REFERENCES users(id),
                        receiver_id int REFERENCES users(id), amount int);
INSERT INTO channels VALUES (1, 'general'), (2, 'random'), (3, 'empty');
INSERT INTO messages VALUES (1, 1, 'hi', 3), (2, 1, 'hello', 5), (3, 2, 'yo', 1);
INSERT INTO employees VALUES (1, 'boss', NULL), (2, 'ann', 1), (3, 'bob', 1), (4, 'cy', 2);
INSERT INTO users VALUES (1, 'ann'), (2, 'bob');
INSERT INTO transfers VALUES (1, 1, 2, 10), (2, 2, 1, 5);
CREATE FUNCTION all_messages() RETURNS SETOF messages LANGUAGE sql STABLE AS 'SELECT * FROM messages';
"""


@pytest.fixture(scope="module")
def project(platform):
    return create_project(platform, "parity", SCHEMA)


@pytest.fixture(scope="module")
def db(project):
    return create_client(project["url"], project["secret_key"])


def rest(project, path, **kwargs):
    headers = {"apikey": project["secret_key"], **kwargs.pop("headers", {})}
    return httpx.get(f"{project['url']}/rest/v1{path}", headers=headers, **kwargs)


def test_to_many_spreads_give_arrays_and_refuse_aggregates(db):
    rows = db.table("channels").select("name, ...messages(body, likes)").order("id").execute().data
    assert rows[0]["name"] == "general" and sorted(rows[0]["body"]) == ["hello", "hi"]
    assert sorted(rows[0]["likes"]) == [3, 5]
    assert rows[2] == {"name": "empty", "body": [], "likes": []}
    with pytest.raises(APIError) as refused:
        db.table("channels").select("name, ...messages(likes.sum())").execute()
    assert refused.value.code == "PGRST127"


def test_a_self_reference_embeds_both_ways(db):
    rows = (
        db.table("employees")
        .select("name, manager:manager_id(name), reports:employees!manager_id(name)")
        .order("id")
        .execute()
        .data
    )
    assert rows[0]["manager"] is None and {r["name"] for r in rows[0]["reports"]} == {"ann", "bob"}
    assert rows[3] == {"name": "cy", "manager": {"name": "ann"}, "reports": []}


def test_two_keys_to_one_table_are_ambiguous_until_hinted(db):
    with pytest.raises(APIError) as ambiguous:
        db.table("transfers").select("amount, users(name)").execute()
    assert ambiguous.value.code == "PGRST201"
    details = ambiguous.value.details
    assert isinstance(details, list) and len(details) == 2
    assert details[0]["cardinality"] == "many-to-one"
    assert details[0]["relationship"] == "transfers_sender_id_fkey using transfers(sender_id) and users(id)"
    rows = (
        db.table("transfers")
        .select("amount, sender:users!sender_id(name), receiver:users!receiver_id(name)")
        .order("id")
        .execute()
        .data
    )
    assert rows[0] == {"amount": 10, "sender": {"name": "ann"}, "receiver": {"name": "bob"}}


def test_bulk_insert_and_upsert_take_column_defaults(db):
    created = (
        db.table("messages")
        .insert([{"id": 20, "channel_id": 2, "body": "a"}, {"id": 21, "body": "b", "likes": 7}], default_to_null=False)
        .execute()
        .data
    )
    assert [(r["id"], r["likes"], r["status"]) for r in created] == [(20, 0, "sent"), (21, 7, "sent")]
    upserted = (
        db.table("messages")
        .upsert([{"id": 21, "body": "again"}, {"id": 22, "likes": 2}], default_to_null=False)
        .execute()
        .data
    )
    assert sorted((r["id"], r["body"], r["likes"], r["status"]) for r in upserted) == [
        (21, "again", 0, "sent"),
        (22, None, 2, "sent"),
    ]


def test_max_affected_on_a_function(db):
    with pytest.raises(APIError) as refused:
        db.rpc("all_messages", {}).max_affected(1).execute()
    assert refused.value.code == "PGRST124"
    assert len(db.rpc("all_messages", {}).max_affected(100).execute().data) >= 3


def test_estimated_counts_with_head(db):
    answer = db.table("messages").select("*", count="estimated", head=True).limit(1).execute()
    assert answer.count is not None and answer.count >= 3
    assert answer.data == []


def test_embed_errors_name_postgrests_alias(db):
    with pytest.raises(APIError) as missing:
        db.table("channels").select("name, messages(sum)").execute()
    assert missing.value.message == "column messages_1.sum does not exist"


def test_plans_follow_the_project_setting(platform, project):
    accept = {"Accept": "application/vnd.pgrst.plan+json"}
    assert rest(project, "/messages?id=eq.1", headers=accept).status_code == 406
    with platform.client() as api:
        r = api.patch(f"/v1/projects/{project['ref']}/postgrest", json={"db_plan_enabled": True})
        assert r.status_code == 200 and r.json()["db_plan_enabled"] is True
    for _ in range(50):
        answer = rest(project, "/messages?id=eq.1", headers=accept)
        if answer.status_code == 200:
            break
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/vnd.pgrst.plan+json")
    assert "Plan" in answer.json()[0]
    with platform.client() as api:
        api.patch(f"/v1/projects/{project['ref']}/postgrest", json={"db_plan_enabled": False})


def test_extensions_projects_reach_for(platform, project, db):
    sql = f"/v1/projects/{project['ref']}/database/query"
    with platform.client() as api:
        for ext in ("postgis", "pg_partman", "pgaudit"):
            r = api.post(sql, json={"query": f"CREATE EXTENSION IF NOT EXISTS {ext} WITH SCHEMA extensions"})
            assert r.status_code == 201, r.text
        r = api.post(sql, json={"query": (
            "CREATE TABLE shops (id int PRIMARY KEY, name text, location extensions.geometry(Point, 4326));"
            "INSERT INTO shops VALUES (1, 'corner', extensions.ST_SetSRID(extensions.ST_MakePoint(2.5, 48.5), 4326))"
        )})
        assert r.status_code == 201, r.text
        # One scheduler per cluster, in its `postgres` database: a project
        # gets pg_cron's own refusal.
        cron = api.post(sql, json={"query": "CREATE EXTENSION pg_cron"})
        assert cron.status_code == 400 and "postgres" in cron.json()["message"], cron.text
        listed = {e["name"]: e for e in api.get(f"/api/platform/pg-meta/{project['ref']}/extensions").json()}
    for ext in ("postgis", "pg_partman", "pgaudit", "pg_cron"):
        assert ext in listed, f"{ext} is not available"
    assert listed["postgis"]["installed_version"] is not None
    for _ in range(50):
        geo = rest(project, "/shops", headers={"Accept": "application/geo+json"})
        if geo.status_code == 200:
            break
    assert geo.status_code == 200, geo.text
    assert geo.headers["content-type"] == "application/geo+json; charset=utf-8"
    assert geo.json()["features"][0]["geometry"] == {"type": "Point", "coordinates": [2.5, 48.5]}


def test_the_openapi_document_at_the_root(project):
    answer = rest(project, "/", headers={"Accept": "application/openapi+json"})
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["swagger"] == "2.0"
    assert doc["basePath"] == f"/project/{project['ref']}/rest/v1"
    assert doc["paths"]["/channels"]["get"]["summary"] == "Chat channels"
    assert doc["definitions"]["messages"]["properties"]["likes"] == {
        "default": 0,
        "format": "int32",
        "type": "integer",
    }
