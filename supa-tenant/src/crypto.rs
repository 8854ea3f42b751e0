//! Secrets at rest: AES-256-GCM under the platform master key.
//!
//! Each ciphertext is `nonce (12 bytes) || ciphertext || tag` with a fresh
//! random nonce, and is bound to what it protects through the associated
//! data (`"project:<ref>:jwt_secret"`, ...), so a ciphertext copied into
//! another row or column fails to decrypt instead of leaking across.

use std::fs;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::Error;
use crate::files::{random_bytes, read_private, write_private};

const NONCE_LEN: usize = 12;

/// The platform master key; `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey(Aes256Gcm);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(bytes.into()))
    }

    /// A key from its base64 form (as `SUPA_MASTER_KEY` holds it), or 64
    /// hex digits (what a secrets manager that draws from a character set,
    /// like AWS Secrets Manager, can generate). The two cannot be confused:
    /// 64 base64 characters are 48 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, Error> {
        let encoded = encoded.trim();
        let hex = encoded.len() == 64 && encoded.bytes().all(|b| b.is_ascii_hexdigit());
        let bytes = if hex {
            hex::decode(encoded).ok()
        } else {
            STANDARD.decode(encoded).ok()
        }
        .ok_or_else(|| Error::Config(format!("{} is not base64", supa_core::env::MASTER_KEY)))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::Config(format!(
                "{} must decode to 32 bytes",
                supa_core::env::MASTER_KEY
            ))
        })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The key from `explicit` (the environment) when given, else from
    /// `<data_dir>/master_key`, generated there with mode 0600 on first use.
    pub fn load_or_generate(explicit: Option<&str>, data_dir: &Path) -> Result<Self, Error> {
        if let Some(encoded) = explicit {
            return Self::from_base64(encoded);
        }
        let path = data_dir.join("master_key");
        if let Some(encoded) = read_private(&path)? {
            return Self::from_base64(&encoded);
        }
        fs::create_dir_all(data_dir).map_err(|e| Error::io("create the data dir", e))?;
        let bytes = random_bytes::<32>();
        write_private(&path, &STANDARD.encode(bytes))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Encrypts `plaintext` for the purpose named by `context`.
    pub fn encrypt(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = random_bytes::<NONCE_LEN>();
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`MasterKey::encrypt`] produced for the same `context`.
    pub fn decrypt(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < NONCE_LEN {
            return Err(Error::Decrypt(context.to_owned()));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Error::Decrypt(context.to_owned()))
    }

    /// [`MasterKey::decrypt`] for UTF-8 secrets.
    pub fn decrypt_string(&self, context: &str, sealed: &[u8]) -> Result<String, Error> {
        String::from_utf8(self.decrypt(context, sealed)?)
            .map_err(|_| Error::Decrypt(context.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn round_trips_and_binds_the_context() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let sealed = key.encrypt("project:a:jwt_secret", b"s3cret");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(
            key.decrypt("project:a:jwt_secret", &sealed).unwrap(),
            b"s3cret"
        );
        assert!(
            key.decrypt("project:b:jwt_secret", &sealed).is_err(),
            "moved to another row"
        );
        assert!(
            MasterKey::from_bytes(&[8; 32])
                .decrypt("project:a:jwt_secret", &sealed)
                .is_err()
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.decrypt("project:a:jwt_secret", &tampered).is_err());
        assert!(key.decrypt("x", b"short").is_err());
        assert_ne!(
            key.encrypt("c", b"same"),
            key.encrypt("c", b"same"),
            "fresh nonces"
        );
        assert_eq!(format!("{key:?}"), "MasterKey(***)");
    }

    #[test]
    fn generated_once_with_private_mode() {
        let dir = tempfile_dir();
        let a = MasterKey::load_or_generate(None, &dir).unwrap();
        let mode = fs::metadata(dir.join("master_key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let b = MasterKey::load_or_generate(None, &dir).unwrap();
        assert_eq!(
            b.decrypt("c", &a.encrypt("c", b"x")).unwrap(),
            b"x",
            "reused, not regenerated"
        );
        fs::set_permissions(dir.join("master_key"), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            MasterKey::load_or_generate(None, &dir).is_err(),
            "world-readable key refused"
        );
        assert!(MasterKey::load_or_generate(Some("bm90IDMyIGJ5dGVz"), &dir).is_err());
        // 64 hex digits are the same 32 bytes as their base64 form.
        let raw = [0xab_u8; 32];
        let sealed = MasterKey::from_base64(&STANDARD.encode(raw))
            .unwrap()
            .encrypt("ctx", b"secret");
        let hex = MasterKey::from_base64(&hex::encode(raw)).unwrap();
        assert_eq!(hex.decrypt("ctx", &sealed).unwrap(), b"secret");
        assert!(MasterKey::from_base64(&"g".repeat(64)).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).unwrap();
        std::env::temp_dir().join(format!("supa-master-key-{}", hex::encode(suffix)))
    }
}
