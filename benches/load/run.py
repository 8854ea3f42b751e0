"""Gateway load benchmarks, each with its baseline measured in the same run.

(a) overhead: GET through the gateway (key-auth, cached config, cached mint)
    to an HTTP upstream returning a fixed small JSON, against that upstream
    direct and against nginx proxying to it (keep-alive both ways): the
    saturation throughput (wrk), then latency at half of nginx's saturation
    rate, held fixed by `fixed-rate` (benches/src/bin/fixed_rate.rs);
(b) end to end: a single-row GET through the gateway with the embedded data
    plane, against supa-rest standalone on the same database;
(d) the data plane's physical limit: the same single-row SELECT through
    supa-rest and through pgbench (prepared, as many connections as the
    pool), bare and inside the transaction a request runs;
(c) cold path: the first request for each of 1,000 projects through a fresh
    supa-gateway (no Redis), whose memory cache starts empty;
(e) 10,000 projects in one gateway process (benches/src/bin/many_projects.rs):
    the heap an idle project costs, and two rounds of one request each.

Uses release binaries (`make bench-load` builds them), wrk, nginx and
pgbench from apt, and a throwaway `supa up` in a temp dir. Prints a table
and writes bench-results/load.json. Not a test: nothing here asserts a
speed.
"""

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "target" / "release"
DURATION = os.environ.get("BENCH_DURATION", "10s")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
POOL = 10
COLD_PROJECTS = int(os.environ.get("BENCH_COLD_PROJECTS", "1000"))
MANY_PROJECTS = int(os.environ.get("BENCH_MANY_PROJECTS", "10000"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            log = getattr(proc, "log_path", None)
            tail = Path(log).read_text()[-2000:] if log else ""
            sys.exit(f"{proc.args[0]} (port {port}) exited with {proc.returncode}:\n{tail}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def wrk(url, headers=(), connections=CONNECTIONS, duration=DURATION, script=None):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": pct(50), "p99_ms": pct(99), "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def fixed_rate(url, rate, headers=(), connections=CONNECTIONS, duration=DURATION):
    """Latency at a fixed request rate (open loop, coordinated omission
    corrected): the percentiles wrk cannot give below saturation."""
    cmd = [str(RELEASE / "fixed-rate"), url, "--rate", f"{rate:.0f}", "--connections", str(connections),
           "--duration", duration.rstrip("s")]
    for h in headers:
        cmd += ["--header", h]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def pgbench(db, script, clients=POOL, duration=DURATION, options="", connect_each=False):
    """Transactions per second of `script` (prepared statements), as the
    project's data-plane login, `clients` connections on 2 threads (or a
    new connection for each transaction with `connect_each`)."""
    path = Path(tempfile.mkstemp(suffix=".sql")[1])
    path.write_text(script)
    env = {**os.environ, "PGPASSWORD": db["password"], "PGOPTIONS": options}
    out = subprocess.run(
        [PGBENCH, "-n", "-M", "prepared", *(["-C"] if connect_each else []), "-c", str(clients),
         "-j", str(min(clients, 2)), "-T", duration.rstrip("s"),
         "-h", db["host"], "-p", str(db["port"]), "-U", db["user"], "-f", str(path), db["name"]],
        capture_output=True, text=True, env=env)
    path.unlink()
    if out.returncode != 0:
        sys.exit(f"pgbench failed:\n{out.stdout}\n{out.stderr}")
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
    lat = re.search(r"latency average = ([\d.]+) ms", out.stdout)
    return {"tps": tps, "latency_avg_ms": float(lat.group(1)) if lat else None}


PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"

# The statement supa-rest runs for `GET /items?id=eq.7` (see supa-rest's
# plan.rs), and the settings it sets first: the baseline runs what the
# data plane runs.
ROW_SELECT = (
    "WITH pgrst_source AS (SELECT \"public\".\"items\".* FROM \"public\".\"items\" "
    "WHERE \"public\".\"items\".\"id\" = :id) "
    "SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, "
    "coalesce(json_agg(_postgrest_t), '[]')::text AS body FROM (SELECT * FROM pgrst_source) _postgrest_t;"
)
REQUEST_SETUP = (
    "SELECT set_config('search_path', '\"public\"', true), set_config('role', 'anon', true), "
    "set_config('request.jwt.claims', '{\"role\":\"anon\"}', true), set_config('request.method', 'GET', true), "
    "set_config('request.path', '/items', true), set_config('request.headers', '{}', true), "
    "set_config('request.cookies', '{}', true);"
)


NGINX_CONF = """
worker_processes 2;
pid {dir}/nginx-{name}.pid;
error_log {dir}/nginx-{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body-{name};
    proxy_temp_path {dir}/proxy-{name};
    fastcgi_temp_path {dir}/fastcgi-{name};
    uwsgi_temp_path {dir}/uwsgi-{name};
    scgi_temp_path {dir}/scgi-{name};
    {upstream}
    server {{
        listen 127.0.0.1:{port};
        {location}
    }}
}}
"""


def nginx(dir, name, port, upstream, location):
    conf = Path(dir) / f"nginx-{name}.conf"
    conf.write_text(NGINX_CONF.format(dir=dir, name=name, port=port, upstream=upstream, location=location))
    proc = spawn(dir, f"nginx-{name}", ["nginx", "-c", str(conf), "-g", "daemon off;"])
    wait_port(port, proc)
    return proc


def spawn(work, name, cmd, env=None):
    """Starts a process whose output goes to a log file in the work dir."""
    log = Path(work) / f"{name}.log"
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    proc.log_path = log
    return proc


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def start_platform(work, *flags, bin_dir=RELEASE):
    """A release `supa up` (or the one in `bin_dir`) in `work` with extra
    `flags`, answering: (process, Management API URL, gateway URL, admin
    token, service token)."""
    api_port, gw_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPA_")}
    up = spawn(work, "supa-up", [str(bin_dir / "supa"), "up", "--data-dir", f"{work}/supa", "--api-port",
                                 str(api_port), "--gateway-port", str(gw_port), "--log", "warn", *flags], env)
    wait_port(api_port, up)
    api_url, gw_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{gw_port}"
    # The port is bound before start-up ends; /health answers once it has.
    for _ in range(600):
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    token = Path(f"{work}/supa/admin_token").read_text().strip()
    service = Path(f"{work}/supa/service_token").read_text().strip()
    return up, api_url, gw_url, token, service


def main():
    for tool in ("wrk", "nginx", PGBENCH):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: run `make bench-load` (it installs it)")
    work = tempfile.mkdtemp(prefix="supa-bench-load-")
    # PostgreSQL runs as its own user (we may be root) and must reach its data dir inside.
    os.chmod(work, 0o711)
    procs = []
    results = {}
    try:
        up, api_url, gw_url, token, service = start_platform(work)
        procs.append(up)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPA_")}
        api = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

        # (a) overhead against a fixed JSON upstream.
        upstream_port, proxy_port = free_port(), free_port()
        procs.append(nginx(work, "upstream", upstream_port, "",
                           "location / { default_type application/json; return 200 '[{\"id\":1}]'; }"))
        procs.append(nginx(
            work, "proxy", proxy_port,
            f"upstream fixed {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}",
            "location / { proxy_pass http://fixed; proxy_http_version 1.1; proxy_set_header Connection \"\"; }",
        ))
        fixed = api.post("/v1/projects", json={"name": "fixed"}).json()
        api.patch(f"/admin/v1/projects/{fixed['ref']}",
                  json={"upstream": {"kind": "http", "url": f"http://127.0.0.1:{upstream_port}/"}}).raise_for_status()
        key = f"apikey: {fixed['publishable_key']}"
        gw_fixed = f"{gw_url}/project/{fixed['ref']}/rest/v1/items"
        assert httpx.get(gw_fixed, headers={"apikey": fixed["publishable_key"]}).json() == [{"id": 1}]
        wrk(gw_fixed, [key], duration="2s")  # warm caches and pools
        targets = [
            ("upstream direct", f"http://127.0.0.1:{upstream_port}/items", []),
            ("nginx proxy", f"http://127.0.0.1:{proxy_port}/items", []),
            ("supa gateway", gw_fixed, [key]),
        ]
        for label, url, headers in targets:
            results[f"a:{label}"] = wrk(url, headers)
        half = results["a:nginx proxy"]["rps"] / 2
        for label, url, headers in targets:
            results[f"a:{label}:half"] = fixed_rate(url, half, headers)

        # (b) end to end: embedded data plane vs supa-rest standalone.
        rows = api.post("/v1/projects", json={"name": "rows"}).json()
        ref = rows["ref"]
        api.post(f"/v1/projects/{ref}/database/query", json={"query":
            "CREATE TABLE items (id int PRIMARY KEY, name text); "
            "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g;"}).raise_for_status()
        # supa-rest logs in as the gateway's data plane does, with the
        # credentials the internal API hands gateways.
        config = httpx.get(f"{api_url}/internal/v1/projects/{ref}/config",
                           headers={"Authorization": f"Bearer {service}"}).json()
        secret, db = config["jwt_secret"], config["database"]
        rest_port = free_port()
        rest = spawn(work, "supa-rest", [str(RELEASE / "supa-rest")], env={
            **env,
            "PGRST_DB_URI": f"postgres://{db['user']}:{db['password']}@{db['host']}:{db['port']}/{db['name']}",
            "PGRST_DB_SCHEMAS": "public", "PGRST_DB_ANON_ROLE": "anon", "PGRST_JWT_SECRET": secret,
            "PGRST_SERVER_PORT": str(rest_port), "PGRST_SERVER_HOST": "127.0.0.1", "PGRST_DB_POOL": "10",
        })
        procs.append(rest)
        wait_port(rest_port, rest)
        gw_row = f"{gw_url}/project/{ref}/rest/v1/items?id=eq.7"
        direct_row = f"http://127.0.0.1:{rest_port}/items?id=eq.7"
        assert httpx.get(gw_row, headers={"apikey": rows["publishable_key"]}).json() == [{"id": 7, "name": "item 7"}]
        assert httpx.get(direct_row).json() == [{"id": 7, "name": "item 7"}]
        wrk(gw_row, [f"apikey: {rows['publishable_key']}"], duration="2s")
        wrk(direct_row, duration="2s")
        results["b:supa-rest direct"] = wrk(direct_row)
        results["b:supa gateway (embedded)"] = wrk(gw_row, [f"apikey: {rows['publishable_key']}"])

        # (d) the same SELECT through pgbench, on the pool's connection count.
        row_tx = f"BEGIN;\n{REQUEST_SETUP}\n{ROW_SELECT}\nCOMMIT;\n"
        results["d:pgbench select"] = pgbench(db, f"\\set id 7\n{ROW_SELECT}\n", options="-c role=anon")
        results["d:pgbench request transaction"] = pgbench(db, f"\\set id 7\n{row_tx}")

        # (e) many projects in one gateway process (many-projects, in
        # process: synthetic projects over the `rows` project's database),
        # and the floor of a request on a new connection: pgbench opening
        # one per transaction.
        if MANY_PROJECTS:
            out = subprocess.run([str(RELEASE / "many-projects"), "--tenant-url", api_url, "--service-token", service,
                                  "--ref", ref, "--projects", str(MANY_PROJECTS), "--path", "/rest/v1/items?id=eq.7"],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"many-projects failed:\n{out.stderr}")
            results["e:many projects"] = json.loads(out.stdout)
            results["e:pgbench new connection"] = pgbench(db, f"\\set id 7\n{row_tx}", clients=1,
                                                          connect_each=True)

        # (c) cold path through a fresh supa-gateway (BENCH_COLD_PROJECTS=0
        # skips it): the first request of each project, half of them a row
        # read, half the OpenAPI root; then a row read of each again, its
        # pool closed by then (more projects than open pools) but its
        # caches kept.
        if COLD_PROJECTS:
            api.patch("/admin/v1/workers/local", json={"max_databases": COLD_PROJECTS + 100}).raise_for_status()
            keys = []
            for i in range(COLD_PROJECTS):
                r = api.post("/v1/projects", json={"name": f"cold-{i}"})
                assert r.status_code == 201, r.text
                api.post(f"/v1/projects/{r.json()['ref']}/database/query", json={"query":
                    "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (7, 'item 7'); "
                    "GRANT SELECT ON items TO anon"}).raise_for_status()
                keys.append((r.json()["ref"], r.json()["publishable_key"]))
            cold_port, cold_admin = free_port(), free_port()
            cold = spawn(work, "supa-gateway", [str(RELEASE / "supa-gateway"), "--tenant-url", api_url, "--service-token",
                                                service, "--port", str(cold_port), "--admin-port", str(cold_admin),
                                                "--bind", "127.0.0.1", "--log", "warn"], env)
            procs.append(cold)
            wait_port(cold_port, cold)
            row_timings, root_timings, reopened = [], [], []
            with httpx.Client(timeout=30) as client:
                started = time.perf_counter()
                for i, (r, k) in enumerate(keys):
                    path = "/rest/v1/items?id=eq.7" if i % 2 == 0 else "/rest/v1/"
                    t = time.perf_counter()
                    resp = client.get(f"http://127.0.0.1:{cold_port}/project/{r}{path}", headers={"apikey": k})
                    (row_timings if i % 2 == 0 else root_timings).append((time.perf_counter() - t) * 1000)
                    assert resp.status_code == 200, resp.text
                total = time.perf_counter() - started
                for r, k in keys:
                    t = time.perf_counter()
                    resp = client.get(f"http://127.0.0.1:{cold_port}/project/{r}/rest/v1/items?id=eq.7",
                                      headers={"apikey": k})
                    reopened.append((time.perf_counter() - t) * 1000)
                    assert resp.status_code == 200, resp.text
            q = statistics.quantiles(row_timings, n=100)
            results["c:cold"] = {"projects": COLD_PROJECTS, "total_s": total, "p50_ms": statistics.median(row_timings),
                                 "p95_ms": q[94], "p99_ms": q[98], "root_p50_ms": statistics.median(root_timings),
                                 "reopened_p50_ms": statistics.median(reopened)}
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n(a) gateway overhead, {CONNECTIONS} connections, {DURATION}; latency at half of nginx's saturation rate")
    print(f"{'target':<20} {'req/s':>10} {'vs nginx':>9} {'rate':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'errors':>7}")
    nginx_rps = results["a:nginx proxy"]["rps"]
    for label in ("upstream direct", "nginx proxy", "supa gateway"):
        r, half = results[f"a:{label}"], results[f"a:{label}:half"]
        print(f"{label:<20} {r['rps']:>10.0f} {r['rps'] / nginx_rps:>8.2f}x {half['rate']:>8.0f} {half['p50_ms']:>8.3f} "
              f"{half['p99_ms']:>8.3f} {half['p999_ms']:>9.3f} {half['errors'] + half['non_2xx']:>7}")
    added = results["a:supa gateway:half"]["p99_ms"] - results["a:upstream direct:half"]["p99_ms"]
    print(f"added p99 at half of nginx's saturation vs direct: {added:.3f} ms")
    print(f"\n(b) end to end single-row GET, {CONNECTIONS} connections, {DURATION}")
    direct = results["b:supa-rest direct"]["rps"]
    for label in ("supa-rest direct", "supa gateway (embedded)"):
        r = results[f"b:{label}"]
        print(f"{label:<26} {r['rps']:>10.0f} req/s  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  {r['rps'] / direct:.2f}x")
    print(f"\n(d) data plane against pgbench -M prepared, {POOL} connections")
    rest_rps = results["b:supa-rest direct"]["rps"]
    for label in ("pgbench select", "pgbench request transaction"):
        tps = results[f"d:{label}"]["tps"]
        print(f"{label:<30} {tps:>10.0f} tps   supa-rest {rest_rps:.0f} req/s = {rest_rps / tps:.2f}x")
    c = results.get("c:cold")
    if c:
        print(f"\n(c) cold path, {c['projects']} projects, first request each: total {c['total_s']:.1f} s; "
              f"row read p50 {c['p50_ms']:.2f} ms, p95 {c['p95_ms']:.2f} ms, p99 {c['p99_ms']:.2f} ms; "
              f"OpenAPI root p50 {c['root_p50_ms']:.2f} ms; again, pool reopened, p50 {c['reopened_p50_ms']:.2f} ms")
    e = results.get("e:many projects")
    if e:
        floor = results["e:pgbench new connection"]["latency_avg_ms"]
        print(f"\n(e) {e['projects']} projects in one gateway (at most {e['max_open_projects']} pools open): "
              f"idle project {e['idle_project_heap_bytes'] / 1024:.1f} KiB heap, {e['idle_project_rss_bytes'] / 1024:.1f} KiB RSS")
        for label in ("warm", "round1", "round2"):
            lat = e[label]
            failed = f"  failed {lat['failed']}" if "failed" in lat else ""
            print(f"  {label:<7} p50 {lat['p50_ms']:.2f} ms  p99 {lat['p99_ms']:.2f} ms{failed}")
        print(f"  round 2 cache misses {e['cache_misses_round2']}; pgbench, a new connection per request "
              f"transaction: {floor:.2f} ms")
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
