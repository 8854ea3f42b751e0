"""Studio page budget: each page's first view (the HTML a signed-in GET
returns) with BENCH_STUDIO_PROJECTS projects on the platform and one project
of BENCH_STUDIO_TABLES tables, against nginx serving the same bytes as a
static file in the same run (the floor of an HTTP round trip here), and the
bytes a first visit transfers (HTML, CSS, JavaScript).

Uses the release `supa` (`make bench-studio` builds it) under `supa up
--profile test` in a temp dir. Writes bench-results/studio.json. Not a
test: nothing here asserts a speed.
"""

import json
import os
import re
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
SUPA = ROOT / "target" / "release" / "supa"
PROJECTS = int(os.environ.get("BENCH_STUDIO_PROJECTS", "1000"))
TABLES = int(os.environ.get("BENCH_STUDIO_TABLES", "1000"))
REQUESTS = int(os.environ.get("BENCH_STUDIO_REQUESTS", "30"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(client, path, n, **kw):
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        r = client.get(path, **kw)
        samples.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 2),
            "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2), "bytes": len(r.content)}


def main():
    work = Path(tempfile.mkdtemp(prefix="supa-bench-studio-"))
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
    api, gw = free_port(), free_port()
    up = subprocess.Popen([str(SUPA), "up", "--profile", "test", "--data-dir", str(work / "data"),
                           "--api-port", str(api), "--gateway-port", str(gw)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nginx = static = None
    try:
        base = f"http://127.0.0.1:{api}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and up.poll() is None, "supa up did not start"
            time.sleep(0.2)
        token = (work / "data" / "admin_token").read_text().strip()
        api_client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        started = time.monotonic()
        refs = [api_client.post("/v1/projects", json={"name": f"p{i:04}"}).json()["ref"] for i in range(PROJECTS)]
        made = time.monotonic() - started
        big = refs[0]
        for start in range(0, TABLES, 100):
            sql = "".join(f"create table t{i:04} (id int primary key, name text, at timestamptz, "
                          f"ref int references t{max(i - 1, 0):04} (id));" if i else
                          "create table t0000 (id int primary key, name text, at timestamptz);"
                          for i in range(start, min(start + 100, TABLES)))
            r = api_client.post(f"/v1/projects/{big}/database/query", json={"query": sql})
            assert r.status_code == 201, r.text

        studio = httpx.Client(base_url=base, timeout=120)
        assert studio.post("/sign-in", data={"token": token}).status_code == 303
        pages = {
            "projects (/)": "/",
            "project home": f"/projects/{big}",
            "table list": f"/projects/{big}/tables",
            "table rows": f"/projects/{big}/tables/public/t0500",
            "SQL editor": f"/projects/{big}/sql",
            "auth": f"/projects/{big}/auth",
            "storage": f"/projects/{big}/storage",
            "functions": f"/projects/{big}/functions",
            "settings": f"/projects/{big}/settings",
            "realtime": f"/projects/{big}/realtime",
            "observability": f"/projects/{big}/observability",
            "delete (confirm)": f"/projects/{big}/delete",
            "workers": "/workers",
        }
        for path in pages.values():
            timed(studio, path, 2)  # warm caches and pools
        css = len(studio.get("/assets/studio.css").content)
        js = len(studio.get("/assets/studio.js").content)

        # nginx serves each page's bytes as a file: the floor.
        # Its workers run as an unprivileged user: a directory they can read.
        static = Path(tempfile.mkdtemp(prefix="supa-bench-static-"))
        static.chmod(0o755)
        for name, path in pages.items():
            (static / (re.sub(r"\W+", "_", name) + ".html")).write_bytes(studio.get(path).content)
        port = free_port()
        conf = work / "nginx.conf"
        conf.write_text(f"""worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx.error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {work}/nb; proxy_temp_path {work}/np; fastcgi_temp_path {work}/nf;
  uwsgi_temp_path {work}/nu; scgi_temp_path {work}/ns;
  server {{ listen 127.0.0.1:{port}; root {static}; }}
}}
""")
        nginx = subprocess.Popen(["nginx", "-c", str(conf), "-g", "daemon off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        floor = httpx.Client(base_url=f"http://127.0.0.1:{port}")
        results = []
        for name, path in pages.items():
            supa = timed(studio, path, REQUESTS)
            file = re.sub(r"\W+", "_", name) + ".html"
            nginx_t = timed(floor, f"/{file}", REQUESTS)
            results.append({"page": name, "studio": supa, "nginx": nginx_t,
                            "ratio_p50": round(supa["p50_ms"] / max(nginx_t["p50_ms"], 0.001), 1)})
        report = {"projects": PROJECTS, "tables": TABLES, "requests": REQUESTS,
                  "project_creation_s": round(made, 1), "css_bytes": css, "js_bytes": js, "pages": results}
        out = ROOT / "bench-results"
        out.mkdir(exist_ok=True)
        (out / "studio.json").write_text(json.dumps(report, indent=2))
        print(f"Studio pages with {PROJECTS} projects and {TABLES} tables ({REQUESTS} requests each)")
        print(f"JavaScript {js} B, CSS {css} B")
        print("| page | HTML bytes | Studio p50 / p95 ms | nginx (same bytes) p50 ms | ratio |")
        print("|---|---|---|---|---|")
        for r in results:
            s, n = r["studio"], r["nginx"]
            print(f"| {r['page']} | {s['bytes']:,} | {s['p50_ms']} / {s['p95_ms']} | {n['p50_ms']} | {r['ratio_p50']} |")
    finally:
        if nginx:
            nginx.terminate()
            nginx.wait()
        up.terminate()
        up.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
        if static:
            shutil.rmtree(static, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
