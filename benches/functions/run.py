"""Edge function benchmarks through the gateway of a release `supa up`,
each against its baseline in the same run:

(a) cold start of a hello-world function: the first request after a
    deploy (bundle fetched and written, worker started) and a cold start
    with the bundle on disk (after its worker went idle), p50/p99 over
    BENCH_COLD_FUNCTIONS functions; deploy time (bundling) alongside;
(b) warm invocations through the gateway (key-auth, minted JWT, the
    worker's socket) against the same function served by a plain `deno
    run` on a TCP port, with wrk at BENCH_FUNCTIONS_CONNECTIONS (one
    worker's worth: 16) connections;
(c) BENCH_IDLE_FUNCTIONS deployed functions, each called once and left
    idle: Deno processes left and the gateway's resident memory before and
    after, and the bundles' size on disk.

Uses wrk from apt, the pinned Deno and release binaries (`make
bench-functions` builds them). Prints a table and writes
bench-results/functions.json. Not a test: nothing here asserts a speed.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "load"))
from run import ROOT, free_port, spawn, start_platform, stop, wait_port, wrk  # noqa: E402

DENO = ROOT / "runtime" / "deno" / "node_modules" / "@deno" / "linux-x64-glibc" / "deno"
COLD = int(os.environ.get("BENCH_COLD_FUNCTIONS", "100"))
IDLE = int(os.environ.get("BENCH_IDLE_FUNCTIONS", "1000"))
CONNECTIONS = int(os.environ.get("BENCH_FUNCTIONS_CONNECTIONS", "16"))
DURATION = os.environ.get("BENCH_DURATION", "10s")
ONLY = set(filter(None, os.environ.get("BENCH_FUNCTIONS_ONLY", "").split(",")))

HELLO = 'Deno.serve(() => Response.json({ message: "Hello World" }));\n'


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def deno_workers(ref):
    """Deno worker processes running a bundle of project `ref`."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if ref.encode() in cmdline and b"bundles" in cmdline:
            count += 1
    return count


class Project:
    def __init__(self, api_url, gw_url, token, name):
        self.api = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=300)
        created = self.api.post("/v1/projects", json={"name": name}).json()
        self.ref, self.key = created["ref"], created["secret_key"]
        self.base = f"{gw_url}/project/{self.ref}/functions/v1"
        self.headers = {"apikey": self.key, "Authorization": f"Bearer {self.key}"}

    def deploy(self, slug, source=HELLO):
        started = time.perf_counter()
        r = self.api.post(f"/v1/projects/{self.ref}/functions/deploy", params={"slug": slug},
                          files=[("metadata", (None, json.dumps({"entrypoint_path": "index.ts"}))),
                                 ("file", ("index.ts", source.encode()))])
        r.raise_for_status()
        return time.perf_counter() - started

    def call(self, http, slug):
        started = time.perf_counter()
        r = http.get(f"{self.base}/{slug}", headers=self.headers)
        assert r.status_code == 200, r.text
        return (time.perf_counter() - started) * 1000


def cold_starts(work, results):
    up, api_url, gw_url, token, _ = start_platform(work, "--functions-idle", "1")
    try:
        p = Project(api_url, gw_url, token, "cold")
        deploys = [p.deploy(f"hello{i}") for i in range(COLD)]
        with httpx.Client(timeout=60) as http:
            # Each function's first call, and a second one at once (warm).
            first, warm = [], []
            for i in range(COLD):
                first.append(p.call(http, f"hello{i}"))
                warm.append(p.call(http, f"hello{i}"))
            # Workers gone, bundles kept: the cold start of a function that
            # has run before.
            deadline = time.monotonic() + 30
            while deno_workers(p.ref) and time.monotonic() < deadline:
                time.sleep(0.2)
            again = [p.call(http, f"hello{i}") for i in range(COLD)]
        for name, samples in (("deploy", [d * 1000 for d in deploys]), ("first_call", first),
                              ("cold_start", again), ("warm_call", warm)):
            results[f"a:{name}"] = {"p50_ms": statistics.median(samples), "p99_ms": percentile(samples, 99),
                                    "n": len(samples)}
    finally:
        stop(up)


DIRECT = """Deno.serve({ port: Number(Deno.args[0]), hostname: "127.0.0.1", onListen() {} },
  () => Response.json({ message: "Hello World" }));
"""


def warm_throughput(work, results):
    up, api_url, gw_url, token, _ = start_platform(work)
    direct_port = free_port()
    script = Path(work) / "direct.ts"
    script.write_text(DIRECT)
    direct = spawn(work, "deno-direct", [str(DENO), "run", "--quiet", "--allow-net", str(script),
                                          str(direct_port)])
    try:
        wait_port(direct_port, direct)
        p = Project(api_url, gw_url, token, "warm")
        p.deploy("hello")
        with httpx.Client(timeout=60) as http:
            p.call(http, "hello")
        headers = [f"{k}: {v}" for k, v in p.headers.items()]
        # Each twice, alternating; the better run of each counts.
        runs = {"direct": [], "gateway": []}
        for _ in range(2):
            runs["direct"].append(wrk(f"http://127.0.0.1:{direct_port}/", connections=CONNECTIONS,
                                      duration=DURATION))
            runs["gateway"].append(wrk(f"{p.base}/hello", headers, connections=CONNECTIONS, duration=DURATION))
        best = {k: max(v, key=lambda r: r["rps"]) for k, v in runs.items()}
        for k, r in best.items():
            results[f"b:{k}"] = dict(r, vs_direct=r["rps"] / best["direct"]["rps"])
        results["b:gateway_workers"] = deno_workers(p.ref)
    finally:
        stop(direct)
        stop(up)


def idle_functions(work, results):
    up, api_url, gw_url, token, _ = start_platform(work, "--functions-idle", "2")
    try:
        p = Project(api_url, gw_url, token, "idle")
        before = rss_kib(up.pid)
        deploys = [p.deploy(f"idle{i}") for i in range(IDLE)]
        deployed_rss = rss_kib(up.pid)
        with httpx.Client(timeout=60) as http:
            for i in range(IDLE):
                p.call(http, f"idle{i}")
        called_rss = rss_kib(up.pid)
        deadline = time.monotonic() + 60
        while deno_workers(p.ref) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)
        bundles = Path(work) / "supa" / "functions" / "runtime" / "bundles" / p.ref
        disk = sum(f.stat().st_size for f in bundles.rglob("*") if f.is_file())
        results["c:idle"] = {
            "functions": IDLE,
            "deploy_p50_ms": statistics.median(deploys) * 1000,
            "deno_processes_after_idle": deno_workers(p.ref),
            "gateway_rss_mib_before": before / 1024,
            "gateway_rss_mib_deployed": deployed_rss / 1024,
            "gateway_rss_mib_after_calls": called_rss / 1024,
            "gateway_rss_mib_idle": rss_kib(up.pid) / 1024,
            "bundles_on_disk_kib": disk / 1024,
        }
    finally:
        stop(up)


def main():
    results = {}
    with tempfile.TemporaryDirectory(prefix="supa-bench-functions-") as work:
        for name, bench in (("cold", cold_starts), ("warm", warm_throughput), ("idle", idle_functions)):
            if ONLY and name not in ONLY:
                continue
            os.makedirs(f"{work}/{name}")
            bench(f"{work}/{name}", results)
    out = ROOT / "bench-results" / "functions.json"
    out.parent.mkdir(exist_ok=True)
    # A partial run (BENCH_FUNCTIONS_ONLY) updates its own entries.
    kept = json.loads(out.read_text()) if ONLY and out.exists() else {}
    out.write_text(json.dumps({**kept, **results}, indent=2))
    for name, r in results.items():
        print(f"{name:24} {json.dumps(r)}")


if __name__ == "__main__":
    main()
