"""`supa-auth` standalone, configured only by GoTrue's environment, as
it would replace the auth container of Supabase's docker-compose: it
creates the auth schema in an empty database on first start and keeps it
on the next, mails through the SMTP server it is given, and answers the
real client (supabase-py's auth client, pointed at it directly)."""

import base64
import json
import os
import re
import subprocess
import time
import uuid

import httpx
import jwt
import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives.asymmetric import ec
from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError

from conftest import ROOT, empty_database, free_port, stop, wait_for_port
from test_auth_smtp import Inbox, wait_for

SUPA_AUTH = ROOT / "target" / "debug" / "supa-auth"


@pytest.fixture(scope="module")
def database(platform):
    """An empty database and its owner on the platform's cluster."""
    return empty_database(platform, "gotrue")


@pytest.fixture(scope="module")
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


def es256_jwk():
    """A P-256 private key as a JWK, made here apart from the server."""
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.private_numbers()
    b64 = lambda n: base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()  # noqa: E731
    return {"kty": "EC", "crv": "P-256", "kid": "compose-key", "d": b64(numbers.private_value),
            "x": b64(numbers.public_numbers.x), "y": b64(numbers.public_numbers.y)}


def start(database, smtp_port, log, extra=None):
    port = free_port()
    secret = "standalone-jwt-secret-" + "x" * 20
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOTRUE_", "API_", "DATABASE_"))}
    env.update({
        "GOTRUE_JWT_SECRET": secret,
        "GOTRUE_JWT_EXP": "600",
        "DATABASE_URL": database,
        "DB_NAMESPACE": "auth",
        "GOTRUE_API_HOST": "127.0.0.1",
        "PORT": str(port),
        "API_EXTERNAL_URL": f"http://127.0.0.1:{port}",
        "GOTRUE_SITE_URL": "http://localhost:3000",
        "GOTRUE_URI_ALLOW_LIST": "https://app.example.com/**",
        "GOTRUE_DISABLE_SIGNUP": "false",
        "GOTRUE_MAILER_AUTOCONFIRM": "false",
        "GOTRUE_SMTP_HOST": "127.0.0.1",
        "GOTRUE_SMTP_PORT": str(smtp_port),
        "GOTRUE_SMTP_ADMIN_EMAIL": "admin@example.com",
        "GOTRUE_MAILER_SUBJECTS_CONFIRMATION": "Confirm your signup",
        "GOTRUE_RATE_LIMIT_EMAIL_SENT": "100.0",
        "GOTRUE_EXTERNAL_SKYPE_ENABLED": "true",
        **(extra or {}),
    })
    proc = subprocess.Popen([str(SUPA_AUTH)], env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, proc, "supa-auth")
    return f"http://127.0.0.1:{port}", secret, proc


def test_a_drop_in_for_gotrue(database, smtp, tmp_path):
    smtp_port, inbox = smtp
    log_path = tmp_path / "supa-auth.log"
    with open(log_path, "w") as log:
        url, secret, proc = start(database, smtp_port, log)
        try:
            health = httpx.get(f"{url}/health").json()
            assert health["name"] == "GoTrue"
            auth = SyncGoTrueClient(url=url, headers={}, flow_type="implicit")
            email = f"alone-{uuid.uuid4().hex[:10]}@example.com"
            pending = auth.sign_up({"email": email, "password": "correct horse"})
            assert pending.session is None
            _, message, _ = wait_for(lambda: next((m for m in inbox.messages if m[0] == [email]), None))
            assert message["Subject"] == "Confirm your signup"
            link = re.search(r'href="([^"]+)"', message.get_body().get_content()).group(1).replace("&amp;", "&")
            assert link.startswith(f"{url}/verify?token=")
            landed = httpx.get(link, follow_redirects=False)
            assert landed.status_code == 303 and landed.headers["location"].startswith("http://localhost:3000#access_token=")

            session = auth.sign_in_with_password({"email": email, "password": "correct horse"}).session
            claims = jwt.decode(session.access_token, secret, algorithms=["HS256"], audience="authenticated")
            assert claims["iss"] == url and claims["exp"] - claims["iat"] == 600
            assert auth.refresh_session().session.refresh_token != session.refresh_token
            assert auth.get_user().user.email == email

            service = jwt.encode({"role": "service_role", "exp": int(time.time()) + 60}, secret, algorithm="HS256")
            admin = SyncGoTrueClient(url=url, headers={"Authorization": f"Bearer {service}"}).admin
            assert email in [u.email for u in admin.list_users()]
            with pytest.raises(AuthApiError) as refused:
                SyncGoTrueClient(url=url, headers={"Authorization": f"Bearer {session.access_token}"}).admin.list_users()
            assert refused.value.code == "not_admin"
        finally:
            stop(proc)
        # The next start finds the schema and keeps the users; with
        # GOTRUE_JWT_KEYS its tokens are ES256, verifiable with the JWKS.
        key = es256_jwk()
        url, secret, proc = start(database, smtp_port, log, {"GOTRUE_JWT_KEYS": json.dumps([key])})
        try:
            again = SyncGoTrueClient(url=url, headers={}, flow_type="implicit")
            session = again.sign_in_with_password({"email": email, "password": "correct horse"}).session
            assert session.user.email == email
            jwks = httpx.get(f"{url}/.well-known/jwks.json").json()["keys"]
            assert [k["kid"] for k in jwks] == ["compose-key"] and "d" not in jwks[0]
            assert jwt.get_unverified_header(session.access_token)["alg"] == "ES256"
            jwt.decode(session.access_token, jwt.PyJWK(jwks[0]).key, algorithms=["ES256"], audience="authenticated")
        finally:
            stop(proc)
    text = log_path.read_text()
    assert "GOTRUE_EXTERNAL_SKYPE_ENABLED" in text and "ignored" in text
    assert text.count("GOTRUE_EXTERNAL_SKYPE_ENABLED") == 2, "once per start"
    assert "correct horse" not in text


def test_missing_settings_stop_the_server_with_a_clear_message():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOTRUE_", "DATABASE_"))}
    env["GOTRUE_JWT_SECRET"] = "x" * 40
    done = subprocess.run([str(SUPA_AUTH)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "DATABASE_URL" in done.stderr
