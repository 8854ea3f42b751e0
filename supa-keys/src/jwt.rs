//! HS256 JWTs, and ES256 ones for projects that sign with a key pair.
//!
//! The algorithm is never negotiated: the header's `alg` must be exactly
//! `HS256`, or `ES256` when the key holds ES256 public keys (and its `kid`
//! names one of them); `none`, `HS512`, `RS256`... are refused before the
//! signature is looked at. HMAC signatures are compared in constant time
//! by `hmac`'s `verify_slice`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use supa_core::{ProjectRef, Role};

use crate::Error;

/// Lifetime of a minted token.
pub const DEFAULT_TTL_SECS: i64 = 300;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 30;
/// The `iss` claim of tokens Supa mints.
pub const ISSUER: &str = "supa";
/// Shortest accepted secret, as PostgREST requires.
pub const MIN_SECRET_LEN: usize = 32;

/// base64url of `{"alg":"HS256","typ":"JWT"}`: every minted token starts so.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// A project's HS256 secret, keyed once: the HMAC inner and outer pads are
/// computed at construction, so minting and verifying skip that work.
#[derive(Clone)]
pub struct JwtKey {
    mac: Hmac<Sha256>,
    fingerprint: u64,
    /// ES256 public keys also accepted (a project's signing keys).
    es256: std::sync::Arc<[crate::EsPublicKey]>,
}

impl JwtKey {
    /// Keys a secret of at least [`MIN_SECRET_LEN`] bytes (a project's JWT
    /// secret string, used as its UTF-8 bytes as PostgREST and Supabase do).
    pub fn new(secret: &[u8]) -> Result<Self, Error> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(Error::WeakSecret {
                min: MIN_SECRET_LEN,
                got: secret.len(),
            });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
        let digest = Sha256::digest(secret);
        let fingerprint = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        Ok(Self {
            mac,
            fingerprint,
            es256: std::sync::Arc::new([]),
        })
    }

    /// This key, also accepting ES256 tokens signed by `keys`.
    pub fn with_es256(mut self, keys: Vec<crate::EsPublicKey>) -> Self {
        self.es256 = keys.into();
        self
    }

    /// The ES256 public keys it accepts.
    pub fn es256_keys(&self) -> &[crate::EsPublicKey] {
        &self.es256
    }

    /// A short identity of the secret (not the secret), so caches can tell
    /// when a project's secret has been rotated.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// A value only the holder of the secret can compute for `label`
    /// (HMAC-SHA256 under the secret): server-side secrets derived per use,
    /// such as a PKCE verifier, without storing them.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        self.sign(label)
    }

    fn sign(&self, signing_input: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(signing_input);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKey(***)")
    }
}

/// The current time in Unix seconds.
pub fn unix_now() -> i64 {
    i64::try_from(supa_core::time::since_epoch().as_secs()).unwrap_or(i64::MAX)
}

/// Mints the token the gateway attaches to a request without a user session:
/// `{"iss":"supa","ref":..,"role":..,"iat":now,"exp":now+300}`.
pub fn mint(key: &JwtKey, project_ref: &ProjectRef, role: Role, now: i64) -> String {
    mint_with_ttl(key, project_ref, role, now, DEFAULT_TTL_SECS)
}

/// [`mint`] with a chosen lifetime in seconds.
pub fn mint_with_ttl(
    key: &JwtKey,
    project_ref: &ProjectRef,
    role: Role,
    now: i64,
    ttl_secs: i64,
) -> String {
    // Every interpolated value is a lowercase ref, a fixed role name or an
    // integer, so no JSON escaping is needed.
    let claims = format!(
        r#"{{"iss":"{ISSUER}","ref":"{project_ref}","role":"{role}","iat":{now},"exp":{}}}"#,
        now.saturating_add(ttl_secs)
    );
    signed(key, claims.as_bytes())
}

/// A project's verifying key (its HS256 secret, and the public halves of
/// its ES256 signing keys) and those signing keys, the current first.
pub fn project_keys(
    config: &supa_core::ProjectConfig,
) -> Result<(JwtKey, Vec<crate::EsSigningKey>), Error> {
    let signing = match config.auth_secrets.get(supa_core::JWT_SIGNING_KEYS) {
        Some(text) => crate::EsSigningKey::list_from_json(text.expose())?,
        None => Vec::new(),
    };
    let key = JwtKey::new(config.jwt_secret.expose().as_bytes())?
        .with_es256(signing.iter().map(|k| k.public().clone()).collect());
    Ok((key, signing))
}

/// `header.claims.signature` for a JSON `claims` body.
fn signed(key: &JwtKey, claims: &[u8]) -> String {
    let mut token = String::with_capacity(HEADER_B64.len() + claims.len() * 4 / 3 + 48);
    token.push_str(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);
    let signature = key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    token
}

/// Signs arbitrary `claims` (an auth server's access token: `sub`,
/// `email`, `session_id`, ...) with the project's key.
pub fn sign_claims(key: &JwtKey, claims: &Map<String, Value>) -> String {
    let body = serde_json::to_vec(claims).expect("a JSON map always serializes");
    signed(key, &body)
}

/// The verified claims of a token, all of them (a user token's `sub`, `email`,
/// `aud`... travel on to `request.jwt.claims`).
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    map: Map<String, Value>,
    exp: i64,
}

impl Claims {
    /// `exp`, in Unix seconds.
    pub fn exp(&self) -> i64 {
        self.exp
    }

    /// The `role` claim, if it is a string.
    pub fn role(&self) -> Option<&str> {
        self.str_claim("role")
    }

    /// The `ref` claim (the project the token was minted for), if present.
    pub fn project_ref(&self) -> Option<&str> {
        self.str_claim("ref")
    }

    /// Any claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    /// All claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// All claims as a JSON object, for `request.jwt.claims`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.map).expect("a JSON map always serializes")
    }

    fn str_claim(&self, name: &str) -> Option<&str> {
        self.map.get(name).and_then(Value::as_str)
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<std::borrow::Cow<'a, str>>,
    crit: Option<IgnoredAny>,
}

/// Checks a token's structure, algorithm (HS256 only) and signature, and
/// returns its claims unvalidated: for callers with their own claim rules
/// (the data plane follows PostgREST's). Most callers want [`verify`].
///
/// Order matters: structure and algorithm first, then the signature, and only
/// then are the claims parsed, so unauthenticated JSON never reaches the
/// claims parser.
pub fn verify_signature(key: &JwtKey, token: &str) -> Result<Map<String, Value>, Error> {
    let mut parts = token.splitn(4, '.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::MalformedJwt("expected three dot-separated parts"));
    };

    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| Error::MalformedJwt("the header is not base64url"))?;
    let header: Header<'_> = serde_json::from_slice(&header_json)
        .map_err(|_| Error::MalformedJwt("the header is not a JSON object"))?;
    let es256 = match header.alg.as_deref() {
        Some("HS256") => false,
        Some("ES256") if !key.es256.is_empty() => true,
        Some(other) => return Err(Error::WrongAlgorithm(other.to_owned())),
        None => return Err(Error::MalformedJwt("the header has no alg")),
    };
    if header.crit.is_some() {
        // RFC 7515 4.1.11: critical extensions we do not implement must fail.
        return Err(Error::MalformedJwt(
            "the header has unsupported critical extensions",
        ));
    }
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    if es256 {
        // The key the header names; without a `kid`, the only key.
        let public = match header.kid.as_deref() {
            Some(kid) => key.es256.iter().find(|k| k.kid() == kid),
            None if key.es256.len() == 1 => key.es256.first(),
            None => None,
        }
        .ok_or(Error::BadSignature)?;
        let mut signature = [0u8; 64];
        match URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut signature) {
            Ok(64) => {}
            Ok(_) | Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                return Err(Error::BadSignature);
            }
            Err(_) => return Err(Error::MalformedJwt("the signature is not base64url")),
        }
        if !public.verifies(signing_input.as_bytes(), &signature) {
            return Err(Error::BadSignature);
        }
        return claims_of(payload_b64);
    }

    let mut signature = [0u8; 32];
    match URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut signature) {
        Ok(32) => {}
        Ok(_) | Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            return Err(Error::BadSignature);
        }
        Err(_) => return Err(Error::MalformedJwt("the signature is not base64url")),
    }
    let mut mac = key.mac.clone();
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| Error::BadSignature)?;
    claims_of(payload_b64)
}

/// The claims of a token whose signature verified.
fn claims_of(payload_b64: &str) -> Result<Map<String, Value>, Error> {
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| Error::MalformedJwt("the claims are not base64url"))?;
    serde_json::from_slice(&payload)
        .map_err(|_| Error::MalformedJwt("the claims are not a JSON object"))
}

/// Verifies a token with the project's key at time `now` (Unix seconds):
/// [`verify_signature`], then the claims. `exp` is required; `exp`, `nbf`
/// and `iat` get [`LEEWAY_SECS`] of tolerance.
pub fn verify(key: &JwtKey, token: &str, now: i64) -> Result<Claims, Error> {
    let map = verify_signature(key, token)?;
    let exp = numeric_claim(&map, "exp")?.ok_or(Error::MissingClaim("exp"))?;
    if now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(Error::Expired);
    }
    if let Some(nbf) = numeric_claim(&map, "nbf")?
        && now.saturating_add(LEEWAY_SECS) < nbf
    {
        return Err(Error::InvalidClaim {
            claim: "nbf",
            reason: "the token is not valid yet",
        });
    }
    if let Some(iat) = numeric_claim(&map, "iat")?
        && iat > now.saturating_add(LEEWAY_SECS)
    {
        return Err(Error::InvalidClaim {
            claim: "iat",
            reason: "issued in the future",
        });
    }
    if map.get("role").is_some_and(|r| !r.is_string()) {
        return Err(Error::InvalidClaim {
            claim: "role",
            reason: "not a string",
        });
    }
    Ok(Claims { map, exp })
}

/// A NumericDate claim (RFC 7519 2): an integer or a fraction of seconds,
/// truncated toward negative infinity.
fn numeric_claim(map: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, Error> {
    let Some(value) = map.get(name) else {
        return Ok(None);
    };
    let invalid = Error::InvalidClaim {
        claim: name,
        reason: "not a number of seconds",
    };
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            None => match n.as_f64() {
                // `as` saturates out-of-range floats, which is the behaviour wanted.
                Some(f) if f.is_finite() => Ok(Some(f.floor() as i64)),
                _ => Err(invalid),
            },
        },
        _ => Err(invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_claims_verify_with_every_claim() {
        let key = JwtKey::new(&[7u8; 32]).unwrap();
        let mut claims = Map::new();
        claims.insert(
            "sub".into(),
            Value::from("11111111-1111-1111-1111-111111111111"),
        );
        claims.insert("role".into(), Value::from("authenticated"));
        claims.insert("exp".into(), Value::from(unix_now() + 60));
        claims.insert("amr".into(), serde_json::json!([{"method": "password"}]));
        let verified = verify(&key, &sign_claims(&key, &claims), unix_now()).unwrap();
        assert_eq!(verified.as_map(), &claims);
    }
    use proptest::prelude::*;

    const SECRET: &[u8] = b"super-secret-jwt-token-with-at-least-32-characters-long";
    const NOW: i64 = 1_700_000_000;

    fn key() -> JwtKey {
        JwtKey::new(SECRET).unwrap()
    }

    fn pr() -> ProjectRef {
        ProjectRef::parse("runvpplxfmoostzzpjco").unwrap()
    }

    /// Builds a token from raw header and claims JSON, signed with `secret`:
    /// an independent path to the bytes `verify` must accept or refuse.
    fn forge(header: &str, claims: &str, secret: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn minted_tokens_have_the_documented_claims() {
        let token = mint(&key(), &pr(), Role::Anon, NOW);
        let header = token.split('.').next().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(header).unwrap(), HS256.as_bytes());
        let claims = verify(&key(), &token, NOW).unwrap();
        assert_eq!(
            Value::Object(claims.as_map().clone()),
            serde_json::json!({
                "iss": "supa", "ref": "runvpplxfmoostzzpjco", "role": "anon",
                "iat": NOW, "exp": NOW + 300
            })
        );
        assert_eq!(claims.role(), Some("anon"));
        assert_eq!(claims.project_ref(), Some("runvpplxfmoostzzpjco"));
        assert_eq!(claims.exp(), NOW + 300);
    }

    #[test]
    fn minted_token_equals_an_independently_signed_one() {
        let claims = format!(
            r#"{{"iss":"supa","ref":"runvpplxfmoostzzpjco","role":"service_role","iat":{NOW},"exp":{}}}"#,
            NOW + 60
        );
        assert_eq!(
            mint_with_ttl(&key(), &pr(), Role::ServiceRole, NOW, 60),
            forge(HS256, &claims, SECRET)
        );
    }

    #[test]
    fn es256_tokens_verify_only_with_the_projects_keys() {
        let signing = crate::EsSigningKey::generate();
        let mut claims = Map::new();
        claims.insert("sub".into(), serde_json::json!("u"));
        claims.insert("exp".into(), serde_json::json!(unix_now() + 60));
        let token = signing.sign_claims(&claims);
        // A key without ES256 keys refuses the algorithm outright.
        assert!(matches!(
            verify(&key(), &token, unix_now()),
            Err(Error::WrongAlgorithm(a)) if a == "ES256"
        ));
        let with = key().with_es256(vec![signing.public().clone()]);
        assert_eq!(
            verify(&with, &token, unix_now())
                .unwrap()
                .get("sub")
                .unwrap(),
            "u"
        );
        // HS256 tokens of the secret still verify.
        let hs = sign_claims(&with, &claims);
        assert!(verify(&with, &hs, unix_now()).is_ok());
        // Another key pair, or a token whose claims changed, does not.
        let other = key().with_es256(vec![crate::EsSigningKey::generate().public().clone()]);
        assert!(matches!(
            verify(&other, &token, unix_now()),
            Err(Error::BadSignature)
        ));
        let (head, rest) = token.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged = format!(
            "{head}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(br#"{"sub":"admin","exp":9999999999}"#)
        );
        assert!(matches!(
            verify(&with, &forged, unix_now()),
            Err(Error::BadSignature)
        ));
    }

    #[test]
    fn expiry_honours_the_leeway() {
        let token = mint(&key(), &pr(), Role::Anon, NOW);
        let exp = NOW + DEFAULT_TTL_SECS;
        assert!(verify(&key(), &token, exp).is_ok(), "within leeway");
        assert!(verify(&key(), &token, exp + LEEWAY_SECS - 1).is_ok());
        assert_eq!(
            verify(&key(), &token, exp + LEEWAY_SECS),
            Err(Error::Expired)
        );
    }

    #[test]
    fn every_rejection_path_is_distinct() {
        let k = key();
        let good_claims = format!(r#"{{"role":"authenticated","exp":{}}}"#, NOW + 100);

        assert_eq!(
            verify(
                &k,
                &forge(
                    HS256,
                    &good_claims,
                    b"another-secret-of-at-least-32-bytes!!"
                ),
                NOW
            ),
            Err(Error::BadSignature)
        );
        for alg in ["none", "HS512", "RS256", "hs256"] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            assert_eq!(
                verify(&k, &forge(&header, &good_claims, SECRET), NOW),
                Err(Error::WrongAlgorithm(alg.to_owned()))
            );
        }
        // `alg: none` with an empty signature, the classic attack.
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(&good_claims)
        );
        assert_eq!(
            verify(&k, &unsigned, NOW),
            Err(Error::WrongAlgorithm("none".into()))
        );
        assert_eq!(
            verify(&k, &forge(HS256, r#"{"role":"anon"}"#, SECRET), NOW),
            Err(Error::MissingClaim("exp"))
        );
        assert_eq!(
            verify(&k, &forge(HS256, r#"{"exp":"tomorrow"}"#, SECRET), NOW),
            Err(Error::InvalidClaim {
                claim: "exp",
                reason: "not a number of seconds"
            })
        );
        let future_nbf = format!(r#"{{"exp":{},"nbf":{}}}"#, NOW + 100, NOW + 60);
        assert!(matches!(
            verify(&k, &forge(HS256, &future_nbf, SECRET), NOW),
            Err(Error::InvalidClaim { claim: "nbf", .. })
        ));
        let future_iat = format!(r#"{{"exp":{},"iat":{}}}"#, NOW + 1000, NOW + 600);
        assert!(matches!(
            verify(&k, &forge(HS256, &future_iat, SECRET), NOW),
            Err(Error::InvalidClaim { claim: "iat", .. })
        ));
        let numeric_role = format!(r#"{{"exp":{},"role":7}}"#, NOW + 100);
        assert!(matches!(
            verify(&k, &forge(HS256, &numeric_role, SECRET), NOW),
            Err(Error::InvalidClaim { claim: "role", .. })
        ));
        let crit = r#"{"alg":"HS256","crit":["exp"]}"#;
        assert!(matches!(
            verify(&k, &forge(crit, &good_claims, SECRET), NOW),
            Err(Error::MalformedJwt(_))
        ));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!!.e30.AAAA",
            "e30.e30.AAAA",
            "e30",
            "...",
        ] {
            assert!(
                matches!(verify(&k, bad, NOW), Err(Error::MalformedJwt(_))),
                "{bad}"
            );
        }
        // Claims that are signed but not a JSON object.
        assert!(matches!(
            verify(&k, &forge(HS256, "[1,2]", SECRET), NOW),
            Err(Error::MalformedJwt(_))
        ));
        // A signature of the wrong length, and one whose last char has stray bits.
        let token = mint(&k, &pr(), Role::Anon, NOW);
        assert_eq!(
            verify(&k, &token[..token.len() - 3], NOW),
            Err(Error::BadSignature)
        );
        assert_eq!(
            verify(&k, &format!("{token}AAAA"), NOW),
            Err(Error::BadSignature)
        );
        assert!(matches!(
            verify(&k, &token[..token.len() - 4], NOW),
            Err(Error::MalformedJwt(_))
        ));
    }

    #[test]
    fn fractional_dates_and_foreign_claims_pass_through() {
        let claims = format!(
            r#"{{"sub":"u1","email":"a@b.c","role":"authenticated","exp":{}.5,"app_metadata":{{"x":[1]}}}}"#,
            NOW + 10
        );
        let c = verify(&key(), &forge(HS256, &claims, SECRET), NOW).unwrap();
        assert_eq!(c.exp(), NOW + 10);
        assert_eq!(c.get("sub"), Some(&Value::from("u1")));
        assert_eq!(c.get("app_metadata"), Some(&serde_json::json!({"x": [1]})));
    }

    #[test]
    fn weak_secrets_are_refused_and_keys_never_print() {
        assert_eq!(
            JwtKey::new(b"short").unwrap_err(),
            Error::WeakSecret { min: 32, got: 5 }
        );
        assert_eq!(format!("{:?}", key()), "JwtKey(***)");
        assert_ne!(
            key().fingerprint(),
            JwtKey::new(&[b'x'; 32]).unwrap().fingerprint()
        );
    }

    #[test]
    fn error_classification() {
        assert_eq!(Error::BadSignature.pgrst_code(), Some("PGRST301"));
        assert_eq!(
            Error::WrongAlgorithm("none".into()).pgrst_code(),
            Some("PGRST301")
        );
        assert_eq!(Error::Expired.pgrst_code(), Some("PGRST303"));
        assert_eq!(Error::MissingClaim("exp").status(), 401);
        assert_eq!(Error::ChecksumMismatch.pgrst_code(), None);
        assert!(Error::ChecksumMismatch.is_key_error());
    }

    proptest! {
        #[test]
        fn verify_never_panics(s in ".*") {
            let _ = verify(&key(), &s, NOW);
        }

        #[test]
        fn verify_never_panics_on_dotted_base64(a in "[A-Za-z0-9_-]{0,60}", b in "[A-Za-z0-9_-]{0,80}", c in "[A-Za-z0-9_-]{0,50}") {
            let _ = verify(&key(), &format!("{a}.{b}.{c}"), NOW);
        }

        #[test]
        fn mint_then_verify(project in "[a-z]{20}", now in 0i64..4_000_000_000) {
            let pr = ProjectRef::parse(&project).unwrap();
            let claims = verify(&key(), &mint(&key(), &pr, Role::ServiceRole, now), now).unwrap();
            prop_assert_eq!(claims.project_ref(), Some(project.as_str()));
        }
    }
}
