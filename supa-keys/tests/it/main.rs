//! SigV4 signing checked against AWS's published vectors and against AWS's
//! own Rust signer (`aws-sigv4`) on the same requests.

use std::time::{Duration, UNIX_EPOCH};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use supa_core::Secret;
use supa_keys::{Credentials, Payload, SigV4Signer, SigningRequest};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2015-08-30T12:36:00Z, the instant of every vector in the suite.
const SUITE_TIME: i64 = 1_440_938_160;
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn credentials(akid: &str, secret: &str, token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: akid.to_owned(),
        secret_access_key: Secret::new(secret.to_owned()),
        session_token: token.map(|t| Secret::new(t.to_owned())),
    }
}

fn signature(authorization: &str) -> &str {
    authorization.rsplit("Signature=").next().unwrap()
}

/// Vectors of the AWS Signature Version 4 test suite (aws-sig-v4-test-suite,
/// dated 2015-08-30, published with the "Signature Version 4 test suite" page
/// of the AWS General Reference): host `example.amazonaws.com`, credentials
/// AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, region us-east-1,
/// service `service`. Each is (suite case, method, path and query, signature).
const SUITE: &[(&str, &str, &str, &str)] = &[
    (
        "get-vanilla",
        "GET",
        "/",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET",
        "/?Param2=value2&Param1=value1",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "get-vanilla-empty-query-key",
        "GET",
        "/?Param1=value1",
        "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
    ),
    (
        "get-vanilla-query-order-encoded",
        "GET",
        "/?Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
        "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac",
    ),
    (
        "get-unreserved",
        "GET",
        "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    (
        "get-utf8",
        "GET",
        "/ሴ",
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    ),
    (
        "get-space",
        "GET",
        "/example space/",
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
    ),
    (
        "post-vanilla",
        "POST",
        "/",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ),
];

#[test]
fn aws_test_suite_vectors() {
    let signer = SigV4Signer::new("service");
    let creds = credentials(AKID, SECRET, None);
    for (case, method, target, expected) in SUITE {
        let url = format!("https://example.amazonaws.com{target}");
        let request = SigningRequest {
            method,
            url: &url,
            headers: &[("Host", "example.amazonaws.com")],
            payload: Payload::Bytes(b""),
        };
        let signed = signer
            .sign(&request, &creds, "us-east-1", SUITE_TIME)
            .unwrap();
        assert_eq!(signed.x_amz_date, "20150830T123600Z", "{case}");
        assert_eq!(
            signed.authorization,
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={expected}"
            ),
            "{case}"
        );
    }
}

/// Amazon S3 API Reference, "Signature Calculations for the Authorization
/// Header", example "GET Object": the first ten bytes of `test.txt`.
#[test]
fn s3_documented_get_object() {
    let signer = SigV4Signer::new("s3");
    let creds = credentials(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        None,
    );
    let request = SigningRequest {
        method: "GET",
        url: "https://examplebucket.s3.amazonaws.com/test.txt",
        headers: &[
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ],
        payload: Payload::Sha256Hex(EMPTY_SHA256),
    };
    // 2013-05-24T00:00:00Z
    let signed = signer
        .sign(&request, &creds, "us-east-1", 1_369_353_600)
        .unwrap();
    assert_eq!(
        signed.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
         SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
         Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
}

/// `aws-sigv4`'s headers for the same request, as sorted (lowercase name, value).
fn aws_sign(
    request: &SigningRequest<'_>,
    creds: &Credentials,
    region: &str,
    at: i64,
) -> Vec<(String, String)> {
    let Payload::Bytes(body) = request.payload else {
        unreachable!("tests sign bodies")
    };
    let identity = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        creds.secret_access_key.expose(),
        creds.session_token.as_ref().map(|t| t.expose().clone()),
        None,
        "test",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("lambda")
        .time(UNIX_EPOCH + Duration::from_secs(at.unsigned_abs()))
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut out: Vec<(String, String)> = instructions
        .headers()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    out.sort();
    out
}

#[test]
fn agrees_with_aws_sigv4() {
    const AT: i64 = 1_763_769_600;
    let signer = SigV4Signer::lambda();
    let fn_url = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws";
    let host = &fn_url["https://".len()..];
    let with_token = credentials(
        "ASIAEXAMPLEKEY000001",
        SECRET,
        Some("IQoJb3JpZ2luX2VjEXAMPLETOKEN+/="),
    );
    let without_token = credentials("AKIAEXAMPLEKEY000001", SECRET, None);

    let urls = [
        format!("{fn_url}/rest/v1/todos"),
        format!("{fn_url}/rest/v1/todos?select=id%2Ctitle&order=id.desc&done=eq.false"),
        format!("{fn_url}/rest/v1/todos?columns=title"),
        format!("{fn_url}/rest/v1/items?id=in.(1,2,3)&name=like.*a%20b*"),
        format!("{fn_url}/rest/v1/a%20b/./c/../d"),
        "http://127.0.0.1:9000/rest/v1/t?x=~y".to_owned(),
    ];
    let header_sets: [&[(&str, &str)]; 4] = [
        &[("host", host)],
        &[
            ("host", host),
            ("accept", "application/json"),
            ("user-agent", "supa/0.1"),
        ],
        &[
            ("host", host),
            ("content-type", "application/json"),
            ("prefer", "return=representation,  count=exact"),
            ("x-client-authorization", "Bearer a.b.c"),
        ],
        &[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
        ],
    ];
    let bodies: [&[u8]; 2] = [b"", br#"[{"title":"write tests"}]"#];
    let mut compared = 0;
    for (i, url) in urls.iter().enumerate() {
        for (j, headers) in header_sets.iter().enumerate() {
            // The explicit host header names the function URL's host.
            if url.starts_with("http://") && headers.iter().any(|(n, _)| *n == "host") {
                continue;
            }
            let method = ["GET", "POST", "PATCH", "DELETE"][(i + j) % 4];
            let request = SigningRequest {
                method,
                url,
                headers,
                payload: Payload::Bytes(bodies[(i + j) % 2]),
            };
            let creds = if (i + j) % 3 == 0 {
                &with_token
            } else {
                &without_token
            };
            let ours = signer.sign(&request, creds, "eu-west-1", AT).unwrap();
            let mut ours: Vec<(String, String)> = ours
                .iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            ours.sort();
            assert_eq!(
                ours,
                aws_sign(&request, creds, "eu-west-1", AT),
                "{method} {url} {headers:?}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 21);
}

#[test]
fn signing_key_is_cached_per_day_and_region() {
    let signer = SigV4Signer::lambda();
    let creds = credentials(AKID, SECRET, None);
    let request = SigningRequest {
        method: "GET",
        url: "https://example.amazonaws.com/",
        headers: &[],
        payload: Payload::Bytes(b""),
    };
    let first = signer
        .sign(&request, &creds, "us-east-1", SUITE_TIME)
        .unwrap();
    let again = signer
        .sign(&request, &creds, "us-east-1", SUITE_TIME)
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(signer.cached_keys(), 1);
    signer
        .sign(&request, &creds, "eu-west-1", SUITE_TIME)
        .unwrap();
    assert_eq!(signer.cached_keys(), 2);
    // The next day replaces that region's key instead of piling up.
    let next_day = signer
        .sign(&request, &creds, "us-east-1", SUITE_TIME + 86_400)
        .unwrap();
    assert_eq!(signer.cached_keys(), 2);
    assert!(
        next_day
            .authorization
            .contains("/20150831/us-east-1/lambda/")
    );
    // Other credentials with the same key id never reuse the cached key.
    let other = signer
        .sign(
            &request,
            &credentials(AKID, "another", None),
            "us-east-1",
            SUITE_TIME,
        )
        .unwrap();
    assert_ne!(
        signature(&other.authorization),
        signature(&first.authorization)
    );
    // A cached key gives what a fresh signer computes.
    let fresh = SigV4Signer::lambda()
        .sign(&request, &creds, "us-east-1", SUITE_TIME)
        .unwrap();
    assert_eq!(fresh, first);
}

#[test]
fn unsignable_requests_are_refused() {
    let signer = SigV4Signer::lambda();
    let creds = credentials(AKID, SECRET, None);
    for url in [
        "/relative",
        "https://",
        "https:///path",
        "no-scheme.example.com/",
    ] {
        let request = SigningRequest {
            method: "GET",
            url,
            headers: &[],
            payload: Payload::Bytes(b""),
        };
        let err = signer
            .sign(&request, &creds, "us-east-1", SUITE_TIME)
            .unwrap_err();
        assert_eq!(err.status(), 400, "{url}");
    }
}
