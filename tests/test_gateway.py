"""The gateway of `supa up` as Supabase clients meet it: the real
`supabase` client (2.34.1) with the opaque keys a project was created with,
and raw HTTP for the refusals whose exact bodies matter."""

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
from postgrest import APIError
from supabase import ClientOptions, create_client

import supa
from conftest import create_project

NO_KEY = {"message": "No API key found in request", "hint": "No `apikey` request header or url param was found."}
INVALID_KEY = {"message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key."}

SCHEMA = """
CREATE TABLE todos (id serial PRIMARY KEY, task text NOT NULL, owner uuid);
INSERT INTO todos (task, owner) VALUES ('public one', NULL), ('mine', '11111111-1111-1111-1111-111111111111');
ALTER TABLE todos ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON todos FOR SELECT TO anon USING (true);
CREATE POLICY own_rows ON todos FOR SELECT TO authenticated USING (owner = auth.uid());
"""


@pytest.fixture(scope="module")
def a(platform):
    return create_project(platform, "gateway-a", SCHEMA)


@pytest.fixture(scope="module")
def b(platform):
    return create_project(platform, "gateway-b", SCHEMA)


def rest(project, path="/todos"):
    return f"{project['url']}/rest/v1{path}"


def test_crud_with_the_publishable_and_the_secret_key(a):
    anon = create_client(a["url"], a["publishable_key"])
    rows = anon.table("todos").select("task").order("id").execute().data
    assert rows == [{"task": "public one"}, {"task": "mine"}]
    with pytest.raises(APIError) as denied:
        anon.table("todos").insert({"task": "nope"}).execute()
    assert denied.value.code == "42501"

    admin = create_client(a["url"], a["secret_key"])
    inserted = admin.table("todos").insert({"task": "by service"}).execute().data
    assert inserted[0]["task"] == "by service"
    new_id = inserted[0]["id"]
    updated = admin.table("todos").update({"task": "edited"}).eq("id", new_id).execute().data
    assert updated == [{"id": new_id, "task": "edited", "owner": None}]
    admin.table("todos").delete().eq("id", new_id).execute()
    assert admin.table("todos").select("id", count="exact").execute().count == 2


@pytest.mark.parametrize(
    "headers,body",
    [
        ({}, NO_KEY),
        ({"apikey": ""}, NO_KEY),
        ({"apikey": "not-a-key"}, INVALID_KEY),
        ({"apikey": "sb_publishable_AAAAAAAAAAAAAAAAAAAAAA_AAAAAAAA"}, INVALID_KEY),
    ],
)
def test_missing_and_bad_keys_get_the_exact_bodies(a, headers, body):
    r = httpx.get(rest(a), headers=headers)
    assert r.status_code == 401
    assert r.json() == body


def test_a_forged_key_with_the_right_shape_is_refused(a):
    # Right prefix and length, checksum computed for another project.
    forged = supa.generate_key("zzzzzzzzzzzzzzzzzzzz", "publishable")
    r = httpx.get(rest(a), headers={"apikey": forged})
    assert (r.status_code, r.json()) == (401, INVALID_KEY)


def test_project_b_keys_do_not_open_project_a(a, b):
    for key in (b["publishable_key"], b["secret_key"]):
        headers = {"apikey": key, "Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        for method in ("GET", "POST", "PATCH", "DELETE"):
            r = httpx.request(method, rest(a, "/todos?id=eq.1"), headers=headers, content=b'{"task":"x"}')
            assert (r.status_code, r.json()) == (401, INVALID_KEY), method


def test_a_revoked_key_stops_within_a_second(platform, a):
    with platform.client() as api:
        extra = api.post(f"/v1/projects/{a['ref']}/api-keys?reveal=true", json={"type": "secret", "name": "short-lived"}).json()
        key = api.get(f"/v1/projects/{a['ref']}/api-keys", params={"reveal": "true"}).json()
        secret = next(k["api_key"] for k in key if k["id"] == extra["id"])
        assert httpx.get(rest(a), headers={"apikey": secret}).status_code == 200
        assert api.delete(f"/v1/projects/{a['ref']}/api-keys/{extra['id']}").status_code == 200
    deadline = time.monotonic() + 1.0
    while httpx.get(rest(a), headers={"apikey": secret}).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works after 1 s"
        time.sleep(0.02)


def b64(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sign(secret, claims, alg="HS256"):
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def test_user_jwts_pass_through_and_bad_ones_are_refused(a, b):
    now = int(time.time())
    user = {"sub": "11111111-1111-1111-1111-111111111111", "role": "authenticated", "exp": now + 600}
    client = create_client(
        a["url"], a["publishable_key"],
        options=ClientOptions(headers={"Authorization": f"Bearer {sign(a['jwt_secret'], user)}"}),
    )
    assert client.table("todos").select("task").execute().data == [{"task": "mine"}]

    good = sign(a["jwt_secret"], user)
    head, body, sig = good.split(".")
    tampered_body = b64(json.dumps({**user, "sub": "22222222-2222-2222-2222-222222222222"}).encode())
    bad_tokens = {
        "tampered": f"{head}.{tampered_body}.{sig}",
        "expired": sign(a["jwt_secret"], {**user, "exp": now - 3600}),
        "alg none": f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{body}.",
        "other project": sign(b["jwt_secret"], user),
    }
    for name, token in bad_tokens.items():
        r = httpx.get(rest(a), headers={"apikey": a["publishable_key"], "Authorization": f"Bearer {token}"})
        assert r.status_code == 401, name
        assert r.json()["code"] in ("PGRST301", "PGRST303"), name

    escalate = sign(a["jwt_secret"], {**user, "role": "service_role"})
    r = httpx.get(rest(a), headers={"apikey": a["publishable_key"], "Authorization": f"Bearer {escalate}"})
    assert r.status_code == 401
    r = httpx.get(rest(a), headers={"apikey": a["secret_key"], "Authorization": f"Bearer {escalate}"})
    assert r.status_code == 200


def test_secret_key_from_a_browser_is_refused(a):
    r = httpx.get(rest(a), headers={"apikey": a["secret_key"], "User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
    assert r.status_code == 401
    assert r.json()["message"] == "Forbidden use of secret API key in browser"
    r = httpx.get(rest(a), headers={"apikey": a["publishable_key"], "User-Agent": "Mozilla/5.0"})
    assert r.status_code == 200


def test_other_services_unknown_projects_health_and_cors(platform, a):
    r = httpx.get(f"{a['url']}/graphql/v1/anything", headers={"apikey": a["publishable_key"]})
    assert r.status_code == 404
    assert "/graphql/v1" in r.json()["message"]
    # Functions are served in process: a function not deployed is their 404.
    r = httpx.get(f"{a['url']}/functions/v1/anything", headers={"apikey": a["publishable_key"]})
    assert r.status_code == 404 and r.json() == {"code": "NOT_FOUND", "message": "Requested function was not found"}
    # Realtime is served in process: an unknown path is its own 404.
    r = httpx.get(f"{a['url']}/realtime/v1/anything", headers={"apikey": a["publishable_key"]})
    assert r.status_code == 404 and r.json() == {"message": "Not found"}
    # Storage is served in process: an unknown path is its own 404.
    r = httpx.get(f"{a['url']}/storage/v1/anything", headers={"apikey": a["publishable_key"]})
    assert r.status_code == 404 and r.json()["statusCode"] == "404"
    # Auth is served in process: a path it does not know is GoTrue's 404.
    r = httpx.get(f"{a['url']}/auth/v1/anything", headers={"apikey": a["publishable_key"]})
    assert r.status_code == 404 and r.json()["error_code"] == "not_found"
    r = httpx.get(f"{platform.gateway_url}/project/NOTAREF/rest/v1/todos")
    assert r.status_code == 404 and r.json() == {"message": "Project not found"}
    r = httpx.get(f"{platform.gateway_url}/project/{'q' * 20}/rest/v1/todos", headers={"apikey": a["publishable_key"]})
    assert r.status_code == 401
    assert httpx.get(f"{platform.gateway_url}/health").json() == {"status": "ok"}
    pre = httpx.options(
        rest(a),
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "apikey, content-type"},
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "https://app.example"
    assert pre.headers["access-control-allow-credentials"] == "true"
    assert "apikey" in pre.headers["access-control-allow-headers"]
    r = httpx.get(rest(a), headers={"apikey": a["publishable_key"], "Origin": "https://app.example"})
    assert r.headers["access-control-allow-origin"] == "https://app.example"


def test_metrics_on_the_admin_listener(platform, a):
    for _ in range(3):
        assert httpx.get(rest(a), headers={"apikey": a["publishable_key"]}).status_code == 200
    assert httpx.get(rest(a)).status_code == 401
    text = httpx.get(f"{platform.api_url}/metrics").text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert int(lines['supa_gateway_requests_total{status="200",upstream="embedded"}']) >= 3
    assert int(lines['supa_gateway_requests_total{status="401",upstream="none"}']) >= 1
    assert 0 < float(lines['supa_gateway_cache_hit_ratio{tier="l1"}']) <= 1
    assert int(lines['supa_gateway_upstream_seconds_count{upstream="embedded"}']) >= 3
    assert "supa_gateway_jwt_mints_total" in lines


def raw_exchange(platform, request: bytes) -> bytes:
    """Sends bytes as they are on a new connection; what comes back before
    the gateway closes it (or 5 s pass)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(platform.gateway_url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as s:
        s.sendall(request)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except socket.timeout:
            pass
    return answer


def test_smuggling_shapes_are_refused_before_any_project_sees_them(platform, a):
    """Both Content-Length and Transfer-Encoding, or two different
    Content-Lengths: a proxy in front could read the body differently, so
    the gateway answers 400 and closes, and the smuggled request behind
    the body is never served."""
    path = f"/project/{a['ref']}/rest/v1/todos"
    smuggled = f"GET {path} HTTP/1.1\r\nhost: x\r\napikey: {a['secret_key']}\r\n\r\n"
    for framing in ["content-length: 4\r\ntransfer-encoding: chunked\r\n",
                    "content-length: 4\r\ncontent-length: 5\r\n"]:
        body = f"0\r\n\r\n{smuggled}"
        request = (f"POST {path} HTTP/1.1\r\nhost: x\r\napikey: {a['secret_key']}\r\n"
                   f"content-type: application/json\r\n{framing}\r\n{body}").encode()
        answer = raw_exchange(platform, request)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert answer.count(b"HTTP/1.1") == 1, answer  # the smuggled GET got no answer
    with platform.client() as api:
        rows = api.post(f"/v1/projects/{a['ref']}/database/query",
                        json={"query": "select count(*) as n from todos"}).json()
    assert rows == [{"n": 2}]  # nothing was inserted either


def test_too_many_headers_are_refused_with_431(platform, a):
    headers = "".join(f"x-h{i}: {i}\r\n" for i in range(150))
    request = (f"GET /project/{a['ref']}/rest/v1/todos HTTP/1.1\r\nhost: x\r\n"
               f"apikey: {a['publishable_key']}\r\n{headers}\r\n").encode()
    answer = raw_exchange(platform, request)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
