"""ES256 signing keys: a project's auth server signs access tokens with
its key pair once one is made (`POST .../config/auth/signing-keys`), the
JWKS publishes the public half, PyJWT verifies tokens with it alone, and
the gateway, the data plane (RLS) and supa-rest standalone (given the JWK
set as PostgREST accepts it) verify them too; tokens signed before, with
the JWT secret, and with the previous key keep working."""

import json
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from supabase import ClientOptions, create_client

from conftest import configure_auth, create_project, start_supa_rest, stop

SCHEMA = """
create table notes (
  id bigint generated always as identity primary key,
  owner uuid not null default auth.uid(),
  body text not null
);
alter table notes enable row level security;
create policy own_notes on notes for all to authenticated
  using (owner = auth.uid()) with check (owner = auth.uid());
"""


@pytest.fixture(scope="module")
def project(platform):
    created = create_project(platform, "auth-es256", SCHEMA)
    configure_auth(platform, created, mailer_autoconfirm=True, rate_limit_token_refresh=1_000_000)
    return created


def client(project):
    return create_client(project["url"], project["publishable_key"], ClientOptions(flow_type="implicit"))


def sign_up(project):
    db = client(project)
    session = db.auth.sign_up({"email": f"es-{uuid.uuid4().hex[:10]}@example.com", "password": "correct horse"}).session
    return db, session


def add_key(platform, project):
    with platform.client() as api:
        r = api.post(f"/v1/projects/{project['ref']}/config/auth/signing-keys", json={"algorithm": "ES256"})
        assert r.status_code == 201, r.text
    time.sleep(0.2)
    return r.json()


def test_tokens_are_signed_with_the_projects_key_and_verify_everywhere(platform, project):
    before_db, before = sign_up(project)
    assert jwt.get_unverified_header(before.access_token)["alg"] == "HS256"
    key = add_key(platform, project)
    assert key["algorithm"] == "ES256" and key["status"] == "in_use" and "d" not in key["public_jwk"]
    jwks = httpx.get(f"{project['url']}/auth/v1/.well-known/jwks.json").json()
    assert jwks["keys"] == [key["public_jwk"]]

    db, session = sign_up(project)
    header = jwt.get_unverified_header(session.access_token)
    assert header["alg"] == "ES256" and header["kid"] == key["id"]
    public = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(session.access_token, public, algorithms=["ES256"], audience="authenticated")
    assert claims["role"] == "authenticated" and claims["email"] == session.user.email
    # The secret alone no longer verifies new tokens.
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(session.access_token, project["jwt_secret"], algorithms=["HS256"], audience="authenticated")

    db.table("notes").insert({"body": "signed with ES256"}).execute()
    assert [n["body"] for n in db.table("notes").select("body").execute().data] == ["signed with ES256"]
    assert db.auth.get_user().user.id == claims["sub"]
    # A session from before, signed with the secret, still works.
    assert before_db.table("notes").select("body").execute().data == []
    assert db.auth.refresh_session().session.access_token

    # A token signed by a key that is not the project's is refused.
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode({**claims, "exp": int(time.time()) + 60}, stranger, algorithm="ES256",
                        headers={"kid": key["id"]})
    headers = {"apikey": project["publishable_key"], "Authorization": f"Bearer {forged}"}
    assert httpx.get(f"{project['url']}/rest/v1/notes", headers=headers).status_code == 401
    assert httpx.get(f"{project['url']}/auth/v1/user", headers=headers).json()["error_code"] == "bad_jwt"

    # supa-rest standalone verifies them with the JWK set as PostgREST does.
    url, proc = start_supa_rest(platform, project, extra_env={"PGRST_JWT_SECRET": json.dumps(jwks)})
    try:
        auth = {"Authorization": f"Bearer {session.access_token}"}
        assert [n["body"] for n in httpx.get(f"{url}/notes?select=body", headers=auth).json()] == ["signed with ES256"]
        bad = httpx.get(f"{url}/notes", headers={"Authorization": f"Bearer {forged}"})
        assert bad.status_code == 401
    finally:
        stop(proc)


def test_rotation_keeps_the_previous_key(platform, project):
    add_key(platform, project)
    db, old_session = sign_up(project)
    newer = add_key(platform, project)
    with platform.client() as api:
        listed = api.get(f"/v1/projects/{project['ref']}/config/auth/signing-keys").json()["keys"]
    assert [k["status"] for k in listed] == ["in_use", "previously_used"] and listed[0]["id"] == newer["id"]
    assert len(httpx.get(f"{project['url']}/auth/v1/.well-known/jwks.json").json()["keys"]) == 2
    # Tokens of the previous key are still accepted; new ones use the new key.
    assert db.table("notes").select("*").execute().data == []
    _, fresh = sign_up(project)
    assert jwt.get_unverified_header(fresh.access_token)["kid"] == newer["id"]
    with platform.client() as api:
        bad = api.post(f"/v1/projects/{project['ref']}/config/auth/signing-keys", json={"algorithm": "RS256"})
    assert bad.status_code == 400
