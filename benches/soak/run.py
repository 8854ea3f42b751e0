"""Soak: a release `supa up` under a steady mix of every service's requests
at half of its saturation for SOAK_SECS (600), sampling every
SOAK_INTERVAL (10) seconds what would show a leak: the process's resident
memory and open file descriptors, the project database's connections per
service (the pools, as PostgreSQL counts them) and the realtime
replication slot's lag behind the WAL.

The mix, one open-loop `fixed-rate` generator per kind (a share of the
total rate each): REST reads 40 %, REST inserts 20 %, 4 KB object
downloads 15 %, 4 KB uploads (upsert) 5 %, edge function calls 15 %,
password sign-ins 5 % (at most 2 a second: bcrypt is CPU by design), and
SUBSCRIBERS realtime sockets subscribed to the inserts. Saturation is
probed first with the same mix offered far above it (SOAK_RATE skips the
probe).

Writes bench-results/soak.json and benches/soak/soak.svg (the samples
drawn over time). Memory growth is reported from a fifth of the run to the
end, and over the second half alone. `tests/test_soak.py` runs a 20 s
form of it against the debug build in `make test`.
"""

import asyncio
import importlib.util
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import websockets

# The load benchmark's helpers (start `supa up`, stop a process), loaded
# under a name of their own: this file is also imported by a test.
_spec = importlib.util.spec_from_file_location("supa_bench_load", Path(__file__).resolve().parents[1] / "load" / "run.py")
_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_load)
ROOT, start_platform, stop = _load.ROOT, _load.start_platform, _load.stop

SECONDS = float(os.environ.get("SOAK_SECS", "600"))
INTERVAL = float(os.environ.get("SOAK_INTERVAL", "10"))
BIN = Path(os.environ.get("SOAK_BIN_DIR", ROOT / "target" / "release"))
RATE = float(os.environ.get("SOAK_RATE", "0"))
SUBSCRIBERS = int(os.environ.get("SOAK_SUBSCRIBERS", "20"))
PROBE_RATE = 4000
OBJECT = os.urandom(4096)
ECHO = "Deno.serve(async (req) => Response.json({ echo: await req.json() }));\n"
SCHEMA = """
create table soak (id bigserial primary key, body text not null, at timestamptz not null default now());
alter publication supabase_realtime add table soak;
"""
# kind -> share of the total rate
MIX = {"rest_read": 0.40, "rest_write": 0.20, "object_read": 0.15, "object_write": 0.05,
       "function": 0.15, "sign_in": 0.05}
SIGN_IN_MAX = 2.0


def requests(gw, project):
    """kind -> (method, URL, headers, body) for fixed-rate."""
    base = f"{gw}/project/{project['ref']}"
    key = project["secret_key"]
    auth = [f"apikey: {key}", f"authorization: Bearer {key}"]
    json_type = ["content-type: application/json"]
    return {
        "rest_read": ("GET", f"{base}/rest/v1/soak?select=id,body&order=id.desc&limit=10", auth, None),
        "rest_write": ("POST", f"{base}/rest/v1/soak", auth + json_type + ["prefer: return=minimal"],
                       '{"body": "soak"}'),
        "object_read": ("GET", f"{base}/storage/v1/object/soak/read.bin", auth, None),
        "object_write": ("POST", f"{base}/storage/v1/object/soak/write.bin",
                         auth + ["x-upsert: true", "content-type: application/octet-stream"], "x" * 4096),
        "function": ("POST", f"{base}/functions/v1/echo", auth + json_type, '{"n": 1}'),
        "sign_in": ("POST", f"{base}/auth/v1/token?grant_type=password",
                    [f"apikey: {project['publishable_key']}"] + json_type,
                    '{"email": "soak@example.com", "password": "soak-password-1"}'),
    }


def generators(bin_dir, targets, total, seconds, warmup):
    """Starts one fixed-rate per kind, its share of `total`; the processes."""
    procs = {}
    for kind, (method, url, headers, body) in targets.items():
        rate = total * MIX[kind]
        if kind == "sign_in":
            rate = min(rate, SIGN_IN_MAX)
        cmd = [str(bin_dir / "fixed-rate"), url, "--rate", f"{max(rate, 0.5):.2f}", "--method", method,
               "--connections", str(8 if rate >= 8 else 1), "--duration", str(seconds), "--warmup", str(warmup)]
        for h in headers:
            cmd += ["--header", h]
        if body is not None:
            cmd += ["--body", body]
        procs[kind] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return procs


def results(procs):
    out = {}
    for kind, proc in procs.items():
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"fixed-rate ({kind}) failed: {stderr}")
        out[kind] = json.loads(stdout)
    return out


class Subscribers:
    """SUBSCRIBERS realtime sockets on the inserts; counts what they hear
    and any socket that closes."""

    def __init__(self, gw, project, count):
        self.url = (gw.replace("http", "ws", 1) + f"/project/{project['ref']}/realtime/v1/websocket"
                    f"?apikey={project['secret_key']}&vsn=1.0.0")
        self.count, self.heard, self.closed, self.errors = count, 0, 0, []
        self.running = True
        self.joined = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self.main()), daemon=True)
        self.thread.start()
        assert self.joined.wait(60), self.errors

    async def one(self, i, joined):
        ws = await websockets.connect(self.url, max_queue=None, open_timeout=30)
        await ws.send(json.dumps({"topic": "realtime:soak", "event": "phx_join", "ref": "1", "join_ref": "1",
                                  "payload": {"config": {"postgres_changes": [
                                      {"event": "INSERT", "schema": "public", "table": "soak"}]}}}))
        joined.append(i)
        beat = time.monotonic()
        try:
            while self.running:
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1)
                except asyncio.TimeoutError:
                    raw = None
                if raw and '"postgres_changes"' in raw and '"INSERT"' in raw:
                    self.heard += 1
                if time.monotonic() - beat > 20:
                    await ws.send(json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {},
                                              "ref": str(i)}))
                    beat = time.monotonic()
        except websockets.ConnectionClosed as e:
            self.closed += 1
            self.errors.append(repr(e))
        finally:
            await ws.close()

    async def main(self):
        joined = []
        tasks = [asyncio.create_task(self.one(i, joined)) for i in range(self.count)]
        while len(joined) < self.count and not any(t.done() for t in tasks):
            await asyncio.sleep(0.05)
        self.joined.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self):
        self.running = False
        self.thread.join(30)


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def sample(pid, api, ref, started):
    rows = api.post(f"/v1/projects/{ref}/database/query", json={"query": """
        select coalesce(application_name, '') as app, count(*)::int as n
        from pg_stat_activity where datname = current_database() group by 1"""}).json()
    lag = api.post(f"/v1/projects/{ref}/database/query", json={"query": """
        select coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 0)::bigint as lag
        from pg_replication_slots where database = current_database()"""}).json()
    return {
        "t": round(time.monotonic() - started, 1),
        "rss_mib": round(rss_kib(pid) / 1024, 1),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "db_connections": {r["app"] or "(none)": r["n"] for r in rows},
        "slot_lag_bytes": lag[0]["lag"] if lag else 0,
    }


def prepare(api, gw, project):
    ref = project["ref"]
    r = api.post(f"/v1/projects/{ref}/database/query", json={"query": SCHEMA})
    assert r.status_code == 201, r.text
    deployed = api.post(f"/v1/projects/{ref}/functions/deploy", params={"slug": "echo"}, files=[
        ("metadata", (None, json.dumps({"entrypoint_path": "index.ts", "name": "echo"}), "application/json")),
        ("file", ("index.ts", ECHO.encode(), "application/typescript"))], timeout=120)
    assert deployed.status_code == 201, deployed.text
    r = api.patch(f"/v1/projects/{ref}/config/auth", json={
        "mailer_autoconfirm": True, "rate_limit_token_refresh": 1000000, "rate_limit_verify": 1000000})
    assert r.status_code == 200, r.text
    headers = {"apikey": project["secret_key"], "Authorization": f"Bearer {project['secret_key']}"}
    base = f"{gw}/project/{ref}"
    with httpx.Client(headers=headers, timeout=30) as http:
        assert http.post(f"{base}/storage/v1/bucket", json={"name": "soak", "id": "soak"}).status_code == 200
        assert http.post(f"{base}/storage/v1/object/soak/read.bin", content=OBJECT,
                         headers={"content-type": "application/octet-stream"}).status_code == 200
        r = http.post(f"{base}/auth/v1/signup", json={"email": "soak@example.com", "password": "soak-password-1"})
        assert r.status_code == 200, r.text
        # Every path answers before the clock starts.
        for kind, (method, url, hs, body) in requests(gw, project).items():
            h = dict(x.split(": ", 1) for x in hs)
            r = http.request(method, url, headers=h, content=body)
            assert r.status_code < 300, (kind, r.status_code, r.text)


def svg(samples, path):
    """Four small line charts of the samples over time."""
    series = [("resident memory (MiB)", [s["rss_mib"] for s in samples]),
              ("open file descriptors", [s["fds"] for s in samples]),
              ("project database connections", [sum(s["db_connections"].values()) for s in samples]),
              ("replication slot lag (KiB)", [s["slot_lag_bytes"] / 1024 for s in samples])]
    ts = [s["t"] for s in samples]
    w, h, pad = 360, 150, 36
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w}" height="{2 * h + 20}" '
             'font-family="sans-serif" font-size="11">', '<rect width="100%" height="100%" fill="white"/>']
    for i, (title, ys) in enumerate(series):
        ox, oy = (i % 2) * w, (i // 2) * h + 10
        top = max(max(ys) * 1.1, 1)
        span = max(ts[-1], 1)
        pts = " ".join(f"{ox + pad + (t / span) * (w - pad - 10):.1f},{oy + h - 24 - (y / top) * (h - 50):.1f}"
                       for t, y in zip(ts, ys))
        parts += [f'<text x="{ox + pad}" y="{oy + 12}" font-weight="bold">{title}</text>',
                  f'<line x1="{ox + pad}" y1="{oy + h - 24}" x2="{ox + w - 10}" y2="{oy + h - 24}" stroke="#888"/>',
                  f'<line x1="{ox + pad}" y1="{oy + 26}" x2="{ox + pad}" y2="{oy + h - 24}" stroke="#888"/>',
                  f'<text x="{ox + 2}" y="{oy + 30}">{top:.0f}</text>',
                  f'<text x="{ox + 2}" y="{oy + h - 24}">0</text>',
                  f'<text x="{ox + w - 60}" y="{oy + h - 8}">{span:.0f} s</text>',
                  f'<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="{pts}"/>']
    parts.append("</svg>")
    Path(path).write_text("\n".join(parts))


def soak(bin_dir=BIN, seconds=SECONDS, interval=INTERVAL, rate=RATE, picture=None):
    """Runs the soak with the binaries in `bin_dir`; its report (a dict)."""
    work = tempfile.mkdtemp(prefix="supa-soak-")
    os.chmod(work, 0o711)
    up, api_url, gw, token, _ = start_platform(work, bin_dir=bin_dir)
    try:
        api = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        project = api.post("/v1/projects", json={"name": "soak"}).json()
        prepare(api, gw, project)
        targets = requests(gw, project)
        report = {"seconds": seconds, "interval": interval}
        if not rate:
            probe = results(generators(bin_dir, targets, PROBE_RATE, 10, 2))
            report["saturation_rps"] = round(sum(r["rate"] for r in probe.values()), 1)
            rate = report["saturation_rps"] / 2
            time.sleep(5)
        report["offered_rps"] = round(rate, 1)
        subscribers = Subscribers(gw, project, SUBSCRIBERS)
        started = time.monotonic()
        procs = generators(bin_dir, targets, rate, seconds, 0)
        samples = []
        while time.monotonic() - started < seconds:
            samples.append(sample(up.pid, api, project["ref"], started))
            time.sleep(max(0.0, interval - (time.monotonic() - started) % interval))
        samples.append(sample(up.pid, api, project["ref"], started))
        report["kinds"] = results(procs)
        subscribers.stop()
        report["realtime"] = {"subscribers": SUBSCRIBERS, "events_heard": subscribers.heard,
                              "sockets_closed": subscribers.closed, "first_errors": subscribers.errors[:3]}
        report["samples"] = samples
        # Growth from the end of a fifth of the run, and over the second
        # half alone: a leak grows through both, a heap still settling only
        # the first.
        def growth(since):
            first = next((s for s in samples if s["t"] >= since), samples[0])
            return round(100 * (samples[-1]["rss_mib"] / first["rss_mib"] - 1), 2)
        report["rss_growth_after_fifth_pct"] = growth(seconds / 5)
        report["rss_growth_second_half_pct"] = growth(seconds / 2)
        report["errors"] = sum(r["errors"] + r["non_2xx"] for r in report["kinds"].values())
        if picture:
            svg(samples, picture)
        return report
    finally:
        stop(up)


def main():
    report = soak(picture=ROOT / "benches" / "soak" / "soak.svg")
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "soak.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1))
    first, last = report["samples"][0], report["samples"][-1]
    print(f"rss {first['rss_mib']} -> {last['rss_mib']} MiB, fds {first['fds']} -> {last['fds']}, "
          f"growth after a fifth {report['rss_growth_after_fifth_pct']} %, over the second half "
          f"{report['rss_growth_second_half_pct']} %, errors {report['errors']}")


if __name__ == "__main__":
    main()
