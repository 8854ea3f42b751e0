"""Auth server benchmarks through the gateway, each against its baseline
in the same run:

(a) password grant: POST /auth/v1/token?grant_type=password, against raw
    bcrypt verifications per second at the same cost on every core (the
    physical limit: a password grant is one bcrypt verification);
(b) refresh grant: POST /auth/v1/token?grant_type=refresh_token, each
    request with a refresh token never used before (rotation for real);
(c) GET /auth/v1/user with a user's access token.

Uses release binaries (`make bench-auth` builds them), wrk from apt and a
throwaway `supa up` in a temp dir. Prints a table and writes
bench-results/auth.json. Not a test: nothing here asserts a speed.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "load"))
from run import RELEASE, ROOT, start_platform, stop, wrk  # noqa: E402

DURATION = os.environ.get("BENCH_DURATION", "10s")
CONNECTIONS = int(os.environ.get("BENCH_AUTH_CONNECTIONS", "8"))
REFRESH_TOKENS = int(os.environ.get("BENCH_REFRESH_TOKENS", "60000"))

POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["apikey"] = os.getenv("KEY")
wrk.body = os.getenv("BODY")
"""

REFRESH_LUA = """
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local n = 0
function request()
  -- Two threads take alternate tokens: none is used twice.
  local i = (n * 2 + id) % #tokens + 1
  n = n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["apikey"] = os.getenv("KEY")},
                    '{"refresh_token":"' .. tokens[i] .. '"}')
end
"""


def wrk_lua(url, script, env, connections=CONNECTIONS, duration=DURATION):
    path = Path(tempfile.mkstemp(suffix=".lua")[1])
    path.write_text(script)
    old = dict(os.environ)
    os.environ.update(env)
    try:
        return wrk(url, connections=connections, duration=duration, script=str(path))
    finally:
        os.environ.clear()
        os.environ.update(old)


def main():
    work = tempfile.mkdtemp(prefix="supa-bench-auth-")
    os.chmod(work, 0o711)
    procs = []
    results = {}
    try:
        up, api_url, gw_url, token, _ = start_platform(work)
        procs.append(up)
        api = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        project = api.post("/v1/projects", json={"name": "auth-bench"}).json()
        ref, key = project["ref"], project["publishable_key"]
        # The benchmark is one client address: limits out of its way.
        api.patch(f"/v1/projects/{ref}/config/auth", json={
            "mailer_autoconfirm": True, "rate_limit_token_refresh": 1_000_000,
        }).raise_for_status()
        time.sleep(0.2)
        base = f"{gw_url}/project/{ref}/auth/v1"
        email, password = f"bench-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
        signed = httpx.post(f"{base}/signup", headers={"apikey": key},
                            json={"email": email, "password": password}, timeout=30).json()
        user_id, access = signed["user"]["id"], signed["access_token"]

        baseline = json.loads(subprocess.run([str(RELEASE / "bcrypt-rate"), "10"], capture_output=True,
                                             text=True, check=True).stdout)
        results["a:raw bcrypt (cost 10, all cores)"] = {"rps": baseline["per_second"]}
        body = json.dumps({"email": email, "password": password})
        grant = wrk_lua(f"{base}/token?grant_type=password", POST_LUA, {"KEY": key, "BODY": body})
        results["a:password grant"] = grant

        # Refresh tokens no client has used, one per request, a set per run.
        def fresh_tokens(name):
            rows = api.post(f"/v1/projects/{ref}/database/query", json={"query": f"""
                WITH s AS (
                  INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal)
                  SELECT gen_random_uuid(), '{user_id}', now(), now(), 'aal1'
                  FROM generate_series(1, {REFRESH_TOKENS})
                  RETURNING id)
                INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at,
                                                 session_id)
                SELECT '00000000-0000-0000-0000-000000000000', md5(random()::text || id::text), '{user_id}',
                       false, now(), now(), id FROM s
                RETURNING token"""}).json()
            path = Path(work) / f"{name}.txt"
            path.write_text("\n".join(r["token"] for r in rows) + "\n")
            return str(path)

        refresh_url = f"{base}/token?grant_type=refresh_token"
        results["b:refresh grant"] = wrk_lua(refresh_url, REFRESH_LUA, {"KEY": key, "TOKENS": fresh_tokens("a")})
        results["b:refresh grant:low"] = wrk_lua(refresh_url, REFRESH_LUA, {"KEY": key, "TOKENS": fresh_tokens("b")},
                                                 connections=2)
        results["c:GET /user"] = wrk(f"{base}/user", [f"apikey: {key}", f"Authorization: Bearer {access}"],
                                     connections=CONNECTIONS, duration=DURATION)
        results["c:GET /user:low"] = wrk(f"{base}/user", [f"apikey: {key}", f"Authorization: Bearer {access}"],
                                         connections=2, duration=DURATION)
    finally:
        for p in reversed(procs):
            stop(p)
    ratio = results["a:password grant"]["rps"] / results["a:raw bcrypt (cost 10, all cores)"]["rps"]
    results["a:ratio"] = round(ratio, 3)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "auth.json").write_text(json.dumps(results, indent=2))
    print(f"{'benchmark':40} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in results.items():
        if isinstance(r, dict):
            print(f"{name:40} {r['rps']:>10.1f} {r.get('p50_ms', float('nan')):>8.2f} "
                  f"{r.get('p99_ms', float('nan')):>8.2f} {r.get('non_2xx', 0):>8}")
    print(f"password grant / raw bcrypt: {ratio:.2f}x")


if __name__ == "__main__":
    main()
