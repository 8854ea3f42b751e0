"""Storage through the gateway with the real `supabase` client (storage3):
buckets, uploads (multipart and raw), downloads with ranges and ETags,
listing, move, copy, remove, signed URLs, public buckets, limits, and row
level security deciding who reads and writes what."""

import hashlib
import os
import time
import uuid

import httpx
import jwt
import pytest
from storage3.exceptions import StorageApiError
from supabase import create_client

from conftest import create_project


@pytest.fixture(scope="module")
def project(platform):
    return create_project(platform, "storage")


@pytest.fixture(scope="module")
def admin(project):
    return create_client(project["url"], project["secret_key"]).storage


def user_token(project, sub, role="authenticated", ttl=600):
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": role, "aud": "authenticated", "iat": now, "exp": now + ttl},
                      project["jwt_secret"], algorithm="HS256")


def as_user(project, sub):
    client = create_client(project["url"], project["publishable_key"])
    client.options.headers["Authorization"] = f"Bearer {user_token(project, sub)}"
    return client.storage


def secret_headers(project):
    return {"apikey": project["secret_key"], "Authorization": f"Bearer {project['secret_key']}"}


def error_of(call):
    with pytest.raises(StorageApiError) as raised:
        call()
    return raised.value


def sql(platform, project, query):
    with platform.client() as api:
        r = api.post(f"/v1/projects/{project['ref']}/database/query", json={"query": query})
        assert r.status_code == 201, r.text
        return r.json()


def test_bucket_lifecycle(admin):
    name = f"b-{uuid.uuid4().hex[:8]}"
    assert admin.create_bucket(name, options={"public": False, "file_size_limit": 1024,
                                              "allowed_mime_types": ["image/*"]}) == {"name": name}
    bucket = admin.get_bucket(name)
    assert (bucket.id, bucket.public, bucket.file_size_limit, bucket.allowed_mime_types) == (
        name, False, 1024, ["image/*"])
    assert name in [b.id for b in admin.list_buckets()]
    duplicate = error_of(lambda: admin.create_bucket(name))
    assert (duplicate.status, duplicate.code) == ("409", "Duplicate")
    assert admin.update_bucket(name, {"public": True, "file_size_limit": "2KB"})["message"] == "Successfully updated"
    bucket = admin.get_bucket(name)
    assert (bucket.public, bucket.file_size_limit, bucket.allowed_mime_types) == (True, 2000, ["image/*"])
    admin.from_(name).upload("x.png", b"png", {"content-type": "image/png"})
    not_empty = error_of(lambda: admin.delete_bucket(name))
    assert not_empty.status == "409"
    assert admin.empty_bucket(name)["message"] == "Successfully emptied"
    assert admin.delete_bucket(name)["message"] == "Successfully deleted"
    missing = error_of(lambda: admin.get_bucket(name))
    assert (missing.status, missing.code, missing.message) == ("404", "Bucket not found", "Bucket not found")


@pytest.mark.parametrize("bad", ["a/b", "ünï", "..", "", "x" * 101, "tab\tname"])
def test_bucket_names_supabase_rejects(project, bad):
    refused = httpx.post(f"{project['url']}/storage/v1/bucket", headers=secret_headers(project),
                         json={"id": bad, "name": bad})
    assert refused.status_code == 400, refused.text
    assert refused.json()["statusCode"] == "400"


def test_upload_download_upsert_and_metadata(admin):
    name = f"files-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(name)
    files = admin.from_(name)
    text = "héllo wörld\n".encode()
    binary = os.urandom(300_000)
    assert files.upload("docs/hello.txt", text, {"content-type": "text/plain", "metadata": {"k": "v"}}).path == "docs/hello.txt"
    files.upload("bin/blob.bin", binary, {"content-type": "application/octet-stream"})
    assert files.download("docs/hello.txt") == text
    assert files.download("bin/blob.bin") == binary
    info = files.info("docs/hello.txt")
    assert info["size"] == len(text) and info["content_type"] == "text/plain"
    assert info["etag"] == f'"{hashlib.md5(text).hexdigest()}"' and info["metadata"] == {"k": "v"}
    assert info["cache_control"] == "max-age=3600"
    assert files.exists("docs/hello.txt") and not files.exists("docs/nope.txt")
    # A second upload of the same name conflicts; upsert and update replace.
    conflict = error_of(lambda: files.upload("docs/hello.txt", b"again"))
    assert (conflict.status, conflict.code) == ("409", "Duplicate")
    files.upload("docs/hello.txt", b"upserted", {"upsert": "true"})
    assert files.download("docs/hello.txt") == b"upserted"
    files.update("docs/hello.txt", b"updated", {"content-type": "text/markdown"})
    assert files.download("docs/hello.txt") == b"updated"
    assert files.info("docs/hello.txt")["content_type"] == "text/markdown"
    missing = error_of(lambda: files.update("docs/absent.txt", b"x"))
    assert (missing.status, missing.code) == ("404", "not_found")
    missing = error_of(lambda: files.download("docs/absent.txt"))
    assert missing.status == "404"


def test_raw_uploads_ranges_etags_and_disposition(project, admin):
    name = f"raw-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(name)
    headers = secret_headers(project)
    base = f"{project['url']}/storage/v1/object/{name}"
    body = bytes(range(256)) * 40
    r = httpx.post(f"{base}/raw/data.bin", content=body,
                   headers={**headers, "content-type": "application/x-thing", "cache-control": "max-age=60",
                            "x-metadata": "eyJhIjogMX0="})
    assert r.status_code == 200 and r.json()["Key"] == f"{name}/raw/data.bin", r.text
    full = httpx.get(f"{base}/raw/data.bin", headers=headers)
    assert full.content == body and full.headers["content-type"] == "application/x-thing"
    assert full.headers["cache-control"] == "max-age=60" and full.headers["accept-ranges"] == "bytes"
    etag = full.headers["etag"]
    assert etag == f'"{hashlib.md5(body).hexdigest()}"'
    assert "last-modified" in full.headers
    part = httpx.get(f"{base}/raw/data.bin", headers={**headers, "Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == body[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(body)}"
    tail = httpx.get(f"{base}/raw/data.bin", headers={**headers, "Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == body[-5:]
    beyond = httpx.get(f"{base}/raw/data.bin", headers={**headers, "Range": f"bytes={len(body)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(body)}"
    cached = httpx.get(f"{base}/raw/data.bin", headers={**headers, "If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    head = httpx.head(f"{base}/raw/data.bin", headers=headers)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(body))
    named = httpx.get(f"{base}/raw/data.bin?download=report%20%C3%A9.bin", headers=headers)
    assert named.headers["content-disposition"].startswith("attachment; filename=")
    assert "report%20%C3%A9.bin" in named.headers["content-disposition"]
    assert "x-upsert" not in named.headers
    info = admin.from_(name).info("raw/data.bin")
    assert info["metadata"] == {"a": 1}


def test_list_move_copy_remove(project, admin):
    name = f"list-{uuid.uuid4().hex[:8]}"
    other = f"other-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(name)
    admin.create_bucket(other)
    files = admin.from_(name)
    for path in ["a.txt", "b.txt", "folder/c.txt", "folder/sub/d.txt", "zeta/e.txt"]:
        files.upload(path, path.encode())
    top = files.list()
    assert [e["name"] for e in top] == ["folder", "zeta", "a.txt", "b.txt"]
    assert top[0]["id"] is None and top[2]["id"] and top[2]["metadata"]["size"] == 5
    assert [e["name"] for e in files.list("folder")] == ["sub", "c.txt"]
    assert [e["name"] for e in files.list("", {"search": "b"})] == ["b.txt"]
    assert [e["name"] for e in files.list("", {"limit": 1, "offset": 1})] == ["zeta"]
    desc = files.list("", {"sortBy": {"column": "name", "order": "desc"}})
    assert [e["name"] for e in desc] == ["zeta", "folder", "b.txt", "a.txt"]
    v2 = files.list_v2({"prefix": "", "with_delimiter": True, "limit": 3})
    assert [f.key for f in v2.folders] == ["folder/"] and [o.name for o in v2.objects] == ["a.txt", "b.txt"]
    assert v2.hasNext
    rest = files.list_v2({"prefix": "", "with_delimiter": True, "cursor": v2.nextCursor})
    assert [f.key for f in rest.folders] == ["zeta/"] and not rest.hasNext

    assert files.move("a.txt", "moved/a.txt")["message"] == "Successfully moved"
    assert files.download("moved/a.txt") == b"a.txt"
    assert not files.exists("a.txt")
    copied = files.copy("b.txt", "copies/b.txt")
    assert copied["Key"] == f"{name}/copies/b.txt"
    assert files.download("copies/b.txt") == b"b.txt" and files.download("b.txt") == b"b.txt"
    moved = httpx.post(f"{project['url']}/storage/v1/object/move", headers=secret_headers(project),
                       json={"bucketId": name, "sourceKey": "b.txt", "destinationBucket": other,
                             "destinationKey": "from-elsewhere.txt"})
    assert moved.status_code == 200, moved.text
    assert admin.from_(other).download("from-elsewhere.txt") == b"b.txt"
    taken = error_of(lambda: files.copy("copies/b.txt", "folder/c.txt"))
    assert taken.status == "409"

    removed = files.remove(["copies/b.txt", "folder/c.txt", "never/was.txt"])
    assert sorted(r["name"] for r in removed) == ["copies/b.txt", "folder/c.txt"]
    assert not files.exists("folder/c.txt")


def test_signed_urls_valid_expired_and_tampered(project, admin):
    name = f"signed-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(name)
    files = admin.from_(name)
    files.upload("secret/report.pdf", b"%PDF-1.7 report", {"content-type": "application/pdf"})
    files.upload("secret/other.pdf", b"other")
    url = files.create_signed_url("secret/report.pdf", 60)["signedURL"]
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.content == b"%PDF-1.7 report"
    assert fetched.headers["content-type"] == "application/pdf"
    download = files.create_signed_url("secret/report.pdf", 60, {"download": "r.pdf"})["signedURL"]
    assert 'filename="r.pdf"' in httpx.get(download).headers["content-disposition"]
    # Another object's path with this token, a changed token, a token signed
    # with another secret: all refused.
    assert httpx.get(url.replace("report.pdf", "other.pdf")).status_code == 400
    token = url.split("token=")[1]
    head, payload, sig = token.split(".")
    tampered = url.replace(sig, sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB"))
    assert httpx.get(tampered).json()["error"] == "InvalidJWT"
    forged = jwt.encode({"url": f"{name}/secret/report.pdf", "exp": int(time.time()) + 60}, "x" * 32)
    assert httpx.get(url.split("?")[0] + f"?token={forged}").status_code == 400
    short = files.create_signed_url("secret/report.pdf", 1)["signedURL"]
    time.sleep(2.1)
    expired = httpx.get(short)
    assert expired.status_code == 400 and expired.json()["message"] == "jwt expired"
    many = files.create_signed_urls(["secret/report.pdf", "secret/nope.pdf"], 60)
    assert many[0]["error"] is None and httpx.get(many[0]["signedURL"]).content == b"%PDF-1.7 report"
    assert many[1]["signedURL"] is None and many[1]["error"]
    missing = error_of(lambda: files.create_signed_url("secret/nope.pdf", 60))
    assert missing.status == "404"

    upload = files.create_signed_upload_url("uploads/by-link.txt")
    assert files.upload_to_signed_url("uploads/by-link.txt", upload["token"], b"via link").path == "uploads/by-link.txt"
    assert files.download("uploads/by-link.txt") == b"via link"
    again = error_of(lambda: files.upload_to_signed_url("uploads/by-link.txt", upload["token"], b"twice"))
    assert again.status == "409"
    wrong = error_of(lambda: files.upload_to_signed_url("uploads/elsewhere.txt", upload["token"], b"x"))
    assert wrong.status == "400"


def test_public_bucket_reads_without_a_key(project, admin):
    public = f"pub-{uuid.uuid4().hex[:8]}"
    private = f"priv-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(public, options={"public": True})
    admin.create_bucket(private)
    admin.from_(public).upload("logo.svg", b"<svg/>", {"content-type": "image/svg+xml"})
    admin.from_(private).upload("logo.svg", b"<svg/>")
    url = admin.from_(public).get_public_url("logo.svg")
    assert url == f"{project['url']}/storage/v1/object/public/{public}/logo.svg"
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.content == b"<svg/>"
    info = httpx.get(f"{project['url']}/storage/v1/object/info/public/{public}/logo.svg")
    assert info.status_code == 200 and info.json()["size"] == 6
    hidden = httpx.get(f"{project['url']}/storage/v1/object/public/{private}/logo.svg")
    assert hidden.status_code == 400 and hidden.json()["error"] == "Bucket not found"
    # Everything else still needs a key.
    assert httpx.get(f"{project['url']}/storage/v1/object/{public}/logo.svg").status_code == 401


def test_size_and_mime_limits(project, platform, admin):
    name = f"limits-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(name, options={"file_size_limit": 1000, "allowed_mime_types": ["image/*", "text/plain"]})
    files = admin.from_(name)
    files.upload("ok.png", b"x" * 1000, {"content-type": "image/png"})
    big = error_of(lambda: files.upload("big.png", b"x" * 1001, {"content-type": "image/png"}))
    assert (big.status, big.code) == ("413", "Payload too large")
    wrong = error_of(lambda: files.upload("page.html", b"<p>", {"content-type": "text/html"}))
    assert (wrong.status, wrong.code) == ("415", "invalid_mime_type")
    assert not files.exists("big.png") and not files.exists("page.html")
    # A body larger than its declared limit, streamed without a length.
    headers = {**secret_headers(project), "content-type": "text/plain"}
    streamed = httpx.post(f"{project['url']}/storage/v1/object/{name}/stream.txt", headers=headers,
                          content=(b"y" * 100 for _ in range(20)))
    assert streamed.status_code == 400 and streamed.json()["statusCode"] == "413"
    assert not files.exists("stream.txt")
    # The project's limit caps every bucket.
    with platform.client() as api:
        r = api.patch(f"/v1/projects/{project['ref']}/config/storage", json={"fileSizeLimit": 500})
        assert r.status_code == 200, r.text
    time.sleep(0.2)
    try:
        capped = error_of(lambda: files.upload("capped.png", b"x" * 600, {"content-type": "image/png"}))
        assert capped.status == "413"
        too_big = error_of(lambda: admin.create_bucket(f"cap-{uuid.uuid4().hex[:6]}", options={"file_size_limit": 501}))
        assert too_big.status == "400"
    finally:
        with platform.client() as api:
            api.patch(f"/v1/projects/{project['ref']}/config/storage", json={"fileSizeLimit": 52428800})
        time.sleep(0.2)


def test_folder_per_user_policy(platform, project, admin):
    """Supabase's documented policies: each user reads and writes only the
    folder named by their id; anon can do nothing."""
    name = f"avatars-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(name)
    sql(platform, project, f"""
        create policy "own folder read" on storage.objects for select to authenticated
          using (bucket_id = '{name}' and (storage.foldername(name))[1] = auth.uid()::text);
        create policy "own folder insert" on storage.objects for insert to authenticated
          with check (bucket_id = '{name}' and (storage.foldername(name))[1] = auth.uid()::text);
        create policy "own folder update" on storage.objects for update to authenticated
          using (bucket_id = '{name}' and (storage.foldername(name))[1] = auth.uid()::text);
        create policy "own folder delete" on storage.objects for delete to authenticated
          using (bucket_id = '{name}' and (storage.foldername(name))[1] = auth.uid()::text);
    """)
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    a = as_user(project, alice).from_(name)
    b = as_user(project, bob).from_(name)
    a.upload(f"{alice}/me.png", b"alice")
    b.upload(f"{bob}/me.png", b"bob")
    assert a.download(f"{alice}/me.png") == b"alice"
    denied = error_of(lambda: a.upload(f"{bob}/evil.png", b"x"))
    assert (denied.status, denied.code) == ("403", "Unauthorized")
    assert "row-level security" in denied.message
    assert error_of(lambda: a.download(f"{bob}/me.png")).status == "404"
    assert [e["name"] for e in a.list(alice)] == ["me.png"] and a.list(bob) == []
    assert a.remove([f"{bob}/me.png"]) == []
    assert b.download(f"{bob}/me.png") == b"bob"
    owner = sql(platform, project, f"select owner_id, owner::text from storage.objects where name = '{alice}/me.png'")
    assert owner == [{"owner_id": alice, "owner": alice}]
    anon = create_client(project["url"], project["publishable_key"]).storage.from_(name)
    assert error_of(lambda: anon.upload("x.png", b"x")).status == "403"
    assert anon.list() == []
    # No bytes were stored for refused uploads.
    objects = platform.data_dir / "storage" / project["ref"] / name
    stored = sorted(p.relative_to(objects).parts[0] for p in objects.rglob("*") if p.is_file())
    assert stored == sorted([alice, bob])


def test_keys_and_tokens(project, admin):
    name = f"tok-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(name)
    url = f"{project['url']}/storage/v1/object/{name}/x.txt"
    bad = httpx.get(url, headers={"apikey": project["publishable_key"],
                                  "Authorization": f"Bearer {user_token(project, 'u', ttl=-100)}"})
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidJWT"
    other = jwt.encode({"role": "service_role", "exp": int(time.time()) + 60}, "y" * 40)
    forged = httpx.get(url, headers={"apikey": project["publishable_key"], "Authorization": f"Bearer {other}"})
    assert forged.status_code in (400, 401)
