"""The auth server through the gateway, as the real `supabase` client
(2.34.1) signs users up and in: sessions with GoTrue's claims, RLS by
`auth.uid()` through `/rest/v1`, refresh-token rotation and reuse
detection, the user's own updates, sign-out, and GoTrue's refusals."""

import json
import time
import uuid

import httpx
import jwt
import pytest
from supabase import create_client
from supabase_auth.errors import AuthApiError, AuthError, AuthWeakPasswordError

from conftest import create_project, configure_auth as configure

SCHEMA = """
create table notes (
  id bigint generated always as identity primary key,
  owner uuid not null default auth.uid() references auth.users (id) on delete cascade,
  body text not null
);
alter table notes enable row level security;
create policy own_notes on notes for all to authenticated
  using (owner = auth.uid()) with check (owner = auth.uid());
"""


@pytest.fixture(scope="module")
def project(platform):
    created = create_project(platform, "auth", SCHEMA)
    # The tests share one client address: limits out of their way.
    configure(platform, created, mailer_autoconfirm=True, rate_limit_token_refresh=1_000_000,
              rate_limit_email_sent=1_000_000, rate_limit_anonymous_users=1_000_000)
    return created


def client(project):
    return create_client(project["url"], project["publishable_key"])


def address():
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def test_sign_up_and_in_give_gotrue_sessions(project):
    db = client(project)
    email = address()
    signed_up = db.auth.sign_up({"email": email, "password": "correct horse", "options": {"data": {"name": "Ann"}}})
    assert signed_up.user.email == email
    assert signed_up.user.user_metadata == {"name": "Ann"}
    assert signed_up.session is not None
    session = db.auth.sign_in_with_password({"email": email, "password": "correct horse"}).session
    claims = jwt.decode(session.access_token, project["jwt_secret"], algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == signed_up.user.id
    assert claims["role"] == "authenticated" and claims["aal"] == "aal1"
    assert claims["email"] == email and claims["is_anonymous"] is False
    assert claims["session_id"] and claims["amr"][0]["method"] == "password"
    assert claims["iss"].endswith(f"/project/{project['ref']}/auth/v1")
    assert claims["exp"] - claims["iat"] == 3600
    assert session.expires_in == 3600 and session.token_type == "bearer"
    assert db.auth.get_user().user.id == signed_up.user.id


def test_rls_by_auth_uid_through_rest(project):
    ann, bob = client(project), client(project)
    for db in (ann, bob):
        email = address()
        db.auth.sign_up({"email": email, "password": "correct horse"})
    ann.table("notes").insert({"body": "ann's"}).execute()
    bob.table("notes").insert({"body": "bob's"}).execute()
    assert [n["body"] for n in ann.table("notes").select("body").execute().data] == ["ann's"]
    assert [n["body"] for n in bob.table("notes").select("body").execute().data] == ["bob's"]
    # Bob's token can neither change nor take Ann's rows.
    assert bob.table("notes").update({"body": "mine"}).eq("body", "ann's").execute().data == []
    assert anonymous_count(project) == 0


def anonymous_count(project):
    return len(client(project).table("notes").select("id").execute().data)


def test_refresh_rotates_and_sign_out_ends_the_session(project):
    db = client(project)
    email = address()
    first = db.auth.sign_up({"email": email, "password": "correct horse"}).session
    refreshed = db.auth.refresh_session(first.refresh_token).session
    assert refreshed.refresh_token != first.refresh_token
    assert refreshed.user.email == email
    # Within the reuse interval the used token answers with its child.
    again = db.auth.refresh_session(first.refresh_token).session
    assert again.refresh_token == refreshed.refresh_token
    db.auth.sign_out()
    with pytest.raises(AuthApiError) as gone:
        db.auth.refresh_session(refreshed.refresh_token)
    assert gone.value.code == "refresh_token_not_found"


def test_reuse_after_the_interval_revokes_the_family(platform, project):
    configure(platform, project, security_refresh_token_reuse_interval=0)
    try:
        db = client(project)
        first = db.auth.sign_up({"email": address(), "password": "correct horse"}).session
        second = db.auth.refresh_session(first.refresh_token).session
        time.sleep(1.1)
        with pytest.raises(AuthApiError) as reused:
            db.auth.refresh_session(first.refresh_token)
        assert reused.value.code == "refresh_token_already_used"
        with pytest.raises(AuthApiError) as revoked:
            db.auth.refresh_session(second.refresh_token)
        assert revoked.value.code == "refresh_token_already_used"
    finally:
        configure(platform, project, security_refresh_token_reuse_interval=10)


def test_users_update_their_metadata_and_password(project):
    db = client(project)
    email = address()
    db.auth.sign_up({"email": email, "password": "correct horse", "options": {"data": {"a": 1}}})
    updated = db.auth.update_user({"data": {"b": 2}}).user
    assert updated.user_metadata == {"a": 1, "b": 2}
    db.auth.update_user({"password": "battery staple"})
    with pytest.raises(AuthApiError) as old:
        client(project).auth.sign_in_with_password({"email": email, "password": "correct horse"})
    assert old.value.code == "invalid_credentials"
    assert client(project).auth.sign_in_with_password({"email": email, "password": "battery staple"}).user.email == email


def test_gotrues_refusals(platform, project):
    db = client(project)
    email = address()
    db.auth.sign_up({"email": email, "password": "correct horse"})
    cases = [
        (lambda: client(project).auth.sign_up({"email": email, "password": "correct horse"}), 422, "user_already_exists"),
        (lambda: client(project).auth.sign_up({"email": address(), "password": "short"}), 422, "weak_password"),
        (lambda: client(project).auth.sign_in_with_password({"email": email, "password": "wrong password"}), 400, "invalid_credentials"),
        (lambda: client(project).auth.sign_in_with_password({"email": address(), "password": "wrong password"}), 400, "invalid_credentials"),
    ]
    for call, status, code in cases:
        with pytest.raises(AuthError) as refused:
            call()
        assert (refused.value.status, refused.value.code) == (status, code)
    with pytest.raises(AuthWeakPasswordError) as weak:
        client(project).auth.sign_up({"email": address(), "password": "12345"})
    assert weak.value.reasons == ["length"]
    url = f"{project['url']}/auth/v1/user"
    headers = {"apikey": project["publishable_key"]}
    malformed = httpx.post(f"{project['url']}/auth/v1/signup", headers={**headers, "Content-Type": "application/json"},
                           content=b'{"email": ')
    assert malformed.status_code == 400 and malformed.json()["error_code"] == "bad_json"
    # Without a user's token the key's minted one has no user, as on Supabase.
    no_user = httpx.get(url, headers=headers)
    assert no_user.status_code == 403 and no_user.json()["error_code"] == "bad_jwt"
    assert "missing sub claim" in no_user.json()["msg"]
    forged = jwt.encode({"sub": str(uuid.uuid4()), "role": "authenticated", "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
    bad = httpx.get(url, headers={**headers, "Authorization": f"Bearer {forged}"})
    assert bad.status_code == 403 and bad.json()["error_code"] == "bad_jwt"


def test_confirmation_and_disabled_sign_ups_follow_the_settings(platform, project):
    configure(platform, project, mailer_autoconfirm=False)
    try:
        email = address()
        pending = client(project).auth.sign_up({"email": email, "password": "correct horse"})
        assert pending.session is None and pending.user.email_confirmed_at is None
        with pytest.raises(AuthApiError) as unconfirmed:
            client(project).auth.sign_in_with_password({"email": email, "password": "correct horse"})
        assert unconfirmed.value.code == "email_not_confirmed"
        configure(platform, project, disable_signup=True)
        with pytest.raises(AuthApiError) as disabled:
            client(project).auth.sign_up({"email": address(), "password": "correct horse"})
        assert disabled.value.code == "signup_disabled"
        settings = httpx.get(f"{project['url']}/auth/v1/settings", headers={"apikey": project["publishable_key"]}).json()
        assert settings["disable_signup"] is True and settings["external"]["email"] is True
    finally:
        configure(platform, project, mailer_autoconfirm=True, disable_signup=False)


def test_anonymous_sign_in_follows_the_setting(platform, project):
    with pytest.raises(AuthApiError) as off:
        client(project).auth.sign_in_anonymously()
    assert off.value.code == "anonymous_provider_disabled"
    configure(platform, project, external_anonymous_users_enabled=True)
    try:
        signed_in = client(project).auth.sign_in_anonymously()
        assert signed_in.user.is_anonymous is True and signed_in.session is not None
        claims = jwt.decode(signed_in.session.access_token, project["jwt_secret"],
                            algorithms=["HS256"], audience="authenticated")
        assert claims["is_anonymous"] is True and claims["amr"][0]["method"] == "anonymous"
        assert claims["role"] == "authenticated"
    finally:
        configure(platform, project, external_anonymous_users_enabled=False)


def test_the_admin_api_answers_the_secret_key_only(project):
    admin = create_client(project["url"], project["secret_key"]).auth.admin
    email = address()
    created = admin.create_user({
        "email": email, "password": "correct horse", "email_confirm": True,
        "user_metadata": {"plan": "pro"}, "app_metadata": {"tier": 2},
    }).user
    assert created.email == email and created.email_confirmed_at is not None
    assert created.app_metadata["tier"] == 2 and created.user_metadata == {"plan": "pro"}
    assert email in [u.email for u in admin.list_users(page=1, per_page=1000)]
    listed = httpx.get(f"{project['url']}/auth/v1/admin/users?per_page=1",
                       headers={"apikey": project["secret_key"]})
    assert int(listed.headers["x-total-count"]) >= 1 and 'rel="last"' in listed.headers["link"]
    assert admin.get_user_by_id(created.id).user.email == email

    updated = admin.update_user_by_id(created.id, {"user_metadata": {"x": 1}, "ban_duration": "24h"}).user
    assert updated.user_metadata == {"plan": "pro", "x": 1}
    with pytest.raises(AuthApiError) as banned:
        client(project).auth.sign_in_with_password({"email": email, "password": "correct horse"})
    assert banned.value.code == "user_banned"
    admin.update_user_by_id(created.id, {"ban_duration": "none"})
    assert client(project).auth.sign_in_with_password({"email": email, "password": "correct horse"}).session

    with pytest.raises(AuthApiError) as taken:
        admin.create_user({"email": email, "password": "correct horse"})
    assert (taken.value.status, taken.value.code) == (422, "email_exists")
    admin.delete_user(created.id)
    with pytest.raises(AuthApiError) as gone:
        admin.get_user_by_id(created.id)
    assert (gone.value.status, gone.value.code) == (404, "user_not_found")

    with pytest.raises(AuthApiError) as refused:
        create_client(project["url"], project["publishable_key"]).auth.admin.list_users()
    assert (refused.value.status, refused.value.code) == (403, "not_admin")


def test_the_cli_lists_a_projects_users(platform, project):
    db = client(project)
    email = address()
    db.auth.sign_up({"email": email, "password": "correct horse"})
    listed = json.loads(platform.cli("auth", "users", project["ref"], "--json").stdout)
    mine = [u for u in listed if u["email"] == email]
    assert len(mine) == 1 and mine[0]["confirmed"] is True and mine[0]["anonymous"] is False
    assert "encrypted_password" not in mine[0]
    table = platform.cli("auth", "users", project["ref"]).stdout
    assert email in table


def test_sso_is_off_and_the_key_set_is_empty_for_hs256(project):
    with pytest.raises(AuthApiError, match=r"SAML 2.0 is disabled") as sso:
        client(project).auth.sign_in_with_sso({"domain": "example.com"})
    assert (sso.value.status, sso.value.code) == (404, "saml_provider_disabled")
    # Reached from browsers and token verifiers without a key.
    jwks = httpx.get(f"{project['url']}/auth/v1/.well-known/jwks.json")
    assert jwks.status_code == 200 and jwks.json() == {"keys": []}
