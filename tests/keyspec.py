"""DESIGN section 2, written independently of the Rust code: what a valid
key for a project looks like."""

import base64
import hashlib
import re

PREFIXES = {"publishable": "sb_publishable_", "secret": "sb_secret_"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def expected_checksum(ref: str, prefix: str, random_part: str) -> str:
    digest = hashlib.sha256(f"{ref}|{prefix}{random_part}".encode()).digest()
    return b64url(digest)[:8]


def is_valid_key(ref: str, kind: str, key: str) -> bool:
    prefix = PREFIXES[kind]
    m = re.fullmatch(re.escape(prefix) + r"([A-Za-z0-9_-]{22})_([A-Za-z0-9_-]{8})", key)
    return bool(m) and m.group(2) == expected_checksum(ref, prefix, m.group(1))
