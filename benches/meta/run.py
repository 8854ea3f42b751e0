"""Metadata benchmark: supa-meta against postgres-meta in the same run, on
one database of 1,000 tables with 10 columns each (a foreign key chaining
every table to the previous one), the size at which Studio's table list is
known to crawl.

Both servers read the same private PostgreSQL cluster (initdb in a temp
dir, as the `postgres` user when run as root). Each endpoint is asked
BENCH_META_REQUESTS times in turn after a warm-up (type generation
BENCH_META_TYPEGEN_REQUESTS times, and both files must be the same byte for
byte); the table shows p50 and p95 of each and the ratio of postgres-meta's
p50 to supa-meta's. Uses the
release `supa-meta` (`make bench-meta` builds it). Writes
bench-results/meta.json. Not a test: nothing here asserts a speed.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
SUPA_META = ROOT / "target" / "release" / "supa-meta"
PG_META = ROOT / "tests" / "postgres-meta" / "node_modules" / "@supabase" / "postgres-meta" / "dist" / "server" / "server.js"
TABLES = int(os.environ.get("BENCH_META_TABLES", "1000"))
COLUMNS = 10
REQUESTS = int(os.environ.get("BENCH_META_REQUESTS", "30"))
ENDPOINTS = [
    "/tables?included_schemas=public",
    "/tables?included_schemas=public&include_columns=false",
    "/columns?included_schemas=public",
    "/generators/typescript?included_schemas=public",
]
# Type generation takes seconds on postgres-meta: fewer rounds of it.
TYPEGEN_REQUESTS = int(os.environ.get("BENCH_META_TYPEGEN_REQUESTS", "10"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{proc.args[0]} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def as_postgres(cmd):
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start_cluster(work):
    bin_dir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    data = work / "pgdata"
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
    subprocess.run(as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]),
                   check=True, capture_output=True, cwd="/")
    port = free_port()
    subprocess.run(as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(work / "pg.log"),
                                "-o", f"-p {port} -k '' -c listen_addresses=127.0.0.1 -c max_connections=100", "start"]),
                   check=True, capture_output=True, cwd="/")
    return bin_dir, data, port


def schema_sql():
    statements = []
    for i in range(TABLES):
        cols = [f"c{j} text" for j in range(COLUMNS - 2)]
        fk = f", prev_id int REFERENCES public.t{i - 1} (id)" if i else ", prev_id int"
        statements.append(f"CREATE TABLE public.t{i} (id int PRIMARY KEY{fk}, {', '.join(cols)});")
    return "\n".join(statements)


def measure(base, path):
    rounds = TYPEGEN_REQUESTS if path.startswith("/generators/") else REQUESTS
    with httpx.Client(base_url=base, timeout=300) as client:
        for _ in range(3):
            client.get(path).raise_for_status()
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
        size = len(response.content)
    times.sort()
    return {"p50_ms": statistics.median(times), "p95_ms": times[int(len(times) * 0.95) - 1], "bytes": size,
            "requests": rounds, "body": response.content}


def main():
    if not SUPA_META.exists() or not PG_META.exists():
        sys.exit("run `make bench-meta` (it builds supa-meta and installs postgres-meta)")
    work = Path(tempfile.mkdtemp(prefix="supa-bench-meta-"))
    bin_dir, data, pg_port = start_cluster(work)
    procs = []
    try:
        url = f"postgresql://postgres@127.0.0.1:{pg_port}/postgres"
        subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1"], input=schema_sql(), text=True, check=True)
        subprocess.run(["psql", url, "-q", "-c", "ANALYZE"], check=True)
        servers = {}
        for name, cmd in [("supa-meta", [str(SUPA_META)]), ("postgres-meta", ["node", str(PG_META)])]:
            port = free_port()
            env = {**os.environ, "PG_META_DB_URL": url, "PG_META_HOST": "127.0.0.1", "PG_META_PORT": str(port)}
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(proc)
            wait_port(port, proc)
            servers[name] = f"http://127.0.0.1:{port}"
        results = {"tables": TABLES, "columns_per_table": COLUMNS, "requests": REQUESTS, "endpoints": {}}
        print(f"{TABLES} tables x {COLUMNS} columns, {REQUESTS} sequential requests each after 3 warm-up")
        print(f"{'endpoint':58} {'supa p50':>9} {'p95':>8} {'pg-meta p50':>12} {'p95':>8} {'ratio':>6}")
        for path in ENDPOINTS:
            ours = measure(servers["supa-meta"], path)
            theirs = measure(servers["postgres-meta"], path)
            ratio = theirs["p50_ms"] / ours["p50_ms"]
            same = ours.pop("body") == theirs.pop("body")
            if path.startswith("/generators/") and not same:
                sys.exit(f"{path}: supa-meta's file differs from postgres-meta's")
            results["endpoints"][path] = {"supa-meta": ours, "postgres-meta": theirs, "speedup": ratio}
            print(f"{path:58} {ours['p50_ms']:8.1f}ms {ours['p95_ms']:7.1f}ms {theirs['p50_ms']:11.1f}ms "
                  f"{theirs['p95_ms']:7.1f}ms {ratio:5.1f}x")
        out = ROOT / "bench-results"
        out.mkdir(exist_ok=True)
        (out / "meta.json").write_text(json.dumps(results, indent=2))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        subprocess.run(as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, cwd="/")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
