use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A project's reference: exactly 20 lowercase ASCII letters, as on hosted
/// Supabase (`runvpplxfmoostzzpjco`).
///
/// Stored inline (no heap) and `Copy`, because the gateway hashes and compares
/// it on every request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectRef([u8; ProjectRef::LEN]);

impl ProjectRef {
    /// The length of every project ref.
    pub const LEN: usize = 20;

    /// Parses and validates a ref; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bytes = s.as_bytes();
        if bytes.len() != Self::LEN {
            return Err(Error::InvalidProjectRef(format!(
                "must be exactly {} characters of a-z, got {} characters",
                Self::LEN,
                s.chars().count()
            )));
        }
        if let Some((at, c)) = s.chars().enumerate().find(|(_, c)| !c.is_ascii_lowercase()) {
            return Err(Error::InvalidProjectRef(format!(
                "may only contain lowercase letters a-z, found {c:?} at position {}",
                at + 1
            )));
        }
        let mut out = [0u8; Self::LEN];
        out.copy_from_slice(bytes);
        Ok(Self(out))
    }

    /// A fresh ref drawn from the operating system's CSPRNG.
    ///
    /// Each letter is uniform over `a-z`: bytes at or above 234 (= 9 × 26) are
    /// rejected and redrawn, so `byte % 26` carries no modulo bias.
    pub fn generate() -> Self {
        const LIMIT: u8 = 26 * 9;
        let mut out = [0u8; Self::LEN];
        let mut filled = 0;
        let mut pool = [0u8; 32];
        while filled < Self::LEN {
            getrandom::fill(&mut pool).expect("the operating system's random source failed");
            for &b in pool.iter().filter(|&&b| b < LIMIT) {
                if filled == Self::LEN {
                    break;
                }
                out[filled] = b'a' + b % 26;
                filled += 1;
            }
        }
        Self(out)
    }

    /// The ref as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII lowercase letters are ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).expect("a project ref is ASCII")
    }
}

impl FromStr for ProjectRef {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for ProjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ProjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProjectRef({})", self.as_str())
    }
}

impl AsRef<str> for ProjectRef {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Serialize for ProjectRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProjectRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_a_hosted_ref() {
        let r = ProjectRef::parse("runvpplxfmoostzzpjco").unwrap();
        assert_eq!(r.as_str(), "runvpplxfmoostzzpjco");
        assert_eq!(r.to_string(), "runvpplxfmoostzzpjco");
    }

    #[test]
    fn says_what_is_wrong() {
        let short = ProjectRef::parse("abc").unwrap_err().to_string();
        assert!(
            short.contains("exactly 20") && short.contains("got 3"),
            "{short}"
        );
        let upper = ProjectRef::parse("runvpplxfmoostzzpjcO")
            .unwrap_err()
            .to_string();
        assert!(
            upper.contains("'O'") && upper.contains("position 20"),
            "{upper}"
        );
        let digit = ProjectRef::parse("1unvpplxfmoostzzpjco")
            .unwrap_err()
            .to_string();
        assert!(
            digit.contains("'1'") && digit.contains("position 1"),
            "{digit}"
        );
        // 20 bytes but not 20 letters: the count is in characters.
        let multibyte = ProjectRef::parse("ééééééééééééééééééé")
            .unwrap_err()
            .to_string();
        assert!(multibyte.contains("got 19"), "{multibyte}");
        assert!(ProjectRef::parse("").is_err());
    }

    #[test]
    fn serde_validates() {
        let r: ProjectRef = serde_json::from_str("\"runvpplxfmoostzzpjco\"").unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            "\"runvpplxfmoostzzpjco\""
        );
        assert!(serde_json::from_str::<ProjectRef>("\"nope\"").is_err());
    }

    #[test]
    fn generated_refs_are_valid_and_cover_the_alphabet() {
        let mut seen = [0u32; 26];
        for _ in 0..2_000 {
            let r = ProjectRef::generate();
            assert_eq!(ProjectRef::parse(r.as_str()).unwrap(), r);
            for b in r.as_str().bytes() {
                seen[(b - b'a') as usize] += 1;
            }
        }
        // 40,000 letters: each letter expects ~1,538; a biased or truncated
        // alphabet would leave some far below that.
        assert!(seen.iter().all(|&n| n > 1_200), "{seen:?}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = ProjectRef::parse(&s);
        }

        #[test]
        fn valid_refs_round_trip(s in "[a-z]{20}") {
            let parsed = ProjectRef::parse(&s).unwrap();
            prop_assert_eq!(parsed.as_str(), s.as_str());
        }
    }
}
