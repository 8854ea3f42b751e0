"""API keys from the bindings, checked against an independent Python
implementation of DESIGN section 2 (hashlib + base64)."""

import base64
import hashlib
import random
import string

import pytest

import supa
from keyspec import PREFIXES, b64url, expected_checksum

HOSTED_REF = "runvpplxfmoostzzpjco"
HOSTED_KEY = "sb_publishable_mCQAAeREfJckZHeJE7CpuA_rcYLuPw-"

def random_ref(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(20))


def test_the_hosted_key_validates_against_its_ref():
    result = supa.validate_key(HOSTED_REF, HOSTED_KEY)
    assert result.kind == "publishable"
    assert result.checksum_verified
    assert expected_checksum(HOSTED_REF, "sb_publishable_", HOSTED_KEY[15:37]) == HOSTED_KEY[-8:]


@pytest.mark.parametrize("kind", ["publishable", "secret"])
def test_generated_keys_carry_the_checksum_hashlib_computes(kind):
    rng = random.Random(20261122)
    prefix = PREFIXES[kind]
    for _ in range(200):
        ref = random_ref(rng)
        key = supa.generate_key(ref, kind)
        assert key.startswith(prefix)
        # Read from the right: the random part and the checksum may contain "_".
        random_part, sep, checksum = key[len(prefix):-9], key[-9], key[-8:]
        assert sep == "_" and len(random_part) == 22
        # 22 chars are 16 bytes of unpadded base64url.
        assert len(base64.urlsafe_b64decode(random_part + "==")) == 16
        assert checksum == expected_checksum(ref, prefix, random_part)
        assert supa.validate_key(ref, key).checksum_verified


def test_a_key_fails_against_every_other_project():
    rng = random.Random(7)
    for _ in range(50):
        other = random_ref(rng)
        if other == HOSTED_REF:
            continue
        with pytest.raises(supa.SupaError) as err:
            supa.validate_key(other, HOSTED_KEY)
        assert "checksum does not match" in str(err.value)


def test_keys_with_a_forged_checksum_are_rejected():
    random_part = b64url(bytes(range(16)))
    forged = f"sb_secret_{random_part}_AAAAAAAA"
    with pytest.raises(supa.SupaError.InvalidKey):
        supa.validate_key(HOSTED_REF, forged)
    honest = f"sb_secret_{random_part}_{expected_checksum(HOSTED_REF, 'sb_secret_', random_part)}"
    assert supa.validate_key(HOSTED_REF, honest).kind == "secret"


@pytest.mark.parametrize(
    "key, reason",
    [
        ("", "empty"),
        ("sb_anon_mCQAAeREfJckZHeJE7CpuA_rcYLuPw-", "does not start with"),
        ("sb_publishable_short", "wrong length"),
        ("eyJhbGciOiJIUzI1NiJ9.e30.sig", "does not start with"),
    ],
)
def test_malformed_keys_raise_with_the_reason(key, reason):
    with pytest.raises(supa.SupaError.InvalidKey) as err:
        supa.validate_key(HOSTED_REF, key)
    assert reason in str(err.value)


def test_legacy_keys_are_hash_lookup_only():
    legacy = "sb_secret_" + "".join(random.Random(3).choices(string.ascii_letters + string.digits, k=32))
    result = supa.validate_key(HOSTED_REF, legacy)
    assert result.kind == "secret"
    assert not result.checksum_verified


def test_hash_is_sha256_of_the_whole_key():
    for key in [HOSTED_KEY, supa.generate_key(HOSTED_REF, "secret"), "", "ünïcode"]:
        assert supa.hash_key(key) == hashlib.sha256(key.encode()).hexdigest()


def test_consumer_names():
    assert supa.consumer_name(HOSTED_REF, "publishable") == f"{HOSTED_REF}--anon"
    assert supa.consumer_name(HOSTED_REF, "secret") == f"{HOSTED_REF}--service_role"


@pytest.mark.parametrize("ref", ["", "short", "RUNVPPLXFMOOSTZZPJCO", "runvpplxfmoostzzpjc1"])
def test_bad_refs_raise_with_the_reason(ref):
    with pytest.raises(supa.SupaError.InvalidArgument) as err:
        supa.generate_key(ref, "secret")
    assert "project ref" in str(err.value)
