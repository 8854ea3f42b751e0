"""Supabase Storage's schema in every project database: its tables and
helper functions, row level security on with no policies, and the
policies of Supabase's documentation (a folder per user by `auth.uid()`,
public read of a bucket) working unchanged for real users signed in
through /auth/v1, reaching `storage.objects` through the data plane as
their own role."""

import uuid

import pytest
from postgrest.exceptions import APIError
from supabase import ClientOptions, create_client

from conftest import configure_auth, create_project

POLICIES = """
insert into storage.buckets (id, name, public) values ('avatars', 'avatars', false), ('site', 'site', true);
insert into storage.objects (bucket_id, name) values ('site', 'logo.png'), ('site', 'img/hero.webp');
create policy "Users upload to their own folder" on storage.objects for insert to authenticated
  with check (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid()::text));
create policy "Users read their own folder" on storage.objects for select to authenticated
  using (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid()::text));
create policy "Anyone reads the site bucket" on storage.objects for select
  using (bucket_id = 'site');
"""


@pytest.fixture(scope="module")
def project(platform):
    created = create_project(platform, "storage-schema")
    configure_auth(platform, created, mailer_autoconfirm=True, rate_limit_token_refresh=1_000_000)
    return created


def sql(platform, project, query):
    with platform.client() as api:
        r = api.post(f"/v1/projects/{project['ref']}/database/query", json={"query": query})
        assert r.status_code == 201, r.text
        return r.json()


def test_tables_functions_and_rls_are_supabases(platform, project):
    columns = sql(platform, project, """
        select table_name, string_agg(column_name, ',' order by column_name) as columns
        from information_schema.columns where table_schema = 'storage' group by table_name order by table_name""")
    tables = {r["table_name"]: set(r["columns"].split(",")) for r in columns}
    assert set(tables) >= {"buckets", "objects", "migrations", "s3_multipart_uploads", "s3_multipart_uploads_parts"}
    assert {"id", "name", "public", "file_size_limit", "allowed_mime_types", "owner_id"} <= tables["buckets"]
    assert {"id", "bucket_id", "name", "owner_id", "metadata", "user_metadata", "path_tokens", "version",
            "last_accessed_at"} <= tables["objects"]
    helpers = sql(platform, project, """
        select storage.foldername('u1/photos/cat.png') as folders, storage.filename('u1/photos/cat.png') as file,
               storage.extension('u1/photos/cat.tar.gz') as ext""")
    assert helpers == [{"folders": ["u1", "photos"], "file": "cat.png", "ext": "gz"}]
    rls = sql(platform, project, """
        select c.relname, c.relrowsecurity, pg_get_userbyid(c.relowner) as owner,
               (select count(*) from pg_policies p where p.schemaname = 'storage' and p.tablename = c.relname) as policies
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'storage' and c.relname in ('buckets', 'objects') order by 1""")
    assert rls == [{"relname": "buckets", "relrowsecurity": True, "owner": "supabase_storage_admin", "policies": 0},
                   {"relname": "objects", "relrowsecurity": True, "owner": "supabase_storage_admin", "policies": 0}]


def test_documented_policies_work_for_signed_in_users(platform, project):
    sql(platform, project, POLICIES)
    with platform.client() as api:
        r = api.patch(f"/v1/projects/{project['ref']}/postgrest", json={"db_schema": "public, storage"})
        assert r.status_code == 200, r.text
    users = []
    for _ in range(2):
        db = create_client(project["url"], project["publishable_key"], ClientOptions(flow_type="implicit"))
        session = db.auth.sign_up({"email": f"files-{uuid.uuid4().hex[:8]}@example.com",
                                   "password": "correct horse"}).session
        users.append((db, session.user.id))
    (ann, ann_id), (bob, bob_id) = users
    objects = lambda db: db.schema("storage").table("objects")  # noqa: E731
    objects(ann).insert({"bucket_id": "avatars", "name": f"{ann_id}/avatar.png"}).execute()
    with pytest.raises(APIError) as refused:
        objects(ann).insert({"bucket_id": "avatars", "name": f"{bob_id}/avatar.png"}).execute()
    assert refused.value.code == "42501"
    seen = {o["name"] for o in objects(ann).select("name").eq("bucket_id", "avatars").execute().data}
    assert seen == {f"{ann_id}/avatar.png"}
    assert objects(bob).select("name").eq("bucket_id", "avatars").execute().data == []
    anon = create_client(project["url"], project["publishable_key"])
    public = sorted(o["name"] for o in objects(anon).select("name").execute().data)
    assert public == ["img/hero.webp", "logo.png"]
    # The dashboard's listing runs as the caller too: folders, then files.
    listed = anon.schema("storage").rpc("search", {"prefix": "", "bucketname": "site"}).execute().data
    assert [(e["name"], e["id"] is None) for e in listed] == [("img", True), ("logo.png", False)]
    inside = anon.schema("storage").rpc("search", {"prefix": "img/", "bucketname": "site", "levels": 2}).execute().data
    assert [e["name"] for e in inside] == ["hero.webp"]
    admin = create_client(project["url"], project["secret_key"])
    assert len(objects(admin).select("name").execute().data) == 3
