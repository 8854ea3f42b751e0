"""JWTs from the bindings, checked against PyJWT, an independent HS256
implementation, in both directions."""

import json
import time

import jwt as pyjwt
import pytest

import supa

SECRET = "a-project-jwt-secret-of-at-least-32-bytes"
REF = "runvpplxfmoostzzpjco"


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_minted_tokens_verify_with_pyjwt(role):
    now = int(time.time())
    token = supa.mint_jwt(SECRET, REF, role, now)
    assert pyjwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = pyjwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["exp", "iat"]})
    assert claims == {"iss": "supa", "ref": REF, "role": role, "iat": now, "exp": now + 300}


def test_ttl_is_honoured():
    now = int(time.time())
    token = supa.mint_jwt(SECRET, REF, "anon", now, ttl_secs=60)
    assert pyjwt.decode(token, SECRET, algorithms=["HS256"])["exp"] == now + 60


def test_pyjwt_tokens_verify_with_the_bindings():
    now = int(time.time())
    payload = {
        "sub": "5c3b2b9e-6a1f-4e0b-9f55-0c3a7e2d1b4a",
        "email": "user@example.com",
        "role": "authenticated",
        "aud": "authenticated",
        "app_metadata": {"provider": "email"},
        "iat": now,
        "exp": now + 3600,
    }
    token = pyjwt.encode(payload, SECRET, algorithm="HS256")
    claims = supa.verify_jwt(SECRET, token, now)
    assert claims.role == "authenticated"
    assert claims.exp == now + 3600
    assert claims.project_ref is None
    assert json.loads(claims.json) == payload


def test_other_algorithms_are_refused():
    now = int(time.time())
    payload = {"role": "service_role", "exp": now + 60}
    for alg in ["HS384", "HS512"]:
        # The algorithm is refused before any key is used; a long key only
        # keeps PyJWT from warning about key length.
        token = pyjwt.encode(payload, SECRET * 2, algorithm=alg)
        with pytest.raises(supa.SupaError.InvalidJwt) as err:
            supa.verify_jwt(SECRET, token, now)
        assert f'"{alg}" is not allowed' in str(err.value)
    unsigned = pyjwt.encode(payload, None, algorithm="none")
    with pytest.raises(supa.SupaError.InvalidJwt) as err:
        supa.verify_jwt(SECRET, unsigned, now)
    assert '"none" is not allowed' in str(err.value)


def test_a_token_signed_with_another_secret_is_refused():
    now = int(time.time())
    token = pyjwt.encode({"role": "anon", "exp": now + 60}, "x" * 40, algorithm="HS256")
    with pytest.raises(supa.SupaError.InvalidJwt) as err:
        supa.verify_jwt(SECRET, token, now)
    assert "signature" in str(err.value)


def test_tampered_claims_are_refused():
    now = int(time.time())
    token = supa.mint_jwt(SECRET, REF, "anon", now)
    header, _, signature = token.split(".")
    forged_claims = pyjwt.encode({"role": "service_role", "exp": now + 60}, "k" * 32).split(".")[1]
    with pytest.raises(supa.SupaError.InvalidJwt) as err:
        supa.verify_jwt(SECRET, f"{header}.{forged_claims}.{signature}", now)
    assert "signature" in str(err.value)


def test_expiry_agrees_with_pyjwt_leeway():
    now = int(time.time())
    token = pyjwt.encode({"role": "anon", "exp": now - 10}, SECRET, algorithm="HS256")
    # 10 s past exp: inside the 30 s leeway for both.
    assert supa.verify_jwt(SECRET, token, now).exp == now - 10
    pyjwt.decode(token, SECRET, algorithms=["HS256"], leeway=30)
    stale = pyjwt.encode({"role": "anon", "exp": now - 31}, SECRET, algorithm="HS256")
    with pytest.raises(pyjwt.ExpiredSignatureError):
        pyjwt.decode(stale, SECRET, algorithms=["HS256"], leeway=30)
    with pytest.raises(supa.SupaError.InvalidJwt) as err:
        supa.verify_jwt(SECRET, stale, now)
    assert "expired" in str(err.value)


def test_exp_is_required():
    now = int(time.time())
    token = pyjwt.encode({"role": "anon"}, SECRET, algorithm="HS256")
    with pytest.raises(supa.SupaError.InvalidJwt) as err:
        supa.verify_jwt(SECRET, token, now)
    assert 'missing the required claim "exp"' in str(err.value)


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "e30.e30.e30"])
def test_malformed_tokens_raise(token):
    with pytest.raises(supa.SupaError.InvalidJwt) as err:
        supa.verify_jwt(SECRET, token, int(time.time()))
    assert "malformed JWT" in str(err.value)


def test_short_secrets_are_refused():
    with pytest.raises(supa.SupaError.InvalidArgument) as err:
        supa.mint_jwt("short", REF, "anon", int(time.time()))
    assert "at least 32 bytes" in str(err.value)
