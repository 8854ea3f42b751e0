"""The gateway's network upstreams: a PostgREST-compatible HTTP server and
an AWS Lambda Function URL (a test double that checks SigV4 as AWS does),
both in front of supa-rest, and what the gateway forwards."""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from postgrest import APIError
from supabase import create_client

from conftest import AWS_KEY_ID, AWS_SECRET, create_project, free_port, start_supa_rest, stop, wait_for_port

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


def test_http_upstream_gets_a_minted_jwt_and_forwarded_headers(platform, echo):
    project = create_project(platform, "http-echo")
    set_upstream(platform, project["ref"], {"kind": "http", "url": echo})
    r = httpx.get(
        f"{project['url']}/rest/v1/items?select=*&apikey={project['publishable_key']}",
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
    claims = jwt.decode(token, project["jwt_secret"], algorithms=["HS256"])
    assert claims["role"] == "anon" and claims["ref"] == project["ref"] and claims["iss"] == "supa"
    assert headers["x-forwarded-host"] == "api.example.test"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-prefix"] == f"/project/{project['ref']}/rest/v1"

    r = httpx.get(f"{project['url']}/rest/v1/items", headers={"apikey": project["secret_key"]})
    token = r.json()["headers"]["authorization"].split(" ")[1]
    assert jwt.decode(token, project["jwt_secret"], algorithms=["HS256"])["role"] == "service_role"


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


def test_unreachable_upstream_is_a_502_naming_no_internals(platform):
    project = create_project(platform, "nowhere")
    dead = f"http://127.0.0.1:{free_port()}"
    set_upstream(platform, project["ref"], {"kind": "http", "url": dead})
    r = httpx.get(f"{project['url']}/rest/v1/items", headers={"apikey": project["publishable_key"]})
    assert r.status_code == 502
    assert r.json() == {"message": "The project's API could not be reached"}
    assert "127.0.0.1" not in r.text


@pytest.fixture(scope="module")
def lambda_project(platform):
    project = create_project(platform, "lambda", SCHEMA)
    url, rest = start_supa_rest(platform, project)
    port = free_port()
    double = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "lambda_double.py"), str(port), url, AWS_KEY_ID, AWS_SECRET, "eu-west-1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, double, "the Lambda test double")
    function_url = f"http://127.0.0.1:{port}/"
    set_upstream(platform, project["ref"], {"kind": "lambda", "function_url": function_url, "region": "eu-west-1"})
    try:
        yield project, function_url
    finally:
        stop(double)
        stop(rest)


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
