"""The project as an OAuth 2.1 authorization server: clients registered
with the real client's admin API, the authorization code flow with PKCE
through the consent endpoints supabase-js calls, tokens that name the
client and pass RLS as the user, refresh, remembered consent, and every
refusal (disabled server, unknown redirect URI, wrong secret, wrong
verifier, replayed code, another user's authorization, denied, revoked)."""

import base64
import hashlib
import secrets
import time
import urllib.parse
import uuid

import httpx
import jwt
import pytest
from supabase import ClientOptions, create_client
from supabase_auth.types import CreateOAuthClientParams, UpdateOAuthClientParams

from conftest import create_project, configure_auth as configure

SCHEMA = """
create table notes (id bigint generated always as identity primary key,
  owner uuid not null default auth.uid(), body text not null);
alter table notes enable row level security;
create policy own_notes on notes for all to authenticated
  using (owner = auth.uid()) with check (owner = auth.uid());
"""
APP = "https://third-party.example.com/callback"


@pytest.fixture(scope="module")
def project(platform):
    created = create_project(platform, "auth-oauth-server", SCHEMA)
    configure(platform, created, oauth_server_enabled=True, mailer_autoconfirm=True,
              site_url="http://localhost:3000", rate_limit_token_refresh=1_000_000)
    return created


def user(project):
    db = create_client(project["url"], project["publishable_key"], ClientOptions(flow_type="implicit"))
    session = db.auth.sign_up({"email": f"owner-{uuid.uuid4().hex[:8]}@example.com",
                               "password": "correct horse"}).session
    return db, session


def admin(project):
    return create_client(project["url"], project["secret_key"]).auth.admin


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def start(project, client_id, challenge, state="xyz", redirect_uri=APP):
    r = httpx.get(f"{project['url']}/auth/v1/oauth/authorize", params={
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": "email profile",
        "state": state, "code_challenge": challenge, "code_challenge_method": "S256"}, follow_redirects=False)
    return r


def consent_api(project, session):
    return {"apikey": project["publishable_key"], "Authorization": f"Bearer {session.access_token}"}


def authorization_id(response):
    assert response.status_code == 302, response.text
    location = urllib.parse.urlparse(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "http://localhost:3000/oauth/consent"
    return urllib.parse.parse_qs(location.query)["authorization_id"][0]


def code_of(url):
    return urllib.parse.parse_qs(urllib.parse.urlparse(url).query)


def token(project, client, **form):
    return httpx.post(f"{project['url']}/auth/v1/oauth/token", data=form,
                      auth=(client.client_id, client.client_secret))


def test_clients_are_managed_with_the_admin_api(project):
    a = admin(project)
    created = a.oauth.create_client(CreateOAuthClientParams(client_name="Notes app", redirect_uris=[APP])).client
    assert created.client_secret and created.client_type == "confidential"
    assert created.grant_types == ["authorization_code", "refresh_token"] and created.registration_type == "manual"
    listed = a.oauth.list_clients()
    assert created.client_id in [c.client_id for c in listed.clients] and listed.total >= 1
    got = a.oauth.get_client(created.client_id).client
    assert got.client_name == "Notes app" and got.client_secret is None
    renamed = a.oauth.update_client(created.client_id, UpdateOAuthClientParams(client_name="Notes")).client
    assert renamed.client_name == "Notes"
    again = a.oauth.regenerate_client_secret(created.client_id).client
    assert again.client_secret and again.client_secret != created.client_secret
    a.oauth.delete_client(created.client_id)
    with pytest.raises(Exception):
        a.oauth.get_client(created.client_id)


def test_the_authorization_code_flow_with_pkce(project):
    client = admin(project).oauth.create_client(
        CreateOAuthClientParams(client_name="Notes app", redirect_uris=[APP])).client
    db, session = user(project)
    db.table("notes").insert({"body": "mine"}).execute()
    verifier, challenge = pkce()
    auth_id = authorization_id(start(project, client.client_id, challenge))
    details = httpx.get(f"{project['url']}/auth/v1/oauth/authorizations/{auth_id}",
                        headers=consent_api(project, session)).json()
    assert details["client"]["name"] == "Notes app" and details["redirect_uri"] == APP
    assert details["user"]["email"] == session.user.email and details["scope"] == "email profile"
    approved = httpx.post(f"{project['url']}/auth/v1/oauth/authorizations/{auth_id}/consent",
                          headers=consent_api(project, session), json={"action": "approve"}).json()
    assert approved["redirect_url"].startswith(APP + "?")
    query = code_of(approved["redirect_url"])
    assert query["state"] == ["xyz"]
    code = query["code"][0]

    wrong = token(project, client, grant_type="authorization_code", code=code, redirect_uri=APP,
                  code_verifier=pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant", wrong.text
    # The failed attempt used the code up, as a stolen code must be.
    verifier, challenge = pkce()
    auth_id = authorization_id(start(project, client.client_id, challenge))
    # Consent given before is remembered: the client's URL comes at once.
    remembered = httpx.get(f"{project['url']}/auth/v1/oauth/authorizations/{auth_id}",
                           headers=consent_api(project, session)).json()
    code = code_of(remembered["redirect_url"])["code"][0]
    issued = token(project, client, grant_type="authorization_code", code=code, redirect_uri=APP,
                   code_verifier=verifier)
    assert issued.status_code == 200, issued.text
    assert issued.headers["cache-control"] == "no-store"
    tokens = issued.json()
    claims = jwt.decode(tokens["access_token"], project["jwt_secret"], algorithms=["HS256"], audience="authenticated")
    assert claims["client_id"] == client.client_id and claims["sub"] == session.user.id
    assert claims["amr"][0]["method"] == "oauth"
    rows = httpx.get(f"{project['url']}/rest/v1/notes?select=body", headers={
        "apikey": project["publishable_key"], "Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert rows == [{"body": "mine"}]
    replayed = token(project, client, grant_type="authorization_code", code=code, redirect_uri=APP,
                     code_verifier=verifier)
    assert replayed.json()["error"] == "invalid_grant"
    refreshed = token(project, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != tokens["refresh_token"]
    bad_secret = httpx.post(f"{project['url']}/auth/v1/oauth/token", auth=(client.client_id, "nope"),
                            data={"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"]})
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"

    grants = httpx.get(f"{project['url']}/auth/v1/user/oauth/grants", headers=consent_api(project, session)).json()
    assert [g["client"]["id"] for g in grants] == [client.client_id]
    revoked = httpx.delete(f"{project['url']}/auth/v1/user/oauth/grants", params={"client_id": client.client_id},
                           headers=consent_api(project, session))
    assert revoked.status_code == 204
    gone = token(project, client, grant_type="refresh_token", refresh_token=refreshed.json()["refresh_token"])
    assert gone.json()["error"] == "invalid_grant"


def test_refusals(platform, project):
    client = admin(project).oauth.create_client(
        CreateOAuthClientParams(client_name="App", redirect_uris=[APP])).client
    _, challenge = pkce()
    unregistered = start(project, client.client_id, challenge, redirect_uri="https://evil.example.org/cb")
    assert unregistered.status_code == 400 and "location" not in unregistered.headers
    no_pkce = httpx.get(f"{project['url']}/auth/v1/oauth/authorize", params={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": APP, "state": "s"},
        follow_redirects=False)
    assert no_pkce.status_code == 302 and code_of(no_pkce.headers["location"])["error"] == ["invalid_request"]
    # Another user cannot take over an authorization someone looked at.
    _, ann = user(project)
    _, bob = user(project)
    auth_id = authorization_id(start(project, client.client_id, challenge))
    assert httpx.get(f"{project['url']}/auth/v1/oauth/authorizations/{auth_id}",
                     headers=consent_api(project, ann)).status_code == 200
    taken = httpx.get(f"{project['url']}/auth/v1/oauth/authorizations/{auth_id}", headers=consent_api(project, bob))
    assert taken.status_code == 404
    denied = httpx.post(f"{project['url']}/auth/v1/oauth/authorizations/{auth_id}/consent",
                        headers=consent_api(project, ann), json={"action": "deny"}).json()
    assert code_of(denied["redirect_url"])["error"] == ["access_denied"]
    meta = httpx.get(f"{project['url']}/auth/v1/.well-known/oauth-authorization-server").json()
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["token_endpoint"].endswith("/auth/v1/oauth/token")
    configure(platform, project, oauth_server_enabled=False)
    try:
        off = start(project, client.client_id, challenge)
        assert off.status_code == 404 and off.json()["error_code"] == "oauth_server_disabled"
    finally:
        configure(platform, project, oauth_server_enabled=True)
