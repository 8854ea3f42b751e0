//! Opaque API keys: `sb_{publishable,secret}_<random22>_<checksum8>`.
//!
//! The checksum binds a key to its project, so a gateway rejects a mistyped
//! key or another project's key without a database lookup, and without
//! revealing whether the key exists elsewhere.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use supa_core::{KeyKind, ProjectRef};

use crate::Error;

/// Length of the random part: 16 bytes in unpadded base64url.
pub const RANDOM_LEN: usize = 22;
/// Length of the checksum suffix.
pub const CHECKSUM_LEN: usize = 8;
/// Length of the random part of a key imported from an older deployment.
pub const LEGACY_RANDOM_LEN: usize = 32;
/// How many random characters may be shown or logged.
pub const DISPLAY_PREFIX_LEN: usize = 6;

/// A key split into its parts; borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// Publishable or secret, from the literal prefix.
    pub kind: KeyKind,
    /// The random part (22 base64url chars, or 32 base62 chars for legacy keys).
    pub random: &'a str,
    /// The checksum, absent on legacy keys.
    pub checksum: Option<&'a str>,
}

/// The outcome of [`validate`] for a key that was not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// The checksum matches the project: the key still has to exist, but it
    /// cannot belong to any other project.
    Checked(KeyKind),
    /// A key of the older format without a checksum: only a lookup of its
    /// hash can tell whether it is valid, and for which project.
    Unchecked(KeyKind),
}

impl Validation {
    /// The key's kind.
    pub fn kind(self) -> KeyKind {
        match self {
            Validation::Checked(k) | Validation::Unchecked(k) => k,
        }
    }
}

impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Validation::Checked(_) => f.write_str("valid"),
            Validation::Unchecked(_) => f.write_str("unchecked: hash lookup only"),
        }
    }
}

/// A new key for `project_ref`: 16 bytes from the OS CSPRNG, base64url-encoded
/// (every byte value maps to the alphabet evenly, so there is no modulo bias),
/// followed by the project-bound checksum.
pub fn generate(project_ref: &ProjectRef, kind: KeyKind) -> String {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).expect("the operating system's random source failed");
    let prefix = kind.prefix();
    let mut key = String::with_capacity(prefix.len() + RANDOM_LEN + 1 + CHECKSUM_LEN);
    key.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(random, &mut key);
    let sum = checksum(project_ref, kind, &key[prefix.len()..]);
    key.push('_');
    key.push_str(std::str::from_utf8(&sum).expect("base64 is ASCII"));
    key
}

/// Splits a key into kind, random part and checksum without checking the
/// checksum. The checksum is read from the right: the last 8 chars, preceded
/// by `_` (the random part may itself contain `_` and `-`).
pub fn parse(key: &str) -> Result<ParsedKey<'_>, Error> {
    if key.is_empty() {
        return Err(Error::MalformedKey("the key is empty"));
    }
    let (kind, rest) = KeyKind::ALL
        .into_iter()
        .find_map(|k| key.strip_prefix(k.prefix()).map(|rest| (k, rest)))
        .ok_or(Error::MalformedKey(
            "it does not start with sb_publishable_ or sb_secret_",
        ))?;

    if rest.len() == LEGACY_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(ParsedKey {
            kind,
            random: rest,
            checksum: None,
        });
    }
    if rest.len() != RANDOM_LEN + 1 + CHECKSUM_LEN {
        return Err(Error::MalformedKey("it has the wrong length"));
    }
    // Lengths are checked on bytes; a multi-byte char cannot straddle the split
    // points below because every accepted byte is ASCII (checked first).
    if !rest.is_ascii() {
        return Err(Error::MalformedKey("it contains non-ASCII characters"));
    }
    let (random, tail) = rest.split_at(RANDOM_LEN);
    let checksum = tail
        .strip_prefix('_')
        .ok_or(Error::MalformedKey("the checksum is not preceded by '_'"))?;
    if !is_base64url(random) || !canonical_final_char(random) {
        return Err(Error::MalformedKey(
            "the random part is not 16 bytes of base64url",
        ));
    }
    if !is_base64url(checksum) {
        return Err(Error::MalformedKey("the checksum is not base64url"));
    }
    Ok(ParsedKey {
        kind,
        random,
        checksum: Some(checksum),
    })
}

/// Checks a key against the project it was presented to.
///
/// `Ok(Checked)` means the checksum matches; `Ok(Unchecked)` means the key is
/// of the older format and can only be looked up by hash; a checksum that
/// matches another project fails exactly like a corrupted one.
pub fn validate(project_ref: &ProjectRef, key: &str) -> Result<Validation, Error> {
    let parsed = parse(key)?;
    let Some(presented) = parsed.checksum else {
        return Ok(Validation::Unchecked(parsed.kind));
    };
    // The checksum is derived from public inputs only (the ref and the key
    // itself), so an ordinary comparison leaks nothing worth timing.
    if checksum(project_ref, parsed.kind, parsed.random).as_slice() == presented.as_bytes() {
        Ok(Validation::Checked(parsed.kind))
    } else {
        Err(Error::ChecksumMismatch)
    }
}

/// SHA-256 of the whole key: the lookup index under which keys are stored.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// [`hash`] as 64 lowercase hex chars.
pub fn hash_hex(key: &str) -> String {
    hex::encode(hash(key))
}

/// The first [`DISPLAY_PREFIX_LEN`] random chars: all of a key that may be
/// shown in a listing or a log. `None` for a string that is not a key.
pub fn display_prefix(key: &str) -> Option<&str> {
    parse(key).ok().map(|p| &p.random[..DISPLAY_PREFIX_LEN])
}

/// A loggable form of any presented key: its literal prefix and at most six
/// random chars (`sb_secret_abcdef...`); anything unparseable becomes `<invalid>`.
pub fn redact(key: &str) -> String {
    match parse(key) {
        Ok(p) => format!("{}{}...", p.kind.prefix(), &p.random[..DISPLAY_PREFIX_LEN]),
        Err(_) => "<invalid>".to_owned(),
    }
}

/// The consumer name of a key in logs, metrics and the key record:
/// `{ref}--anon` for publishable keys, `{ref}--service_role` for secret keys.
pub fn consumer_name(project_ref: &ProjectRef, kind: KeyKind) -> String {
    format!("{project_ref}--{}", kind.role())
}

/// `base64url_nopad(SHA-256(ref "|" prefix random))[..8]`.
fn checksum(project_ref: &ProjectRef, kind: KeyKind, random: &str) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::new()
        .chain_update(project_ref.as_str())
        .chain_update(b"|")
        .chain_update(kind.prefix())
        .chain_update(random)
        .finalize();
    // 6 bytes encode to exactly 8 base64 chars, the first 8 of the full encoding.
    let mut out = [0u8; CHECKSUM_LEN];
    URL_SAFE_NO_PAD
        .encode_slice(&digest[..6], &mut out)
        .expect("6 bytes encode to 8 chars");
    out
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// 16 bytes fill 22 base64 chars with 4 spare bits in the last char; the only
/// canonical encodings leave them zero (`A`, `Q`, `g` or `w`).
fn canonical_final_char(random: &str) -> bool {
    matches!(random.as_bytes().last(), Some(b'A' | b'Q' | b'g' | b'w'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A real key issued by hosted Supabase (DESIGN section 2).
    const HOSTED_REF: &str = "runvpplxfmoostzzpjco";
    const HOSTED_KEY: &str = "sb_publishable_mCQAAeREfJckZHeJE7CpuA_rcYLuPw-";

    fn r(s: &str) -> ProjectRef {
        ProjectRef::parse(s).unwrap()
    }

    #[test]
    fn hosted_key_validates_against_its_ref_only() {
        assert_eq!(
            validate(&r(HOSTED_REF), HOSTED_KEY),
            Ok(Validation::Checked(KeyKind::Publishable))
        );
        for other in [
            "runvpplxfmoostzzpjcp",
            "aaaaaaaaaaaaaaaaaaaa",
            "zunvpplxfmoostzzpjco",
        ] {
            assert_eq!(
                validate(&r(other), HOSTED_KEY),
                Err(Error::ChecksumMismatch)
            );
        }
    }

    #[test]
    fn hosted_key_parses_from_the_right() {
        let p = parse(HOSTED_KEY).unwrap();
        assert_eq!(p.kind, KeyKind::Publishable);
        assert_eq!(p.random, "mCQAAeREfJckZHeJE7CpuA");
        assert_eq!(p.checksum, Some("rcYLuPw-"));
        assert_eq!(display_prefix(HOSTED_KEY), Some("mCQAAe"));
        assert_eq!(redact(HOSTED_KEY), "sb_publishable_mCQAAe...");
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let pr = r(HOSTED_REF);
        let p = generate(&pr, KeyKind::Publishable);
        let s = generate(&pr, KeyKind::Secret);
        assert_eq!(p.len(), 46);
        assert_eq!(s.len(), 41);
        assert!(p.starts_with("sb_publishable_") && s.starts_with("sb_secret_"));
        assert_eq!(
            validate(&pr, &p),
            Ok(Validation::Checked(KeyKind::Publishable))
        );
        assert_eq!(validate(&pr, &s), Ok(Validation::Checked(KeyKind::Secret)));
        assert_ne!(generate(&pr, KeyKind::Secret), s, "keys are random");
    }

    #[test]
    fn every_rejection_path() {
        let pr = r(HOSTED_REF);
        let malformed = |k: &str| matches!(validate(&pr, k), Err(Error::MalformedKey(_)));
        assert!(malformed(""));
        assert!(
            malformed("eyJhbGciOiJIUzI1NiJ9.e30.x"),
            "a JWT is not a key"
        );
        assert!(malformed("sb_anon_mCQAAeREfJckZHeJE7CpuA_rcYLuPw-"));
        assert!(malformed("sb_publishable_"));
        assert!(
            malformed("sb_publishable_mCQAAeREfJckZHeJE7CpuA_rcYLuPw"),
            "short"
        );
        assert!(
            malformed("sb_publishable_mCQAAeREfJckZHeJE7CpuA_rcYLuPw--"),
            "long"
        );
        assert!(
            malformed("sb_publishable_mCQAAeREfJckZHeJE7CpuAxrcYLuPw-"),
            "no '_'"
        );
        assert!(
            malformed("sb_publishable_mCQAAeREfJckZHeJE7Cpu=_rcYLuPw-"),
            "alphabet"
        );
        assert!(
            malformed("sb_publishable_mCQAAeREfJckZHeJE7CpuB_rcYLuPw-"),
            "non-canonical"
        );
        assert!(
            malformed("sb_publishable_mCQAAeREfJckZHeJE7CpuA_rcYLuP+-"),
            "checksum alphabet"
        );
        assert!(
            malformed("sb_publishable_mCQAAeREfJckZHeJE7CpuA_rcYLuPé"),
            "non-ASCII"
        );
        assert!(malformed("SB_PUBLISHABLE_mCQAAeREfJckZHeJE7CpuA_rcYLuPw-"));
        // Well formed, but one char of the random part or checksum changed.
        let mismatch = |k: &str| validate(&pr, k) == Err(Error::ChecksumMismatch);
        assert!(mismatch("sb_publishable_nCQAAeREfJckZHeJE7CpuA_rcYLuPw-"));
        assert!(mismatch("sb_publishable_mCQAAeREfJckZHeJE7CpuA_rcYLuPw_"));
        // The right random part and checksum under the other kind's prefix.
        assert!(mismatch("sb_secret_mCQAAeREfJckZHeJE7CpuA_rcYLuPw-"));
    }

    #[test]
    fn legacy_keys_are_hash_lookup_only() {
        let pr = r(HOSTED_REF);
        let legacy = format!("sb_secret_{}", "aZ09".repeat(8));
        assert_eq!(
            validate(&pr, &legacy),
            Ok(Validation::Unchecked(KeyKind::Secret))
        );
        assert_eq!(
            Validation::Unchecked(KeyKind::Secret).to_string(),
            "unchecked: hash lookup only"
        );
        let legacy_pub = format!("sb_publishable_{}", "x".repeat(32));
        assert_eq!(
            validate(&pr, &legacy_pub),
            Ok(Validation::Unchecked(KeyKind::Publishable))
        );
        // 32 chars but not base62: rejected, not treated as legacy.
        assert!(validate(&pr, &format!("sb_secret_{}", "a-".repeat(16))).is_err());
        assert_eq!(display_prefix(&legacy), Some("aZ09aZ"));
    }

    #[test]
    fn hash_is_sha256_of_the_whole_key() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        assert_eq!(
            hash_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hash(HOSTED_KEY).len(), 32);
    }

    #[test]
    fn consumer_names() {
        let pr = r(HOSTED_REF);
        assert_eq!(
            consumer_name(&pr, KeyKind::Publishable),
            "runvpplxfmoostzzpjco--anon"
        );
        assert_eq!(
            consumer_name(&pr, KeyKind::Secret),
            "runvpplxfmoostzzpjco--service_role"
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".*") {
            let _ = parse(&s);
            let _ = validate(&r(HOSTED_REF), &s);
            let _ = display_prefix(&s);
        }

        #[test]
        fn parsing_near_keys_never_panics(
            prefix in prop::sample::select(vec!["sb_publishable_", "sb_secret_"]),
            rest in "[A-Za-z0-9_\\-é=]{0,40}",
        ) {
            let _ = validate(&r(HOSTED_REF), &format!("{prefix}{rest}"));
        }

        #[test]
        fn generate_then_validate(project in "[a-z]{20}", secret in any::<bool>()) {
            let pr = r(&project);
            let kind = if secret { KeyKind::Secret } else { KeyKind::Publishable };
            let key = generate(&pr, kind);
            prop_assert_eq!(validate(&pr, &key), Ok(Validation::Checked(kind)));
        }
    }
}
