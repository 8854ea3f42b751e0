//! A project's storage settings, named as Supabase's Management API names
//! them (`/v1/projects/{ref}/config/storage`): the largest file, and which
//! storage features are on.

use serde::{Deserialize, Serialize};

use crate::Error;

/// How a project's storage server behaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageSettings {
    /// Largest object, bytes (buckets may set less).
    pub file_size_limit: i64,
    /// Optional features.
    pub features: StorageFeatures,
}

/// Storage features a project may turn off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageFeatures {
    /// `/render/image/...`.
    pub image_transformation: Feature,
    /// `/storage/v1/s3`.
    pub s3_protocol: Feature,
}

/// One feature's switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Feature {
    /// It is served.
    pub enabled: bool,
}

impl Default for Feature {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Supabase's default limit: 50 MiB.
pub const DEFAULT_FILE_SIZE_LIMIT: i64 = 50 * 1024 * 1024;

/// Supabase's largest limit: 500 GB.
pub const MAX_FILE_SIZE_LIMIT: i64 = 500 * 1024 * 1024 * 1024;

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            file_size_limit: DEFAULT_FILE_SIZE_LIMIT,
            features: StorageFeatures::default(),
        }
    }
}

impl StorageSettings {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=MAX_FILE_SIZE_LIMIT).contains(&self.file_size_limit) {
            return Err(Error::InvalidSetting {
                field: "fileSizeLimit",
                reason: format!(
                    "{} is not between 1 and {MAX_FILE_SIZE_LIMIT} bytes",
                    self.file_size_limit
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supabase_names_and_defaults() {
        let s = StorageSettings::default();
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"fileSizeLimit": 52428800,
                "features": {"imageTransformation": {"enabled": true}, "s3Protocol": {"enabled": true}}})
        );
        let partial: StorageSettings =
            serde_json::from_str(r#"{"features": {"s3Protocol": {"enabled": false}}}"#).unwrap();
        assert!(
            !partial.features.s3_protocol.enabled && partial.features.image_transformation.enabled
        );
        assert!(serde_json::from_str::<StorageSettings>(r#"{"fileSizeLimt": 1}"#).is_err());
        assert!(
            StorageSettings {
                file_size_limit: 0,
                ..s.clone()
            }
            .validate()
            .is_err()
        );
        s.validate().unwrap();
    }
}
