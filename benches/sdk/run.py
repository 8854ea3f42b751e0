"""What a throwaway project costs a test suite, through the released wheel
(`make bench-sdk` builds it and installs it into a venv of its own, then
runs this script with that venv's Python):

(a) the floor, in the same run: `CREATE DATABASE ... TEMPLATE
    supa_template` and `DROP DATABASE` straight on the platform's cluster
    through one psql session (what a project costs PostgreSQL alone);
(b) `ManagementClient.create_project` then `delete_project`, sequential,
    BENCH_SDK_PROJECTS times: what making a project costs the caller;
(c) the `supa_project` fixture as tests see it: an inner pytest session of
    BENCH_SDK_PROJECTS tests that each take a project and run one query
    (and, in two runs, then work 100 ms), the fixture's setup and teardown
    timed by pytest, with the pool on (1, the default) and off (0), and
    with the example app's migrations (three files and a seed).

Prints a table and writes bench-results/sdk.json. Not a test: nothing
here asserts a speed.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from supa.platform import Platform

ROOT = Path(__file__).resolve().parents[2]
N = int(os.environ.get("BENCH_SDK_PROJECTS", "50"))


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def summary(values_ms):
    return {"p50_ms": round(statistics.median(values_ms), 1), "p95_ms": round(pct(values_ms, 95), 1),
            "n": len(values_ms)}


def floor(platform):
    """CREATE DATABASE from the template and DROP DATABASE, N times, timed
    by psql's \\timing in one session."""
    pid = (platform.data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()
    port = pid[3]
    script = "\\timing on\n" + "".join(
        f"CREATE DATABASE bench_{i} TEMPLATE supa_template;\nDROP DATABASE bench_{i};\n" for i in range(N))
    env = {**os.environ, "PGPASSWORD": (platform.data_dir / "pg_superuser_password").read_text().strip()}
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", "supa", "-d", "postgres", "-q"],
                         input=script, capture_output=True, text=True, env=env, check=True).stdout
    times = [float(t) for t in re.findall(r"Time: ([\d.]+) ms", out)]
    create, drop = times[0::2], times[1::2]
    return {"create": summary(create), "drop": summary(drop),
            "both": summary([c + d for c, d in zip(create, drop)])}


def through_the_client(platform):
    async def one():
        t0 = time.perf_counter()
        created = await platform.management.create_project("bench")
        t1 = time.perf_counter()
        await platform.management.delete_project(created.project.project_ref)
        return (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000

    runs = [platform.run(one()) for _ in range(N)]
    return {"create": summary([c for c, _ in runs]), "delete": summary([d for _, d in runs]),
            "both": summary([c + d for c, d in runs])}


TIMING_PLUGIN = '''
import json, os
durations = {}

def pytest_runtest_logreport(report):
    if report.when in ("setup", "teardown"):
        durations.setdefault(report.nodeid, 0.0)
        durations[report.nodeid] += report.duration

def pytest_sessionfinish(session):
    with open(os.environ["BENCH_SDK_OUT"], "w") as f:
        json.dump(durations, f)
'''

TESTS = '''
import time
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_one_query(supa_project, i):
    assert supa_project.query("select 1 as one") == [{{"one": 1}}]
    time.sleep({work})
'''


def fixture(pool, migrations, work_ms=0):
    """Per-test fixture time (setup + teardown) in an inner pytest run whose
    tests each run one query and then work (sleep) `work_ms`."""
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "bench_timing.py").write_text(TIMING_PLUGIN)
        (d / "test_bench.py").write_text(TESTS.format(n=N, work=work_ms / 1000))
        (d / "pytest.ini").write_text(f"[pytest]\nsupa_project_pool = {pool}\n")
        out = d / "durations.json"
        env = {**os.environ, "BENCH_SDK_OUT": str(out), "PYTHONPATH": str(d)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "bench_timing", "-p", "no:cacheprovider",
                   f"--supa-migrations={migrations or 'none'}", str(d)]
        t0 = time.perf_counter()
        subprocess.run(command, cwd=d, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        durations = json.loads(out.read_text())
    per_test = [v * 1000 for v in durations.values()]
    # The first test's setup also starts the platform; it is reported apart.
    first, rest = per_test[0], per_test[1:]
    return {"per_test": summary(rest), "first_test_with_platform_start_ms": round(first, 1),
            "session_wall_s": round(wall, 2)}


def main():
    results = {"machine": subprocess.run(["uname", "-srm"], capture_output=True, text=True).stdout.strip(),
               "cpus": os.cpu_count(), "projects": N}
    t0 = time.perf_counter()
    with Platform.start() as platform:
        results["platform_start_s"] = round(time.perf_counter() - t0, 2)
        platform.run(platform.management.delete_project(
            platform.run(platform.management.create_project("warm-up")).project.project_ref))
        results["floor"] = floor(platform)
        results["client"] = through_the_client(platform)
    example = ROOT / "examples" / "notes-app" / "supabase"
    results["fixture_pool_1"] = fixture(1, None)
    results["fixture_pool_0"] = fixture(0, None)
    results["fixture_pool_1_migrations"] = fixture(1, example)
    results["fixture_pool_0_migrations"] = fixture(0, example)
    # Tests that take a while themselves: the pool makes the next project
    # meanwhile.
    results["fixture_pool_1_migrations_work_100ms"] = fixture(1, example, 100)
    results["fixture_pool_0_migrations_work_100ms"] = fixture(0, example, 100)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "sdk.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
