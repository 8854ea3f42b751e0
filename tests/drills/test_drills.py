"""Fault drills (`make drills`; `make test` runs the short form): the
distributed layout of the rehearsal (management and worker clusters, Redis
over TLS, the tenant manager, two gateways behind nginx), each worker
behind a TCP proxy the drill can cut and the object store on a small disk
of its own. A Supabase app (workload.py) writes and reads through nginx the
whole time, on one project with every service and, on the other worker, a
project served by standalone supa-rest.

Each drill injects one fault, holds it `SUPA_DRILL_SECS` seconds (2 in the
short form; the database cut is always 5 s), heals it and waits for every
kind of request to succeed again. It records the errors the app saw during
the fault and the recovery time, and checks what must hold while the fault
lasts. The last test checks the ledger: every write the app saw
acknowledged is in the database, nothing is there twice, nothing appears
that the app never sent. The report is printed and, with
`SUPA_DRILL_REPORT`, written as JSON."""

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from kit import BIN, SmallDisk, Topology
from workload import ECHO, SCHEMA, Workload

HOLD = float(os.environ.get("SUPA_DRILL_SECS", "2"))
# A request the app sees answered within this long after a fault heals
# counts as recovered.
RECOVERY_LIMIT = 45
REPORT = {}

if not SmallDisk.possible():
    pytest.skip("the drills mount a small tmpfs as the object store's disk, which needs CAP_SYS_ADMIN "
                "(run as root); this machine refuses the mount", allow_module_level=True)


@pytest.fixture(scope="module")
def topology():
    work = Path(tempfile.mkdtemp(prefix="supa-drills-"))
    # Gateways cache configs and keys for 2 s, so the tenant manager's
    # outage outlasts their caches.
    topology = Topology(work, proxied=True, objects_mb=32, cache_ttl=2)
    try:
        yield topology
    finally:
        topology.close()


@pytest.fixture(scope="module")
def apps(topology):
    main = topology.project("drill", topology.workers[0], SCHEMA)
    upstream = topology.project("upstream", topology.workers[1], SCHEMA)
    topology.supa_rest_for(upstream)
    with topology.api() as api:
        ref = main["ref"]
        deployed = api.post(f"/v1/projects/{ref}/functions/deploy", params={"slug": "echo"}, files=[
            ("metadata", (None, json.dumps({"entrypoint_path": "index.ts", "name": "echo"}), "application/json")),
            ("file", ("index.ts", ECHO.encode(), "application/typescript"))], timeout=120)
        assert deployed.status_code == 201, deployed.text
        # Sign-ins are the auth load: GoTrue's per-address limits would
        # count the whole app as one address.
        r = api.patch(f"/v1/projects/{ref}/config/auth", json={
            "rate_limit_token_refresh": 100000, "rate_limit_verify": 100000, "mailer_autoconfirm": True})
        assert r.status_code == 200, r.text
    storage = httpx.post(f"{main['url']}/storage/v1/bucket", json={"name": "drill", "id": "drill"},
                         headers={"apikey": main["secret_key"], "Authorization": f"Bearer {main['secret_key']}"})
    assert storage.status_code == 200, storage.text
    apps = {"main": Workload(main), "upstream": Workload(upstream, kinds=("rest",))}
    settle(apps, "warm", 2)
    for name, app in apps.items():
        assert not app.stats.errors("warm"), (name, {k: app.stats.of("warm", k) for k in app.kinds})
    yield apps
    for app in apps.values():
        app.stop()


def settle(apps, phase, seconds):
    for app in apps.values():
        app.phase = phase
    time.sleep(seconds)


def drill(apps, name, fault, heal, hold=HOLD, during=None):
    """Runs the fault for `hold` seconds (`during()` checks what must hold
    meanwhile), heals it, and waits until every kind of request of every
    app succeeded again; then a calm second must have no error at all."""
    settle(apps, name, 0)
    started = time.monotonic()
    fault()
    time.sleep(hold)
    if during:
        during()
    healed = time.monotonic()
    heal()
    deadline = healed + RECOVERY_LIMIT
    while not all(app.stats.ok_since(app.kinds, healed) for app in apps.values()):
        assert time.monotonic() < deadline, (name, {n: a.stats.last_ok for n, a in apps.items()})
        time.sleep(0.05)
    recovered = time.monotonic()
    calm = f"{name}/after"
    settle(apps, calm, 1.5)
    REPORT[name] = {
        "fault_s": round(healed - started, 1),
        "recovery_s": round(recovered - healed, 2),
        "errors": {n: a.stats.errors(name) for n, a in apps.items() if a.stats.errors(name)},
        "first_errors": {f"{n}/{k}": a.stats.of(name, k)["first_error"] for n, a in apps.items()
                         for k in a.kinds if a.stats.of(name, k)["first_error"]},
    }
    for n, app in apps.items():
        assert not app.stats.errors(calm), (name, n, {k: app.stats.of(calm, k) for k in app.kinds})


def test_redis_stops_and_restarts(topology, apps):
    def during():
        # Configs and keys come from the tenant manager: nothing failed.
        for n, app in apps.items():
            for kind in ("rest", "auth", "storage", "functions"):
                if kind in app.kinds:
                    assert app.stats.of("redis", kind)["errors"] == 0, (n, kind, app.stats.of("redis", kind))
    drill(apps, "redis", topology.redis.stop, topology.start_redis, during=during)


def test_the_tenant_manager_stops_cached_projects_keep_serving(topology, apps):
    main = apps["main"].project
    # A project no gateway has seen, and a key revoked just before.
    unseen = topology.project("unseen", topology.workers[1], "select 1")
    with topology.api() as api:
        made = api.post(f"/v1/projects/{main['ref']}/api-keys", json={"type": "secret", "name": "doomed"})
        assert made.status_code == 201, made.text
        doomed = next(k["api_key"] for k in api.get(f"/v1/projects/{main['ref']}/api-keys",
                                                    params={"reveal": "true"}).json()
                      if k["id"] == made.json()["id"])
    rest = f"{main['url']}/rest/v1/ledger?limit=1"
    for _ in range(4):  # Both gateways behind nginx know it.
        assert httpx.get(rest, headers={"apikey": doomed}).status_code == 200
    with topology.api() as api:
        assert api.delete(f"/v1/projects/{main['ref']}/api-keys/{made.json()['id']}").status_code == 200
    # The revocation reaches both gateways (through Redis, just restarted).
    deadline = time.monotonic() + 10
    while any(httpx.get(rest, headers={"apikey": doomed}).status_code != 401 for _ in range(4)):
        assert time.monotonic() < deadline, "the revocation did not reach the gateways"
        time.sleep(0.1)

    def during():
        for n, app in apps.items():
            for kind in app.kinds:
                assert app.stats.of("tenant-manager", kind)["errors"] == 0, (n, kind)
        for _ in range(4):
            revoked = httpx.get(rest, headers={"apikey": doomed})
            assert revoked.status_code == 401 and revoked.json()["message"] == "Invalid API key", revoked.text
            new = httpx.get(f"{unseen['url']}/rest/v1/", headers={"apikey": unseen["secret_key"]})
            assert new.status_code == 503, new.text
            assert new.json()["message"] == "Service temporarily unavailable", new.text
    # Longer than the gateways' 2 s cache: what they serve is their last
    # answer from the tenant manager.
    drill(apps, "tenant-manager", topology.tenant_manager.stop, topology.start_tenant_manager,
          hold=max(HOLD, 4), during=during)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_each_worker_restarts(topology, apps, mode):
    for worker in topology.workers:
        name = f"{worker.name}-{mode}"
        drill(apps, name, lambda: worker.restart(mode), lambda: None, hold=0)


def test_a_gateway_drains_on_sigterm(topology, apps):
    """Through a 2 s drain window the gateway keeps serving with
    `Connection: close` and its health check answers 503; realtime sockets
    are told to reconnect (1001) and do, through nginx, to the other
    gateway; requests in flight finish."""
    main = apps["main"].project
    gateway = topology.gateways[0]
    direct = f"http://127.0.0.1:{gateway.port}/project/{main['ref']}"
    headers = {"apikey": main["secret_key"], "Authorization": f"Bearer {main['secret_key']}"}
    socket = ws_connect(f"ws://127.0.0.1:{gateway.port}/project/{main['ref']}/realtime/v1/websocket"
                        f"?apikey={main['secret_key']}&vsn=1.0.0")
    socket.send(json.dumps({"topic": "realtime:probe", "event": "phx_join", "payload": {}, "ref": "1"}))
    assert '"status":"ok"' in socket.recv(timeout=10)
    slow = {}

    def call_slow():
        slow["response"] = httpx.post(f"{direct}/rest/v1/rpc/slow", json={"seconds": 1.5}, headers=headers,
                                      timeout=30)
    caller = threading.Thread(target=call_slow)
    closed = {}

    workers = []

    def fault():
        workers.extend(function_workers(gateway))
        caller.start()
        time.sleep(0.3)
        gateway.proc.send_signal(signal.SIGTERM)
        # Through the drain window a probing balancer sees it leave.
        time.sleep(0.2)
        health = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/health")
        closed["health"] = (health.status_code, health.json())
        try:
            while True:
                socket.recv(timeout=10)
        except Exception as e:  # noqa: BLE001: the close is what we wait for
            closed["code"] = getattr(getattr(e, "rcvd", None), "code", repr(e))

    def during():
        caller.join(30)
        assert slow["response"].status_code == 200 and slow["response"].json() == "slept", slow
        assert closed["code"] == 1001, closed
        assert closed["health"] == (503, {"status": "draining"}), closed
        assert gateway.proc.wait(10) == 0
        # Its function workers leave with it.
        deadline = time.monotonic() + 5
        while any(Path(f"/proc/{pid}").exists() for pid in workers):
            assert time.monotonic() < deadline, f"function workers outlived their gateway: {workers}"
            time.sleep(0.1)
    drill(apps, "gateway-sigterm", fault, lambda: topology.start_gateway(gateway), during=during)


def function_workers(gateway):
    """Pids of the Deno workers a gateway started (their command line names
    its functions folder)."""
    folder = f"{gateway.name}-functions"
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and folder in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def test_a_gateway_crashes(topology, apps):
    """nginx moves to the other gateway; the crashed one's function
    workers exit on their own rather than linger."""
    gateway = topology.gateways[1]
    workers = []

    def fault():
        workers.extend(function_workers(gateway))
        gateway.kill()

    def during():
        assert workers, "the gateway had started no function worker"
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
        assert not alive, f"function workers outlived their gateway: {alive}"
    drill(apps, "gateway-sigkill", fault, lambda: topology.start_gateway(gateway), hold=max(HOLD, 3),
          during=during)


def test_the_object_store_disk_fills(topology, apps):
    def during():
        seen = apps["main"].stats.of("object-store-full", "storage")
        assert seen["errors"] > 0 and "507" in seen["first_error"], seen
        assert "InsufficientStorage" in seen["first_error"] or "out of space" in seen["first_error"], seen
        for n, app in apps.items():
            for kind in app.kinds:
                if kind != "storage":
                    assert app.stats.of("object-store-full", kind)["errors"] == 0, (n, kind)
    drill(apps, "object-store-full", topology.disk.fill, topology.disk.free, during=during)


@pytest.mark.parametrize("how", ["blackhole", "reset"])
def test_the_database_network_is_cut_for_5_s(topology, apps, how):
    proxy = topology.workers[0].proxy

    def during():
        # The other worker's project never noticed.
        assert not apps["upstream"].stats.errors(f"db-{how}"), apps["upstream"].stats.errors(f"db-{how}")
    drill(apps, f"db-{how}", getattr(proxy, how), proxy.heal, hold=5, during=during)


def test_the_ledger_has_every_acknowledged_write_once(topology, apps):
    for app in apps.values():
        app.stop()
    main = apps["main"]
    headers = {"apikey": main.project["secret_key"], "Authorization": f"Bearer {main.project['secret_key']}"}

    def download(name):
        r = httpx.get(f"{main.project['url']}/storage/v1/object/drill/{name}", headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        return r.content
    ledger = {n: app.check(lambda q, ref=app.project["ref"]: topology.sql(ref, q), download)
              for n, app in apps.items()}
    REPORT["ledger"] = ledger
    print("\ndrills:", json.dumps(REPORT, indent=1))
    if os.environ.get("SUPA_DRILL_REPORT"):
        Path(os.environ["SUPA_DRILL_REPORT"]).write_text(json.dumps(REPORT, indent=1))
    for n, kinds in ledger.items():
        for kind, seen in kinds.items():
            if kind == "realtime":
                continue
            assert seen["acknowledged"] > 0, (n, kind)
            assert not seen["lost"], (n, kind, seen["lost"])
            assert not seen["twice"], (n, kind, seen["twice"])
            assert not seen["stray"], (n, kind, seen["stray"])
            assert not seen.get("corrupt"), (n, kind, seen["corrupt"])
