"""Mail delivery over SMTP to a real SMTP server (aiosmtpd) the test
starts: a project with SMTP settings sends its e-mails there (plain local
delivery, with and without a login), records each delivery in the outbox,
and a server that refuses connections costs a logged error (never the
password) and a normal API answer, not a 500."""

import email
import email.policy
import re
import socket
import time
import uuid
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from supabase import ClientOptions, create_client

from conftest import create_project, configure_auth as configure

PASSWORD = "smtp-" + uuid.uuid4().hex


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.rcpt_tos, message, session.authenticated))
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"mailer" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    yield controller, inbox
    controller.stop()


def outbox(platform, project, email_address):
    with platform.client() as api:
        return api.get(f"/v1/projects/{project['ref']}/auth/outbox", params={"email": email_address}).json()


def wait_for(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_mail_goes_over_smtp_with_a_login(platform, smtp_server):
    controller, inbox = smtp_server
    project = create_project(platform, "auth-smtp")
    configure(platform, project, smtp_host="127.0.0.1", smtp_port=str(controller.port), smtp_user="mailer",
              smtp_pass=PASSWORD, smtp_admin_email="auth@example.com", smtp_sender_name="Supa Tests",
              rate_limit_email_sent=100, mailer_subjects_confirmation="Welcome, {{ .Email }}")
    address = f"smtp-{uuid.uuid4().hex[:10]}@example.com"
    db = create_client(project["url"], project["publishable_key"], ClientOptions(flow_type="implicit"))
    db.auth.sign_up({"email": address, "password": "correct horse", "options": {"data": {"n": 1}}})
    rcpt, message, authenticated = wait_for(
        lambda: next((m for m in inbox.messages if m[0] == [address]), None))
    assert authenticated is True
    assert message["Subject"] == f"Welcome, {address}"
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Supa Tests", "auth@example.com")
    body = message.get_body().get_content()
    link = re.search(r'href="([^"]+)"', body).group(1).replace("&amp;", "&")
    assert link.startswith(f"{project['url']}/auth/v1/verify?token=")
    sent = wait_for(lambda: [m for m in outbox(platform, project, address) if m["sent_at"]])
    assert sent[0]["smtp"] is True and sent[0]["attempts"] == 1 and sent[0]["last_error"] is None
    # The settings never show the password.
    with platform.client() as api:
        assert api.get(f"/v1/projects/{project['ref']}/config/auth").json()["smtp_pass"] is None


def test_a_dead_smtp_server_is_logged_not_a_500(platform):
    project = create_project(platform, "auth-smtp-down")
    configure(platform, project, smtp_host="127.0.0.1", smtp_port=str(free_port()), smtp_user="mailer",
              smtp_pass=PASSWORD, rate_limit_email_sent=100)
    address = f"down-{uuid.uuid4().hex[:10]}@example.com"
    db = create_client(project["url"], project["publishable_key"], ClientOptions(flow_type="implicit"))
    pending = db.auth.sign_up({"email": address, "password": "correct horse"})
    assert pending.user.email == address and pending.session is None
    failed = wait_for(lambda: [m for m in outbox(platform, project, address) if m["last_error"]])
    assert failed[0]["sent_at"] is None and failed[0]["attempts"] >= 1
    log = Path(f"{platform.data_dir}.log").read_text()
    assert f"sending mail {failed[0]['id']} over 127.0.0.1" in log
    assert PASSWORD not in log
