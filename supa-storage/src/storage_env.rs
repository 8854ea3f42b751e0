//! The environment of Supabase Storage's container, read as the
//! standalone `supa-storage` binary's configuration, so it can take that
//! container's place in Supabase's docker-compose unchanged.

use std::collections::HashMap;
use std::path::PathBuf;

use supa_core::{Secret, StorageSettings};

use crate::{BackendConfig, S3Config};

/// What a standalone server is configured with.
#[derive(Debug, Clone)]
pub struct StorageEnv {
    /// `DATABASE_URL`.
    pub database_url: Secret<String>,
    /// `AUTH_JWT_SECRET` (or its older name `PGRST_JWT_SECRET`).
    pub jwt_secret: Secret<String>,
    /// `STORAGE_BACKEND` with its `FILE_*` or `STORAGE_S3_*` settings.
    pub backend: BackendConfig,
    /// `FILE_SIZE_LIMIT` and `IMAGE_TRANSFORMATION_ENABLED`.
    pub settings: StorageSettings,
    /// `TENANT_ID`: the first segment of every object key.
    pub tenant_id: String,
    /// `SERVER_HOST` (default `0.0.0.0`).
    pub host: String,
    /// `SERVER_PORT` (default 5000).
    pub port: u16,
    /// `TUS_URL_EXPIRY_MS`: how long a resumable upload may take.
    pub upload_expiry: std::time::Duration,
    /// `S3_PROTOCOL_ACCESS_KEY_ID` and `S3_PROTOCOL_ACCESS_KEY_SECRET`: the
    /// access key of the S3 endpoint.
    pub s3_credential: Option<(String, Secret<String>)>,
    /// `ANON_KEY`: what S3 clients sign with when a user's JWT is their
    /// session token.
    pub anon_key: Option<String>,
}

/// Reads the configuration from `vars`; the error names the variable.
pub fn read(vars: impl IntoIterator<Item = (String, String)>) -> Result<StorageEnv, String> {
    let vars: HashMap<String, String> = vars
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let get = |names: &[&str]| names.iter().find_map(|n| vars.get(*n).cloned());
    let required =
        |names: &[&str]| get(names).ok_or_else(|| format!("{} is required", names.join(" or ")));
    let flag = |name: &str| {
        vars.get(name)
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
    };
    let database_url = Secret::new(required(&["DATABASE_URL"])?);
    let jwt_secret = Secret::new(required(&["AUTH_JWT_SECRET", "PGRST_JWT_SECRET"])?);
    let region = get(&["STORAGE_S3_REGION", "REGION"]).unwrap_or_else(|| "us-east-1".into());
    let backend = match get(&["STORAGE_BACKEND"]).as_deref().unwrap_or("file") {
        "file" => BackendConfig::File {
            root: PathBuf::from(
                get(&["FILE_STORAGE_BACKEND_PATH"]).unwrap_or_else(|| "/var/lib/storage".into()),
            ),
            etag: match get(&["STORAGE_FILE_ETAG_ALGORITHM"]) {
                Some(a) => a
                    .trim()
                    .parse()
                    .map_err(|e| format!("STORAGE_FILE_ETAG_ALGORITHM: {e}"))?,
                None => crate::FileEtag::Md5,
            },
        },
        "s3" => BackendConfig::S3(S3Config {
            bucket: required(&["STORAGE_S3_BUCKET", "GLOBAL_S3_BUCKET"])?,
            endpoint: get(&["STORAGE_S3_ENDPOINT", "GLOBAL_S3_ENDPOINT"]),
            region,
            force_path_style: flag("STORAGE_S3_FORCE_PATH_STYLE")
                .or_else(|| flag("GLOBAL_S3_FORCE_PATH_STYLE"))
                .unwrap_or(false),
            access_key_id: get(&["AWS_ACCESS_KEY_ID"]),
            secret_access_key: get(&["AWS_SECRET_ACCESS_KEY"]).map(Secret::new),
        }),
        other => return Err(format!("STORAGE_BACKEND must be file or s3, not {other:?}")),
    };
    let mut settings = StorageSettings::default();
    if let Some(limit) = get(&["FILE_SIZE_LIMIT", "UPLOAD_FILE_SIZE_LIMIT"]) {
        settings.file_size_limit = limit
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("FILE_SIZE_LIMIT must be a number of bytes, not {limit:?}"))?;
    }
    if let Some(enabled) = flag("IMAGE_TRANSFORMATION_ENABLED") {
        settings.features.image_transformation.enabled = enabled;
    }
    let port = match get(&["SERVER_PORT", "PORT"]) {
        Some(p) => p
            .trim()
            .parse()
            .map_err(|_| format!("SERVER_PORT must be a port number, not {p:?}"))?,
        None => 5000,
    };
    let upload_expiry = match get(&["TUS_URL_EXPIRY_MS"]) {
        Some(ms) => std::time::Duration::from_millis(
            ms.trim()
                .parse()
                .map_err(|_| format!("TUS_URL_EXPIRY_MS must be milliseconds, not {ms:?}"))?,
        ),
        None => crate::DEFAULT_UPLOAD_EXPIRY,
    };
    let s3_credential = match (
        get(&["S3_PROTOCOL_ACCESS_KEY_ID"]),
        get(&["S3_PROTOCOL_ACCESS_KEY_SECRET"]),
    ) {
        (Some(id), Some(secret)) => Some((id, Secret::new(secret))),
        (None, None) => None,
        _ => {
            return Err(
                "S3_PROTOCOL_ACCESS_KEY_ID and S3_PROTOCOL_ACCESS_KEY_SECRET go together".into(),
            );
        }
    };
    Ok(StorageEnv {
        upload_expiry,
        s3_credential,
        anon_key: get(&["ANON_KEY"]),
        database_url,
        jwt_secret,
        backend,
        settings,
        tenant_id: get(&["TENANT_ID"]).unwrap_or_else(|| "stub".into()),
        host: get(&["SERVER_HOST"]).unwrap_or_else(|| "0.0.0.0".into()),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<StorageEnv, String> {
        read(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn supabase_compose_settings() {
        let e = env(&[
            (
                "DATABASE_URL",
                "postgres://supabase_storage_admin:pw@db:5432/postgres",
            ),
            ("PGRST_JWT_SECRET", "s".repeat(40).as_str()),
            ("STORAGE_BACKEND", "file"),
            ("FILE_STORAGE_BACKEND_PATH", "/var/lib/storage"),
            ("STORAGE_FILE_ETAG_ALGORITHM", "mtime"),
            ("FILE_SIZE_LIMIT", "52428800"),
            ("TENANT_ID", "stub"),
            ("REGION", "local"),
            ("IMAGE_TRANSFORMATION_ENABLED", "true"),
            (
                "S3_PROTOCOL_ACCESS_KEY_ID",
                "625729a08b95bf1b7ff351a663f3a23c",
            ),
            (
                "S3_PROTOCOL_ACCESS_KEY_SECRET",
                "850181e4652dd023b7a98c58ae0d2d34",
            ),
        ])
        .unwrap();
        let (id, secret) = e.s3_credential.clone().unwrap();
        assert_eq!(id, "625729a08b95bf1b7ff351a663f3a23c");
        assert_eq!(secret.expose(), "850181e4652dd023b7a98c58ae0d2d34");
        assert!(
            matches!(e.backend, BackendConfig::File { root, etag: crate::FileEtag::Mtime } if root == std::path::Path::new("/var/lib/storage"))
        );
        assert_eq!(e.settings.file_size_limit, 52_428_800);
        assert!(e.settings.features.image_transformation.enabled);
        assert_eq!((e.tenant_id.as_str(), e.port), ("stub", 5000));
    }

    #[test]
    fn s3_settings_and_errors_name_the_variable() {
        let e = env(&[
            ("DATABASE_URL", "postgres://x@y/z"),
            ("AUTH_JWT_SECRET", "secret"),
            ("STORAGE_BACKEND", "s3"),
            ("STORAGE_S3_BUCKET", "objects"),
            ("STORAGE_S3_ENDPOINT", "http://minio:9000"),
            ("STORAGE_S3_FORCE_PATH_STYLE", "true"),
            ("STORAGE_S3_REGION", "eu-west-1"),
            ("SERVER_PORT", "5001"),
            ("TUS_URL_EXPIRY_MS", "1500"),
        ])
        .unwrap();
        let BackendConfig::S3(s3) = e.backend else {
            panic!("an S3 backend")
        };
        assert_eq!(s3.bucket, "objects");
        assert_eq!(s3.endpoint.as_deref(), Some("http://minio:9000"));
        assert!(s3.force_path_style);
        assert_eq!((s3.region.as_str(), e.port), ("eu-west-1", 5001));
        assert_eq!(e.upload_expiry, std::time::Duration::from_millis(1500));
        assert!(
            env(&[("AUTH_JWT_SECRET", "s")])
                .unwrap_err()
                .contains("DATABASE_URL")
        );
        let no_bucket = env(&[
            ("DATABASE_URL", "u"),
            ("AUTH_JWT_SECRET", "s"),
            ("STORAGE_BACKEND", "s3"),
        ]);
        assert!(no_bucket.unwrap_err().contains("STORAGE_S3_BUCKET"));
        let bad = env(&[
            ("DATABASE_URL", "u"),
            ("AUTH_JWT_SECRET", "s"),
            ("FILE_SIZE_LIMIT", "big"),
        ]);
        assert!(bad.unwrap_err().contains("FILE_SIZE_LIMIT"));
    }
}
