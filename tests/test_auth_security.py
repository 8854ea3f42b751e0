"""The auth server's security properties through the gateway: SQL
metacharacters in every field are data, never SQL; users cannot raise
their own role or app metadata; expired, tampered and other projects'
tokens are refused at /auth/v1 and /rest/v1; no password or token reaches
the log."""

import base64
import json
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from supabase import ClientOptions, create_client
from supabase_auth.errors import AuthApiError

from conftest import configure_auth, create_project

SCHEMA = """
create table staff_only (id int primary key, body text);
insert into staff_only values (1, 'payroll');
alter table staff_only enable row level security;
create policy service_reads on staff_only for select to authenticated
  using ((auth.jwt() ->> 'role') = 'service_role' or (auth.jwt() -> 'app_metadata' ->> 'staff') = 'true');
"""

NASTY = "'; drop table auth.users; -- \" \\ $1 %s \u0000x"


@pytest.fixture(scope="module")
def project(platform):
    created = create_project(platform, "auth-security", SCHEMA)
    configure_auth(platform, created, mailer_autoconfirm=True, rate_limit_token_refresh=1_000_000,
                   rate_limit_verify=1_000_000, rate_limit_otp=1_000_000, rate_limit_email_sent=1_000_000,
                   smtp_max_frequency=0)
    return created


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def client(project):
    return create_client(project["url"], project["publishable_key"], ClientOptions(flow_type="implicit"))


def test_sql_metacharacters_are_data(platform, project):
    email = f"o'brien+{uuid.uuid4().hex[:8]}@example.com"
    password = "pa'ss\"word;--"
    clean = NASTY.replace("\u0000", "")
    db = client(project)
    user = db.auth.sign_up({"email": email, "password": password,
                            "options": {"data": {"note": clean, clean: "key"}}}).user
    assert user.email == email and user.user_metadata == {"note": clean, clean: "key"}
    assert client(project).auth.sign_in_with_password({"email": email, "password": password}).user.id == user.id
    headers = {"apikey": project["publishable_key"]}
    base = f"{project['url']}/auth/v1"
    probes = [
        httpx.post(f"{base}/token?grant_type=password", headers=headers,
                   json={"email": "x' or '1'='1@example.com", "password": "' or '1'='1"}),
        httpx.post(f"{base}/token?grant_type=refresh_token", headers=headers, json={"refresh_token": "' or 1=1 --"}),
        httpx.post(f"{base}/verify", headers=headers, json={"type": "signup", "token_hash": "' or ''='"}),
        httpx.post(f"{base}/verify", headers=headers, json={"type": "email'; --", "token": "1", "email": "a@b.co"}),
        httpx.post(f"{base}/token?grant_type=pkce", headers=headers,
                   json={"auth_code": "' or 1=1 --", "code_verifier": "v" * 43}),
        httpx.get(f"{base}/authorize?provider=github'--", headers=headers),
        httpx.post(f"{base}/recover", headers=headers, json={"email": clean}),
        httpx.post(f"{base}/otp", headers=headers, json={"phone": "+1'; drop table x"}),
        httpx.get(f"{base}/admin/users/' or 1=1 --", headers={"apikey": project["secret_key"]}),
        httpx.post(f"{base}/signup", headers=headers, json={"email": "a@b.co", "password": "x" * 10,
                                                             "data": "'; select 1"}),
    ]
    for r in probes:
        assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text)
        assert "error_code" in r.json() or "code" in r.json()
    with platform.client() as api:
        rows = api.post(f"/v1/projects/{project['ref']}/database/query",
                        json={"query": "select count(*) > 0 as ok from auth.users"}).json()
    assert rows == [{"ok": True}]


def test_users_cannot_raise_their_own_role(project):
    db = client(project)
    email = f"climber-{uuid.uuid4().hex[:8]}@example.com"
    db.auth.sign_up({"email": email, "password": "correct horse"})
    updated = db.auth.update_user({"data": {"role": "service_role", "staff": "true"}}).user
    assert updated.app_metadata.get("staff") is None
    raw = httpx.put(f"{project['url']}/auth/v1/user", headers={
        "apikey": project["publishable_key"], "Authorization": f"Bearer {db.auth.get_session().access_token}"},
        json={"app_metadata": {"staff": "true"}, "role": "service_role", "aud": "admin"})
    assert raw.status_code == 200 and raw.json()["app_metadata"].get("staff") is None
    assert raw.json()["role"] == "authenticated"
    session = db.auth.refresh_session().session
    claims = jwt.decode(session.access_token, project["jwt_secret"], algorithms=["HS256"], audience="authenticated")
    assert claims["role"] == "authenticated" and claims["user_metadata"]["role"] == "service_role"
    assert db.table("staff_only").select("*").execute().data == []


def test_bad_tokens_are_refused_everywhere(platform, project, supa_project):
    other = supa_project
    db = client(project)
    email = f"tokens-{uuid.uuid4().hex[:8]}@example.com"
    session = db.auth.sign_up({"email": email, "password": "correct horse"}).session
    claims = jwt.decode(session.access_token, project["jwt_secret"], algorithms=["HS256"], audience="authenticated")
    # Past the 30 s of clock leeway PostgREST and GoTrue allow.
    expired = jwt.encode({**claims, "exp": int(time.time()) - 120}, project["jwt_secret"], algorithm="HS256")
    head, body, sig = session.access_token.split(".")
    forged = b64url(json.dumps({**claims, "role": "service_role"}).encode())
    tampered = f"{head}.{forged}.{sig}"
    foreign = jwt.encode(claims, other.jwt_secret, algorithm="HS256")
    none_alg = b64url(b'{"alg":"none","typ":"JWT"}') + f".{body}."
    for token in (expired, tampered, foreign, none_alg):
        user = httpx.get(f"{project['url']}/auth/v1/user",
                         headers={"apikey": project["publishable_key"], "Authorization": f"Bearer {token}"})
        assert user.status_code == 403 and user.json()["error_code"] == "bad_jwt", (token, user.text[:80])
        rest = httpx.get(f"{project['url']}/rest/v1/staff_only",
                         headers={"apikey": project["publishable_key"], "Authorization": f"Bearer {token}"})
        assert rest.status_code == 401, rest.text
    # The project's own fresh token still works.
    ok = httpx.get(f"{project['url']}/auth/v1/user",
                   headers={"apikey": project["publishable_key"], "Authorization": f"Bearer {session.access_token}"})
    assert ok.status_code == 200


def test_no_password_or_token_reaches_the_log(platform, project):
    password = "log-canary-" + uuid.uuid4().hex
    email = f"canary-{uuid.uuid4().hex[:8]}@example.com"
    db = client(project)
    session = db.auth.sign_up({"email": email, "password": password}).session
    db.auth.refresh_session()
    with pytest.raises(AuthApiError):
        client(project).auth.sign_in_with_password({"email": email, "password": password + "x"})
    # An internal failure, to make the server log something.
    httpx.post(f"{project['url']}/auth/v1/token?grant_type=refresh_token",
               headers={"apikey": project["publishable_key"]}, json={"refresh_token": session.refresh_token})
    log = Path(f"{platform.data_dir}.log").read_text()
    for secret in (password, session.refresh_token, session.access_token):
        assert secret not in log
