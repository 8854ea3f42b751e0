import uuid

import httpx
import pytest
from postgrest.exceptions import APIError
from storage3.exceptions import StorageApiError

import notes

PASSWORD = "correct horse battery staple"


def new_user(project, username):
    client = project.client()
    user_id = notes.sign_up(client, f"{username}-{uuid.uuid4().hex[:8]}@example.com", PASSWORD, username)
    return client, user_id


def test_sign_up_makes_a_profile(supa_project, supabase_client):
    user_id = notes.sign_up(supabase_client, "ada@example.com", PASSWORD, "ada")
    profile = supabase_client.table("profiles").select("username").eq("id", user_id).single().execute()
    assert profile.data == {"username": "ada"}
    # The trigger ran as the migration wrote it, in the database itself.
    assert supa_project.query("select count(*)::int as n from public.profiles") == [{"n": 1}]


def test_notes_are_private_to_their_owner(supa_project):
    ada, _ = new_user(supa_project, "ada")
    bob, _ = new_user(supa_project, "bob")
    notes.add_note(ada, "ada's secret")
    notes.add_note(bob, "bob's secret")

    assert notes.my_notes(ada) == ["ada's secret"]
    assert notes.my_notes(bob) == ["bob's secret"]
    # Nobody writes a note in someone else's name.
    ada_id = ada.auth.get_user().user.id
    with pytest.raises(APIError) as refused:
        bob.table("notes").insert({"body": "forged", "owner": ada_id}).execute()
    assert refused.value.code == "42501"


def test_anonymous_visitors_see_announcements_but_no_notes(supa_project, supabase_client, supabase_admin_client):
    ada, _ = new_user(supa_project, "ada")
    notes.add_note(ada, "hidden")
    assert notes.announcements(supabase_client) == ["Welcome to Notes!"]  # from seed.sql
    assert notes.my_notes(supabase_client) == []
    # The secret key bypasses row level security.
    assert [r["body"] for r in supabase_admin_client.table("notes").select("body").execute().data] == ["hidden"]


def test_users_upload_their_own_avatar_only(supa_project):
    ada, ada_id = new_user(supa_project, "ada")
    bob, _ = new_user(supa_project, "bob")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(64))

    url = notes.upload_avatar(ada, ada_id, png)
    assert httpx.get(url).content == png
    with pytest.raises(StorageApiError):
        notes.upload_avatar(bob, ada_id, b"\x89PNG\r\n\x1a\nnot ada")
    assert httpx.get(url).content == png


def test_each_test_gets_a_fresh_project(supa_project):
    # The tests above signed users up and wrote notes; none of it is here.
    assert supa_project.query("select count(*)::int as n from auth.users") == [{"n": 0}]
    assert supa_project.query("select version, name from supabase_migrations.schema_migrations order by 1") == [
        {"version": "20261201000000", "name": "profiles"},
        {"version": "20261201000100", "name": "notes"},
        {"version": "20261201000200", "name": "avatars"},
    ]
