"""What Studio does when it opens a project, with real HTTP: the metadata
through postgres-meta's paths (admin token) and the gateway's `/pg`
(secret key), then the rows through the data plane with the `supabase`
client."""

import httpx
import pytest
from supabase import ClientOptions, create_client

from conftest import create_project

SCHEMA = """
CREATE TABLE public.authors (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.books (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  author_id bigint REFERENCES public.authors (id),
  title text NOT NULL,
  published date
);
COMMENT ON TABLE public.books IS 'what they wrote';
ALTER TABLE public.books ENABLE ROW LEVEL SECURITY;
CREATE POLICY "books are public" ON public.books FOR SELECT USING (true);
CREATE FUNCTION public.book_count() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM public.books $$;
INSERT INTO public.authors (name) VALUES ('Ada');
INSERT INTO public.books (author_id, title) VALUES (1, 'Notes');
"""


@pytest.fixture(scope="module")
def project(platform):
    return create_project(platform, "studio-opens", SCHEMA)


def test_studio_opens_a_project(platform, project):
    ref = project["ref"]
    with platform.client() as api:
        meta = f"/api/platform/pg-meta/{ref}"
        schemas = api.get(f"{meta}/schemas").json()
        assert {"public", "auth", "extensions", "graphql_public"} <= {s["name"] for s in schemas}

        tables = api.get(f"{meta}/tables", params={"included_schemas": "public", "include_columns": "true"}).json()
        by_name = {t["name"]: t for t in tables}
        assert set(by_name) == {"authors", "books"}
        books = by_name["books"]
        assert books["rls_enabled"] is True
        assert books["comment"] == "what they wrote"
        assert [c["name"] for c in books["columns"]] == ["id", "author_id", "title", "published"]
        assert [k["name"] for k in books["primary_keys"]] == ["id"]
        (fk,) = books["relationships"]
        assert (fk["source_column_name"], fk["target_table_name"]) == ("author_id", "authors")
        identity = books["columns"][0]
        assert (identity["is_identity"], identity["identity_generation"]) == (True, "ALWAYS")

        policies = api.get(f"{meta}/policies", params={"included_schemas": "public"}).json()
        assert [(p["name"], p["command"], p["definition"]) for p in policies] == [("books are public", "SELECT", "true")]
        functions = api.get(f"{meta}/functions", params={"included_schemas": "public"}).json()
        assert [(f["name"], f["return_type"]) for f in functions] == [("book_count", "bigint")]
        assert api.get(f"{meta}/tables/{books['id']}").json()["name"] == "books"

        # The SQL editor.
        rows = api.post(f"{meta}/query", json={"query": "select title from public.books"})
        assert (rows.status_code, rows.json()) == (200, [{"title": "Notes"}])

        # The same through the Management API's path.
        same = api.get(f"/v1/projects/{ref}/database/tables", params={"included_schemas": "public"}).json()
        assert {t["id"] for t in same} == {t["id"] for t in tables}

    # The table editor then reads rows through the data plane.
    client = create_client(project["url"], project["secret_key"])
    for table in tables:
        rows = client.table(table["name"]).select("*").execute().data
        assert len(rows) == 1


def test_pg_through_the_gateway_needs_a_secret_key(platform, project):
    url = f"{project['url']}/pg/tables"
    ok = httpx.get(url, params={"included_schemas": "public"}, headers={"apikey": project["secret_key"]})
    assert ok.status_code == 200
    assert {t["name"] for t in ok.json()} == {"authors", "books"}
    # Supabase clients send the key as a bearer token too.
    both = httpx.get(url, headers={"apikey": project["secret_key"], "Authorization": f"Bearer {project['secret_key']}"})
    assert both.status_code == 200
    refused = httpx.get(url, headers={"apikey": project["publishable_key"]})
    assert refused.status_code == 401
    assert "secret" in refused.json()["message"]
    assert httpx.get(url).status_code == 401
    bad = httpx.get(url, params={"limit": "x"}, headers={"apikey": project["secret_key"]})
    assert bad.status_code == 400

    # Studio's SQL editor goes through `/pg/query`.
    query = f"{project['url']}/pg/query"
    rows = httpx.post(query, json={"query": "select count(*)::int as n from public.books"},
                      headers={"apikey": project["secret_key"]})
    assert (rows.status_code, rows.json()) == (200, [{"n": 1}])
    failed = httpx.post(query, json={"query": "selec 1"}, headers={"apikey": project["secret_key"]})
    assert failed.status_code == 400
    assert "syntax error" in failed.json()["error"]
    assert httpx.post(query, content=b"{", headers={"apikey": project["secret_key"]}).status_code == 400
    refused = httpx.post(query, json={"query": "select 1"}, headers={"apikey": project["publishable_key"]})
    assert refused.status_code == 401


def test_admin_token_of_nothing_and_unknown_refs(platform, project):
    ref = project["ref"]
    with httpx.Client(base_url=platform.api_url, timeout=30) as anonymous:
        assert anonymous.get(f"/api/platform/pg-meta/{ref}/tables").status_code == 401
        wrong = anonymous.get(f"/api/platform/pg-meta/{ref}/tables", headers={"Authorization": "Bearer sbp_nope"})
        assert wrong.status_code == 401
    with platform.client() as api:
        assert api.get("/api/platform/pg-meta/abcdefghijabcdefghij/tables").status_code == 404
        assert api.get(f"/api/platform/pg-meta/{ref}/no-such-endpoint").status_code == 404


def test_typescript_types_as_supabase_gen_types_prints_them(platform, project):
    ref = project["ref"]
    with platform.client() as api:
        r = api.get(f"/v1/projects/{ref}/types/typescript")
        assert r.status_code == 200, r.text
        types = r.json()["types"]
        # public only, by default; the tables with their columns in name
        # order, what may be left out on insert, the foreign key, the function.
        assert types.startswith("export type Json =\n")
        assert "\n  public: {\n    Tables: {\n      authors: {\n" in types
        assert "graphql_public: {" not in types
        assert (
            "      books: {\n"
            "        Row: {\n"
            "          author_id: number | null\n"
            "          id: number\n"
            "          published: string | null\n"
            "          title: string\n"
            "        }\n"
            "        Insert: {\n"
            "          author_id?: number | null\n"
            "          id?: never\n"
        ) in types
        assert 'referencedRelation: "authors"' in types
        assert "book_count: { Args: Record<PropertyKey, never>; Returns: number }" in types
        assert types.endswith("} as const\n")

        both = api.get(f"/api/v1/projects/{ref}/types/typescript", params={"included_schemas": "public,graphql_public"})
        assert both.status_code == 200
        assert "\n  graphql_public: {\n" in both.json()["types"]

        missing = api.get("/v1/projects/abcdefghijabcdefghij/types/typescript")
        assert missing.status_code == 404
        assert "not found" in missing.json()["message"]
    with httpx.Client(base_url=platform.api_url, timeout=30) as anonymous:
        assert anonymous.get(f"/v1/projects/{ref}/types/typescript").status_code == 401

    # The CLI prints the same file.
    assert platform.cli("gen", "types", ref).stdout == types
    assert platform.cli("gen", "types", ref, "--schema", "public", "--schema", "graphql_public").stdout == both.json()["types"]
    failed = platform.cli("gen", "types", "abcdefghijabcdefghij", check=False)
    assert failed.returncode != 0 and "not found" in failed.stderr


def test_table_editor_changes_reach_the_data_plane(platform, project):
    """Studio's table editor: create a table and its columns through
    pg-meta, then use it at once through the data plane."""
    ref = project["ref"]
    client = create_client(project["url"], project["secret_key"])
    assert client.table("authors").select("*").execute().data  # warm the schema cache
    with platform.client() as api:
        meta = f"/api/platform/pg-meta/{ref}"
        table = api.post(f"{meta}/tables", json={"name": "notes", "schema": "public"})
        assert table.status_code == 200, table.text
        tid = table.json()["id"]
        for column in [
            {"table_id": tid, "name": "id", "type": "int8", "is_identity": True, "is_primary_key": True},
            {"table_id": tid, "name": "body", "type": "text", "is_nullable": False},
        ]:
            r = api.post(f"{meta}/columns", json=column)
            assert r.status_code == 200, r.text
        assert [c["name"] for c in api.get(f"{meta}/tables/{tid}").json()["columns"]] == ["id", "body"]
    inserted = client.table("notes").insert({"body": "hello"}).execute().data
    assert inserted == [{"id": 1, "body": "hello"}]
    with platform.client() as api:
        r = api.delete(f"/v1/projects/{ref}/database/tables/{tid}")
        assert (r.status_code, r.json()["name"]) == (200, "notes")
        bad = api.post(f"/api/platform/pg-meta/{ref}/policies", json={"name": "p", "table": "books", "command": "EVERYTHING"})
        assert bad.status_code == 400
        assert "command" in bad.json()["error"]
