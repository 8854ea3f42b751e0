import pytest


@pytest.fixture(autouse=True)
def confirmed_sign_ups(supa_project):
    """Sign-ups are confirmed at once, as `supabase start` has them
    (`enable_confirmations = false`)."""
    supa_project.update_config("auth", {"mailer_autoconfirm": True})
