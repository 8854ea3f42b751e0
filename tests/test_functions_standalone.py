"""`supa-functions` standalone, configured only by Supabase edge-runtime's
environment and command line (`start --main-service .../main`), as it
would replace the functions container of Supabase's docker-compose:
functions are the folders beside `main`, rebuilt when their files
change, `VERIFY_JWT` checked with `JWT_SECRET`, and the container's
variables in their environment but the runtime's own."""

import json
import os
import subprocess
import time

import httpx
import jwt
import pytest
from supabase import create_client
from supabase_functions import SyncFunctionsClient
from supabase_functions.errors import FunctionsHttpError

from conftest import ROOT, create_project, free_port, stop, wait_for_port

SUPA_FUNCTIONS = ROOT / "target" / "debug" / "supa-functions"
SECRET = "standalone-functions-secret-" + "y" * 16


def start(tmp_path, secret):
    """supa-functions on edge-runtime's settings, with `hello` beside `main`."""
    functions = tmp_path / "functions"
    (functions / "main").mkdir(parents=True)
    (functions / "main" / "index.ts").write_text("// edge-runtime's router: not a function here")
    (functions / "hello").mkdir()
    (functions / "hello" / "index.ts").write_text("""
      Deno.serve(async (req) => Response.json({
        path: new URL(req.url).pathname,
        url: Deno.env.get("SUPABASE_URL"),
        custom: Deno.env.get("MY_SETTING"),
        secret: (() => { try { return Deno.env.get("JWT_SECRET") ?? null; } catch (e) { return e.name; } })(),
        body: await req.text(),
      }));""")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPA_")}
    env.update(JWT_SECRET=secret, VERIFY_JWT="true", SUPABASE_URL="http://kong:8000", MY_SETTING="on",
               SUPA_FUNCTIONS_DIR=str(tmp_path / "state"))
    proc = subprocess.Popen([str(SUPA_FUNCTIONS), "start", "--main-service", str(functions / "main"),
                             "--ip", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc, "supa-functions")
    return f"http://127.0.0.1:{port}", functions, proc


@pytest.fixture
def server(tmp_path):
    url, functions, proc = start(tmp_path, SECRET)
    yield url, functions
    stop(proc)


def bearer(role="anon"):
    now = int(time.time())
    return {"Authorization": "Bearer " + jwt.encode({"role": role, "iat": now, "exp": now + 600},
                                                      SECRET, algorithm="HS256")}


def test_functions_are_served_from_the_folder_with_edge_runtimes_environment(server):
    url, functions = server
    r = httpx.post(f"{url}/hello/there", headers=bearer(), content=b"hi", timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"path": "/hello/there", "url": "http://kong:8000", "custom": "on",
                        "secret": "NotCapable", "body": "hi"}
    # The real client, pointed at the server as Kong's route would be.
    client = SyncFunctionsClient(url, bearer())
    answer = json.loads(client.invoke("hello", {"body": {"n": 1}}))
    assert (answer["path"], json.loads(answer["body"])) == ("/hello", {"n": 1})
    with pytest.raises(FunctionsHttpError) as missing:
        client.invoke("nope")
    assert missing.value.status == 404
    assert httpx.post(f"{url}/hello").json() == {"code": 401, "message": "Missing authorization header"}
    forged = jwt.encode({"role": "anon"}, "another-secret-of-enough-length-xxxxx", algorithm="HS256")
    assert httpx.post(f"{url}/hello", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert httpx.get(f"{url}/nope", headers=bearer()).status_code == 404
    assert httpx.get(f"{url}/main", headers=bearer()).status_code == 404
    # A change to the files is the next version.
    (functions / "hello" / "index.ts").write_text("Deno.serve(() => new Response('changed'));")
    deadline = time.monotonic() + 10
    while (r := httpx.get(f"{url}/hello", headers=bearer(), timeout=60)).text != "changed":
        assert time.monotonic() < deadline, r.text
        time.sleep(0.2)
    # One that does not compile says so, as a start failure.
    (functions / "broken").mkdir()
    (functions / "broken" / "index.ts").write_text("Deno.serve(() => {")
    broken = httpx.get(f"{url}/broken", headers=bearer(), timeout=60)
    assert broken.status_code == 503 and broken.json()["code"] == "BOOT_ERROR"


def test_it_refuses_to_start_without_a_jwt_secret(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPA_") and k != "JWT_SECRET"}
    done = subprocess.run([str(SUPA_FUNCTIONS), "start", "--main-service", str(tmp_path / "main")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "JWT_SECRET is required" in done.stderr


def test_the_gateway_routes_a_projects_functions_to_it(platform, tmp_path):
    """The shape of a Knative deployment: the project's functions run in
    their own server, reached through the gateway as an `http` upstream."""
    project = create_project(platform, "functions-remote")
    url, _, proc = start(tmp_path, project["jwt_secret"])
    try:
        platform.cli("projects", "upstream", project["ref"], "--service", "functions", "--http", url)
        client = create_client(project["url"], project["publishable_key"])
        answer = json.loads(client.functions.invoke("hello", {"body": {"n": 2}}))
        assert (answer["path"], json.loads(answer["body"]), answer["url"]) == ("/hello", {"n": 2}, "http://kong:8000")
    finally:
        stop(proc)
