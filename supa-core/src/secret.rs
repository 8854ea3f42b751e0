use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value that must never reach a log line: `Debug` and `Display` print `***`.
///
/// Reading the value takes an explicit [`Secret::expose`], so every place a
/// secret leaves its wrapper is greppable. Deserializing is transparent;
/// serializing is not implemented on purpose: a struct that really must send a
/// secret over a trusted channel opts in per field with
/// `#[serde(serialize_with = "supa_core::serialize_exposed")]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The wrapped value; each call site is a deliberate disclosure.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

/// Serializes the wrapped value in clear; for `#[serde(serialize_with)]` on
/// fields that travel over an authenticated internal channel only.
pub fn serialize_exposed<T: Serialize, S: Serializer>(
    secret: &Secret<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    secret.0.serialize(s)
}

/// [`serialize_exposed`] for an optional secret.
pub(crate) fn serialize_exposed_option<T: Serialize, S: Serializer>(
    secret: &Option<Secret<T>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    secret.as_ref().map(|v| &v.0).serialize(s)
}

/// [`serialize_exposed`] for a map of secrets.
pub(crate) fn serialize_exposed_map<T: Serialize, S: Serializer>(
    secrets: &std::collections::BTreeMap<String, Secret<T>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(secrets.iter().map(|(k, v)| (k, &v.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn deserializes_transparently() {
        let s: Secret<String> = serde_json::from_str("\"k\"").unwrap();
        assert_eq!(s.into_inner(), "k");
    }
}
