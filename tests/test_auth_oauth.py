"""Social sign-in through the gateway against a local OAuth/OpenID
provider (tests/oauth_provider.py) that verifies client secrets, redirect
URIs, single-use codes and PKCE as real providers do: the implicit and
PKCE flows of the real `supabase` client, identities linked to users,
GitHub's API shape, and every failure answered by a redirect with the
error, never a page of JSON or a 500."""

import time
import urllib.parse
import uuid

import httpx
import jwt
import pytest
from supabase import ClientOptions, create_client
from supabase_auth.errors import AuthApiError

from conftest import create_project, configure_auth as configure
from oauth_provider import Provider

APP = "https://app.example.com/cb"


@pytest.fixture(scope="module")
def project(platform):
    return create_project(platform, "auth-oauth")


@pytest.fixture(scope="module")
def provider(platform, project):
    p = Provider("supa-client", "supa-secret-" + uuid.uuid4().hex, f"{project['url']}/auth/v1/callback")
    configure(platform, project, site_url="http://localhost:3000", uri_allow_list="https://app.example.com/**",
              external_keycloak_enabled=True, external_keycloak_client_id=p.client_id,
              external_keycloak_secret=p.client_secret, external_keycloak_url=f"{p.base}/oidc",
              external_github_enabled=True, external_github_client_id=p.client_id,
              external_github_secret=p.client_secret, external_github_url=f"{p.base}/gh",
              rate_limit_token_refresh=1_000_000)
    yield p
    p.close()


def browse(url, hops=3):
    """Follows redirects as a browser would, up to the app's URL."""
    for _ in range(hops):
        r = httpx.get(url, follow_redirects=False)
        assert r.status_code in (302, 303), (r.status_code, r.text)
        url = r.headers["location"]
        if url.startswith(("https://app.example.com", "http://localhost:3000")):
            return url
    return url


def fragment(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).fragment))


def openid_user(**extra):
    sub = uuid.uuid4().hex
    return {"sub": sub, "email": f"oidc-{sub[:10]}@example.com", "email_verified": True,
            "name": "Ann Example", "preferred_username": "ann", "picture": "https://img.example.com/a.png", **extra}


def test_implicit_sign_in_creates_the_user_and_identity(project, provider):
    provider.user = openid_user()
    start = f"{project['url']}/auth/v1/authorize?provider=keycloak&redirect_to={urllib.parse.quote(APP)}"
    landed = browse(start)
    assert landed.startswith(APP + "#")
    f = fragment(landed)
    assert f["provider_token"] in provider.tokens and f["token_type"] == "bearer"
    claims = jwt.decode(f["access_token"], project["jwt_secret"], algorithms=["HS256"], audience="authenticated")
    assert claims["email"] == provider.user["email"] and claims["amr"][0]["method"] == "oauth"
    assert claims["app_metadata"]["provider"] == "keycloak"
    assert claims["user_metadata"]["name"] == "Ann Example"
    db = create_client(project["url"], project["publishable_key"])
    user = db.auth.get_user(f["access_token"]).user
    assert [(i.provider, i.id) for i in user.identities] == [("keycloak", provider.user["sub"])]
    assert user.email_confirmed_at is not None
    # The same person again: the same user.
    again = fragment(browse(start))
    assert jwt.decode(again["access_token"], options={"verify_signature": False})["sub"] == user.id


def test_the_pkce_flow_of_the_real_client(project, provider):
    provider.user = openid_user()
    db = create_client(project["url"], project["publishable_key"], ClientOptions(flow_type="pkce"))
    started = db.auth.sign_in_with_oauth({"provider": "keycloak", "options": {"redirect_to": APP}})
    assert "code_challenge=" in started.url
    landed = browse(started.url)
    code = urllib.parse.parse_qs(urllib.parse.urlparse(landed).query)["code"][0]
    session = db.auth.exchange_code_for_session({"auth_code": code}).session
    assert session.user.email == provider.user["email"]
    assert session.provider_token in provider.tokens
    assert db.auth.get_user().user.app_metadata["providers"] == ["keycloak"]


def test_github_accounts_link_to_a_verified_address(project, provider):
    admin = create_client(project["url"], project["secret_key"]).auth.admin
    email = f"gh-{uuid.uuid4().hex[:10]}@example.com"
    existing = admin.create_user({"email": email, "password": "correct horse", "email_confirm": True}).user
    provider.user = {"id": 4242, "login": "octo", "name": "Octo Cat", "avatar_url": "https://img.example.com/o.png"}
    provider.github_emails = [{"email": "old@example.com", "primary": False, "verified": False},
                              {"email": email, "primary": True, "verified": True}]
    landed = browse(f"{project['url']}/auth/v1/authorize?provider=github&redirect_to={urllib.parse.quote(APP)}")
    f = fragment(landed)
    claims = jwt.decode(f["access_token"], project["jwt_secret"], algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == existing.id
    linked = admin.get_user_by_id(existing.id).user
    assert sorted(i.provider for i in linked.identities) == ["email", "github"]
    github = next(i for i in linked.identities if i.provider == "github")
    assert github.id == "4242" and github.identity_data["user_name"] == "octo"
    assert sorted(linked.app_metadata["providers"]) == ["email", "github"]
    # The password still works: one user, two ways in.
    assert create_client(project["url"], project["publishable_key"]).auth.sign_in_with_password(
        {"email": email, "password": "correct horse"}).user.id == existing.id


def test_failures_redirect_with_the_error(platform, project, provider):
    provider.user = openid_user()
    r = httpx.get(f"{project['url']}/auth/v1/authorize?provider=keycloak&redirect_to={urllib.parse.quote(APP)}",
                  follow_redirects=False)
    at_provider = httpx.get(r.headers["location"], follow_redirects=False).headers["location"]
    callback = httpx.get(at_provider, follow_redirects=False)
    assert fragment(callback.headers["location"])["access_token"]
    # The provider's code works once: a replayed callback is refused by it.
    replayed = httpx.get(at_provider, follow_redirects=False)
    assert replayed.status_code == 302
    error = fragment(replayed.headers["location"])
    assert error["error"] == "access_denied" and "unknown or used code" in error["error_description"]
    # A forged state goes nowhere but the site.
    query = urllib.parse.parse_qs(urllib.parse.urlparse(at_provider).query)
    forged = httpx.get(f"{project['url']}/auth/v1/callback?code={query['code'][0]}&state=forged",
                       follow_redirects=False)
    assert forged.headers["location"].startswith("http://localhost:3000#error=")
    # The provider's own refusal (the user said no) reaches the app.
    denied = httpx.get(f"{project['url']}/auth/v1/callback?error=access_denied&error_description=nope"
                       f"&state={query['state'][0]}", follow_redirects=False)
    assert fragment(denied.headers["location"])["error_description"] == "nope"
    # A wrong client secret: the provider refuses, the user is told.
    configure(platform, project, external_keycloak_secret="wrong-secret")
    try:
        landed = browse(f"{project['url']}/auth/v1/authorize?provider=keycloak&redirect_to={urllib.parse.quote(APP)}")
        assert "bad client credentials" in fragment(landed)["error_description"]
    finally:
        configure(platform, project, external_keycloak_secret=provider.client_secret)
    # Providers not enabled or unknown are refused before leaving.
    headers = {"apikey": project["publishable_key"]}
    off = httpx.get(f"{project['url']}/auth/v1/authorize?provider=google", headers=headers)
    assert off.status_code == 400 and off.json()["error_code"] == "provider_disabled"
    unknown = httpx.get(f"{project['url']}/auth/v1/authorize?provider=myspace", headers=headers)
    assert unknown.status_code == 400 and unknown.json()["error_code"] == "validation_failed"


def test_the_stand_in_verifies_pkce_like_a_real_provider(provider):
    """Our provider double must refuse what a real one refuses."""
    provider.user = openid_user()
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636's example
    r = httpx.get(f"{provider.base}/oidc/authorize", params={
        "client_id": provider.client_id, "redirect_uri": provider.redirect_uri, "response_type": "code",
        "code_challenge": challenge, "code_challenge_method": "S256", "state": "s"}, follow_redirects=False)
    code = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": provider.redirect_uri,
            "client_id": provider.client_id, "client_secret": provider.client_secret}
    wrong = httpx.post(f"{provider.base}/oidc/token", data={**form, "code_verifier": "x" * 43})
    assert wrong.status_code == 400 and wrong.json()["error_description"] == "PKCE verification failed"
    right = httpx.post(f"{provider.base}/oidc/token",
                       data={**form, "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"})
    assert right.status_code == 200 and right.json()["access_token"]


def test_settings_show_enabled_providers_and_hide_secrets(platform, project, provider):
    settings = httpx.get(f"{project['url']}/auth/v1/settings", headers={"apikey": project["publishable_key"]}).json()
    assert settings["external"]["github"] is True and settings["external"]["keycloak"] is True
    assert settings["external"]["google"] is False
    with platform.client() as api:
        shown = api.get(f"/v1/projects/{project['ref']}/config/auth").json()
    assert shown["external_github_secret"] is None and shown["external_github_client_id"] == provider.client_id
    assert provider.client_secret not in str(shown)
