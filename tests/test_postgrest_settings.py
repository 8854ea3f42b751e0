"""Per-project data plane settings through Supabase's Management API
(`/v1/projects/{ref}/postgrest`), honoured by the gateways within a second."""

import time

import httpx
import pytest
from postgrest.exceptions import APIError
from supabase import ClientOptions, create_client

from conftest import create_project

SCHEMA = """
CREATE SCHEMA api;
GRANT USAGE ON SCHEMA api TO anon, authenticated, service_role;
CREATE TABLE api.things (id int PRIMARY KEY);
GRANT SELECT ON api.things TO anon, authenticated, service_role;
INSERT INTO api.things SELECT generate_series(1, 5);
CREATE TABLE public.items (id int PRIMARY KEY);
INSERT INTO public.items SELECT generate_series(1, 5);
"""


def until(predicate, seconds=1.0):
    deadline = time.monotonic() + seconds
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


@pytest.fixture()
def project(platform):
    return create_project(platform, "settings", SCHEMA)


def test_defaults_are_supabase_defaults(platform, project):
    with platform.client() as api:
        settings = api.get(f"/v1/projects/{project['ref']}/postgrest").json()
    assert settings == {
        "db_schema": "public, graphql_public",
        "max_rows": 1000,
        "db_extra_search_path": "public, extensions",
        "db_pool": None,
        "db_plan_enabled": False,
    }


def test_max_rows_and_schemas_change_within_a_second(platform, project):
    ref, key = project["ref"], project["publishable_key"]
    public = create_client(project["url"], key)
    api_schema = create_client(project["url"], key, options=ClientOptions(schema="api"))
    assert len(public.table("items").select("*").execute().data) == 5
    with pytest.raises(APIError) as refused:
        api_schema.table("things").select("*").execute()
    assert refused.value.code == "PGRST106"

    with platform.client() as api:
        r = api.patch(f"/v1/projects/{ref}/postgrest", json={"max_rows": 2, "db_schema": "public, api"})
        assert r.status_code == 200, r.text
        assert r.json()["max_rows"] == 2
        assert r.json()["db_schema"] == "public, api"
    assert until(lambda: len(public.table("items").select("*").execute().data) == 2)
    assert until(lambda: len(api_schema.table("things").select("*").execute().data) == 2)

    # Back to the default pool, and a pool of its own, both accepted.
    with platform.client() as api:
        assert api.patch(f"/v1/projects/{ref}/postgrest", json={"db_pool": 3}).json()["db_pool"] == 3
        assert api.patch(f"/v1/projects/{ref}/postgrest", json={"db_pool": None}).json()["db_pool"] is None
    assert len(public.table("items").select("*").execute().data) == 2


@pytest.mark.parametrize(
    "body, field",
    [
        ({"max_rows": 0}, "max_rows"),
        ({"max_rows": "ten"}, "max_rows"),
        ({"db_pool": -1}, "db_pool"),
        ({"db_schema": ""}, "db_schema"),
        ({"db_schema": "public,,api"}, "db_schema"),
        ({"db_extra_search_path": "x" * 64}, "db_extra_search_path"),
        ({"jwt_secret": "x"}, "jwt_secret"),
    ],
)
def test_bad_values_are_refused_and_change_nothing(platform, project, body, field):
    ref = project["ref"]
    with platform.client() as api:
        before = api.get(f"/v1/projects/{ref}/postgrest").json()
        r = api.patch(f"/v1/projects/{ref}/postgrest", json={"max_rows": 7, **body})
        assert r.status_code == 400, r.text
        assert field in r.json()["message"]
        assert api.get(f"/v1/projects/{ref}/postgrest").json() == before
        assert api.get("/v1/projects/abcdefghijabcdefghij/postgrest").status_code == 404


def test_settings_need_the_admin_token(platform, project):
    url = f"{platform.api_url}/v1/projects/{project['ref']}/postgrest"
    assert httpx.get(url).status_code == 401
    assert httpx.patch(url, json={"max_rows": 1}).status_code == 401
