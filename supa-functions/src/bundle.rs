//! Deploying a function: its source files checked and bundled with
//! `deno bundle` into one JavaScript file, with its `npm:` packages (from
//! the npm registry, through a cache shared by every deploy) and import map
//! resolved, so running it never fetches anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::Command;

/// The bundle's name, beside the entrypoint so paths relative to
/// `import.meta.url` still find the function's own files.
pub const BUNDLE_FILE: &str = ".supa-bundle.js";

/// How long resolving and bundling may take (npm downloads included).
const BUILD_TIMEOUT: Duration = Duration::from_secs(120);

/// Files and sizes a deploy may carry.
pub const MAX_FILES: usize = 1000;
/// Bytes of source a deploy may carry.
pub const MAX_SOURCE_BYTES: usize = 20 * 1024 * 1024;

/// One file of a function, its path relative to the function's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// `index.ts`, `lib/util.ts`.
    pub path: String,
    /// Its bytes.
    #[serde(with = "base64_bytes")]
    pub content: Vec<u8>,
}

/// What a worker runs: the source files and the bundle among them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The path of the bundle ([`BUNDLE_FILE`] in the entrypoint's folder).
    pub entrypoint: String,
    /// Every file, the bundle included.
    pub files: Vec<SourceFile>,
}

impl Bundle {
    /// The deployed files, the bundle left out.
    pub fn sources(&self) -> impl Iterator<Item = &SourceFile> {
        self.files.iter().filter(|f| !is_bundle(&f.path))
    }

    /// Hex SHA-256 over the paths and contents, in order.
    pub fn sha256(&self) -> String {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for f in &self.files {
            h.update((f.path.len() as u64).to_le_bytes());
            h.update(f.path.as_bytes());
            h.update((f.content.len() as u64).to_le_bytes());
            h.update(&f.content);
        }
        hex::encode(h.finalize())
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// A path of a deployed file as the Supabase CLI may send it (relative,
/// absolute, or a `file://` URL), made relative; `None` when it is empty
/// or leaves its folder.
pub fn normalize_path(raw: &str) -> Option<String> {
    let raw = raw.strip_prefix("file://").unwrap_or(raw);
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p if p.contains(['\\', '\0']) => return None,
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Whether `path` is a bundle this server built (reserved in deploys).
pub fn is_bundle(path: &str) -> bool {
    path.rsplit('/').next() == Some(BUNDLE_FILE)
}

/// Every file under `root` (`node_modules` and hidden folders left out,
/// and bundles built there), paths relative to it, in byte order: a
/// function's folder as it is deployed.
pub fn read_folder(root: &Path) -> std::io::Result<Vec<SourceFile>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if name != "node_modules" && !name.starts_with('.') {
                    walk(root, &path, out)?;
                }
            } else if path.is_file() && name != BUNDLE_FILE {
                let relative = path.strip_prefix(root).unwrap_or(&path);
                out.push(SourceFile {
                    path: relative.to_string_lossy().into_owned(),
                    content: std::fs::read(&path)?,
                });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Writes `files` under `root`, each at its path made relative (one that
/// would leave `root` is refused).
pub(crate) async fn write_files(root: &Path, files: &[SourceFile]) -> std::io::Result<()> {
    for f in files {
        let relative = normalize_path(&f.path).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{:?} is not a relative path", f.path),
            )
        })?;
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&path, &f.content).await?;
    }
    Ok(())
}

/// The folder part of a relative path (`""` at the root).
fn folder_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// A `multipart/form-data` body as Supabase's deploy takes it (and
/// `/body` gives it back): a `metadata` part, then a `file` part per file;
/// with its content type.
pub fn multipart_body(metadata: &serde_json::Value, files: &[SourceFile]) -> (String, Vec<u8>) {
    let boundary = format!("supa-{}", supa_core::random_uuid());
    let mut body = Vec::new();
    let mut part = |headers: String, content: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    };
    part(
        "Content-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json"
            .into(),
        metadata.to_string().as_bytes(),
    );
    for f in files {
        // File names hold no quote or line break worth keeping.
        let name: String = f
            .path
            .chars()
            .filter(|c| !matches!(c, '"' | '\r' | '\n'))
            .collect();
        part(
            format!(
                "Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream"
            ),
            &f.content,
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Builds bundles with `deno`, downloading npm packages into `cache`.
#[derive(Debug, Clone)]
pub struct Builder {
    deno: PathBuf,
    cache: PathBuf,
    scratch: PathBuf,
}

impl Builder {
    /// A builder running `deno`, with npm packages (and the bundler's own)
    /// kept in `cache`, which builds may share, and builds made in
    /// `scratch`.
    pub fn new(deno: PathBuf, cache: PathBuf, scratch: PathBuf) -> Result<Self, String> {
        for d in [&cache, &scratch] {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        Ok(Self {
            deno,
            cache,
            scratch,
        })
    }

    /// Checks and bundles a function; the error is for the deployer
    /// (Deno's message, this server's paths taken out).
    pub async fn build(
        &self,
        files: Vec<SourceFile>,
        entrypoint: &str,
        import_map: Option<&str>,
    ) -> Result<Bundle, String> {
        if !files.iter().any(|f| f.path == entrypoint) {
            return Err(format!(
                "the entrypoint {entrypoint} is not among the files"
            ));
        }
        if let Some(map) = import_map
            && !files.iter().any(|f| f.path == map)
        {
            return Err(format!("the import map {map} is not among the files"));
        }
        let root = self.scratch.join(supa_core::random_uuid());
        let built = self.build_in(&root, &files, entrypoint, import_map).await;
        let _ = tokio::fs::remove_dir_all(&root).await;
        let js = built.map_err(|e| e.replace(&format!("{}/", root.display()), ""))?;
        let folder = folder_of(entrypoint);
        let path = if folder.is_empty() {
            BUNDLE_FILE.to_owned()
        } else {
            format!("{folder}/{BUNDLE_FILE}")
        };
        let mut files: Vec<SourceFile> = files.into_iter().filter(|f| f.path != path).collect();
        files.push(SourceFile {
            path: path.clone(),
            content: js,
        });
        // Byte order, as the store gives them back and the digest is taken.
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Bundle {
            entrypoint: path,
            files,
        })
    }

    async fn build_in(
        &self,
        root: &Path,
        files: &[SourceFile],
        entrypoint: &str,
        import_map: Option<&str>,
    ) -> Result<Vec<u8>, String> {
        write_files(root, files)
            .await
            .map_err(|e| format!("cannot write the files: {e}"))?;
        let root = root
            .canonicalize()
            .map_err(|e| format!("cannot build: {e}"))?;
        let entry = root.join(entrypoint);
        let map = import_map.map(|m| root.join(m));
        // Every local module must be one of the deployed files: the
        // bundler would otherwise read (and ship) whatever this server can.
        let info = self
            .deno(&root, &["info", "--json"], map.as_deref(), &entry)
            .await?;
        let graph: serde_json::Value = serde_json::from_slice(&info)
            .map_err(|e| format!("cannot read the module graph: {e}"))?;
        let prefix = format!("file://{}/", root.display());
        for module in graph["modules"].as_array().into_iter().flatten() {
            let specifier = module["specifier"].as_str().unwrap_or("");
            if specifier.starts_with("file:") && !specifier.starts_with(&prefix) {
                return Err(format!(
                    "{specifier} is outside the function's files; only deployed files can be imported"
                ));
            }
            if let Some(error) = module["error"].as_str() {
                return Err(error.to_owned());
            }
        }
        let out = root.join(".supa-out.js");
        let out_arg = out.to_string_lossy().into_owned();
        self.deno(
            &root,
            &["bundle", "--platform", "deno", "--minify", "-o", &out_arg],
            map.as_deref(),
            &entry,
        )
        .await?;
        tokio::fs::read(&out)
            .await
            .map_err(|e| format!("the bundle was not written: {e}"))
    }

    /// Runs a `deno` subcommand on `entry` in `root`; its output, or its
    /// error text.
    async fn deno(
        &self,
        root: &Path,
        args: &[&str],
        import_map: Option<&Path>,
        entry: &Path,
    ) -> Result<Vec<u8>, String> {
        let mut command = Command::new(&self.deno);
        command
            .args(args)
            .args(["--quiet", "--no-lock", "--node-modules-dir=none"]);
        if let Some(map) = import_map {
            command.arg("--import-map").arg(map);
        }
        command
            .arg(entry)
            .env_clear()
            .env("DENO_DIR", &self.cache)
            .env("NO_COLOR", "1")
            .envs(crate::runtime::tls_env())
            // Where npm packages come from, as the operator set it.
            .envs(
                [
                    "NPM_CONFIG_REGISTRY",
                    "HTTPS_PROXY",
                    "HTTP_PROXY",
                    "NO_PROXY",
                ]
                .into_iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k, v))),
            )
            .current_dir(entry.parent().unwrap_or(root))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(BUILD_TIMEOUT, command.output())
            .await
            .map_err(|_| format!("bundling took longer than {} s", BUILD_TIMEOUT.as_secs()))?
            .map_err(|e| format!("cannot run deno: {e}"))?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        let text = String::from_utf8_lossy(&output.stderr);
        let text = text.trim();
        Err(if text.is_empty() {
            format!("deno {} failed: {}", args[0], output.status)
        } else {
            text.to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_relative_and_kept_inside() {
        assert_eq!(normalize_path("index.ts").as_deref(), Some("index.ts"));
        assert_eq!(
            normalize_path("file:///src/hello/index.ts").as_deref(),
            Some("src/hello/index.ts")
        );
        assert_eq!(normalize_path("./a//b.ts").as_deref(), Some("a/b.ts"));
        assert_eq!(normalize_path("../etc/passwd"), None);
        assert_eq!(normalize_path("a/../../b"), None);
        assert_eq!(normalize_path("/"), None);
        assert_eq!(normalize_path("a\\b"), None);
        assert_eq!(folder_of("a/b/c.ts"), "a/b");
        assert_eq!(folder_of("c.ts"), "");
    }

    #[test]
    fn bundles_travel_as_json_and_hash_their_contents() {
        let b = Bundle {
            entrypoint: BUNDLE_FILE.into(),
            files: vec![SourceFile {
                path: BUNDLE_FILE.into(),
                content: vec![0, 255, 10],
            }],
        };
        let text = serde_json::to_string(&b).unwrap();
        assert!(text.contains("\"AP8K\""), "{text}");
        let back: Bundle = serde_json::from_str(&text).unwrap();
        assert_eq!(back.sha256(), b.sha256());
        let mut other = b.clone();
        other.files[0].content.push(1);
        assert_ne!(other.sha256(), b.sha256());
    }
}
