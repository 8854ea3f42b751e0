//! The storage backend as command-line flags, shared by every binary that
//! serves or deletes objects (`supa up`, `supa-tenant-manager`,
//! `supa-gateway`).

use std::path::PathBuf;

/// Where the storage server keeps object bytes, as flags with their
/// `SUPA_STORAGE_*` variables; S3 credentials come from the usual `AWS_*`
/// variables.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// `file` (the data dir, or --storage-path) or `s3`.
    #[arg(long, env = supa_core::env::STORAGE_BACKEND, default_value = "file")]
    pub storage_backend: String,
    /// The directory of the file backend (default DATA_DIR/storage).
    #[arg(long, env = supa_core::env::STORAGE_PATH)]
    pub storage_path: Option<PathBuf>,
    /// The S3 bucket that holds every project's objects.
    #[arg(long, env = supa_core::env::STORAGE_S3_BUCKET)]
    pub storage_s3_bucket: Option<String>,
    /// The S3 endpoint (AWS when unset).
    #[arg(long, env = supa_core::env::STORAGE_S3_ENDPOINT)]
    pub storage_s3_endpoint: Option<String>,
    /// The S3 region.
    #[arg(long, env = supa_core::env::STORAGE_S3_REGION, default_value = "us-east-1")]
    pub storage_s3_region: String,
    /// Path-style S3 requests (most S3-compatible servers).
    #[arg(long, env = supa_core::env::STORAGE_S3_FORCE_PATH_STYLE, default_value_t = false)]
    pub storage_s3_force_path_style: bool,
    /// The file backend's ETags: `md5` of the bytes (as S3), or `mtime`
    /// (the write's time and size: large uploads at the disk's speed).
    #[arg(long, env = supa_core::env::STORAGE_FILE_ETAG, default_value = "md5")]
    pub storage_file_etag: crate::FileEtag,
}

impl StorageArgs {
    /// The backend these flags name; files go under `data_dir` unless
    /// a path is given.
    pub fn backend(&self, data_dir: &std::path::Path) -> Result<crate::BackendConfig, String> {
        match self.storage_backend.as_str() {
            "file" => Ok(crate::BackendConfig::File {
                root: self
                    .storage_path
                    .clone()
                    .unwrap_or_else(|| data_dir.join("storage")),
                etag: self.storage_file_etag,
            }),
            "s3" => {
                let bucket = self.storage_s3_bucket.clone().ok_or_else(|| {
                    format!(
                        "{} is required with the s3 backend",
                        supa_core::env::STORAGE_S3_BUCKET
                    )
                })?;
                Ok(crate::BackendConfig::S3(crate::S3Config {
                    bucket,
                    endpoint: self.storage_s3_endpoint.clone(),
                    region: self.storage_s3_region.clone(),
                    force_path_style: self.storage_s3_force_path_style,
                    access_key_id: None,
                    secret_access_key: None,
                }))
            }
            other => Err(format!("unknown storage backend {other:?} (file or s3)")),
        }
    }
}
