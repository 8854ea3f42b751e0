"""The `auth` schema every project database is made with (GoTrue's tables),
as SQL written for Supabase uses it: a profile per user through a foreign
key and a trigger, bcrypt passwords as GoTrue stores them, and no access
for the API roles."""

import uuid

import pytest

from conftest import create_project

# Supabase's documented "profiles" pattern, unchanged.
PROFILES = """
create table public.profiles (
  id uuid not null references auth.users (id) on delete cascade,
  username text,
  primary key (id)
);
create function public.handle_new_user() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.profiles (id, username) values (new.id, new.raw_user_meta_data ->> 'username');
  return new;
end;
$$;
create trigger on_auth_user_created after insert on auth.users
  for each row execute procedure public.handle_new_user();
"""

TABLES = {
    "users", "identities", "sessions", "refresh_tokens", "mfa_factors", "mfa_challenges",
    "mfa_amr_claims", "one_time_tokens", "flow_state", "audit_log_entries", "instances",
}


@pytest.fixture(scope="module")
def project(platform):
    return create_project(platform, "auth-schema", PROFILES)


def sql(platform, project, query):
    with platform.client() as api:
        return api.post(f"/v1/projects/{project['ref']}/database/query", json={"query": query})


def test_gotrue_tables_are_there_owned_by_the_auth_admin(platform, project):
    rows = sql(platform, project, "select tablename, tableowner from pg_tables where schemaname = 'auth'").json()
    owners = {r["tablename"]: r["tableowner"] for r in rows}
    assert TABLES <= set(owners)
    assert {owners[t] for t in TABLES} == {"supabase_auth_admin"}
    columns = sql(platform, project, (
        "select column_name, data_type, is_generated from information_schema.columns "
        "where table_schema = 'auth' and table_name = 'users'"
    )).json()
    by_name = {c["column_name"]: c for c in columns}
    assert by_name["encrypted_password"]["data_type"] == "character varying"
    assert by_name["raw_user_meta_data"]["data_type"] == "jsonb"
    assert by_name["confirmed_at"]["is_generated"] == "ALWAYS"
    assert by_name["is_anonymous"]["data_type"] == "boolean"


def test_a_user_gets_a_profile_and_takes_it_away(platform, project):
    user = str(uuid.uuid4())
    r = sql(platform, project, f"""
        insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at,
                                raw_user_meta_data, created_at, updated_at)
        values ('{user}', 'authenticated', 'authenticated', 'ann@example.com',
                extensions.crypt('correct horse', extensions.gen_salt('bf', 10)), now(),
                '{{"username": "ann"}}', now(), now());
        select u.confirmed_at = u.email_confirmed_at as confirmed, u.is_anonymous,
               u.encrypted_password like '$2a$10$%' as bcrypt,
               u.encrypted_password = extensions.crypt('correct horse', u.encrypted_password) as right,
               u.encrypted_password = extensions.crypt('wrong', u.encrypted_password) as wrong,
               p.username
        from auth.users u join public.profiles p on p.id = u.id where u.id = '{user}'
    """)
    assert r.status_code == 201, r.text
    assert r.json() == [{"confirmed": True, "is_anonymous": False, "bcrypt": True,
                         "right": True, "wrong": False, "username": "ann"}]
    r = sql(platform, project, f"""
        delete from auth.users where id = '{user}';
        select count(*) as left from public.profiles where id = '{user}'
    """)
    assert r.json() == [{"left": 0}]


def test_the_api_roles_cannot_read_auth_tables(platform, project):
    for role in ("anon", "authenticated"):
        r = sql(platform, project, f"set role {role}; select count(*) from auth.users")
        assert r.status_code == 400, r.text
        assert "permission denied" in r.json()["message"]
    # ...but the functions RLS policies call are theirs.
    r = sql(platform, project, "set role authenticated; select auth.uid(), auth.email(), auth.role()")
    assert r.status_code == 201, r.text
