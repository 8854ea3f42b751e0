"""The distributed shape rehearsed on one machine (`make cluster-test`): a
tenant manager on its own management cluster, two worker clusters, Redis
with a password, two gateways behind nginx, and standalone supa-rest as
the `http` upstream of one project, all under the `production` profile.

A supabase-py app writes and reads through nginx the whole time while the
test kills a gateway, restarts each worker and stops Redis. The app keeps a
ledger: every write it saw acknowledged must be in the database at the end,
and no write appears twice."""

import json
import re
import subprocess
import tempfile
import threading
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


class App:
    """A supabase-py client writing rows with ids of its own, one at a time,
    and reading them back; what it saw is kept per phase."""

    def __init__(self, project):
        self.project = project
        options = ClientOptions(postgrest_client_timeout=10)
        self.client = create_client(project["url"], project["secret_key"], options)
        self.acked, self.unknown = [], []
        self.phase = "start"
        self.seen = {}  # phase -> {"ok": n, "errors": n, "first_error": text}
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def note(self, ok, error=None):
        seen = self.seen.setdefault(self.phase, {"ok": 0, "errors": 0, "first_error": None, "last_ok": 0.0})
        if ok:
            seen["ok"] += 1
            seen["last_ok"] = time.monotonic()
        else:
            seen["errors"] += 1
            seen["first_error"] = seen["first_error"] or error

    def run(self):
        n = 0
        while self.running:
            row_id = str(uuid.uuid4())
            try:
                self.client.table("ledger").insert({"id": row_id, "writer": self.project["name"]}).execute()
                self.acked.append(row_id)
                self.note(True)
            except Exception as e:  # noqa: BLE001: any failure the app sees
                self.unknown.append(row_id)
                self.note(False, repr(e)[:300])
            n += 1
            if n % 5 == 0:
                try:
                    self.client.table("ledger").select("id").eq("id", self.acked[-1]).execute() \
                        if self.acked else None
                    self.note(True)
                except Exception as e:  # noqa: BLE001
                    self.note(False, repr(e)[:300])
            time.sleep(0.01)

    def stop(self):
        self.running = False
        self.thread.join(30)

    def ok_since(self, t):
        return self.seen.get(self.phase, {}).get("last_ok", 0.0) > t


def phase(apps, name, seconds):
    for app in apps:
        app.phase = name
    time.sleep(seconds)


def recovered(apps, since, seconds):
    """Seconds until every app had a success after `since`, or None."""
    deadline = since + seconds
    while time.monotonic() < deadline:
        if all(app.ok_since(since) for app in apps):
            return time.monotonic() - since
        time.sleep(0.05)
    return None


def test_an_app_survives_a_gateway_crash_worker_restarts_and_a_redis_outage(topology):
    embedded = topology.project("embedded", topology.workers[0], SCHEMA)
    upstream = topology.project("upstream", topology.workers[1], SCHEMA)
    topology.supa_rest_for(upstream)
    workers = {w["id"]: w for w in json.loads(topology.supa("workers", "list", "--json"))}
    assert {name: (w["port"], w["project_count"]) for name, w in workers.items()} == {
        w.name: (w.port, 1) for w in topology.workers}
    # The image's HEALTHCHECK probe against the parts it would watch.
    topology.supa("health", f"{topology.api_url}/health")
    topology.supa("health", f"http://127.0.0.1:{topology.gateways[1].port}/health")
    apps = [App(embedded), App(upstream)]
    report = {}
    # The tenant manager and both gateways talk to Redis over TLS.
    clients = topology.redis_clients()
    assert len(clients) >= 3, clients
    try:
        phase(apps, "warm", 1.5)
        for app in apps:
            assert app.seen["warm"]["errors"] == 0, app.seen["warm"]
            assert app.seen["warm"]["ok"] > 10

        # A gateway crashes: nginx sends everything to the other one.
        phase(apps, "gateway-killed", 0)
        topology.gateways[0].kill()
        dead = subprocess.run([str(BIN / "supa"), "health", f"http://127.0.0.1:{topology.gateways[0].port}/health"],
                              capture_output=True, text=True, timeout=30)
        assert dead.returncode == 1 and "error sending request" in dead.stderr, dead
        time.sleep(2)
        for app in apps:
            seen = app.seen["gateway-killed"]
            assert seen["ok"] > 10, seen
        report["gateway-killed"] = [app.seen["gateway-killed"] for app in apps]
        topology.start_gateway(topology.gateways[0])

        # Each worker restarts (fast, then immediate): its projects come
        # back without anyone doing anything.
        for worker, app in zip(topology.workers, apps):
            for mode in ("fast", "immediate"):
                name = f"{worker.name}-{mode}"
                phase(apps, name, 0)
                since = time.monotonic()
                worker.restart(mode)
                took = recovered([app], time.monotonic(), 30)
                assert took is not None, f"{worker.name} ({mode}): no success within 30 s: {app.seen[name]}"
                report[name] = {"recovered_after_s": round(time.monotonic() - since, 2), **app.seen[name]}
                # The other worker's project never noticed.
                for other in apps:
                    if other is not app:
                        assert other.seen.get(name, {}).get("errors", 0) == 0, other.seen[name]

        # Redis stops: the gateways serve from their own caches.
        phase(apps, "redis-down", 0)
        topology.redis.stop()
        time.sleep(2)
        for app in apps:
            seen = app.seen["redis-down"]
            assert seen["errors"] == 0 and seen["ok"] > 10, seen
        topology.start_redis()
        phase(apps, "after", 1.5)
        for app in apps:
            assert app.seen["after"]["errors"] == 0, app.seen["after"]
    finally:
        for app in apps:
            app.stop()

    # The ledger: every acknowledged write is there, nothing is there twice.
    for app in apps:
        rows = topology.sql(app.project["ref"], "select id::text, count(*) as n from ledger group by id")
        counts = {r["id"]: r["n"] for r in rows}
        lost = [i for i in app.acked if i not in counts]
        twice = {i: n for i, n in counts.items() if n > 1}
        stray = set(counts) - set(app.acked) - set(app.unknown)
        assert not lost, f"{len(lost)} acknowledged writes lost"
        assert not twice, twice
        assert not stray, stray
        report[app.project["name"]] = {"acknowledged": len(app.acked), "unacknowledged": len(app.unknown),
                                       "unacknowledged_but_written": len(set(app.unknown) & set(counts))}
    print("\nrehearsal:", report)


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
