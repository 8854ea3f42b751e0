//! Credentials of Supa, second layer of the crate graph (above `supa-core`).
//!
//! Pure functions with no I/O, shared by the gateway, the control plane, the
//! CLI and the Python bindings:
//!
//! - opaque API keys in hosted Supabase's format (`sb_publishable_...`,
//!   `sb_secret_...`): [`generate`], [`parse`], [`validate`], the SHA-256
//!   lookup [`hash`], the [`display_prefix`] and [`consumer_name`];
//! - HS256 JWTs pinned to one algorithm: [`mint`], [`verify`], and the
//!   [`MintCache`] that lets the gateway reuse a token per project and role;
//! - AWS SigV4 signing for Lambda Function URLs with the derived signing key
//!   cached per day and region: [`SigV4Signer`].

#![forbid(unsafe_code)]

mod apikey;
mod error;
mod es256;
mod jwt;
mod mint_cache;
mod sigv4;
mod sigv4_verify;

pub use apikey::{
    CHECKSUM_LEN, DISPLAY_PREFIX_LEN, LEGACY_RANDOM_LEN, ParsedKey, RANDOM_LEN, Validation,
    consumer_name, display_prefix, generate, hash, hash_hex, parse, redact, validate,
};
pub use error::Error;
pub use es256::{EsPublicKey, EsSigningKey};
pub use jwt::{
    Claims, DEFAULT_TTL_SECS, ISSUER, JwtKey, LEEWAY_SECS, MIN_SECRET_LEN, mint, mint_with_ttl,
    project_keys, sign_claims, unix_now, verify, verify_signature,
};
pub use mint_cache::MintCache;
pub use sigv4::{Credentials, Payload, SigV4Signer, SignedHeaders, SigningRequest};
pub use sigv4_verify::{ReceivedRequest, S3Signature};
