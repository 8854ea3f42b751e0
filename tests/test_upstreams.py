"""The gateway's network upstreams: a PostgREST-compatible HTTP server, and
supa-rest as an AWS Lambda function behind a Function URL (a stand-in that
checks SigV4 as AWS does and drives the function through the Lambda Runtime
API), and what the gateway forwards."""

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from postgrest import APIError
from supabase import create_client

from conftest import (
    AWS_KEY_ID, AWS_SECRET, SUPA_REST, create_project, free_port, start_supa_rest, stop, supa_rest_env,
    wait_for_port,
)

SCHEMA = """
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO items (name) VALUES ('first'), ('second');
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON items FOR SELECT TO anon USING (true);
"""


def set_upstream(platform, ref, upstream):
    with platform.client() as api:
        r = api.patch(f"/admin/v1/projects/{ref}", json={"upstream": upstream})
        assert r.status_code == 200, r.text


class Echo(BaseHTTPRequestHandler):
    """Answers with what it received."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "keep-alive")
        self.send_header("X-Upstream", "echo")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def echo():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_upstream_gets_a_minted_jwt_and_forwarded_headers(platform, echo, supa_project):
    project = supa_project
    set_upstream(platform, project.ref, {"kind": "http", "url": echo})
    r = httpx.get(
        f"{project.url}/rest/v1/items?select=*&apikey={project.publishable_key}",
        headers={"Host": "api.example.test", "Proxy-Authorization": "Basic x", "TE": "trailers"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-upstream"] == "echo"
    seen = r.json()
    assert seen["path"] == "/items?select=*", "the apikey parameter is not forwarded"
    headers = seen["headers"]
    assert "apikey" not in headers and "proxy-authorization" not in headers and "te" not in headers
    scheme, token = headers["authorization"].split(" ")
    assert scheme == "Bearer"
    claims = jwt.decode(token, project.jwt_secret, algorithms=["HS256"])
    assert claims["role"] == "anon" and claims["ref"] == project.ref and claims["iss"] == "supa"
    assert headers["x-forwarded-host"] == "api.example.test"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-prefix"] == f"/project/{project.ref}/rest/v1"

    r = httpx.get(f"{project.url}/rest/v1/items", headers={"apikey": project.secret_key})
    token = r.json()["headers"]["authorization"].split(" ")[1]
    assert jwt.decode(token, project.jwt_secret, algorithms=["HS256"])["role"] == "service_role"


def test_http_upstream_in_front_of_supa_rest(platform):
    project = create_project(platform, "http-rest", SCHEMA)
    url, proc = start_supa_rest(platform, project)
    try:
        set_upstream(platform, project["ref"], {"kind": "http", "url": url})
        anon = create_client(project["url"], project["publishable_key"])
        assert [r["name"] for r in anon.table("items").select("name").order("id").execute().data] == ["first", "second"]
        with pytest.raises(APIError) as denied:
            anon.table("items").insert({"name": "no"}).execute()
        assert denied.value.code == "42501"
        admin = create_client(project["url"], project["secret_key"])
        assert admin.table("items").insert({"name": "third"}).execute().data[0]["name"] == "third"
    finally:
        stop(proc)


def test_other_services_go_to_their_own_servers_over_http(platform, echo, supa_project):
    project = supa_project
    with platform.client() as api:
        r = api.patch(f"/admin/v1/projects/{project.ref}", json={"services": {"functions": {"kind": "http", "url": echo}}})
        assert r.status_code == 200, r.text
    r = httpx.get(f"{project.url}/functions/v1/hello/there?n=1", headers={"apikey": project.publishable_key})
    assert r.status_code == 200 and r.headers["x-upstream"] == "echo", r.text
    seen = r.json()
    assert seen["path"] == "/hello/there?n=1"
    headers = seen["headers"]
    assert "apikey" not in headers
    claims = jwt.decode(headers["authorization"].split(" ")[1], project.jwt_secret, algorithms=["HS256"])
    assert (claims["role"], claims["ref"]) == ("anon", project.ref)
    assert headers["x-forwarded-prefix"] == f"/project/{project.ref}/functions/v1"
    # A user's own token is passed as it came.
    user = jwt.encode({"role": "authenticated", "sub": "u1", "exp": int(time.time()) + 60}, project.jwt_secret)
    r = httpx.get(f"{project.url}/functions/v1/hello",
                  headers={"apikey": project.publishable_key, "Authorization": f"Bearer {user}"})
    assert r.json()["headers"]["authorization"] == f"Bearer {user}"
    # The other services stay in the gateway; a second patch keeps functions.
    with platform.client() as api:
        r = api.patch(f"/admin/v1/projects/{project.ref}", json={"services": {"storage": {"kind": "embedded"}}})
        assert r.status_code == 200, r.text
    r = httpx.get(f"{project.url}/storage/v1/bucket", headers={"apikey": project.secret_key})
    assert r.status_code == 200 and r.json() == [], r.text
    assert httpx.get(f"{project.url}/functions/v1/x", headers={"apikey": project.publishable_key}).headers["x-upstream"] == "echo"


@pytest.mark.parametrize("patch, message", [
    ({"services": {"realtime": {"kind": "http", "url": "http://127.0.0.1:1"}}}, "WebSockets"),
    ({"services": {"functions": {"kind": "lambda", "function_url": "https://x.lambda-url.us-east-1.on.aws/",
                                 "region": "us-east-1"}}}, "only the data plane"),
    ({"services": {"functions": {"kind": "http", "url": "ftp://example.com"}}}, "not an http(s) URL"),
    ({"services": {"mail": {"kind": "embedded"}}}, "mail"),
])
def test_service_upstreams_that_cannot_work_are_refused(platform, patch, message, supa_project):
    project = supa_project
    with platform.client() as api:
        r = api.patch(f"/admin/v1/projects/{project.ref}", json=patch)
    assert r.status_code == 400 and message in r.json()["message"], r.text


def test_unreachable_upstream_is_a_502_naming_no_internals(platform, supa_project):
    project = supa_project
    dead = f"http://127.0.0.1:{free_port()}"
    set_upstream(platform, project.ref, {"kind": "http", "url": dead})
    r = httpx.get(f"{project.url}/rest/v1/items", headers={"apikey": project.publishable_key})
    assert r.status_code == 502
    assert r.json() == {"message": "The project's API could not be reached"}
    assert "127.0.0.1" not in r.text


@pytest.fixture(scope="module")
def lambda_project(platform):
    project = create_project(platform, "lambda", SCHEMA)
    with platform.client() as api:
        r = api.post(f"/v1/projects/{project['ref']}/database/query", json={"query": (
            "create function backend() returns int language sql as 'select pg_backend_pid()';"
            "grant execute on function backend() to anon;"
            "create function whoami() returns text language sql as "
            "$$select current_setting('request.jwt.claims', true)::json->>'sub'$$;"
            "grant execute on function whoami() to authenticated;"
        )})
        assert r.status_code in (200, 201), r.text
    port = free_port()
    # One connection, so every warm invocation must reuse the same backend.
    env = {**supa_rest_env(platform, project), "PGRST_DB_POOL": "1"}
    double = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "lambda_double.py"), str(port), AWS_KEY_ID, AWS_SECRET,
         "eu-west-1", "--", str(SUPA_REST)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, double, "the Lambda stand-in")
    function_url = f"http://127.0.0.1:{port}/"
    # Set through the CLI, as the AWS deployment's register task does.
    out = platform.cli("projects", "upstream", project["ref"], "--lambda", function_url, "--region", "eu-west-1")
    assert f"go to the Lambda at {function_url}" in out.stdout, out.stderr
    try:
        yield project, function_url
    finally:
        stop(double)


def test_lambda_upstream_signs_with_sigv4(lambda_project):
    project, _ = lambda_project
    anon = create_client(project["url"], project["publishable_key"])
    rows = anon.table("items").select("id,name").eq("name", "second").execute().data
    assert rows == [{"id": 2, "name": "second"}]
    admin = create_client(project["url"], project["secret_key"])
    created = admin.table("items").insert({"name": "via lambda"}).execute().data
    assert created[0]["name"] == "via lambda"
    with pytest.raises(APIError) as denied:
        anon.table("items").insert({"name": "no"}).execute()
    assert denied.value.code == "42501"


def test_warm_invocations_keep_the_pool_and_schema_cache(lambda_project):
    project, function_url = lambda_project
    before = httpx.get(function_url + "__double/stats").json()
    anon = create_client(project["url"], project["publishable_key"])
    pids = {anon.rpc("backend").execute().data for _ in range(5)}
    # Filters, ordering and a count travel in the event's raw query.
    names = [r["name"] for r in anon.table("items").select("name").order("id").execute().data]
    page = anon.table("items").select("name", count="exact").order("id", desc=True).limit(1).execute()
    assert page.data == [{"name": names[-1]}] and page.count == len(names)
    after = httpx.get(function_url + "__double/stats").json()
    assert len(pids) == 1, pids
    assert after["invocations"] - before["invocations"] == 7
    assert after["inits"] == 1 and after["init_errors"] == 0


def test_the_lambda_path_answers_postgrest_errors_and_csv(lambda_project):
    project, _ = lambda_project
    headers = {"apikey": project["publishable_key"]}
    r = httpx.get(f"{project['url']}/rest/v1/nowhere", headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "PGRST205"
    r = httpx.get(f"{project['url']}/rest/v1/items?select=id,name&id=eq.1",
                  headers={**headers, "Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines() == ["id,name", "1,first"]
    # The user's own token reaches supa-rest beside the gateway's signature.
    user = jwt.encode({"sub": "user-1", "role": "authenticated", "exp": int(time.time()) + 60},
                      project["jwt_secret"], algorithm="HS256")
    r = httpx.post(f"{project['url']}/rest/v1/rpc/whoami", json={},
                   headers={**headers, "Authorization": f"Bearer {user}"})
    assert r.status_code == 200 and r.json() == "user-1", r.text


def test_the_lambda_double_refuses_what_aws_refuses(lambda_project):
    _, function_url = lambda_project
    r = httpx.get(function_url + "items")
    assert r.status_code == 403 and r.json() == {"Message": "Forbidden"}
    forged = (
        "AWS4-HMAC-SHA256 Credential=AKIDSUPATESTEXAMPLE/20261122/eu-west-1/lambda/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
    )
    r = httpx.get(function_url + "items", headers={"Authorization": forged, "X-Amz-Date": "20261122T000000Z"})
    assert r.status_code == 403
    assert r.json()["message"].startswith("The request signature we calculated does not match")
