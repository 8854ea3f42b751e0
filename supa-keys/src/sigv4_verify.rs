//! Verifying AWS Signature Version 4 on requests to an S3-compatible API,
//! signed in the `Authorization` header or in a presigned URL's query.
//!
//! The canonical request is rebuilt from the request as received with S3's
//! rules (the path is not normalized, only re-encoded), the expected
//! signature is computed with the secret of the access key the request
//! names, and the two are compared in constant time. The request's time
//! must be within 15 minutes of the server's, and a presigned URL must not
//! have expired.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::sigv4::{canonical_query_filtered, hmac, percent_decode, percent_encode, push_hex};

/// How far a request's time may be from the server's (S3's 15 minutes).
const MAX_SKEW_SECS: i64 = 15 * 60;

/// The longest a presigned URL may last (S3's seven days).
const MAX_EXPIRES_SECS: i64 = 7 * 24 * 60 * 60;

/// The signature a request carries, as parsed from it.
#[derive(Debug, Clone)]
pub struct S3Signature {
    /// The access key id of the credential scope.
    pub access_key_id: String,
    /// The region of the credential scope.
    pub region: String,
    /// The session token (`X-Amz-Security-Token`), when one was sent.
    pub session_token: Option<String>,
    date: String,
    service: String,
    amz_date: String,
    signed_headers: Vec<String>,
    signature: Vec<u8>,
    /// Seconds a presigned URL lasts; `None` for a signed header.
    expires: Option<i64>,
}

/// The request a signature is checked against, as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedRequest<'a> {
    /// `GET`, `PUT`, ...
    pub method: &'a str,
    /// The path as the client sent it (percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Every header, names in lowercase; `host` as the client sent it.
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> ReceivedRequest<'a> {
    fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| String::from_utf8_lossy(&percent_decode(v)).into_owned())
        })
    }
}

fn malformed(what: &'static str) -> Error {
    Error::MalformedSignature(what)
}

impl S3Signature {
    /// The signature of `request`: its `Authorization` header, or else
    /// its presigned query; `None` when it carries neither.
    pub fn parse(request: &ReceivedRequest<'_>) -> Result<Option<Self>, Error> {
        if let Some(auth) = request.header("authorization") {
            return Self::from_header(request, auth).map(Some);
        }
        if request.param("X-Amz-Algorithm").is_some() {
            return Self::from_query(request).map(Some);
        }
        Ok(None)
    }

    fn from_header(request: &ReceivedRequest<'_>, auth: &str) -> Result<Self, Error> {
        let rest = auth
            .strip_prefix("AWS4-HMAC-SHA256")
            .ok_or(malformed("the algorithm must be AWS4-HMAC-SHA256"))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or(malformed("the Authorization header is not key=value pairs"))?;
            match k.trim() {
                "Credential" => credential = Some(v.trim()),
                "SignedHeaders" => signed = Some(v.trim()),
                "Signature" => signature = Some(v.trim()),
                _ => {}
            }
        }
        let amz_date = request
            .header("x-amz-date")
            .ok_or(malformed("x-amz-date is required"))?;
        Self::assemble(
            credential.ok_or(malformed("Credential is missing"))?,
            signed.ok_or(malformed("SignedHeaders is missing"))?,
            signature.ok_or(malformed("Signature is missing"))?,
            amz_date,
            request.header("x-amz-security-token").map(str::to_owned),
            None,
        )
    }

    fn from_query(request: &ReceivedRequest<'_>) -> Result<Self, Error> {
        let param = |name: &'static str| request.param(name).ok_or(Error::MalformedSignature(name));
        if param("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
            return Err(malformed("the algorithm must be AWS4-HMAC-SHA256"));
        }
        let expires: i64 = param("X-Amz-Expires")?
            .parse()
            .ok()
            .filter(|e| (1..=MAX_EXPIRES_SECS).contains(e))
            .ok_or(malformed("X-Amz-Expires must be 1 to 604800 seconds"))?;
        Self::assemble(
            &param("X-Amz-Credential")?,
            &param("X-Amz-SignedHeaders")?,
            &param("X-Amz-Signature")?,
            &param("X-Amz-Date")?,
            request.param("X-Amz-Security-Token"),
            Some(expires),
        )
    }

    fn assemble(
        credential: &str,
        signed: &str,
        signature: &str,
        amz_date: &str,
        session_token: Option<String>,
        expires: Option<i64>,
    ) -> Result<Self, Error> {
        // `{access key}/{date}/{region}/{service}/aws4_request`; the access
        // key id itself has no slash.
        let mut scope = credential.split('/');
        let (Some(key), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
            scope.next(),
            scope.next(),
            scope.next(),
            scope.next(),
            scope.next(),
            scope.next(),
        ) else {
            return Err(malformed(
                "the credential scope is not key/date/region/service/aws4_request",
            ));
        };
        if key.is_empty() || date.len() != 8 || !amz_date.starts_with(date) {
            return Err(malformed(
                "the credential scope's date is not the request's",
            ));
        }
        let signature = hex::decode(signature)
            .ok()
            .filter(|s| s.len() == 32)
            .ok_or(malformed("Signature is not 64 hex digits"))?;
        let signed_headers: Vec<String> = signed.split(';').map(str::to_ascii_lowercase).collect();
        if signed_headers.iter().any(String::is_empty)
            || !signed_headers.iter().any(|h| h == "host")
        {
            return Err(malformed("SignedHeaders must include host"));
        }
        Ok(Self {
            access_key_id: key.to_owned(),
            region: region.to_owned(),
            session_token,
            date: date.to_owned(),
            service: service.to_owned(),
            amz_date: amz_date.to_owned(),
            signed_headers,
            signature,
            expires,
        })
    }

    /// Checks the signature against `request` with `secret`, at `now`
    /// (Unix seconds). `payload_hash` is the request's
    /// `x-amz-content-sha256` (`UNSIGNED-PAYLOAD` for presigned URLs).
    pub fn verify(
        &self,
        request: &ReceivedRequest<'_>,
        secret: &str,
        now: i64,
    ) -> Result<(), Error> {
        let signed_at = parse_amz_date(&self.amz_date)?;
        match self.expires {
            Some(expires) => {
                if now > signed_at + expires {
                    return Err(Error::SignatureExpired);
                }
                if signed_at > now + MAX_SKEW_SECS {
                    return Err(Error::RequestTimeSkewed);
                }
            }
            None if (now - signed_at).abs() > MAX_SKEW_SECS => {
                return Err(Error::RequestTimeSkewed);
            }
            None => {}
        }
        let payload_hash = match self.expires {
            Some(_) => request
                .param("X-Amz-Content-Sha256")
                .unwrap_or_else(|| "UNSIGNED-PAYLOAD".to_owned()),
            None => request
                .header("x-amz-content-sha256")
                .unwrap_or("UNSIGNED-PAYLOAD")
                .to_owned(),
        };

        let mut canonical = String::with_capacity(512);
        canonical.push_str(request.method);
        canonical.push('\n');
        // S3: the path as sent, decoded and encoded once, not normalized.
        let path = if request.path.is_empty() {
            "/"
        } else {
            request.path
        };
        percent_encode(&percent_decode(path), true, &mut canonical);
        canonical.push('\n');
        let presigned = self.expires.is_some();
        canonical_query_filtered(request.query, &mut canonical, |name| {
            !(presigned && name == "X-Amz-Signature")
        });
        canonical.push('\n');
        for name in &self.signed_headers {
            let values: Vec<String> = request
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            if values.is_empty() {
                return Err(Error::SignatureMismatch);
            }
            canonical.push_str(name);
            canonical.push(':');
            canonical.push_str(&values.join(","));
            canonical.push('\n');
        }
        canonical.push('\n');
        canonical.push_str(&self.signed_headers.join(";"));
        canonical.push('\n');
        canonical.push_str(&payload_hash);

        let scope = format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        );
        let mut string_to_sign = String::with_capacity(160);
        string_to_sign.push_str("AWS4-HMAC-SHA256\n");
        string_to_sign.push_str(&self.amz_date);
        string_to_sign.push('\n');
        string_to_sign.push_str(&scope);
        string_to_sign.push('\n');
        push_hex(&Sha256::digest(canonical.as_bytes()), &mut string_to_sign);

        let k_date = hmac(format!("AWS4{secret}").as_bytes(), self.date.as_bytes());
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, self.service.as_bytes());
        let key = hmac(&k_service, b"aws4_request");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts any key length");
        mac.update(string_to_sign.as_bytes());
        // Constant time: `verify_slice` compares without early exit.
        mac.verify_slice(&self.signature)
            .map_err(|_| Error::SignatureMismatch)
    }
}

/// `YYYYMMDDTHHMMSSZ` to Unix seconds.
fn parse_amz_date(s: &str) -> Result<i64, Error> {
    let bad = || malformed("x-amz-date is not YYYYMMDDTHHMMSSZ");
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, Error> {
        s.get(r)
            .filter(|d| d.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
            .ok_or_else(bad)
    };
    supa_core::time::CivilTime {
        year: i64::from(num(0..4)?),
        month: num(4..6)?,
        day: num(6..8)?,
        hour: num(9..11)?,
        minute: num(11..13)?,
        second: num(13..15)?,
    }
    .to_unix()
    .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::{Credentials, Payload, SigV4Signer, SigningRequest};
    use supa_core::Secret;

    const NOW: i64 = 1_796_201_858;

    fn signed(
        method: &str,
        url: &str,
        extra: &[(&str, &str)],
        secret: &str,
    ) -> Vec<(String, String)> {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new(secret.into()),
            session_token: None,
        };
        let mut headers: Vec<(&str, &str)> = vec![("x-amz-content-sha256", "UNSIGNED-PAYLOAD")];
        headers.extend_from_slice(extra);
        let request = SigningRequest {
            method,
            url,
            headers: &headers,
            payload: Payload::Sha256Hex("UNSIGNED-PAYLOAD"),
        };
        let out = SigV4Signer::new("s3")
            .sign(&request, &creds, "us-east-1", NOW)
            .unwrap();
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.push(("host".into(), "example.com".into()));
        all.extend(out.iter().map(|(k, v)| (k.to_owned(), v.to_owned())));
        all
    }

    fn check(
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        secret: &str,
        now: i64,
    ) -> Result<(), Error> {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let request = ReceivedRequest {
            method,
            path,
            query,
            headers: &headers,
        };
        S3Signature::parse(&request)?
            .ok_or(malformed("none"))?
            .verify(&request, secret, now)
    }

    #[test]
    fn a_signature_made_by_the_signer_verifies_and_nothing_else_does() {
        // A path without dot segments canonicalizes alike for S3 and Lambda.
        let h = signed(
            "PUT",
            "https://example.com/s3/bucket/ab.txt?partNumber=1&uploadId=x",
            &[],
            "secret",
        );
        assert!(
            check(
                "PUT",
                "/s3/bucket/ab.txt",
                "partNumber=1&uploadId=x",
                &h,
                "secret",
                NOW
            )
            .is_ok()
        );
        assert!(matches!(
            check(
                "PUT",
                "/s3/bucket/ab.txt",
                "partNumber=1&uploadId=x",
                &h,
                "wrong",
                NOW
            ),
            Err(Error::SignatureMismatch)
        ));
        assert!(matches!(
            check(
                "PUT",
                "/s3/bucket/other.txt",
                "partNumber=1&uploadId=x",
                &h,
                "secret",
                NOW
            ),
            Err(Error::SignatureMismatch)
        ));
        assert!(matches!(
            check(
                "GET",
                "/s3/bucket/ab.txt",
                "partNumber=1&uploadId=x",
                &h,
                "secret",
                NOW
            ),
            Err(Error::SignatureMismatch)
        ));
        assert!(matches!(
            check(
                "PUT",
                "/s3/bucket/ab.txt",
                "partNumber=1&uploadId=x",
                &h,
                "secret",
                NOW + 16 * 60
            ),
            Err(Error::RequestTimeSkewed)
        ));
    }

    #[test]
    fn malformed_headers_are_named() {
        for auth in [
            "AWS4-HMAC-SHA1 Credential=a/20261202/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/20261202/us-east-1/s3, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/20261202/us-east-1/s3/aws4_request, SignedHeaders=date, Signature=",
            "AWS4-HMAC-SHA256 garbage",
        ] {
            let headers = vec![
                ("authorization".to_owned(), auth.to_owned()),
                ("x-amz-date".to_owned(), "20261202T085738Z".to_owned()),
            ];
            assert!(
                matches!(
                    check("GET", "/", "", &headers, "s", NOW),
                    Err(Error::MalformedSignature(_))
                ),
                "{auth}"
            );
        }
    }

    #[test]
    fn amz_dates() {
        assert_eq!(parse_amz_date("20261202T085738Z").unwrap(), NOW);
        for bad in [
            "20261302T085738Z",
            "2026120T085738Z",
            "20261202 085738Z",
            "2026120aT085738Z",
        ] {
            assert!(parse_amz_date(bad).is_err(), "{bad}");
        }
    }
}
