//! AWS Signature Version 4 for requests to Lambda Function URLs (and
//! to any service but S3; [`crate::S3Signature`] verifies S3's).
//!
//! The derived signing key depends only on the secret, the day, the region
//! and the service, so it is computed once per day and region and cached:
//! signing a request then costs two SHA-256 passes instead of six.
//! Canonicalization follows AWS's rules for every service but S3: the path is
//! dot-segment normalized and URI-encoded once more on top of its encoding in
//! the URL, query parameters are decoded and strictly re-encoded, then sorted.

use std::fmt::Write as _;
use std::sync::{PoisonError, RwLock};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use supa_core::Secret;

use crate::Error;

/// AWS credentials: an access key, its secret and, for temporary credentials
/// (an ECS task role), a session token.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `AKIA...` or `ASIA...`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret<String>,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret<String>>,
}

/// The request body as the signature covers it.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// The whole body; its SHA-256 is computed while signing.
    Bytes(&'a [u8]),
    /// A precomputed lowercase hex SHA-256 of the body.
    Sha256Hex(&'a str),
}

/// What is signed: method, absolute URL, the headers that will be sent, body.
#[derive(Debug, Clone, Copy)]
pub struct SigningRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// Absolute URL exactly as it will be sent (`https://host/path?query`).
    pub url: &'a str,
    /// Headers that will be sent; all are signed except `authorization` and
    /// the hop-by-hop and tracing headers AWS's SDKs leave unsigned
    /// (`connection`, `user-agent`, ...). `host` is added from the URL when
    /// absent.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub payload: Payload<'a>,
}

/// The headers to add to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
    pub authorization: String,
    /// `YYYYMMDDTHHMMSSZ`.
    pub x_amz_date: String,
    /// The session token, when the credentials carry one.
    pub x_amz_security_token: Option<String>,
}

impl SignedHeaders {
    /// The headers as lowercase (name, value) pairs, ready to insert.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            Some(("authorization", self.authorization.as_str())),
            Some(("x-amz-date", self.x_amz_date.as_str())),
            self.x_amz_security_token
                .as_deref()
                .map(|t| ("x-amz-security-token", t)),
        ]
        .into_iter()
        .flatten()
    }
}

struct CachedKey {
    access_key_id: String,
    secret: Secret<String>,
    region: String,
    date: [u8; 8],
    key: [u8; 32],
}

/// Entries beyond this many (credentials × regions) are dropped wholesale.
const CACHE_CAPACITY: usize = 16;

/// Headers never signed: `authorization` (the signature's own slot), and the
/// hop-by-hop and tracing headers that proxies may add, drop or rewrite (the
/// list AWS's Python SDK uses). Sorted for the binary search.
const UNSIGNED_HEADERS: [&str; 15] = [
    "authorization",
    "baggage",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "traceparent",
    "tracestate",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// Signs requests for one AWS service, caching the derived signing key per
/// (credentials, date, region). Shared between threads by reference.
pub struct SigV4Signer {
    service: String,
    cache: RwLock<Vec<CachedKey>>,
}

impl SigV4Signer {
    /// A signer for `service` (`lambda`, `execute-api`, ...).
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            cache: RwLock::new(Vec::new()),
        }
    }

    /// A signer for Lambda Function URLs (service `lambda`).
    pub fn lambda() -> Self {
        Self::new("lambda")
    }

    /// How many signing keys are cached.
    pub fn cached_keys(&self) -> usize {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Signs `request` at `unix_secs` (seconds since the Unix epoch, UTC).
    pub fn sign(
        &self,
        request: &SigningRequest<'_>,
        credentials: &Credentials,
        region: &str,
        unix_secs: i64,
    ) -> Result<SignedHeaders, Error> {
        let amz_date = amz_timestamp(unix_secs)?;
        let date = &amz_date[..8];
        let url = SplitUrl::parse(request.url)?;
        let token = credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().as_str());

        // Canonical headers: lowercase names, whitespace-collapsed values,
        // sorted by name (stably, so repeated headers keep their order).
        let mut headers: Vec<(String, String)> = Vec::with_capacity(request.headers.len() + 3);
        for (name, value) in request.headers {
            let name = name.to_ascii_lowercase();
            if UNSIGNED_HEADERS.binary_search(&name.as_str()).is_ok()
                || name == "x-amz-date"
                || name == "x-amz-security-token"
            {
                continue;
            }
            headers.push((name, collapse_whitespace(value)));
        }
        if !headers.iter().any(|(n, _)| n == "host") {
            headers.push(("host".to_owned(), url.host_header()));
        }
        headers.push(("x-amz-date".to_owned(), amz_date.clone()));
        if let Some(token) = token {
            headers.push(("x-amz-security-token".to_owned(), token.to_owned()));
        }
        headers.sort_by(|a, b| a.0.cmp(&b.0));

        let mut canonical = String::with_capacity(512);
        canonical.push_str(request.method);
        canonical.push('\n');
        canonical_uri(url.path, &mut canonical);
        canonical.push('\n');
        canonical_query(url.query, &mut canonical);
        canonical.push('\n');
        let mut signed_headers = String::with_capacity(64);
        for (i, (name, value)) in headers.iter().enumerate() {
            let repeated = i > 0 && headers[i - 1].0 == *name;
            if repeated {
                // A repeated header joins the previous line: `name:v1,v2`.
                canonical.pop();
                canonical.push(',');
            } else {
                if !signed_headers.is_empty() {
                    signed_headers.push(';');
                }
                signed_headers.push_str(name);
                canonical.push_str(name);
                canonical.push(':');
            }
            canonical.push_str(value);
            canonical.push('\n');
        }
        canonical.push('\n');
        canonical.push_str(&signed_headers);
        canonical.push('\n');
        match request.payload {
            Payload::Bytes(body) => push_hex(&Sha256::digest(body), &mut canonical),
            Payload::Sha256Hex(hash) => canonical.push_str(hash),
        }

        let scope = format!("{date}/{region}/{}/aws4_request", self.service);
        let mut string_to_sign = String::with_capacity(160);
        string_to_sign.push_str("AWS4-HMAC-SHA256\n");
        string_to_sign.push_str(&amz_date);
        string_to_sign.push('\n');
        string_to_sign.push_str(&scope);
        string_to_sign.push('\n');
        push_hex(&Sha256::digest(canonical.as_bytes()), &mut string_to_sign);

        let key = self.signing_key(credentials, region, date);
        let mut authorization = String::with_capacity(200);
        let _ = write!(
            authorization,
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature=",
            credentials.access_key_id
        );
        push_hex(&hmac(&key, string_to_sign.as_bytes()), &mut authorization);

        Ok(SignedHeaders {
            authorization,
            x_amz_date: amz_date,
            x_amz_security_token: token.map(str::to_owned),
        })
    }

    fn signing_key(&self, credentials: &Credentials, region: &str, date: &str) -> [u8; 32] {
        let matches = |c: &CachedKey| {
            c.date.as_slice() == date.as_bytes()
                && c.region == region
                && c.access_key_id == credentials.access_key_id
                && c.secret.expose() == credentials.secret_access_key.expose()
        };
        {
            let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(hit) = cache.iter().find(|c| matches(c)) {
                return hit.key;
            }
        }
        let secret = credentials.secret_access_key.expose();
        let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        let k_region = hmac(&k_date, region.as_bytes());
        let k_service = hmac(&k_region, self.service.as_bytes());
        let key = hmac(&k_service, b"aws4_request");

        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        // Yesterday's key for the same credentials and region is dead weight.
        cache.retain(|c| {
            !(c.region == region && c.access_key_id == credentials.access_key_id) || matches(c)
        });
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        if !cache.iter().any(matches) {
            cache.push(CachedKey {
                access_key_id: credentials.access_key_id.clone(),
                secret: credentials.secret_access_key.clone(),
                region: region.to_owned(),
                date: date.as_bytes().try_into().expect("a date is 8 digits"),
                key,
            });
        }
        key
    }
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub(crate) fn push_hex(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
}

struct SplitUrl<'a> {
    scheme: &'a str,
    authority: &'a str,
    path: &'a str,
    query: &'a str,
}

impl<'a> SplitUrl<'a> {
    fn parse(url: &'a str) -> Result<Self, Error> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or(Error::Unsignable("the URL is not absolute"))?;
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(end);
        // Credentials in a URL are never part of the Host header.
        let authority = authority.rsplit('@').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(Error::Unsignable("the URL has no host"));
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        Ok(Self {
            scheme,
            authority,
            path,
            query,
        })
    }

    /// `host[:port]`, lowercased, without the scheme's default port.
    fn host_header(&self) -> String {
        let default_port = match self.scheme.to_ascii_lowercase().as_str() {
            "https" => Some(":443"),
            "http" => Some(":80"),
            _ => None,
        };
        let host = default_port
            .and_then(|p| self.authority.strip_suffix(p))
            .unwrap_or(self.authority);
        host.to_ascii_lowercase()
    }
}

fn collapse_whitespace(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

pub(crate) fn percent_encode(bytes: &[u8], keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The path with `.`/`..` segments resolved and repeated slashes merged (as
/// AWS requires for every service but S3), then URI-encoded again.
fn canonical_uri(path: &str, out: &mut String) {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    out.push('/');
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        percent_encode(segment.as_bytes(), false, out);
    }
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
}

/// Parameters decoded, strictly re-encoded and sorted by name, then value.
fn canonical_query(query: &str, out: &mut String) {
    canonical_query_filtered(query, out, |_| true);
}

/// [`canonical_query`] of the parameters whose raw name `keep` accepts
/// (a presigned URL's own signature is left out of what it signs).
pub(crate) fn canonical_query_filtered(query: &str, out: &mut String, keep: impl Fn(&str) -> bool) {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| keep(p.split_once('=').map_or(*p, |(n, _)| n)))
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            let mut n = String::with_capacity(name.len());
            let mut v = String::with_capacity(value.len());
            percent_encode(&percent_decode(name), false, &mut n);
            percent_encode(&percent_decode(value), false, &mut v);
            (n, v)
        })
        .collect();
    pairs.sort_unstable();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time (proleptic Gregorian, UTC).
fn amz_timestamp(unix_secs: i64) -> Result<String, Error> {
    if !(0..=253_402_300_799).contains(&unix_secs) {
        return Err(Error::Unsignable("the time is outside years 1970-9999"));
    }
    let t = supa_core::time::CivilTime::from_unix(unix_secs as u64);
    Ok(format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn signing_never_panics(
            method in "[A-Z]{0,7}",
            url in "(https?://)?[^#]{0,60}(#.{0,5})?",
            name in "[!-~]{1,12}",
            value in ".{0,20}",
            at in any::<i64>(),
        ) {
            let creds = Credentials {
                access_key_id: "AKID".into(),
                secret_access_key: Secret::new("secret".into()),
                session_token: None,
            };
            let headers = [(name.as_str(), value.as_str())];
            let request = SigningRequest { method: &method, url: &url, headers: &headers, payload: Payload::Bytes(b"") };
            let _ = SigV4Signer::lambda().sign(&request, &creds, "us-east-1", at);
        }
    }

    #[test]
    fn unsigned_headers_are_sorted() {
        assert!(UNSIGNED_HEADERS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn timestamps() {
        assert_eq!(amz_timestamp(0).unwrap(), "19700101T000000Z");
        assert_eq!(amz_timestamp(1_440_938_160).unwrap(), "20150830T123600Z");
        assert_eq!(amz_timestamp(951_782_400).unwrap(), "20000229T000000Z");
        assert_eq!(amz_timestamp(4_107_542_399).unwrap(), "21000228T235959Z");
        assert_eq!(amz_timestamp(253_402_300_799).unwrap(), "99991231T235959Z");
        assert!(amz_timestamp(-1).is_err());
    }

    #[test]
    fn canonical_paths() {
        let canon = |p: &str| {
            let mut s = String::new();
            canonical_uri(p, &mut s);
            s
        };
        assert_eq!(canon(""), "/");
        assert_eq!(canon("/"), "/");
        assert_eq!(canon("/rest/v1/todos"), "/rest/v1/todos");
        assert_eq!(canon("//example//"), "/example/");
        assert_eq!(canon("/example/.."), "/");
        assert_eq!(canon("/./a/./b/../c"), "/a/c");
        // Already-encoded input is encoded again, as AWS does outside S3.
        assert_eq!(canon("/a%20b/ü"), "/a%2520b/%C3%BC");
    }

    #[test]
    fn canonical_queries() {
        let canon = |q: &str| {
            let mut s = String::new();
            canonical_query(q, &mut s);
            s
        };
        assert_eq!(canon(""), "");
        assert_eq!(
            canon("Param2=value2&Param1=value1"),
            "Param1=value1&Param2=value2"
        );
        assert_eq!(canon("b=2&a&&a=1"), "a=&a=1&b=2");
        assert_eq!(canon("select=*&id=eq.1"), "id=eq.1&select=%2A");
        assert_eq!(canon("q=a%2cb%20c+d"), "q=a%2Cb%20c%2Bd");
        assert_eq!(canon("bad=%zz%4"), "bad=%25zz%254");
    }
}
