//! Fuzz targets of the parsers that read what any client sends: API keys,
//! JWTs and SigV4-signed requests. Each runs for `SUPA_FUZZ_SECS` (1 s in
//! `make test`, longer in `make fuzz`): nothing may panic, and a key or
//! token changed anywhere must not pass.

use proptest::prelude::*;
use supa_core::fuzz::{for_a_while, near};
use supa_core::{KeyKind, ProjectRef, Role};
use supa_keys::{JwtKey, ReceivedRequest, S3Signature};

const NOW: i64 = 1_800_000_000;

fn project() -> ProjectRef {
    ProjectRef::parse("abcdefghijklmnopqrst").unwrap()
}

#[test]
fn fuzz_api_keys() {
    let project = project();
    let good = supa_keys::generate(&project, KeyKind::Secret);
    let samples = ["sb_publishable_", "sb_secret_", "_", good.as_str()];
    for_a_while("api keys", near(&samples, "[A-Za-z0-9_\\-]{0,24}"), |key| {
        let _ = supa_keys::parse(&key);
        let _ = supa_keys::display_prefix(&key);
        let _ = supa_keys::redact(&key);
        let verdict = supa_keys::validate(&project, &key);
        // Only the exact key validates for this project.
        prop_assert!(key == good || verdict.is_err(), "{key}");
        Ok(())
    });
    // Every single-character change of a good key is refused.
    let (good_ref, good_key) = (&project, good.clone());
    for_a_while(
        "api keys, one character changed",
        (0..good_key.len(), any::<char>()),
        move |(at, c)| {
            let mut changed: Vec<char> = good_key.chars().collect();
            prop_assume!(changed[at] != c);
            changed[at] = c;
            let changed: String = changed.into_iter().collect();
            prop_assert!(
                supa_keys::validate(good_ref, &changed).is_err(),
                "{changed}"
            );
            Ok(())
        },
    );
}

#[test]
fn fuzz_jwts() {
    let key = JwtKey::new(b"super-secret-jwt-token-with-at-least-32-characters").unwrap();
    let token = supa_keys::mint(&key, &project(), Role::Authenticated, NOW);
    let parts: Vec<&str> = token.split('.').collect();
    let samples = [parts[0], parts[1], parts[2], ".", "eyJ", "=="];
    for_a_while(
        "jwts",
        near(&samples, "[A-Za-z0-9_\\-.=]{0,32}"),
        |candidate| {
            let verified = supa_keys::verify(&key, &candidate, NOW);
            let _ = supa_keys::verify_signature(&key, &candidate);
            // Nothing but the minted token itself can be valid: forging needs
            // the secret.
            prop_assert!(verified.is_err() || candidate == token);
            Ok(())
        },
    );
    // A changed header or payload breaks the signature.
    let token_chars: Vec<char> = token.chars().collect();
    let signed_len = token.rfind('.').unwrap();
    for_a_while(
        "jwts, one character of the signed part changed",
        (0..signed_len, "[A-Za-z0-9_\\-]"),
        move |(at, c)| {
            let c = c.chars().next().unwrap();
            prop_assume!(token_chars[at] != c && token_chars[at] != '.');
            let mut changed = token_chars.clone();
            changed[at] = c;
            let changed: String = changed.into_iter().collect();
            prop_assert!(supa_keys::verify(&key, &changed, NOW).is_err(), "{changed}");
            Ok(())
        },
    );
}

#[test]
fn fuzz_sigv4_requests() {
    let authorization = near(
        &[
            "AWS4-HMAC-SHA256 ",
            "Credential=",
            "AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request",
            ", SignedHeaders=",
            "host;x-amz-date",
            ", Signature=",
            "0123456789abcdef",
            "/",
            ",",
        ],
        "[A-Za-z0-9=/;, -]{0,16}",
    );
    let query = near(
        &[
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "&X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fs3%2Faws4_request",
            "&X-Amz-Date=20260101T000000Z",
            "&X-Amz-Expires=",
            "&X-Amz-SignedHeaders=host",
            "&X-Amz-Signature=",
            "%",
        ],
        "[A-Za-z0-9%&=-]{0,12}",
    );
    let date = near(&["20260101T000000Z", "T", "Z"], "[0-9TZ]{0,16}");
    for_a_while(
        "sigv4 requests",
        (authorization, query, date, "[ -~]{0,24}"),
        |(authorization, query, date, path)| {
            let headers = [
                ("host", "example.com"),
                ("authorization", authorization.as_str()),
                ("x-amz-date", date.as_str()),
                ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ];
            let request = ReceivedRequest {
                method: "GET",
                path: &path,
                query: &query,
                headers: &headers,
            };
            if let Ok(Some(signature)) = S3Signature::parse(&request) {
                // Made-up signatures never verify.
                prop_assert!(signature.verify(&request, "secret", NOW).is_err());
            }
            Ok(())
        },
    );
}
