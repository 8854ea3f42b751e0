//! ES256 (ECDSA on P-256 with SHA-256) signing keys, for projects whose
//! auth server signs access tokens asymmetrically: the private key stays
//! with the auth server, the public one is published in the JWKS and
//! verifies tokens anywhere (gateway, data plane, other services).
//!
//! A key travels as a JWK (RFC 7517/7518): `{"kty": "EC", "crv": "P-256",
//! "x", "y", "d", "kid"}`, `d` only in the private form. Signatures are the
//! 64-byte `r || s` JWS uses, made deterministically (RFC 6979).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use crate::Error;

/// A project's private signing key.
#[derive(Clone)]
pub struct EsSigningKey {
    key: SigningKey,
    public: EsPublicKey,
}

impl std::fmt::Debug for EsSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EsSigningKey({}, ***)", self.public.kid)
    }
}

/// A public key that verifies ES256 tokens, with its key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsPublicKey {
    key: VerifyingKey,
    kid: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn field<'a>(jwk: &'a Value, name: &'static str) -> Result<&'a str, Error> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or(Error::BadJwk(name))
}

fn coordinate(jwk: &Value, name: &'static str) -> Result<[u8; 32], Error> {
    let bytes = URL_SAFE_NO_PAD
        .decode(field(jwk, name)?)
        .map_err(|_| Error::BadJwk(name))?;
    bytes.try_into().map_err(|_| Error::BadJwk(name))
}

impl EsSigningKey {
    /// A new random key.
    pub fn generate() -> Self {
        loop {
            let mut d = [0u8; 32];
            getrandom::fill(&mut d).expect("the OS has randomness");
            // A scalar of zero or above the group order is refused; retry.
            if let Ok(key) = SigningKey::from_slice(&d) {
                return Self::from_key(key);
            }
        }
    }

    fn from_key(key: SigningKey) -> Self {
        let public = EsPublicKey::from_key(*key.verifying_key());
        Self { key, public }
    }

    /// The key of a private JWK.
    pub fn from_jwk(jwk: &Value) -> Result<Self, Error> {
        if field(jwk, "kty")? != "EC" || field(jwk, "crv")? != "P-256" {
            return Err(Error::BadJwk("crv"));
        }
        let d = coordinate(jwk, "d")?;
        let key = SigningKey::from_slice(&d).map_err(|_| Error::BadJwk("d"))?;
        let mut signing = Self::from_key(key);
        // The public half as the JWK states it (with its `kid`), which must
        // be the private key's.
        let public = EsPublicKey::from_jwk(jwk)?;
        if public.key != signing.public.key {
            return Err(Error::BadJwk("x"));
        }
        signing.public = public;
        Ok(signing)
    }

    /// The keys of a JSON array of private JWKs (a project's signing keys,
    /// the current one first).
    pub fn list_from_json(text: &str) -> Result<Vec<Self>, Error> {
        let list: Vec<Value> = serde_json::from_str(text).map_err(|_| Error::BadJwk("keys"))?;
        list.iter().map(Self::from_jwk).collect()
    }

    /// Its private JWK, to be kept sealed.
    pub fn private_jwk(&self) -> Value {
        let mut jwk = self.public.jwk();
        jwk["d"] = json!(b64(&self.key.to_bytes()));
        jwk
    }

    /// Its public half.
    pub fn public(&self) -> &EsPublicKey {
        &self.public
    }

    /// A token of `claims`, its header naming the key.
    pub fn sign_claims(&self, claims: &Map<String, Value>) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.public.kid});
        let mut token = b64(header.to_string().as_bytes());
        token.push('.');
        token.push_str(&b64(
            &serde_json::to_vec(claims).expect("a JSON map serializes")
        ));
        let signature: Signature = self.key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&b64(&signature.to_bytes()));
        token
    }
}

impl EsPublicKey {
    fn from_key(key: VerifyingKey) -> Self {
        let point = key.to_sec1_point(false);
        let kid = hex::encode(&sha2::Sha256::digest(point.as_bytes())[..8]);
        Self { key, kid }
    }

    /// The key of a public (or private) JWK; its `kid` is kept when given.
    pub fn from_jwk(jwk: &Value) -> Result<Self, Error> {
        if field(jwk, "kty")? != "EC" || field(jwk, "crv")? != "P-256" {
            return Err(Error::BadJwk("crv"));
        }
        let mut sec1 = Vec::with_capacity(65);
        sec1.push(4);
        sec1.extend_from_slice(&coordinate(jwk, "x")?);
        sec1.extend_from_slice(&coordinate(jwk, "y")?);
        let key = VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| Error::BadJwk("x"))?;
        let mut public = Self::from_key(key);
        if let Some(kid) = jwk.get("kid").and_then(Value::as_str) {
            public.kid = kid.to_owned();
        }
        Ok(public)
    }

    /// Its key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Its public JWK, as a JWKS lists it.
    pub fn jwk(&self) -> Value {
        let point = self.key.to_sec1_point(false);
        let bytes = point.as_bytes();
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "key_ops": ["verify"],
            "kid": self.kid, "x": b64(&bytes[1..33]), "y": b64(&bytes[33..65]),
        })
    }

    /// Whether `signature` (JWS `r || s`) signs `input`.
    pub(crate) fn verifies(&self, input: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature).is_ok_and(|s| self.key.verify(input, &s).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_jwks_and_sign_verifiably() {
        let key = EsSigningKey::generate();
        let again = EsSigningKey::from_jwk(&key.private_jwk()).unwrap();
        assert_eq!(again.public(), key.public());
        let public = EsPublicKey::from_jwk(&key.public().jwk()).unwrap();
        assert_eq!(&public, key.public());
        assert!(key.public().jwk().get("d").is_none());
        assert!(!format!("{key:?}").contains(key.private_jwk()["d"].as_str().unwrap()));
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("u"));
        let token = key.sign_claims(&claims);
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert!(public.verifies(input.as_bytes(), &sig));
        assert!(!public.verifies(b"other", &sig));
        let other = EsSigningKey::generate();
        assert!(!other.public().verifies(input.as_bytes(), &sig));
        let mut bad = key.private_jwk();
        bad["x"] = other.public().jwk()["x"].clone();
        assert!(EsSigningKey::from_jwk(&bad).is_err());
    }
}
