"""The distributed shape rehearsed on one machine (`make cluster-test`): a
tenant manager on its own management cluster, two worker clusters, Redis
with a password, two gateways behind nginx, and standalone supa-rest as
the `http` upstream of one project, all under the `production` profile.

What happens to an app when these parts fail under load is the fault
drills' subject (tests/drills)."""

import json
import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
from supabase import ClientOptions, create_client

from kit import BIN, Topology

SCHEMA = "create table ledger (id uuid not null, writer text not null, at timestamptz not null default now());"


@pytest.fixture(scope="module")
def topology():
    work = Path(tempfile.mkdtemp(prefix="supa-cluster-"))
    topology = Topology(work)
    try:
        yield topology
    finally:
        topology.close()


def test_the_layout_serves_an_embedded_and_an_upstream_project_through_nginx(topology):
    embedded = topology.project("embedded", topology.workers[0], SCHEMA)
    upstream = topology.project("upstream", topology.workers[1], SCHEMA)
    topology.supa_rest_for(upstream)
    workers = {w["id"]: w for w in json.loads(topology.supa("workers", "list", "--json"))}
    assert {name: (w["port"], w["project_count"]) for name, w in workers.items()} == {
        w.name: (w.port, 1) for w in topology.workers}
    # The image's HEALTHCHECK probe against the parts it would watch.
    topology.supa("health", f"{topology.api_url}/health")
    topology.supa("health", f"http://127.0.0.1:{topology.gateways[1].port}/health")
    for project in (embedded, upstream):
        client = create_client(project["url"], project["secret_key"], ClientOptions(postgrest_client_timeout=10))
        row = str(uuid.uuid4())
        client.table("ledger").insert({"id": row, "writer": project["name"]}).execute()
        assert client.table("ledger").select("id").eq("id", row).execute().data == [{"id": row}]
    # The tenant manager and both gateways talk to Redis over TLS.
    clients = topology.redis_clients()
    assert len(clients) >= 3, clients
    # A gateway that is down fails the probe.
    topology.gateways[0].kill()
    dead = subprocess.run([str(BIN / "supa"), "health", f"http://127.0.0.1:{topology.gateways[0].port}/health"],
                          capture_output=True, text=True, timeout=30)
    assert dead.returncode == 1 and "error sending request" in dead.stderr, dead
    topology.start_gateway(topology.gateways[0])


def test_every_gateway_serves_storage_from_the_shared_backend(topology):
    project = topology.project("files", topology.workers[1], SCHEMA)
    one, two = (create_client(f"http://127.0.0.1:{g.port}/project/{project['ref']}", project["secret_key"])
                for g in topology.gateways)
    one.storage.create_bucket("docs")
    body = uuid.uuid4().bytes * 1000
    one.storage.from_("docs").upload("a/b.bin", body)
    assert two.storage.from_("docs").download("a/b.bin") == body
    assert [f["name"] for f in two.storage.from_("docs").list("a")] == ["b.bin"]


def test_studio_charts_add_up_every_gateways_requests_through_redis(topology):
    """Each gateway hands its per-project counts to Redis; the tenant
    manager's Studio shows their sum for the project."""
    project = topology.project("charts", topology.workers[0], SCHEMA)
    sent = {0: 7, 1: 5}
    for i, n in sent.items():
        client = create_client(f"http://127.0.0.1:{topology.gateways[i].port}/project/{project['ref']}",
                               project["secret_key"])
        for _ in range(n):
            client.table("ledger").select("id").execute()
    with httpx.Client(base_url=topology.api_url, timeout=30) as studio:
        assert studio.post("/sign-in", data={"token": topology.admin_token}).status_code == 303
        deadline = time.monotonic() + 30
        while True:
            page = studio.get(f"/projects/{project['ref']}/observability")
            assert page.status_code == 200
            totals = re.search(r'<dl id="usage-totals"><dt>Requests</dt><dd>(\d+)</dd>', page.text)
            if totals and int(totals.group(1)) >= sum(sent.values()):
                break
            assert time.monotonic() < deadline, page.text[-2000:]
            time.sleep(1)
    assert int(totals.group(1)) == sum(sent.values())
    assert 'id="svg-rps"' in page.text and "<rect" in page.text
