"""A small Supabase app: users sign up, keep private notes, read public
announcements, and upload an avatar. It talks to Supabase through
supabase-py only, so its tests run it against a throwaway Supa unchanged."""

from supabase import Client


def sign_up(client: Client, email: str, password: str, username: str) -> str:
    """Creates an account and signs in; the new user's id."""
    response = client.auth.sign_up(
        {"email": email, "password": password, "options": {"data": {"username": username}}}
    )
    return response.user.id


def add_note(client: Client, body: str) -> dict:
    return client.table("notes").insert({"body": body}).execute().data[0]


def my_notes(client: Client) -> list[str]:
    rows = client.table("notes").select("body").order("id").execute().data
    return [row["body"] for row in rows]


def announcements(client: Client) -> list[str]:
    return [row["body"] for row in client.table("announcements").select("body").execute().data]


def upload_avatar(client: Client, user_id: str, png: bytes) -> str:
    """Stores the user's avatar; its public URL."""
    path = f"{user_id}/avatar.png"
    client.storage.from_("avatars").upload(path, png, {"content-type": "image/png", "upsert": "true"})
    return client.storage.from_("avatars").get_public_url(path)
