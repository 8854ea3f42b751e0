"""Phone sign-up and sign-in through the gateway with the real `supabase`
client: codes leave through the send-SMS hook (a Postgres function, or an
HTTP endpoint whose Standard Webhooks signature the test checks), are
redeemed once with `verify_otp(type=sms)`, and a failing hook is a clear
502 that leaves no user behind."""

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from supabase import ClientOptions, create_client
from supabase_auth.errors import AuthApiError, AuthRetryableError

from conftest import create_project, configure_auth as configure

HOOK = """
create table public.sms_sent (phone text, otp text, at timestamptz default now());
create function public.send_sms(event jsonb) returns jsonb language plpgsql as $$
begin
  insert into public.sms_sent (phone, otp) values (event -> 'user' ->> 'phone', event -> 'sms' ->> 'otp');
  return '{}'::jsonb;
end $$;
grant usage on schema public to supabase_auth_admin;
grant insert on public.sms_sent to supabase_auth_admin;
grant execute on function public.send_sms(jsonb) to supabase_auth_admin;
"""


@pytest.fixture(scope="module")
def project(platform):
    created = create_project(platform, "auth-phone", HOOK)
    configure(platform, created, external_phone_enabled=True, hook_send_sms_enabled=True,
              hook_send_sms_uri="pg-functions://postgres/public/send_sms",
              rate_limit_otp=1_000_000, rate_limit_verify=1_000_000, rate_limit_token_refresh=1_000_000)
    return created


def client(project):
    return create_client(project["url"], project["publishable_key"], ClientOptions(flow_type="implicit"))


def number():
    return "+1555" + str(uuid.uuid4().int)[:7]


def last_code(platform, project, phone):
    with platform.client() as api:
        rows = api.post(f"/v1/projects/{project['ref']}/database/query", json={
            "query": f"select otp from public.sms_sent where phone = '{phone.lstrip('+')}' order by at desc limit 1"}).json()
    return rows[0]["otp"]


def test_phone_sign_up_is_confirmed_by_the_code(platform, project):
    phone = number()
    pending = client(project).auth.sign_up({"phone": phone, "password": "correct horse"})
    assert pending.session is None and pending.user.phone == phone.lstrip("+")
    with pytest.raises(AuthApiError) as unconfirmed:
        client(project).auth.sign_in_with_password({"phone": phone, "password": "correct horse"})
    assert unconfirmed.value.code == "phone_not_confirmed"
    code = last_code(platform, project, phone)
    verified = client(project).auth.verify_otp({"phone": phone, "token": code, "type": "sms"})
    assert verified.session and verified.user.phone_confirmed_at is not None
    assert verified.user.identities[0].provider == "phone"
    with pytest.raises(AuthApiError) as replayed:
        client(project).auth.verify_otp({"phone": phone, "token": code, "type": "sms"})
    assert replayed.value.code == "otp_expired"
    session = client(project).auth.sign_in_with_password({"phone": phone, "password": "correct horse"}).session
    assert session.user.phone == phone.lstrip("+")


def test_one_time_codes_sign_in_by_phone(platform, project):
    phone = number()
    sent = client(project).auth.sign_in_with_otp({"phone": phone})
    assert sent.message_id
    db = client(project)
    session = db.auth.verify_otp({"phone": phone, "token": last_code(platform, project, phone), "type": "sms"}).session
    assert session.user.phone == phone.lstrip("+") and session.user.app_metadata["provider"] == "phone"
    with pytest.raises(AuthApiError) as no_signup:
        client(project).auth.sign_in_with_otp({"phone": number(), "options": {"should_create_user": False}})
    assert no_signup.value.code == "otp_disabled"


class SmsEndpoint:
    """An HTTP send-SMS hook that checks the Standard Webhooks signature."""

    def __init__(self, secret, fail=False):
        self.key = secret
        self.fail = fail
        self.received = []
        self.bad_signatures = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = f"{self.headers['webhook-id']}.{self.headers['webhook-timestamp']}.".encode() + body
                expected = "v1," + base64.b64encode(hmac.new(endpoint.key, signed, hashlib.sha256).digest()).decode()
                fresh = abs(time.time() - int(self.headers["webhook-timestamp"])) < 300
                if self.headers.get("webhook-signature") != expected or not fresh:
                    endpoint.bad_signatures += 1
                    self.send_response(401)
                elif endpoint.fail:
                    self.send_response(500)
                else:
                    endpoint.received.append(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_an_http_hook_gets_signed_messages_and_its_failures_are_502(platform, project):
    key = secrets.token_bytes(24)
    endpoint = SmsEndpoint(key)
    configure(platform, project, hook_send_sms_uri=endpoint.url,
              hook_send_sms_secrets="v1,whsec_" + base64.b64encode(key).decode())
    try:
        phone = number()
        client(project).auth.sign_in_with_otp({"phone": phone})
        assert endpoint.bad_signatures == 0 and len(endpoint.received) == 1
        event = endpoint.received[0]
        assert event["user"]["phone"] == phone.lstrip("+")
        session = client(project).auth.verify_otp({"phone": phone, "token": event["sms"]["otp"], "type": "sms"}).session
        assert session.access_token
        endpoint.fail = True
        lost = number()
        # The SMS service failed, not the request: a 502 the client may retry.
        with pytest.raises(AuthRetryableError, match="send-SMS hook answered 500"):
            client(project).auth.sign_in_with_otp({"phone": lost})
        raw = httpx.post(f"{project['url']}/auth/v1/otp", headers={"apikey": project["publishable_key"]},
                         json={"phone": lost})
        assert raw.status_code == 502 and raw.json()["error_code"] == "sms_send_failed"
        # The user the failed request would have made does not exist.
        with platform.client() as api:
            rows = api.post(f"/v1/projects/{project['ref']}/database/query", json={
                "query": f"select count(*) from auth.users where phone = '{lost.lstrip('+')}'"}).json()
        assert rows == [{"count": 0}]
        with platform.client() as api:
            shown = api.get(f"/v1/projects/{project['ref']}/config/auth").json()
        assert shown["hook_send_sms_secrets"] is None
    finally:
        endpoint.server.shutdown()
        configure(platform, project, hook_send_sms_uri="pg-functions://postgres/public/send_sms")


def test_phone_sign_in_follows_the_setting(platform, project):
    configure(platform, project, external_phone_enabled=False)
    try:
        with pytest.raises(AuthApiError) as off:
            client(project).auth.sign_up({"phone": number(), "password": "correct horse"})
        assert off.value.code == "phone_provider_disabled"
    finally:
        configure(platform, project, external_phone_enabled=True)
    with pytest.raises(AuthApiError) as bad:
        client(project).auth.sign_up({"phone": "+0-not-a-number", "password": "correct horse"})
    assert (bad.value.status, bad.value.code) == (400, "validation_failed")
