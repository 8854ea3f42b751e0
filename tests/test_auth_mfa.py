"""TOTP multi-factor authentication through the gateway with the real
`supabase` client: enroll, challenge, verify (the session becomes aal2),
refresh keeps aal2, RLS can require aal2, wrong and replayed codes are
refused, unenrolling a verified factor needs aal2, and admins list and
delete factors."""

import base64
import hashlib
import hmac
import struct
import time
import uuid

import jwt
import pytest
from supabase import ClientOptions, create_client
from supabase_auth.errors import AuthApiError

from conftest import configure_auth, create_project

SCHEMA = """
create table secrets (id int primary key, body text);
insert into secrets values (1, 'only with a second factor');
alter table secrets enable row level security;
create policy aal2_only on secrets for select to authenticated
  using ((auth.jwt() ->> 'aal') = 'aal2');
"""


def totp(secret, at=None):
    """RFC 6238 with SHA-1, written here apart from the server's."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    step = int((at or time.time()) // 30)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


@pytest.fixture(scope="module")
def project(platform):
    created = create_project(platform, "auth-mfa", SCHEMA)
    configure_auth(platform, created, mailer_autoconfirm=True, rate_limit_token_refresh=1_000_000)
    return created


def signed_in(project):
    db = create_client(project["url"], project["publishable_key"], ClientOptions(flow_type="implicit"))
    email = f"mfa-{uuid.uuid4().hex[:12]}@example.com"
    db.auth.sign_up({"email": email, "password": "correct horse"})
    return db, email


def claims(session, project):
    return jwt.decode(session.access_token, project["jwt_secret"], algorithms=["HS256"], audience="authenticated")


def test_totp_enrollment_steps_the_session_up_to_aal2(project):
    db, email = signed_in(project)
    enrolled = db.auth.mfa.enroll({"factor_type": "totp", "friendly_name": "phone", "issuer": "Supa Tests"})
    assert enrolled.type == "totp" and enrolled.friendly_name == "phone"
    assert enrolled.totp.uri.startswith("otpauth://totp/Supa%20Tests:") and f"secret={enrolled.totp.secret}" in enrolled.totp.uri
    assert enrolled.totp.qr_code.startswith("data:image/svg+xml;utf-8,<?xml") or "<svg" in enrolled.totp.qr_code
    level = db.auth.mfa.get_authenticator_assurance_level()
    assert level.current_level == "aal1"
    assert db.table("secrets").select("*").execute().data == []

    challenge = db.auth.mfa.challenge({"factor_id": enrolled.id})
    assert challenge.expires_at > time.time()
    with pytest.raises(AuthApiError) as wrong:
        db.auth.mfa.verify({"factor_id": enrolled.id, "challenge_id": challenge.id,
                            "code": "000000" if totp(enrolled.totp.secret) != "000000" else "111111"})
    assert (wrong.value.status, wrong.value.code) == (422, "mfa_verification_failed")
    verified = db.auth.mfa.verify({"factor_id": enrolled.id, "challenge_id": challenge.id,
                                   "code": totp(enrolled.totp.secret)})
    c = jwt.decode(verified.access_token, project["jwt_secret"], algorithms=["HS256"], audience="authenticated")
    assert c["aal"] == "aal2" and [a["method"] for a in c["amr"]] == ["totp", "password"]
    assert db.auth.mfa.get_authenticator_assurance_level().current_level == "aal2"
    assert [r["body"] for r in db.table("secrets").select("body").execute().data] == ["only with a second factor"]
    # A challenge is answered once.
    with pytest.raises(AuthApiError) as replayed:
        db.auth.mfa.verify({"factor_id": enrolled.id, "challenge_id": challenge.id,
                            "code": totp(enrolled.totp.secret)})
    assert replayed.value.code == "mfa_challenge_expired"
    # The level survives a refresh.
    refreshed = db.auth.refresh_session().session
    assert claims(refreshed, project)["aal"] == "aal2"
    factors = db.auth.mfa.list_factors()
    assert [f.id for f in factors.totp] == [enrolled.id] and factors.totp[0].status == "verified"

    # A new sign-in starts at aal1 with aal2 as the next level.
    again = create_client(project["url"], project["publishable_key"], ClientOptions(flow_type="implicit"))
    again.auth.sign_in_with_password({"email": email, "password": "correct horse"})
    level = again.auth.mfa.get_authenticator_assurance_level()
    assert (level.current_level, level.next_level) == ("aal1", "aal2")
    with pytest.raises(AuthApiError) as low:
        again.auth.mfa.unenroll({"factor_id": enrolled.id})
    assert (low.value.status, low.value.code) == (403, "insufficient_aal")
    again.auth.mfa.challenge_and_verify({"factor_id": enrolled.id, "code": totp(enrolled.totp.secret)})
    again.auth.mfa.unenroll({"factor_id": enrolled.id})
    assert again.auth.mfa.list_factors().all == []


def test_factor_names_limits_and_admin_views(project):
    db, _ = signed_in(project)
    first = db.auth.mfa.enroll({"factor_type": "totp", "friendly_name": "laptop"})
    with pytest.raises(AuthApiError) as conflict:
        db.auth.mfa.enroll({"factor_type": "totp", "friendly_name": "laptop"})
    assert conflict.value.code == "mfa_factor_name_conflict"
    with pytest.raises(AuthApiError) as missing:
        db.auth.mfa.challenge({"factor_id": str(uuid.uuid4())})
    assert (missing.value.status, missing.value.code) == (404, "mfa_factor_not_found")
    user_id = db.auth.get_user().user.id
    admin = create_client(project["url"], project["secret_key"]).auth.admin
    listed = admin.mfa.list_factors({"user_id": user_id})
    assert [f.id for f in listed] == [first.id]
    admin.mfa.delete_factor({"id": first.id, "user_id": user_id})
    assert admin.mfa.list_factors({"user_id": user_id}) == []
    # Another user's factor is not theirs to challenge.
    other, _ = signed_in(project)
    theirs = other.auth.mfa.enroll({"factor_type": "totp", "friendly_name": "x"})
    with pytest.raises(AuthApiError) as foreign:
        db.auth.mfa.challenge({"factor_id": theirs.id})
    assert foreign.value.code == "mfa_factor_not_found"
