//! Fixtures shared by Supa's benchmarks, so every contender works on
//! byte-identical inputs, and the few helpers the benchmark binaries share
//! (percentiles, their one line of JSON, their usage errors).
//!
//! The benchmark itself lives in `benches/keys.rs`; this library holds the
//! one request both SigV4 signers sign, and the `aws-sigv4` call that is the
//! baseline, so a test can prove the two produce the same signature before
//! anyone compares their speed.

#![forbid(unsafe_code)]

use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use supa_core::Secret;
use supa_keys::{Credentials, Payload, SigningRequest};

/// Seconds since the epoch at which every benchmark signs (2015-08-30T12:36:00Z).
pub const SIGN_AT: i64 = 1_440_938_160;
/// Region of the benchmark request.
pub const REGION: &str = "us-east-1";
/// A Lambda Function URL request as the gateway forwards it.
pub const URL: &str = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws/rest/v1/todos?select=id%2Ctitle&done=eq.false&order=id.desc";
/// Headers the gateway forwards (besides those SigV4 adds).
pub const HEADERS: [(&str, &str); 4] = [
    (
        "host",
        "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
    ),
    ("accept", "application/json"),
    (
        "x-client-authorization",
        "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoiYW5vbiJ9.sig",
    ),
    ("x-forwarded-proto", "https"),
];
/// Body of the benchmark request.
pub const BODY: &[u8] = b"";
const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// The benchmark request for `supa-keys`.
pub fn supa_request() -> SigningRequest<'static> {
    SigningRequest {
        method: "GET",
        url: URL,
        headers: &HEADERS,
        payload: Payload::Bytes(BODY),
    }
}

/// The benchmark credentials for `supa-keys`.
pub fn supa_credentials() -> Credentials {
    Credentials {
        access_key_id: ACCESS_KEY_ID.to_owned(),
        secret_access_key: Secret::new(SECRET_ACCESS_KEY.to_owned()),
        session_token: None,
    }
}

/// The `aws-sigv4` baseline: its credentials are built once, as a caller
/// holding long-lived credentials would, so only signing is measured.
pub struct AwsSigV4Baseline {
    identity: aws_smithy_runtime_api::client::identity::Identity,
}

impl Default for AwsSigV4Baseline {
    fn default() -> Self {
        let credentials =
            AwsCredentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "bench");
        Self {
            identity: credentials.into(),
        }
    }
}

impl AwsSigV4Baseline {
    /// Signs the benchmark request for `service` and returns the
    /// `authorization` header `aws-sigv4` computes.
    pub fn authorization(&self, service: &str) -> String {
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(REGION)
            .name(service)
            .time(UNIX_EPOCH + Duration::from_secs(SIGN_AT.unsigned_abs()))
            .settings(SigningSettings::default())
            .build()
            .expect("complete signing params")
            .into();
        let request =
            SignableRequest::new("GET", URL, HEADERS.into_iter(), SignableBody::Bytes(BODY))
                .expect("a valid request");
        let (instructions, _signature) = sign(request, &params).expect("signable").into_parts();
        instructions
            .headers()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| value.to_owned())
            .expect("aws-sigv4 sets authorization")
    }
}

/// The nearest-rank `p` percentile (0 < p <= 1) of `sorted`, `None` when
/// it is empty.
pub fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let rank = (sorted.len() as f64 * p).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// Prints `report` as the one line of JSON a benchmark runner reads.
pub fn print_report(report: &serde_json::Value) {
    std::io::Write::write_all(&mut std::io::stdout(), format!("{report}\n").as_bytes())
        .expect("stdout");
}

/// Ends the benchmark `tool` with `message` on stderr (status 2).
pub fn exit_with(tool: &str, message: &str) -> ! {
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("{tool}: {message}\n").as_bytes(),
    );
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use supa_keys::SigV4Signer;

    #[test]
    fn both_signers_agree_on_the_benchmark_request() {
        let ours = SigV4Signer::lambda()
            .sign(&supa_request(), &supa_credentials(), REGION, SIGN_AT)
            .unwrap();
        assert_eq!(
            ours.authorization,
            AwsSigV4Baseline::default().authorization("lambda")
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(nearest_rank(&sorted, 0.5), Some(5));
        assert_eq!(nearest_rank(&sorted, 0.99), Some(10));
        assert_eq!(nearest_rank(&sorted, 1.0), Some(10));
        assert_eq!(nearest_rank(&sorted, 0.0), Some(1));
        assert_eq!(nearest_rank::<u64>(&[], 0.5), None);
    }
}
