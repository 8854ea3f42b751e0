"""`supa-storage` standalone, configured only by Supabase Storage's
environment, as it would replace the storage container of Supabase's
docker-compose: it creates the storage schema in an empty database, keeps
bytes on the filesystem (under `FILE_STORAGE_BACKEND_PATH/TENANT_ID`) or in
a real S3-compatible server (moto's server mode), and answers storage3
pointed at it directly. Deleting a project through the platform deletes
its objects."""

import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import httpx
import jwt
import pytest
from storage3 import SyncStorageClient
from storage3.exceptions import StorageApiError
from supabase import create_client

from conftest import moto_s3, ROOT, create_project, empty_database, free_port, stop, wait_for_port

SUPA_STORAGE = ROOT / "target" / "debug" / "supa-storage"
SECRET = "standalone-storage-secret-" + "x" * 16


@pytest.fixture(scope="module")
def database(platform):
    """An empty database whose owner may act as the API roles, as
    Supabase's `supabase_storage_admin` may."""
    return empty_database(platform, "storage", "anon", "authenticated", "service_role")


@pytest.fixture(scope="module")
def s3_server():
    with moto_s3("supa-objects") as server:
        yield server


def token(role, sub=None):
    now = int(time.time())
    claims = {"role": role, "iat": now, "exp": now + 600}
    if sub:
        claims["sub"] = sub
    return jwt.encode(claims, SECRET, algorithm="HS256")


ANON_KEY = jwt.encode({"role": "anon", "iat": 1_700_000_000, "exp": 4_000_000_000}, SECRET, algorithm="HS256")


def start(database, extra):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STORAGE_", "FILE_", "AWS_", "DATABASE_", "SERVER_"))}
    env.update({"DATABASE_URL": database, "PGRST_JWT_SECRET": SECRET, "ANON_KEY": ANON_KEY,
                "SERVICE_KEY": token("service_role"), "FILE_SIZE_LIMIT": "1000000", "TENANT_ID": "stub",
                "REGION": "local", "IMAGE_TRANSFORMATION_ENABLED": "true", "SERVER_HOST": "127.0.0.1",
                "SERVER_PORT": str(port), **extra})
    proc = subprocess.Popen([str(SUPA_STORAGE)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_port(port, proc, "supa-storage")
    return proc, f"http://127.0.0.1:{port}"


def client(url, role="service_role", sub=None):
    t = token(role, sub)
    return SyncStorageClient(url + "/", {"apikey": t, "Authorization": f"Bearer {t}"})


def exercise(url, bucket):
    """The same calls a Supabase app makes, through storage3."""
    admin = client(url)
    admin.create_bucket(bucket)
    files = admin.from_(bucket)
    files.upload("a/hello.txt", b"hello standalone", {"content-type": "text/plain"})
    assert files.download("a/hello.txt") == b"hello standalone"
    assert [e["name"] for e in files.list("a")] == ["hello.txt"]
    big = os.urandom(700_000)
    files.upload("a/big.bin", big)
    assert files.download("a/big.bin") == big
    too_big = pytest.raises(StorageApiError, files.upload, "a/huge.bin", b"x" * 1_000_001)
    assert too_big.value.status == "413"
    # RLS: anon sees nothing without a policy.
    assert client(url, "anon").from_(bucket).list("a") == []
    with pytest.raises(StorageApiError):
        client(url, "anon").from_(bucket).upload("a/anon.txt", b"x")
    signed = files.create_signed_url("a/hello.txt", 60)["signedURL"]
    assert httpx.get(signed).content == b"hello standalone"


def test_file_backend_and_restart(database):
    root = Path(tempfile.mkdtemp(prefix="supa-storage-files-"))
    extra = {"STORAGE_BACKEND": "file", "FILE_STORAGE_BACKEND_PATH": str(root)}
    proc, url = start(database, extra)
    try:
        exercise(url, "files")
        stored = [p.relative_to(root).parts[:3] for p in root.rglob("*") if p.is_file()]
        assert sorted(set(stored)) == [("stub", "files", "a")]
    finally:
        stop(proc)
    # A restart finds the schema and the objects where they were.
    proc, url = start(database, extra)
    try:
        assert client(url).from_("files").download("a/hello.txt") == b"hello standalone"
    finally:
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def test_s3_backend_against_a_real_s3_server(database, s3_server):
    endpoint, s3 = s3_server
    proc, url = start(database, {"STORAGE_BACKEND": "s3", "STORAGE_S3_BUCKET": "supa-objects",
                                 "STORAGE_S3_ENDPOINT": endpoint, "STORAGE_S3_FORCE_PATH_STYLE": "true",
                                 "STORAGE_S3_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test",
                                 "AWS_SECRET_ACCESS_KEY": "test"})
    try:
        exercise(url, "in-s3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="supa-objects", Prefix="stub/in-s3/")["Contents"]]
        assert len(keys) == 2 and all(k.startswith(("stub/in-s3/a/hello.txt/", "stub/in-s3/a/big.bin/")) for k in keys)
        # A replaced object's old version is gone from the backend.
        client(url).from_("in-s3").upload("a/hello.txt", b"v2", {"upsert": "true"})
        after = [o["Key"] for o in s3.list_objects_v2(Bucket="supa-objects", Prefix="stub/in-s3/a/hello.txt/")["Contents"]]
        assert len(after) == 1 and after[0] not in keys
        client(url).from_("in-s3").remove(["a/big.bin"])
        left = s3.list_objects_v2(Bucket="supa-objects", Prefix="stub/in-s3/a/big.bin/")
        assert left.get("KeyCount", 0) == 0
    finally:
        stop(proc)


def test_missing_settings_are_named(database):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_JWT", "PGRST_", "DATABASE_"))}
    env["DATABASE_URL"] = database
    done = subprocess.run([str(SUPA_STORAGE)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "AUTH_JWT_SECRET" in done.stderr


def test_deleting_a_project_deletes_its_objects(platform):
    project = create_project(platform, "storage-delete")
    admin = create_client(project["url"], project["secret_key"]).storage
    admin.create_bucket("doomed")
    admin.from_("doomed").upload("x/y.txt", b"bytes")
    objects = platform.data_dir / "storage" / project["ref"]
    assert any(p.is_file() for p in objects.rglob("*"))
    with platform.client() as api:
        assert api.delete(f"/v1/projects/{project['ref']}").status_code == 200
    assert not any(p.is_file() for p in objects.rglob("*")) if objects.exists() else True


def test_resumable_uploads_on_s3_and_their_expiry(database, s3_server):
    """TUS pieces and state kept in a real S3 server; an upload older than
    `TUS_URL_EXPIRY_MS` answers 410 Gone."""
    endpoint, s3 = s3_server
    proc, url = start(database, {"STORAGE_BACKEND": "s3", "STORAGE_S3_BUCKET": "supa-objects",
                                 "STORAGE_S3_ENDPOINT": endpoint, "STORAGE_S3_FORCE_PATH_STYLE": "true",
                                 "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                                 "FILE_SIZE_LIMIT": str(50 * 1024 * 1024), "TUS_URL_EXPIRY_MS": "3000"})
    t = token("service_role")
    tus = {"Authorization": f"Bearer {t}", "Tus-Resumable": "1.0.0"}

    def create(name, length):
        meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                        for k, v in {"bucketName": "tus", "objectName": name}.items())
        r = httpx.post(f"{url}/upload/resumable", headers={**tus, "Upload-Length": str(length),
                                                          "Upload-Metadata": meta})
        assert r.status_code == 201, r.text
        return r.headers["location"]

    def patch(location, offset, body):
        return httpx.patch(location, content=body, timeout=60, headers={
            **tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})

    try:
        client(url).create_bucket("tus")
        data = os.urandom(9 * 1024 * 1024 + 5)
        location = create("s3/big.bin", len(data))
        assert location.startswith(f"{url}/upload/resumable/")
        assert patch(location, 0, data[:5_000_000]).status_code == 204
        pending = s3.list_objects_v2(Bucket="supa-objects", Prefix="stub/%7Euploads/")
        assert pending["KeyCount"] == 2  # the state and one piece
        assert patch(location, 5_000_000, data[5_000_000:]).status_code == 204
        assert client(url).from_("tus").download("s3/big.bin") == data
        assert s3.list_objects_v2(Bucket="supa-objects", Prefix="stub/%7Euploads/")["KeyCount"] == 0

        stale = create("s3/stale.bin", 10)
        time.sleep(3.5)
        assert httpx.head(stale, headers=tus).status_code == 410
        assert patch(stale, 0, b"0123456789").status_code == 410
    finally:
        stop(proc)


def test_the_s3_protocol_with_supabases_access_key_variables(database):
    """`S3_PROTOCOL_ACCESS_KEY_ID`/`_SECRET` sign S3 requests to `/s3`
    (Supabase's docker-compose names); `ANON_KEY` with a user's JWT as
    session token acts as that user."""
    from botocore.config import Config
    from botocore.exceptions import ClientError

    root = Path(tempfile.mkdtemp(prefix="supa-storage-s3-"))
    key_id, secret = "625729a08b95bf1b7ff351a663f3a23c", "850181e4652dd023b7a98c58ae0d2d34"
    proc, url = start(database, {"STORAGE_BACKEND": "file", "FILE_STORAGE_BACKEND_PATH": str(root),
                                 "FILE_SIZE_LIMIT": str(50 * 1024 * 1024),
                                 "S3_PROTOCOL_ACCESS_KEY_ID": key_id, "S3_PROTOCOL_ACCESS_KEY_SECRET": secret})

    def s3(key, sec, session=None):
        return boto3.client("s3", endpoint_url=f"{url}/s3", region_name="local", aws_access_key_id=key,
                            aws_secret_access_key=sec, aws_session_token=session,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    try:
        admin = s3(key_id, secret)
        admin.create_bucket(Bucket="s3-standalone")
        admin.put_object(Bucket="s3-standalone", Key="a/b.txt", Body=b"over s3")
        assert client(url).from_("s3-standalone").download("a/b.txt") == b"over s3"
        data = os.urandom(6 * 1024 * 1024)
        up = admin.create_multipart_upload(Bucket="s3-standalone", Key="m.bin")["UploadId"]
        e1 = admin.upload_part(Bucket="s3-standalone", Key="m.bin", UploadId=up, PartNumber=1,
                               Body=data[:5 * 1024 * 1024])["ETag"]
        e2 = admin.upload_part(Bucket="s3-standalone", Key="m.bin", UploadId=up, PartNumber=2,
                               Body=data[5 * 1024 * 1024:])["ETag"]
        admin.complete_multipart_upload(Bucket="s3-standalone", Key="m.bin", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        assert admin.get_object(Bucket="s3-standalone", Key="m.bin")["Body"].read() == data
        with pytest.raises(ClientError) as wrong:
            s3(key_id, "0" * 32).list_buckets()
        assert wrong.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
        # Session mode: anon key as secret, the JWT decides (no policy: nothing).
        user = s3("standalonestorageone", ANON_KEY, token("authenticated", "6c1c2c62-1f5a-4f43-9a1b-2f5f5a0c2d11"))
        assert user.list_objects_v2(Bucket="s3-standalone")["KeyCount"] == 0
    finally:
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)
