"""Bad input to `/storage/v1` gets Supabase Storage's error shape and the
right status, never a 500 or a file outside the bucket: path traversal in
every spelling, NUL and control characters, huge headers, a body shorter or
longer than its `Content-Length`, malformed JSON, and names in every
Unicode script the server accepts."""

import socket
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from supabase import create_client

from conftest import create_project


@pytest.fixture(scope="module")
def project(platform):
    return create_project(platform, "storage-input")


@pytest.fixture(scope="module")
def bucket(project):
    name = f"in-{uuid.uuid4().hex[:8]}"
    create_client(project["url"], project["secret_key"]).storage.create_bucket(name)
    return name


def headers(project, **extra):
    return {"apikey": project["secret_key"], "Authorization": f"Bearer {project['secret_key']}", **extra}


@pytest.mark.parametrize("path", [
    "../escape.txt", "a/../../escape.txt", "%2e%2e/escape.txt", "a/%2E%2E/%2e%2e/x", "..%2fescape",
    "a//b.txt", "%2e/a.txt", "a/%00nul.txt", "a/line%0Abreak.txt", "%2Fabsolute.txt",
])
def test_traversal_and_control_characters_are_invalid_keys(platform, project, bucket, path):
    url = f"{project['url']}/storage/v1/object/{bucket}/{path}"
    r = httpx.post(url, content=b"x", headers=headers(project, **{"content-type": "text/plain"}))
    assert r.status_code in (400, 404, 405), (path, r.status_code, r.text)
    assert "message" in r.json(), r.text
    # Nothing was written anywhere, inside or outside the project's folder.
    root = platform.data_dir / "storage"
    assert not any("escape" in p.name or "absolute" in p.name for p in root.rglob("*"))


@pytest.mark.parametrize("name", [
    "латиница/файл.txt", "中文/文件.txt", "日本語/ファイル.txt", "한국어.txt", "عربي/ملف.txt",
    "עברית.txt", "हिन्दी.txt", "ελληνικά.txt", "emoji 🎉 (1).txt", "mixed-Ünïcödé_ß.txt",
    "S3 safe !-_.*'()&$@=;:+,? chars.txt",
])
def test_names_in_every_script_round_trip(project, bucket, name):
    files = create_client(project["url"], project["secret_key"]).storage.from_(bucket)
    files.upload(name, name.encode())
    assert files.download(name) == name.encode()
    folder = name.rsplit("/", 1)[0] if "/" in name else ""
    listed = [e["name"] for e in files.list(folder)]
    assert name.rsplit("/", 1)[-1] in listed


def raw_request(project, request: bytes) -> bytes:
    gateway = urlsplit(project["url"])
    with socket.create_connection((gateway.hostname, gateway.port), timeout=10) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_a_body_shorter_than_its_length_stores_nothing(project, bucket):
    path = f"/project/{project['ref']}/storage/v1/object/{bucket}/short.txt"
    request = (f"POST {path} HTTP/1.1\r\nHost: x\r\napikey: {project['secret_key']}\r\n"
               f"Authorization: Bearer {project['secret_key']}\r\ncontent-type: text/plain\r\n"
               f"content-length: 1000\r\n\r\n").encode() + b"only a little"
    raw_request(project, request)
    files = create_client(project["url"], project["secret_key"]).storage.from_(bucket)
    assert not files.exists("short.txt")


def test_huge_headers_and_bad_json(project, bucket):
    try:
        huge = httpx.get(f"{project['url']}/storage/v1/bucket",
                         headers=headers(project, **{"x-filler": "a" * 1_000_000}))
        assert huge.status_code in (400, 431), huge.status_code
    except httpx.RemoteProtocolError:
        pass  # the connection closed on the oversized head: refused, not served
    for body in [b"{", b"[]", b'{"name": 7}', b'{"name": "x", "public": "yes"}']:
        r = httpx.post(f"{project['url']}/storage/v1/bucket", content=body,
                       headers=headers(project, **{"content-type": "application/json"}))
        assert r.status_code == 400 and r.json()["statusCode"] == "400", (body, r.text)
    r = httpx.post(f"{project['url']}/storage/v1/object/sign/{bucket}/x.txt", json={"expiresIn": "soon"},
                   headers=headers(project))
    assert r.status_code == 400 and "expiresIn" in r.json()["message"]
    r = httpx.post(f"{project['url']}/storage/v1/object/{bucket}/meta.txt", content=b"x",
                   headers=headers(project, **{"x-metadata": "not base64 json"}))
    assert r.status_code == 400 and r.json()["statusCode"] == "400"
    r = httpx.request("DELETE", f"{project['url']}/storage/v1/object/{bucket}", json={"prefixes": []},
                     headers=headers(project))
    assert r.status_code == 400
    r = httpx.get(f"{project['url']}/storage/v1/no/such/route", headers=headers(project))
    assert r.status_code == 404 and r.json()["statusCode"] == "404"
