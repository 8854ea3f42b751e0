"""Everything an e-mailed token does, through the gateway with the real
`supabase` client: sign-up confirmation by link, magic links and codes,
recovery, invitations, generated links, e-mail changes confirmed at both
addresses, reauthentication, PKCE, the outbox (API and CLI), redirects
that never leave the allow list, rate limits, no user enumeration, and the
custom access-token hook."""

import html
import json
import re
import statistics
import time
import urllib.parse
import uuid

import httpx
import jwt
import pytest
from supabase import ClientOptions, create_client
from supabase_auth.errors import AuthApiError

from conftest import create_project, configure_auth as configure

SITE = "http://localhost:3000"

# Generous limits: the tests share one client address (127.0.0.1).
OPEN_LIMITS = {
    "rate_limit_email_sent": 1_000_000,
    "rate_limit_token_refresh": 1_000_000,
    "rate_limit_verify": 1_000_000,
    "rate_limit_otp": 1_000_000,
    "smtp_max_frequency": 0,
}


@pytest.fixture(scope="module")
def project(platform):
    created = create_project(platform, "auth-mail")
    configure(platform, created, mailer_autoconfirm=False, site_url=SITE,
              uri_allow_list="https://app.example.com/**", **OPEN_LIMITS)
    return created


def client(project, flow_type="implicit"):
    """supabase-py runs PKCE flows by default; most tests follow links
    in the implicit flow, whose session rides in the redirect."""
    return create_client(project["url"], project["publishable_key"], ClientOptions(flow_type=flow_type))


def address():
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def mails(platform, project, email):
    with platform.client() as api:
        r = api.get(f"/v1/projects/{project['ref']}/auth/outbox", params={"email": email})
        assert r.status_code == 200, r.text
        return r.json()


def last_mail(platform, project, email, kind=None):
    found = [m for m in mails(platform, project, email) if kind is None or m["kind"] == kind]
    assert found, f"no {kind or ''} mail to {email}"
    return found[0]


def link_of(mail):
    return html.unescape(re.search(r'href="([^"]+)"', mail["body"]).group(1))


def code_of(mail):
    return re.search(r"[Ee]nter the code: (\d+)", mail["body"]).group(1)


def follow(link):
    """Clicks a mailed link: the redirect's target and its fragment."""
    r = httpx.get(link, follow_redirects=False)
    assert r.status_code == 303, r.text
    target = r.headers["location"]
    base, _, fragment = target.partition("#")
    return base, dict(urllib.parse.parse_qsl(fragment))


def test_sign_up_is_confirmed_by_the_mailed_link(platform, project):
    email = address()
    pending = client(project).auth.sign_up({"email": email, "password": "correct horse",
                                            "options": {"email_redirect_to": "https://app.example.com/welcome"}})
    assert pending.session is None and pending.user.confirmation_sent_at is not None
    mail = last_mail(platform, project, email, "confirmation")
    assert mail["subject"] == "Confirm Your Email" and mail["smtp"] is False
    link = link_of(mail)
    assert link.startswith(f"{project['url']}/auth/v1/verify?token=") and "type=signup" in link
    # The token in the link is a hash; the database never holds the code.
    assert code_of(mail) not in link
    target, fragment = follow(link)
    assert target == "https://app.example.com/welcome"
    assert fragment["type"] == "signup" and fragment["token_type"] == "bearer"
    claims = jwt.decode(fragment["access_token"], project["jwt_secret"], algorithms=["HS256"], audience="authenticated")
    assert claims["email"] == email and claims["amr"][0]["method"] == "otp"
    assert client(project).auth.sign_in_with_password({"email": email, "password": "correct horse"}).session
    # A link works once.
    _, again = follow(link)
    assert again["error_code"] == "otp_expired"


def test_a_registered_address_signs_up_again_without_learning_anything(platform, project):
    email = address()
    client(project).auth.sign_up({"email": email, "password": "correct horse"})
    follow(link_of(last_mail(platform, project, email)))
    before = len(mails(platform, project, email))
    again = client(project).auth.sign_up({"email": email, "password": "another one"})
    fresh = client(project).auth.sign_up({"email": address(), "password": "another one"})
    assert again.session is None and set(again.user.model_dump()) == set(fresh.user.model_dump())
    assert again.user.id != client(project).auth.sign_in_with_password(
        {"email": email, "password": "correct horse"}).user.id
    assert len(mails(platform, project, email)) == before


def test_codes_sign_in_once_and_magic_links_redirect_with_a_session(platform, project):
    email = address()
    db = client(project)
    db.auth.sign_in_with_otp({"email": email})
    first = last_mail(platform, project, email, "confirmation")
    signed_in = db.auth.verify_otp({"email": email, "token": code_of(first), "type": "email"})
    assert signed_in.session and signed_in.user.email_confirmed_at is not None
    with pytest.raises(AuthApiError) as replayed:
        client(project).auth.verify_otp({"email": email, "token": code_of(first), "type": "email"})
    assert (replayed.value.status, replayed.value.code) == (403, "otp_expired")
    # A confirmed address gets a magic link.
    client(project).auth.sign_in_with_otp({"email": email})
    magic = last_mail(platform, project, email, "magic_link")
    assert magic["subject"] == "Your Magic Link" and "type=magiclink" in link_of(magic)
    target, fragment = follow(link_of(magic))
    assert target == SITE and fragment["access_token"] and fragment["type"] == "magiclink"
    with pytest.raises(AuthApiError) as no_signup:
        client(project).auth.sign_in_with_otp({"email": address(), "options": {"should_create_user": False}})
    assert no_signup.value.code == "otp_disabled"


def test_recovery_signs_in_and_the_password_changes(platform, project):
    email = address()
    admin = create_client(project["url"], project["secret_key"]).auth.admin
    admin.create_user({"email": email, "password": "correct horse", "email_confirm": True})
    db = client(project)
    db.auth.reset_password_for_email(email, {"redirect_to": "https://app.example.com/reset"})
    mail = last_mail(platform, project, email, "recovery")
    assert mail["subject"] == "Reset Your Password"
    session = db.auth.verify_otp({"email": email, "token": code_of(mail), "type": "recovery"}).session
    assert session
    db.auth.update_user({"password": "battery staple"})
    assert client(project).auth.sign_in_with_password({"email": email, "password": "battery staple"}).session


def test_unknown_addresses_get_the_same_answer(platform, project):
    known = address()
    create_client(project["url"], project["secret_key"]).auth.admin.create_user(
        {"email": known, "password": "correct horse", "email_confirm": True})
    url = f"{project['url']}/auth/v1/recover"
    headers = {"apikey": project["publishable_key"]}
    answers = {}
    timings = {}
    for label, email in (("known", known), ("unknown", address())):
        times = []
        for _ in range(7):
            started = time.perf_counter()
            r = httpx.post(url, headers=headers, json={"email": email})
            times.append(time.perf_counter() - started)
            answers.setdefault(label, set()).add((r.status_code, r.text, r.headers["content-type"]))
        timings[label] = statistics.median(times)
    assert answers["known"] == answers["unknown"] == {(200, "{}", "application/json")}
    # No mail is sent over the network in the request: both are database
    # round trips of the same order.
    assert abs(timings["known"] - timings["unknown"]) < 0.05, timings
    otp_unknown = httpx.post(f"{project['url']}/auth/v1/otp", headers=headers, json={"email": address()})
    otp_known = httpx.post(f"{project['url']}/auth/v1/otp", headers=headers, json={"email": known})
    assert otp_unknown.status_code == otp_known.status_code == 200
    assert otp_unknown.json() == otp_known.json() == {}


def test_invitations_and_generated_links(platform, project):
    admin = create_client(project["url"], project["secret_key"]).auth.admin
    email = address()
    invited = admin.invite_user_by_email(email, {"data": {"team": "blue"}}).user
    assert invited.invited_at is not None and invited.email_confirmed_at is None
    mail = last_mail(platform, project, email, "invite")
    assert mail["subject"] == "You have been invited" and SITE in mail["body"]
    target, fragment = follow(link_of(mail))
    assert target == SITE and fragment["type"] == "invite"
    claims = jwt.decode(fragment["access_token"], project["jwt_secret"], algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == invited.id and claims["user_metadata"] == {"team": "blue"}
    with pytest.raises(AuthApiError) as taken:
        admin.invite_user_by_email(email)
    assert (taken.value.status, taken.value.code) == (422, "email_exists")

    sent = len(mails(platform, project, email))
    link = admin.generate_link({"type": "magiclink", "email": email,
                                "options": {"redirect_to": "https://app.example.com/in"}})
    props = link.properties
    assert props.verification_type == "magiclink" and props.redirect_to == "https://app.example.com/in"
    assert len(props.email_otp) == 6 and props.hashed_token in props.action_link
    assert link.user.id == invited.id
    assert len(mails(platform, project, email)) == sent, "generate_link sends nothing"
    session = client(project).auth.verify_otp({"token_hash": props.hashed_token, "type": "magiclink"}).session
    assert session.user.id == invited.id
    signup = admin.generate_link({"type": "signup", "email": address(), "password": "correct horse"})
    target, fragment = follow(signup.properties.action_link)
    assert fragment["type"] == "signup"
    with pytest.raises(AuthApiError) as unknown:
        admin.generate_link({"type": "recovery", "email": address()})
    assert unknown.value.code == "user_not_found"


def test_an_email_change_is_confirmed_at_both_addresses(platform, project):
    old, new = address(), address()
    admin = create_client(project["url"], project["secret_key"]).auth.admin
    admin.create_user({"email": old, "password": "correct horse", "email_confirm": True})
    db = client(project)
    db.auth.sign_in_with_password({"email": old, "password": "correct horse"})
    pending = db.auth.update_user({"email": new}).user
    assert pending.email == old and pending.new_email == new
    to_new = last_mail(platform, project, new, "email_change")
    to_old = last_mail(platform, project, old, "email_change")
    assert f"from {old} to {new}" in to_new["body"]
    _, half = follow(link_of(to_old))
    assert "other email" in half["message"]
    assert db.auth.get_user().user.email == old
    _, done = follow(link_of(to_new))
    assert done["type"] == "email_change"
    assert client(project).auth.sign_in_with_password({"email": new, "password": "correct horse"}).user.email == new
    with pytest.raises(AuthApiError):
        client(project).auth.sign_in_with_password({"email": old, "password": "correct horse"})


def test_reauthentication_codes_guard_password_changes(platform, project):
    email = address()
    create_client(project["url"], project["secret_key"]).auth.admin.create_user(
        {"email": email, "password": "correct horse", "email_confirm": True})
    db = client(project)
    db.auth.sign_in_with_password({"email": email, "password": "correct horse"})
    db.auth.reauthenticate()
    code = code_of(last_mail(platform, project, email, "reauthentication"))
    with pytest.raises(AuthApiError) as wrong:
        db.auth.update_user({"password": "battery staple", "nonce": "000000" if code != "000000" else "111111"})
    assert wrong.value.code == "reauthentication_not_valid"
    db.auth.update_user({"password": "battery staple", "nonce": code})
    assert client(project).auth.sign_in_with_password({"email": email, "password": "battery staple"}).session


def test_pkce_links_give_a_code_only_the_verifier_exchanges(platform, project):
    email = address()
    db = client(project, flow_type="pkce")
    db.auth.sign_up({"email": email, "password": "correct horse",
                     "options": {"email_redirect_to": "https://app.example.com/cb"}})
    link = link_of(last_mail(platform, project, email, "confirmation"))
    assert "token=pkce_" in link
    r = httpx.get(link, follow_redirects=False)
    assert r.status_code == 303
    location = urllib.parse.urlparse(r.headers["location"])
    assert location.netloc == "app.example.com" and location.path == "/cb"
    code = urllib.parse.parse_qs(location.query)["code"][0]
    # Another client has no verifier for it.
    with pytest.raises(AuthApiError) as stolen:
        client(project).auth.exchange_code_for_session({"auth_code": code, "code_verifier": "x" * 43})
    assert (stolen.value.status, stolen.value.code) == (403, "bad_code_verifier")

    # A fresh flow, exchanged by the client that started it.
    db.auth.sign_in_with_otp({"email": email})
    r = httpx.get(link_of(last_mail(platform, project, email, "magic_link")), follow_redirects=False)
    code = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["location"]).query)["code"][0]
    session = db.auth.exchange_code_for_session({"auth_code": code}).session
    assert session.user.email == email
    with pytest.raises(AuthApiError) as reused:
        db.auth.exchange_code_for_session({"auth_code": code, "code_verifier": "y" * 43})
    assert reused.value.code == "flow_state_not_found"


def test_redirects_never_leave_the_site_or_allow_list(platform, project):
    email = address()
    for target in ("https://evil.example.org/steal", "https://app.example.com.evil.org/",
                   "//evil.example.org", "javascript:alert(1)"):
        client(project).auth.sign_in_with_otp({"email": email, "options": {"email_redirect_to": target}})
        landed, _ = follow(link_of(last_mail(platform, project, email)))
        assert landed == SITE, target
    # A bad token redirects with the error, to the site too.
    bad = f"{project['url']}/auth/v1/verify?token=nope&type=signup&redirect_to=https://evil.example.org"
    landed, fragment = follow(bad)
    assert landed == SITE and fragment["error_code"] == "otp_expired"


def test_the_cli_shows_the_outbox_with_links(platform, project):
    email = address()
    client(project).auth.sign_up({"email": email, "password": "correct horse"})
    listed = json.loads(platform.cli("auth", "outbox", project["ref"], "--email", email, "--json").stdout)
    assert [m["kind"] for m in listed] == ["confirmation"]
    table = platform.cli("auth", "outbox", project["ref"], "--email", email).stdout
    assert email in table and "/auth/v1/verify?token=" in table and "outbox" in table


def test_rate_limits_answer_429(platform):
    project = create_project(platform, "auth-limits")
    configure(platform, project, rate_limit_verify=1, smtp_max_frequency=60, rate_limit_email_sent=1000)
    headers = {"apikey": project["publishable_key"]}
    statuses = [httpx.post(f"{project['url']}/auth/v1/verify", headers=headers,
                           json={"type": "email", "email": "a@example.com", "token": "123456"}).status_code
                for _ in range(31)]
    # A burst of 30, then the bucket is empty.
    assert statuses[:30] == [403] * 30 and statuses[30] == 429
    limited = httpx.post(f"{project['url']}/auth/v1/verify", headers=headers, json={"type": "email"})
    assert limited.json()["error_code"] == "over_request_rate_limit"
    # One e-mail per address a minute, known or not.
    known = address()
    create_client(project["url"], project["secret_key"]).auth.admin.create_user(
        {"email": known, "password": "correct horse", "email_confirm": True})
    for email in (known, address()):
        first = httpx.post(f"{project['url']}/auth/v1/recover", headers=headers, json={"email": email})
        second = httpx.post(f"{project['url']}/auth/v1/recover", headers=headers, json={"email": email})
        assert first.status_code == 200
        assert second.status_code == 429 and second.json()["error_code"] == "over_email_send_rate_limit"
    # The project's e-mails in the last hour count, whoever they went to.
    with platform.client() as api:
        sent = len(api.get(f"/v1/projects/{project['ref']}/auth/outbox").json())
    configure(platform, project, rate_limit_email_sent=sent + 1, smtp_max_frequency=0)
    client(project).auth.sign_up({"email": address(), "password": "correct horse"})
    with pytest.raises(AuthApiError) as hourly:
        client(project).auth.sign_up({"email": address(), "password": "correct horse"})
    assert (hourly.value.status, hourly.value.code) == (429, "over_email_send_rate_limit")


HOOK = """
create function public.add_claims(event jsonb) returns jsonb language plpgsql as $$
declare claims jsonb := event -> 'claims';
begin
  if event -> 'claims' ->> 'email' like 'blocked-%' then
    return jsonb_build_object('error', jsonb_build_object('http_code', 403, 'message', 'Blocked by policy'));
  end if;
  claims := jsonb_set(claims, '{user_role}', to_jsonb('editor'::text));
  claims := jsonb_set(claims, '{via}', to_jsonb(event ->> 'authentication_method'));
  return jsonb_build_object('claims', claims);
end $$;
grant usage on schema public to supabase_auth_admin;
grant execute on function public.add_claims(jsonb) to supabase_auth_admin;
revoke execute on function public.add_claims(jsonb) from anon, authenticated, public;
"""


def test_the_custom_access_token_hook_adds_claims(platform):
    project = create_project(platform, "auth-hook", HOOK)
    configure(platform, project, mailer_autoconfirm=True, hook_custom_access_token_enabled=True,
              hook_custom_access_token_uri="pg-functions://postgres/public/add_claims", **OPEN_LIMITS)
    session = client(project).auth.sign_up({"email": address(), "password": "correct horse"}).session
    claims = jwt.decode(session.access_token, project["jwt_secret"], algorithms=["HS256"], audience="authenticated")
    assert claims["user_role"] == "editor" and claims["via"] == "password"
    refreshed = client(project).auth.refresh_session(session.refresh_token).session
    assert jwt.decode(refreshed.access_token, options={"verify_signature": False})["user_role"] == "editor"
    with pytest.raises(AuthApiError) as blocked:
        client(project).auth.sign_up({"email": f"blocked-{address()}", "password": "correct horse"})
    assert (blocked.value.status, blocked.value.message) == (403, "Blocked by policy")
