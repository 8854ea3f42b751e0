"""A project's auth settings through Supabase's Management API shape
(`/v1/projects/{ref}/config/auth`): GoTrue's defaults, partial PATCHes,
refusals that change nothing, a write-only SMTP password, and the settings
reaching gateways through the internal API."""

import httpx
import pytest

from conftest import create_project

# The names the Supabase dashboard and CLI send.
FIELDS = {
    "disable_signup", "mailer_autoconfirm", "sms_autoconfirm", "external_email_enabled",
    "external_phone_enabled", "external_anonymous_users_enabled", "jwt_exp", "site_url",
    "uri_allow_list", "password_min_length", "smtp_host", "smtp_port", "smtp_user", "smtp_pass",
    "smtp_admin_email", "mailer_subjects_confirmation", "mailer_templates_confirmation_content",
    "rate_limit_email_sent", "rate_limit_token_refresh", "rate_limit_otp", "rate_limit_verify",
    "hook_custom_access_token_enabled", "hook_custom_access_token_uri",
}


@pytest.fixture(scope="module")
def project(platform):
    return create_project(platform, "auth-config")


def test_defaults_are_gotrues(platform, project):
    with platform.client() as api:
        settings = api.get(f"/v1/projects/{project['ref']}/config/auth").json()
    assert FIELDS <= set(settings)
    assert settings["jwt_exp"] == 3600
    assert settings["site_url"] == "http://localhost:3000"
    assert settings["mailer_autoconfirm"] is False and settings["disable_signup"] is False
    assert settings["password_min_length"] == 6
    assert settings["security_refresh_token_reuse_interval"] == 10
    assert settings["smtp_pass"] is None


def test_a_patch_changes_what_it_names_and_reaches_gateways(platform, project):
    ref = project["ref"]
    body = {
        "mailer_autoconfirm": True,
        "jwt_exp": 600,
        "uri_allow_list": "http://localhost:3000/**,https://app.example.com",
        "smtp_host": "smtp.example.com",
        "smtp_port": "587",
        "smtp_admin_email": "noreply@example.com",
        "smtp_pass": "hunter2-hunter2",
    }
    with platform.client() as api:
        r = api.patch(f"/v1/projects/{ref}/config/auth", json=body)
        assert r.status_code == 200, r.text
        changed = r.json()
        assert api.get(f"/v1/projects/{ref}/config/auth").json() == changed
    assert changed["smtp_pass"] is None, "the SMTP password is write-only"
    assert (changed["jwt_exp"], changed["mailer_autoconfirm"], changed["smtp_port"]) == (600, True, "587")
    assert changed["disable_signup"] is False, "fields left out stay"
    config = platform.project_config(ref)
    assert config["auth"]["jwt_exp"] == 600
    assert config["smtp_pass"] == "hunter2-hunter2"
    with platform.client() as api:
        assert api.patch(f"/v1/projects/{ref}/config/auth", json={"smtp_pass": None}).status_code == 200
    assert "smtp_pass" not in platform.project_config(ref)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"jwt_exp": 5}, "jwt_exp"),
        ({"jwt_exp": "an hour"}, "jwt_exp"),
        ({"site_url": "javascript:alert(1)"}, "site_url"),
        ({"password_min_length": 3}, "password_min_length"),
        ({"smtp_port": "smtp"}, "smtp_port"),
        ({"rate_limit_otp": 0}, "rate_limit_otp"),
        ({"hook_custom_access_token_enabled": True}, "hook_custom_access_token_uri"),
        ({"hook_custom_access_token_uri": "http://example.com/hook"}, "hook_custom_access_token_uri"),
        # The instance metadata service speaks plain HTTP: never a hook.
        ({"hook_send_sms_uri": "http://169.254.169.254/latest/meta-data/"}, "hook_send_sms_uri"),
        ({"smtp_pass": 42}, "smtp_pass"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_bad_values_are_refused_and_change_nothing(platform, project, body, field):
    ref = project["ref"]
    with platform.client() as api:
        before = api.get(f"/v1/projects/{ref}/config/auth").json()
        r = api.patch(f"/v1/projects/{ref}/config/auth", json={"disable_signup": True, **body})
        assert r.status_code == 400, r.text
        assert field in r.json()["message"]
        assert api.get(f"/v1/projects/{ref}/config/auth").json() == before
        assert api.get("/v1/projects/abcdefghijabcdefghij/config/auth").status_code == 404


def test_settings_need_the_admin_token(platform, project):
    url = f"{platform.api_url}/v1/projects/{project['ref']}/config/auth"
    assert httpx.get(url).status_code == 401
    assert httpx.patch(url, json={"jwt_exp": 60}).status_code == 401
