"""Realtime benchmarks through the gateway of a release `supa up`, with the
load generator (Python asyncio, `websockets`) on the same machine:

(a) broadcast fan-out: SOCKETS sockets in channels of 6 (Supabase's
    published workload, scaled to this machine), each channel's members
    broadcasting with `self: true`, so every message reaches all six;
    messages delivered per second and send-to-receive latency p50/p99;
(b) IDLE idle sockets, each joined to a channel: the server's resident
    memory per socket;
(c) Postgres changes: SUBSCRIBERS users (distinct JWTs) subscribed to one
    table under row level security, rows inserted through the REST API at
    CHANGE_RATE per second: commit-to-client latency p50/p99 (the
    change's `commit_timestamp` to its arrival, same clock).

Prints a table and writes bench-results/realtime.json. Not a test:
nothing here asserts a speed.
"""

import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jwt
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "load"))
from run import ROOT, start_platform, stop  # noqa: E402

SOCKETS = int(os.environ.get("BENCH_REALTIME_SOCKETS", "1000"))
GROUP = 6
SECONDS = float(os.environ.get("BENCH_REALTIME_SECONDS", "10"))
SEND_RATE = float(os.environ.get("BENCH_REALTIME_SEND_RATE", "1.0"))  # per socket per second
IDLE = int(os.environ.get("BENCH_REALTIME_IDLE", "10000"))
SUBSCRIBERS = int(os.environ.get("BENCH_REALTIME_SUBSCRIBERS", "100"))
# Which parts run (comma-separated: fan_out, idle, changes); all by default.
ONLY = set(os.environ.get("BENCH_REALTIME_ONLY", "fan_out,idle,changes").split(","))
CHANGE_RATE = float(os.environ.get("BENCH_REALTIME_CHANGE_RATE", "20"))


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def connect(url):
    for _ in range(50):
        try:
            return await websockets.connect(url, max_queue=None, ping_interval=None, open_timeout=30)
        except (OSError, websockets.InvalidStatus, asyncio.TimeoutError):
            await asyncio.sleep(0.1)
    raise RuntimeError("cannot connect")


async def join(ws, topic, config):
    await ws.send(json.dumps({"topic": topic, "event": "phx_join", "ref": "1", "join_ref": "1",
                              "payload": {"config": config}}))
    reply = json.loads(await ws.recv())
    assert reply["payload"]["status"] == "ok", reply


async def fan_out(url):
    sockets = []
    for i in range(SOCKETS):
        ws = await connect(url)
        await join(ws, f"realtime:group-{i // GROUP}", {"broadcast": {"self": True}})
        sockets.append((i, ws))
    latencies, delivered = [], [0]
    stop_at = time.monotonic() + SECONDS

    async def reader(ws):
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg["event"] == "broadcast":
                    delivered[0] += 1
                    latencies.append(time.perf_counter() - msg["payload"]["payload"]["t"])
        except websockets.ConnectionClosed:
            pass

    async def writer(i, ws):
        # Spread the senders over the first second.
        await asyncio.sleep((i % 100) / 100)
        while time.monotonic() < stop_at:
            await ws.send(json.dumps({"topic": f"realtime:group-{i // GROUP}", "event": "broadcast",
                                      "ref": None, "join_ref": "1",
                                      "payload": {"type": "broadcast", "event": "m",
                                                  "payload": {"t": time.perf_counter()}}}))
            await asyncio.sleep(1 / SEND_RATE)

    readers = [asyncio.create_task(reader(ws)) for _, ws in sockets]
    started = time.monotonic()
    await asyncio.gather(*(writer(i, ws) for i, ws in sockets))
    await asyncio.sleep(1)
    elapsed = time.monotonic() - started
    for _, ws in sockets:
        await ws.close()
    for r in readers:
        r.cancel()
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000  # noqa: E731
    return {"sockets": SOCKETS, "delivered_per_s": delivered[0] / elapsed, "p50_ms": pct(50),
            "p99_ms": pct(99), "delivered": delivered[0]}


async def idle(url, pid):
    before = rss_kib(pid)
    sockets = []
    for i in range(IDLE):
        ws = await connect(url)
        await join(ws, f"realtime:idle-{i // GROUP}", {})
        sockets.append(ws)
    await asyncio.sleep(2)
    after = rss_kib(pid)
    for ws in sockets:
        await ws.close()
    return {"sockets": IDLE, "rss_before_mib": before / 1024, "rss_after_mib": after / 1024,
            "kib_per_socket": (after - before) / IDLE}


async def changes(url, rest_url, secret_key, jwt_secret):
    sockets = []
    for i in range(SUBSCRIBERS):
        ws = await connect(url)
        now = int(time.time())
        token = jwt.encode({"sub": f"00000000-0000-4000-8000-{i:012d}", "role": "authenticated",
                            "aud": "authenticated", "iat": now, "exp": now + 3600}, jwt_secret,
                           algorithm="HS256")
        await ws.send(json.dumps({"topic": f"realtime:feed-{i}", "event": "phx_join", "ref": "1",
                                  "join_ref": "1", "payload": {"access_token": token, "config": {
                                      "postgres_changes": [{"event": "INSERT", "schema": "public",
                                                            "table": "feed"}]}}}))
        while True:
            msg = json.loads(await ws.recv())
            if msg["event"] == "phx_reply":
                assert msg["payload"]["status"] == "ok", msg
                break
        sockets.append(ws)
    latencies, expected = [], [0]

    def commit_time(stamp):
        # 2026-12-02T12:03:58.367Z
        return time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + \
            int(stamp[20:23]) / 1000

    async def reader(ws):
        try:
            async for raw in ws:
                arrived = time.time()
                msg = json.loads(raw)
                if msg["event"] == "postgres_changes":
                    latencies.append(arrived - commit_time(msg["payload"]["data"]["commit_timestamp"]))
        except websockets.ConnectionClosed:
            pass

    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    async with httpx.AsyncClient(headers={"apikey": secret_key, "Authorization": f"Bearer {secret_key}"},
                                 timeout=30) as http:
        stop_at = time.monotonic() + SECONDS
        while time.monotonic() < stop_at:
            r = await http.post(f"{rest_url}/feed", json={"body": "x"})
            r.raise_for_status()
            expected[0] += SUBSCRIBERS
            await asyncio.sleep(1 / CHANGE_RATE)
    deadline = time.monotonic() + 10
    while len(latencies) < expected[0] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for ws in sockets:
        await ws.close()
    for r in readers:
        r.cancel()
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000  # noqa: E731
    return {"subscribers": SUBSCRIBERS, "changes_per_s": CHANGE_RATE, "expected": expected[0],
            "delivered": len(latencies), "p50_ms": pct(50), "p99_ms": pct(99)}


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="supa-bench-realtime-")
    os.chmod(work, 0o711)
    up, api_url, gw_url, token, _ = start_platform(work)
    results = {}
    try:
        api = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        project = api.post("/v1/projects", json={"name": "realtime-bench"}).json()
        ref, key = project["ref"], project["publishable_key"]
        api.patch(f"/v1/projects/{ref}/config/realtime", json={
            "max_concurrent_users": 100_000, "max_events_per_second": 1_000_000,
            "max_joins_per_second": 1_000_000}).raise_for_status()
        time.sleep(0.5)
        url = f"{gw_url.replace('http://', 'ws://')}/project/{ref}/realtime/v1/websocket?apikey={key}&vsn=1.0.0"
        if "fan_out" in ONLY:
            results["fan_out"] = asyncio.run(fan_out(url))
        if "idle" in ONLY:
            results["idle"] = asyncio.run(idle(url, up.pid))
        schema = """
            create table feed (id bigserial primary key, body text, at timestamptz default now());
            alter table feed enable row level security;
            create policy "signed-in users read" on feed for select to authenticated
              using (auth.role() = 'authenticated');
            alter publication supabase_realtime add table feed;
        """
        api.post(f"/v1/projects/{ref}/database/query", json={"query": schema}).raise_for_status()
        service = Path(f"{work}/supa/service_token").read_text().strip()
        config = httpx.get(f"{api_url}/internal/v1/projects/{ref}/config",
                           headers={"Authorization": f"Bearer {service}"}).json()
        if "changes" in ONLY:
            results["changes"] = asyncio.run(changes(url, f"{gw_url}/project/{ref}/rest/v1",
                                                     project["secret_key"], config["jwt_secret"]))
    finally:
        stop(up)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    # A partial run (BENCH_REALTIME_ONLY) keeps the other parts' last results.
    previous = out / "realtime.json"
    merged = json.loads(previous.read_text()) if previous.exists() else {}
    merged.update(results)
    previous.write_text(json.dumps(merged, indent=2))
    f = results.get("fan_out")
    f and print(f"fan-out: {f['sockets']} sockets in channels of {GROUP}: {f['delivered_per_s']:.0f} msgs/s delivered, "
          f"p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms")
    i = results.get("idle")
    i and print(f"idle: {i['sockets']} sockets: RSS {i['rss_before_mib']:.1f} -> {i['rss_after_mib']:.1f} MiB, "
          f"{i['kib_per_socket']:.1f} KiB per socket")
    c = results.get("changes")
    c and print(f"postgres changes: {c['subscribers']} subscribers under RLS, {c['changes_per_s']:.0f} inserts/s: "
          f"{c['delivered']}/{c['expected']} delivered, commit-to-client p50 {c['p50_ms']:.1f} ms, "
          f"p99 {c['p99_ms']:.1f} ms")


if __name__ == "__main__":
    main()
