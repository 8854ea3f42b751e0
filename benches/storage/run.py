"""Storage benchmarks through the gateway of a release `supa up` on the
filesystem backend, each against its baseline in the same run:

(a) a 1 GiB object uploaded (streamed by curl) and downloaded, against a
    plain `cp` of the same file on the same disk; the peak growth of the
    server's resident memory while each transfer runs;
(b) 4 KiB objects: downloads per second from a public bucket against
    nginx serving the same file, and uploads per second (each request a
    new object).

Uses wrk, nginx and curl from apt and release binaries (`make
bench-storage` builds them). Prints a table and writes
bench-results/storage.json. Not a test: nothing here asserts a speed.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "load"))
from run import ROOT, free_port, nginx, start_platform, stop, wrk  # noqa: E402

BIG = int(os.environ.get("BENCH_STORAGE_BYTES", str(1024 ** 3)))
DURATION = os.environ.get("BENCH_DURATION", "10s")
CONNECTIONS = int(os.environ.get("BENCH_STORAGE_CONNECTIONS", "16"))
REPEAT = int(os.environ.get("BENCH_STORAGE_REPEAT", "3"))

UPLOAD_LUA = """
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local n = 0
local body = string.rep("x", 4096)
function request()
  n = n + 1
  return wrk.format("POST", os.getenv("BASE") .. "/up/" .. id .. "-" .. n,
                    {["apikey"] = os.getenv("KEY"), ["Authorization"] = "Bearer " .. os.getenv("KEY"),
                     ["Content-Type"] = "application/octet-stream"}, body)
end
"""


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def timed_with_rss(pid, cmd):
    """Runs `cmd`, sampling the server's RSS: (seconds, peak growth MiB)."""
    base = rss_kib(pid)
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    return elapsed, (peak[0] - base) / 1024


def big_transfers(work, etag, results):
    """(a) with the file backend's ETags made by `etag`."""
    up, api_url, gw_url, token, _ = start_platform(work, "--storage-file-etag", etag)
    try:
        ref, key, base = project(api_url, token, gw_url, f"big-{etag}")
        # The source in the page cache for all three, dirty pages flushed
        # before each run, the median of REPEAT runs.
        big = Path(work) / "big.bin"
        with open(big, "wb") as f:
            for _ in range(max(1, BIG // (64 * 1024 * 1024))):
                f.write(os.urandom(min(BIG, 64 * 1024 * 1024)))
        copy, back = Path(work) / "copy.bin", Path(work) / "back.bin"
        curl = ["curl", "-sS", "--fail-with-body", "-H", f"apikey: {key}", "-H", f"Authorization: Bearer {key}"]
        runs = {"cp": [], "upload": [], "download": []}
        for _ in range(REPEAT):
            subprocess.run(["sync"], check=True)
            runs["cp"].append(timed_with_rss(up.pid, ["cp", str(big), str(copy)]))
            copy.unlink()
            subprocess.run(["sync"], check=True)
            runs["upload"].append(timed_with_rss(up.pid, curl + [
                "-X", "POST", "-T", str(big), "-H", "Content-Type: application/octet-stream", "-H", "Expect:",
                "-H", "x-upsert: true", f"{base}/object/bench/big.bin"]))
            subprocess.run(["sync"], check=True)
            runs["download"].append(timed_with_rss(up.pid, curl + ["-o", str(back), f"{base}/object/bench/big.bin"]))
            back.unlink()
        big.unlink()
    finally:
        stop(up)
    mib = BIG / 1024 / 1024
    cp_seconds = statistics.median(t for t, _ in runs["cp"])
    for name, samples in runs.items():
        seconds = statistics.median(t for t, _ in samples)
        results[f"a:{etag}:{name}"] = {"seconds": seconds, "mib_per_s": mib / seconds, "vs_cp": cp_seconds / seconds,
                                       "rss_growth_mib": max(r for _, r in samples),
                                       "runs": [round(t, 3) for t, _ in samples]}


def project(api_url, token, gw_url, name):
    """A project with a public bucket `bench`: (ref, secret key, storage URL)."""
    api = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    created = api.post("/v1/projects", json={"name": name}).json()
    ref, key = created["ref"], created["secret_key"]
    api.patch(f"/v1/projects/{ref}/config/storage", json={"fileSizeLimit": 4 * BIG}).raise_for_status()
    time.sleep(0.3)
    base = f"{gw_url}/project/{ref}/storage/v1"
    httpx.post(f"{base}/bucket", headers={"apikey": key, "Authorization": f"Bearer {key}"},
               json={"name": "bench", "public": True}).raise_for_status()
    return ref, key, base


def small_objects(work, results):
    """(b) 4 KiB downloads against nginx, and uploads."""
    procs = []
    try:
        up, api_url, gw_url, token, _ = start_platform(work)
        procs.append(up)
        ref, key, base = project(api_url, token, gw_url, "small")
        small = os.urandom(4096)
        httpx.post(f"{base}/object/bench/small.bin", content=small, headers={
            "apikey": key, "Authorization": f"Bearer {key}", "Content-Type": "application/octet-stream"},
        ).raise_for_status()
        www = Path(work) / "www"
        www.mkdir()
        (www / "small.bin").write_bytes(small)
        nginx_port = free_port()
        procs.append(nginx(work, "files", nginx_port, "", f"location / {{ root {www}; }}"))
        results["b:nginx download"] = wrk(f"http://127.0.0.1:{nginx_port}/small.bin",
                                          connections=CONNECTIONS, duration=DURATION)
        results["b:supa download"] = wrk(f"{base}/object/public/bench/small.bin",
                                         connections=CONNECTIONS, duration=DURATION)
        script = Path(work) / "upload.lua"
        script.write_text(UPLOAD_LUA)
        os.environ.update({"BASE": f"/project/{ref}/storage/v1/object/bench", "KEY": key})
        results["b:supa upload"] = wrk(gw_url, connections=CONNECTIONS, duration=DURATION, script=str(script))
    finally:
        for p in reversed(procs):
            stop(p)
    results["b:download vs nginx"] = round(results["b:supa download"]["rps"] / results["b:nginx download"]["rps"], 3)


def main():
    results = {}
    for etag in ("md5", "mtime"):
        work = tempfile.mkdtemp(prefix="supa-bench-storage-")
        os.chmod(work, 0o711)
        big_transfers(work, etag, results)
    work = tempfile.mkdtemp(prefix="supa-bench-storage-")
    os.chmod(work, 0o711)
    small_objects(work, results)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "storage.json").write_text(json.dumps(results, indent=2))
    print(f"{'1 GiB':24} {'seconds':>8} {'MiB/s':>8} {'vs cp':>7} {'RSS +MiB':>9}  runs")
    for name, r in results.items():
        if name.startswith("a:"):
            print(f"{name[2:]:24} {r['seconds']:>8.2f} {r['mib_per_s']:>8.0f} {r['vs_cp']:>6.2f}x "
                  f"{r['rss_growth_mib']:>9.1f}  {r['runs']}")
    print(f"{'4 KiB':24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name in ("b:nginx download", "b:supa download", "b:supa upload"):
        r = results[name]
        print(f"{name[2:]:24} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['non_2xx']:>8}")
    print(f"download / nginx: {results['b:download vs nginx']:.2f}x")


if __name__ == "__main__":
    main()
