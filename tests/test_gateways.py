"""Two `supa-gateway` processes in front of the tenant manager of `supa up`,
sharing one real Redis: invalidations reach both within a second, and
requests keep flowing while Redis is down."""

import subprocess
import time

import httpx
import pytest

from conftest import ROOT, create_project, free_port, stop, wait_for_port

GATEWAY = ROOT / "target" / "debug" / "supa-gateway"
SCHEMA = "CREATE TABLE t (id int); INSERT INTO t VALUES (1);"


@pytest.fixture(scope="module")
def gateways(platform, redis_server):
    token = platform.service_token
    procs, urls = [], []
    for _ in range(2):
        port = free_port()
        proc = subprocess.Popen(
            [str(GATEWAY), "--tenant-url", platform.api_url, "--service-token", token,
             "--redis-url", redis_server.url, "--port", str(port), "--admin-port", str(free_port()),
             "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(port, proc, "supa-gateway")
        procs.append(proc)
        urls.append(f"http://127.0.0.1:{port}")
    try:
        yield urls
    finally:
        for p in procs:
            stop(p)


def get(url, ref, key):
    return httpx.get(f"{url}/project/{ref}/rest/v1/t", headers={"apikey": key}, timeout=10)


def until(predicate, seconds):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_revocation_and_deletion_reach_every_gateway_within_a_second(platform, gateways):
    project = create_project(platform, "two-gateways", SCHEMA)
    ref = project["ref"]
    with platform.client() as api:
        extra = api.post(f"/v1/projects/{ref}/api-keys", json={"type": "secret", "name": "shared"}).json()
        secret = extra["api_key"]
        for url in gateways:
            assert get(url, ref, secret).status_code == 200
            assert get(url, ref, project["publishable_key"]).json() == [{"id": 1}]
        assert api.delete(f"/v1/projects/{ref}/api-keys/{extra['id']}").status_code == 200
        for url in gateways:
            assert until(lambda: get(url, ref, secret).status_code == 401, 1.0), url
        assert api.delete(f"/v1/projects/{ref}").status_code == 200
    for url in gateways:
        assert until(lambda: get(url, ref, project["publishable_key"]).status_code in (401, 404), 1.0), url


def test_postgrest_settings_reach_every_gateway_within_a_second(platform, gateways):
    project = create_project(platform, "settings-remote", "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 3);")
    ref, key = project["ref"], project["publishable_key"]
    for url in gateways:
        assert len(get(url, ref, key).json()) == 3
    with platform.client() as api:
        assert api.patch(f"/v1/projects/{ref}/postgrest", json={"max_rows": 1}).status_code == 200
    for url in gateways:
        assert until(lambda: len(get(url, ref, key).json()) == 1, 1.0), url


def test_pg_meta_through_a_standalone_gateway(platform, gateways):
    """`supa-gateway` serves `/pg` through the tenant manager's internal
    API: it holds no admin login itself."""
    project = create_project(platform, "pg-remote", SCHEMA)
    ref = project["ref"]
    for url in gateways:
        tables = httpx.get(
            f"{url}/project/{ref}/pg/tables?included_schemas=public",
            headers={"apikey": project["secret_key"]}, timeout=10,
        )
        assert tables.status_code == 200, tables.text
        assert [t["name"] for t in tables.json()] == ["t"]
        assert tables.json()[0]["columns"][0]["format"] == "int4"
        refused = httpx.get(
            f"{url}/project/{ref}/pg/tables", headers={"apikey": project["publishable_key"]}, timeout=10,
        )
        assert refused.status_code == 401
        missing = httpx.get(f"{url}/project/{ref}/pg/nope", headers={"apikey": project["secret_key"]}, timeout=10)
        assert missing.status_code == 404
        rows = httpx.post(f"{url}/project/{ref}/pg/query", json={"query": "select id from t"},
                          headers={"apikey": project["secret_key"]}, timeout=10)
        assert (rows.status_code, rows.json()) == (200, [{"id": 1}])
        failed = httpx.post(f"{url}/project/{ref}/pg/query", json={"query": "selec 1"},
                            headers={"apikey": project["secret_key"]}, timeout=10)
        assert failed.status_code == 400
        assert "syntax error" in failed.json()["error"]


def test_requests_keep_flowing_while_redis_is_down(platform, gateways, redis_server):
    warm = create_project(platform, "warm", SCHEMA)
    for url in gateways:
        assert get(url, warm["ref"], warm["publishable_key"]).status_code == 200
    redis_server.stop()
    try:
        # Cached in memory: still served.
        for url in gateways:
            assert get(url, warm["ref"], warm["publishable_key"]).status_code == 200
        # Never seen: fetched from the tenant manager past the open breaker.
        cold = create_project(platform, "cold", SCHEMA)
        for url in gateways:
            r = get(url, cold["ref"], cold["publishable_key"])
            assert r.status_code == 200, r.text
    finally:
        redis_server.start()
