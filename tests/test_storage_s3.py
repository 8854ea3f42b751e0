"""The S3 protocol at /storage/v1/s3 through the gateway, with boto3:
buckets, objects (ranges, metadata, listing with delimiters and pages,
copy, batch delete), a 20 MB multipart upload, presigned URLs, access keys
made and revoked through the Management API, a user's JWT as session
token under row level security, and S3's XML errors for bad signatures.
Objects written through S3 and through the REST API are the same."""

import hashlib
import os
import time
import uuid

import boto3
import botocore
import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from supabase import create_client

from conftest import create_project
from test_storage import sql, user_token

MB = 1024 * 1024


@pytest.fixture(scope="module")
def project(platform):
    return create_project(platform, "s3")


def new_credential(platform, project, description="tests"):
    with platform.client() as api:
        r = api.post(f"/v1/projects/{project['ref']}/storage/s3-credentials", json={"description": description})
        assert r.status_code == 201, r.text
        return r.json()


@pytest.fixture(scope="module")
def credential(platform, project):
    return new_credential(platform, project)


def endpoint(project):
    return f"{project['url']}/storage/v1/s3"


def client(project, key, secret, token=None):
    return boto3.client(
        "s3", endpoint_url=endpoint(project), region_name="local",
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def s3(project, credential):
    return client(project, credential["access_key"], credential["secret_key"])


def code_of(call):
    with pytest.raises(ClientError) as raised:
        call()
    err = raised.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_credentials_are_shown_once_and_listed_without_secrets(platform, project, credential):
    assert len(credential["access_key"]) == 32 and len(credential["secret_key"]) == 64
    with platform.client() as api:
        listed = api.get(f"/v1/projects/{project['ref']}/storage/s3-credentials").json()["data"]
    mine = [c for c in listed if c["id"] == credential["id"]]
    assert mine and mine[0]["access_key"] == credential["access_key"] and "secret_key" not in mine[0]
    assert mine[0]["description"] == "tests"


def test_buckets(s3):
    name = f"s3b-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    assert code_of(lambda: s3.create_bucket(Bucket=name)) == ("BucketAlreadyExists", 409)
    s3.put_object(Bucket=name, Key="x", Body=b"x")
    assert code_of(lambda: s3.delete_bucket(Bucket=name)) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=name, Key="x")
    s3.delete_bucket(Bucket=name)
    assert code_of(lambda: s3.head_bucket(Bucket=name))[1] == 404
    assert code_of(lambda: s3.list_objects_v2(Bucket=name)) == ("NoSuchBucket", 404)
    assert code_of(lambda: s3.create_bucket(Bucket="a" * 101)) == ("InvalidBucketName", 400)


def test_objects_ranges_metadata_copy_and_delete(project, s3):
    bucket = f"s3o-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(100_000)
    key = "docs/ünïcode + space & more.bin"
    put = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-test",
                        Metadata={"owner": "ann"}, CacheControl="max-age=60")
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == body
    assert (got["ContentType"], got["Metadata"], got["CacheControl"]) == ("application/x-test", {"owner": "ann"}, "max-age=60")
    part = s3.get_object(Bucket=bucket, Key=key, Range="bytes=10-19")
    assert part["Body"].read() == body[10:20] and part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 10-19/{len(body)}"
    assert code_of(lambda: s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={len(body)}-"))[1] == 416
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(body) and head["ETag"] == put["ETag"]
    assert code_of(lambda: s3.head_object(Bucket=bucket, Key="nope"))[1] == 404
    assert code_of(lambda: s3.get_object(Bucket=bucket, Key="nope")) == ("NoSuchKey", 404)

    # The same object through the REST API, and one written there read here.
    admin = create_client(project["url"], project["secret_key"]).storage.from_(bucket)
    assert admin.download(key) == body
    admin.upload("from-rest.txt", b"rest bytes", {"content-type": "text/plain"})
    assert s3.get_object(Bucket=bucket, Key="from-rest.txt")["Body"].read() == b"rest bytes"

    copied = s3.copy_object(Bucket=bucket, Key="copies/c.bin", CopySource={"Bucket": bucket, "Key": key})
    assert copied["CopyObjectResult"]["ETag"] == put["ETag"]
    assert s3.get_object(Bucket=bucket, Key="copies/c.bin")["Body"].read() == body
    s3.delete_object(Bucket=bucket, Key="copies/c.bin")
    s3.delete_object(Bucket=bucket, Key="copies/never-was")  # S3: no error
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}, {"Key": "from-rest.txt"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == sorted([key, "from-rest.txt"])
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_listing_with_prefixes_delimiters_and_pages(s3):
    bucket = f"s3l-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    keys = ["a.txt", "b.txt", "dir/one.txt", "dir/two.txt", "dir/sub/three.txt", "other/x.txt", "z+plus.txt"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    flat = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in flat["Contents"]] == sorted(keys)
    assert all(o["Size"] == len(o["Key"]) for o in flat["Contents"])
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a.txt", "b.txt", "z+plus.txt"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["dir/", "other/"]
    inside = s3.list_objects_v2(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in inside["Contents"]] == ["dir/one.txt", "dir/two.txt"]
    assert [p["Prefix"] for p in inside["CommonPrefixes"]] == ["dir/sub/"]
    seen, token = [], None
    while True:
        args = {"Bucket": bucket, "MaxKeys": 2, "Delimiter": "/"}
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        seen += [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert sorted(seen) == ["a.txt", "b.txt", "dir/", "other/", "z+plus.txt"]
    paginated = [o["Key"] for p in s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})
                 for o in p.get("Contents", [])]
    assert paginated == sorted(keys)
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="dir/two.txt")
    assert [o["Key"] for o in after["Contents"]] == ["other/x.txt", "z+plus.txt"]


def test_a_20_mb_multipart_upload(project, s3, tmp_path):
    bucket = f"s3m-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    data = os.urandom(20 * MB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    s3.upload_file(str(path), bucket, "big/file.bin",
                   Config=TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=8 * MB))
    head = s3.head_object(Bucket=bucket, Key="big/file.bin")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-3"')
    md5s = b"".join(hashlib.md5(data[i:i + 8 * MB]).digest() for i in range(0, len(data), 8 * MB))
    assert head["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
    out = tmp_path / "back.bin"
    s3.download_file(bucket, "big/file.bin", str(out))
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    # By hand: parts listed, refused completions, abort.
    up = s3.create_multipart_upload(Bucket=bucket, Key="manual.bin", ContentType="text/plain")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="manual.bin", UploadId=up, PartNumber=1, Body=b"a" * (5 * MB))["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="manual.bin", UploadId=up, PartNumber=2, Body=b"b" * 10)["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="manual.bin", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MB), (2, 10)]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [up]
    wrong = {"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"0000"'}]}
    assert code_of(lambda: s3.complete_multipart_upload(Bucket=bucket, Key="manual.bin", UploadId=up,
                                                        MultipartUpload=wrong)) == ("InvalidPart", 400)
    order = {"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]}
    assert code_of(lambda: s3.complete_multipart_upload(Bucket=bucket, Key="manual.bin", UploadId=up,
                                                        MultipartUpload=order)) == ("InvalidPartOrder", 400)
    small = {"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 3, "ETag": e2}]}
    s3.upload_part(Bucket=bucket, Key="manual.bin", UploadId=up, PartNumber=3, Body=b"b" * 10)
    assert code_of(lambda: s3.complete_multipart_upload(Bucket=bucket, Key="manual.bin", UploadId=up,
                                                        MultipartUpload=small)) == ("EntityTooSmall", 400)
    done = s3.complete_multipart_upload(Bucket=bucket, Key="manual.bin", UploadId=up,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert done["ETag"].endswith('-2"')
    got = s3.get_object(Bucket=bucket, Key="manual.bin")
    assert got["ContentLength"] == 5 * MB + 10 and got["ContentType"] == "text/plain"
    assert code_of(lambda: s3.list_parts(Bucket=bucket, Key="manual.bin", UploadId=up)) == ("NoSuchUpload", 404)
    aborted = s3.create_multipart_upload(Bucket=bucket, Key="aborted.bin")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="aborted.bin", UploadId=aborted, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket=bucket, Key="aborted.bin", UploadId=aborted)
    assert code_of(lambda: s3.head_object(Bucket=bucket, Key="aborted.bin"))[1] == 404


def test_presigned_urls(project, s3):
    bucket = f"s3p-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="p.txt", Body=b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p.txt"}, ExpiresIn=60)
    assert httpx.get(url).content == b"presigned"
    tampered = httpx.get(url.replace("p.txt", "q.txt"))
    assert tampered.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in tampered.content
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up.txt"}, ExpiresIn=60)
    assert httpx.put(put_url, content=b"put by url").status_code == 200
    assert s3.get_object(Bucket=bucket, Key="up.txt")["Body"].read() == b"put by url"


def test_bad_signatures_get_s3_error_xml(platform, project, credential):
    wrong = client(project, credential["access_key"], "0" * 64)
    assert code_of(wrong.list_buckets) == ("SignatureDoesNotMatch", 403)
    unknown = client(project, "f" * 32, credential["secret_key"])
    assert code_of(unknown.list_buckets) == ("InvalidAccessKeyId", 403)
    unsigned = httpx.get(endpoint(project))
    assert unsigned.status_code == 403
    assert unsigned.headers["content-type"] == "application/xml"
    assert unsigned.text.startswith('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>')
    garbage = httpx.get(endpoint(project), headers={"Authorization": "AWS4-HMAC-SHA256 nonsense",
                                                    "x-amz-date": "20261202T000000Z"})
    assert garbage.status_code == 400 and b"AuthorizationHeaderMalformed" in garbage.content

    # A body that is not the one signed: the signature holds, the digest not.
    bucket = f"s3x-{uuid.uuid4().hex[:8]}"
    s3 = client(project, credential["access_key"], credential["secret_key"])
    s3.create_bucket(Bucket=bucket)
    url = f"{endpoint(project)}/{bucket}/swapped.txt"
    req = AWSRequest(method="PUT", url=url, data=b"signed body",
                     headers={"x-amz-content-sha256": hashlib.sha256(b"signed body").hexdigest()})
    SigV4Auth(Credentials(credential["access_key"], credential["secret_key"]), "s3", "local").add_auth(req)
    swapped = httpx.put(url, content=b"other body", headers=dict(req.headers))
    assert swapped.status_code == 400 and b"XAmzContentSHA256Mismatch" in swapped.content
    assert code_of(lambda: s3.head_object(Bucket=bucket, Key="swapped.txt"))[1] == 404
    honest = httpx.put(url, content=b"signed body", headers=dict(req.headers))
    assert honest.status_code == 200, honest.text

    # A revoked key stops working at once.
    spare = new_credential(platform, project, "spare")
    spare_client = client(project, spare["access_key"], spare["secret_key"])
    spare_client.list_buckets()
    with platform.client() as api:
        assert api.delete(f"/v1/projects/{project['ref']}/storage/s3-credentials/{spare['id']}").status_code == 200
    time.sleep(0.3)
    assert code_of(spare_client.list_buckets) == ("InvalidAccessKeyId", 403)


def test_session_tokens_act_as_the_user_under_rls(platform, project, s3):
    bucket = f"s3u-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    sql(platform, project, f"""
        create policy "s3 own read" on storage.objects for select to authenticated
          using (bucket_id = '{bucket}' and (storage.foldername(name))[1] = auth.uid()::text);
        create policy "s3 own insert" on storage.objects for insert to authenticated
          with check (bucket_id = '{bucket}' and (storage.foldername(name))[1] = auth.uid()::text);
        create policy "s3 own update" on storage.objects for update to authenticated
          using (bucket_id = '{bucket}' and (storage.foldername(name))[1] = auth.uid()::text);
    """)
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    as_alice = client(project, project["ref"], project["publishable_key"], user_token(project, alice))
    s3.put_object(Bucket=bucket, Key=f"{bob}/secret.txt", Body=b"bob's")
    as_alice.put_object(Bucket=bucket, Key=f"{alice}/mine.txt", Body=b"alice's")
    assert as_alice.get_object(Bucket=bucket, Key=f"{alice}/mine.txt")["Body"].read() == b"alice's"
    assert code_of(lambda: as_alice.put_object(Bucket=bucket, Key=f"{bob}/evil.txt", Body=b"x"))[1] == 403
    assert code_of(lambda: as_alice.get_object(Bucket=bucket, Key=f"{bob}/secret.txt"))[1] == 404
    assert [o["Key"] for o in as_alice.list_objects_v2(Bucket=bucket).get("Contents", [])] == [f"{alice}/mine.txt"]
    wrong_key = client(project, project["ref"], "sb_publishable_wrong", user_token(project, alice))
    assert code_of(wrong_key.list_buckets) == ("SignatureDoesNotMatch", 403)
    expired = client(project, project["ref"], project["publishable_key"], user_token(project, alice, ttl=-60))
    assert code_of(expired.list_buckets)[1] == 400


def test_the_feature_switch(platform, project, s3):
    with platform.client() as api:
        r = api.patch(f"/v1/projects/{project['ref']}/config/storage",
                      json={"features": {"s3Protocol": {"enabled": False}}})
        assert r.status_code == 200, r.text
        try:
            time.sleep(0.3)
            assert code_of(s3.list_buckets) == ("AccessDenied", 403)
        finally:
            api.patch(f"/v1/projects/{project['ref']}/config/storage",
                      json={"features": {"s3Protocol": {"enabled": True}}})
    time.sleep(0.3)
    s3.list_buckets()
