//! `supa storage ls|cp|rm`: a project's buckets and objects from the
//! command line, through the gateway with the project's secret key, as
//! the Supabase CLI's `storage` commands name paths (`ss:///bucket/path`).
//! Large copies stream both ways with a progress bar on a terminal.

use std::path::Path;

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use supa_core::{KeyKind, ProjectRef};
use tokio::io::AsyncWriteExt as _;

use crate::remote::Remote;

/// The scheme of storage paths.
const SCHEME: &str = "ss:///";

/// A bucket and a path in it (empty for the bucket's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoragePath {
    bucket: String,
    path: String,
}

impl StoragePath {
    /// `ss:///bucket/path`, or `None` for a local path.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(SCHEME)?;
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        Some(Self {
            bucket: bucket.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// A project's storage API, reached with its secret key.
pub(crate) struct StorageCli {
    http: reqwest::Client,
    base: String,
    key: String,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// The content type of a file, by its extension.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "md" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// Storage's error body as one line.
async fn failure(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    anyhow::anyhow!(
        "{} ({}): {}",
        body["error"].as_str().unwrap_or("error"),
        body["statusCode"].as_str().unwrap_or(status.as_str()),
        body["message"].as_str().unwrap_or("")
    )
}

impl StorageCli {
    pub(crate) async fn new(remote: &Remote, project_ref: &ProjectRef) -> anyhow::Result<Self> {
        let key = remote
            .client()
            .list_keys(project_ref, true)
            .await?
            .into_iter()
            .find(|k| k.kind == KeyKind::Secret)
            .context("the project has no secret key")?
            .api_key;
        Ok(Self {
            http: supa_core::http::client(std::time::Duration::from_secs(3600)),
            base: format!("{}/project/{project_ref}/storage/v1", remote.gateway_url()),
            key,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("apikey", &self.key)
            .bearer_auth(&self.key)
    }

    fn object_path(path: &StoragePath) -> String {
        let encoded: Vec<String> = std::iter::once(path.bucket.as_str())
            .chain(path.path.split('/'))
            .map(|s| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            })
            .collect();
        encoded.join("/")
    }

    /// Buckets, or the folders and objects under a path (one level).
    pub(crate) async fn ls(&self, path: Option<&str>) -> anyhow::Result<Vec<String>> {
        let Some(path) = path else {
            let response = self.request(reqwest::Method::GET, "/bucket").send().await?;
            if !response.status().is_success() {
                return Err(failure(response).await);
            }
            let buckets: Vec<Value> = response.json().await?;
            return Ok(buckets
                .iter()
                .filter_map(|b| b["name"].as_str().map(|n| format!("{n}/")))
                .collect());
        };
        let path = StoragePath::parse(path)
            .with_context(|| format!("{path:?} is not {SCHEME}bucket/path"))?;
        let mut names = Vec::new();
        let mut offset = 0;
        loop {
            let response = self
                .request(
                    reqwest::Method::POST,
                    &format!("/object/list/{}", path.bucket),
                )
                .json(&json!({"prefix": path.path, "limit": 1000, "offset": offset}))
                .send()
                .await?;
            if !response.status().is_success() {
                return Err(failure(response).await);
            }
            let page: Vec<Value> = response.json().await?;
            for entry in &page {
                let name = entry["name"].as_str().unwrap_or_default();
                // Folders have no id.
                if entry["id"].is_null() {
                    names.push(format!("{name}/"));
                } else {
                    names.push(name.to_owned());
                }
            }
            if page.len() < 1000 {
                return Ok(names);
            }
            offset += page.len();
        }
    }

    /// Copies a local file to storage or an object to a local file.
    pub(crate) async fn cp(&self, from: &str, to: &str) -> anyhow::Result<u64> {
        match (StoragePath::parse(from), StoragePath::parse(to)) {
            (None, Some(to)) => self.upload(Path::new(from), &to).await,
            (Some(from), None) => self.download(&from, Path::new(to)).await,
            _ => bail!("one of the two paths must be local and the other {SCHEME}bucket/path"),
        }
    }

    async fn upload(&self, from: &Path, to: &StoragePath) -> anyhow::Result<u64> {
        let file = tokio::fs::File::open(from)
            .await
            .with_context(|| format!("cannot open {}", from.display()))?;
        let len = file.metadata().await?.len();
        let mut to = to.clone();
        if to.path.is_empty() || to.path.ends_with('/') {
            let name = from
                .file_name()
                .and_then(|n| n.to_str())
                .context("the file has no name")?;
            to.path.push_str(name);
        }
        let progress = bar(
            len,
            &format!("{} -> {SCHEME}{}/{}", from.display(), to.bucket, to.path),
        );
        let counted = progress.clone();
        let stream =
            tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).inspect(move |chunk| {
                if let Ok(chunk) = chunk {
                    counted.inc(chunk.len() as u64);
                }
            });
        let response = self
            .request(
                reqwest::Method::POST,
                &format!("/object/{}", Self::object_path(&to)),
            )
            .header("content-type", content_type(from))
            .header("content-length", len)
            .header("x-upsert", "true")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await?;
        progress.finish_and_clear();
        if !response.status().is_success() {
            return Err(failure(response).await);
        }
        Ok(len)
    }

    async fn download(&self, from: &StoragePath, to: &Path) -> anyhow::Result<u64> {
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/object/{}", Self::object_path(from)),
            )
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(failure(response).await);
        }
        let target = if to.is_dir() {
            to.join(from.path.rsplit('/').next().unwrap_or("object"))
        } else {
            to.to_owned()
        };
        let len = response.content_length().unwrap_or(0);
        let progress = bar(
            len,
            &format!(
                "{SCHEME}{}/{} -> {}",
                from.bucket,
                from.path,
                target.display()
            ),
        );
        // Written beside the target and renamed, so an interrupted copy
        // never leaves a partial file under the target's name.
        let partial = target.with_extension("partial");
        let mut file = tokio::fs::File::create(&partial)
            .await
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut body = response.bytes_stream();
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            file.write_all(&chunk).await?;
            written += chunk.len() as u64;
            progress.inc(chunk.len() as u64);
        }
        file.flush().await?;
        drop(file);
        tokio::fs::rename(&partial, &target).await?;
        progress.finish_and_clear();
        Ok(written)
    }

    /// Removes objects; gives how many existed.
    pub(crate) async fn rm(&self, paths: &[String]) -> anyhow::Result<usize> {
        let mut by_bucket: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for p in paths {
            let path = StoragePath::parse(p)
                .with_context(|| format!("{p:?} is not {SCHEME}bucket/path"))?;
            if path.path.is_empty() {
                bail!("{p:?} names a bucket, not an object");
            }
            by_bucket.entry(path.bucket).or_default().push(path.path);
        }
        let mut removed = 0;
        for (bucket, names) in by_bucket {
            for chunk in names.chunks(1000) {
                let response = self
                    .request(reqwest::Method::DELETE, &format!("/object/{bucket}"))
                    .json(&json!({ "prefixes": chunk }))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    return Err(failure(response).await);
                }
                removed += response.json::<Vec<Value>>().await?.len();
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_paths() {
        assert_eq!(
            StoragePath::parse("ss:///avatars/a/b.png"),
            Some(StoragePath {
                bucket: "avatars".into(),
                path: "a/b.png".into()
            })
        );
        assert_eq!(
            StoragePath::parse("ss:///avatars"),
            Some(StoragePath {
                bucket: "avatars".into(),
                path: String::new()
            })
        );
        assert_eq!(StoragePath::parse("./local.txt"), None);
        assert_eq!(content_type(Path::new("x.PNG")), "image/png");
    }
}
