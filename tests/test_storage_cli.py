"""`supa storage ls|cp|rm` against the platform: files up and down (a
large one streamed), listings one level deep, removal, and clear errors."""

import hashlib
import os
import uuid

import pytest
from supabase import create_client

from conftest import create_project


@pytest.fixture(scope="module")
def project(platform):
    return create_project(platform, "storage-cli")


def test_copy_list_and_remove(platform, project, tmp_path):
    bucket = f"cli-{uuid.uuid4().hex[:8]}"
    admin = create_client(project["url"], project["secret_key"]).storage
    admin.create_bucket(bucket)
    ref = project["ref"]
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024 + 3))
    small = tmp_path / "note.txt"
    small.write_text("hello from the cli")

    done = platform.cli("storage", "cp", ref, str(big), f"ss:///{bucket}/data/")
    assert "Copied 12582915 bytes" in done.stderr
    platform.cli("storage", "cp", ref, str(small), f"ss:///{bucket}/data/notes/n.txt")
    assert f"{bucket}/" in platform.cli("storage", "ls", ref).stdout.split()
    assert platform.cli("storage", "ls", ref, f"ss:///{bucket}/data").stdout.split() == ["notes/", "big.bin"]
    assert admin.from_(bucket).download("data/notes/n.txt") == b"hello from the cli"
    assert admin.from_(bucket).info("data/notes/n.txt")["content_type"] == "text/plain"

    back = tmp_path / "back"
    back.mkdir()
    platform.cli("storage", "cp", ref, f"ss:///{bucket}/data/big.bin", str(back))
    assert hashlib.sha256((back / "big.bin").read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()

    removed = platform.cli("storage", "rm", ref, f"ss:///{bucket}/data/big.bin", f"ss:///{bucket}/data/nothing")
    assert "Removed 1 of 2 objects" in removed.stderr
    assert platform.cli("storage", "ls", ref, f"ss:///{bucket}/data").stdout.split() == ["notes/"]


def test_errors_are_clear(platform, project, tmp_path):
    ref = project["ref"]
    missing = platform.cli("storage", "cp", ref, "ss:///no-such-bucket/x.txt", str(tmp_path), check=False)
    assert missing.returncode != 0 and "404" in missing.stderr
    both_local = platform.cli("storage", "cp", ref, "a.txt", "b.txt", check=False)
    assert both_local.returncode != 0 and "ss:///bucket/path" in both_local.stderr
    no_file = platform.cli("storage", "cp", ref, str(tmp_path / "nope"), "ss:///b/x", check=False)
    assert no_file.returncode != 0 and "cannot open" in no_file.stderr
    assert not list(tmp_path.glob("*.partial"))
