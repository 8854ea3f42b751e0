"""Supa's key, JWT and SigV4 primitives, from the Rust crates through uniffi."""

from .supa_ffi import (  # noqa: F401
    AwsCredentials,
    JwtClaims,
    KeyValidation,
    SupaError,
    consumer_name,
    generate_key,
    hash_key,
    mint_jwt,
    sign_sigv4,
    validate_key,
    verify_jwt,
)
