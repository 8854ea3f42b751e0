//! The sweeper: removes bytes that no row names any more.
//!
//! Every write stores bytes under a fresh version key before the row that
//! names them commits, and removes replaced or refused bytes afterwards;
//! a crash (or a failed removal) between those steps leaves bytes no row
//! names. The sweeper lists a project's keys and removes, once they are
//! older than a grace period (so uploads in flight are never touched):
//! object versions that no `storage.objects` row names, resumable uploads
//! past their expiry, multipart parts whose upload is gone, and
//! renditions of versions that are gone.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use object_store::path::Path as Key;
use serde_json::Value;

use crate::backend::Listed;
use crate::render::RENDERS;
use crate::s3::MULTIPART;
use crate::tus::UPLOADS;
use crate::{Error, Storage, StorageProject};

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Object versions no row named.
    pub orphans: u64,
    /// Pieces and state of expired resumable uploads.
    pub expired_uploads: u64,
    /// Parts of multipart uploads that are gone.
    pub stale_parts: u64,
    /// Renditions of versions that are gone.
    pub stale_renders: u64,
}

impl Swept {
    /// Keys removed in all.
    pub fn total(&self) -> u64 {
        self.orphans + self.expired_uploads + self.stale_parts + self.stale_renders
    }
}

/// A key's segments, decoded.
fn segments(key: &Key) -> Vec<String> {
    key.parts()
        .map(|p| {
            percent_encoding::percent_decode_str(p.as_ref())
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// Whether a segment is a version (a UUID, as uploads name them).
fn is_version(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// How often a server sweeps, and how old unreferenced bytes must be
/// (an upload in flight is younger).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// See [`SWEEP_INTERVAL`].
pub const SWEEP_GRACE: Duration = Duration::from_secs(60 * 60);

/// The ids among `groups`' that `sql` (selecting them by `= ANY($1)`)
/// finds.
async fn found(
    client: &supa_db::Object,
    sql: &str,
    groups: &HashMap<String, Vec<Key>>,
) -> Result<HashSet<String>, Error> {
    let wanted: Vec<&String> = groups.keys().collect();
    Ok(client
        .query(sql, &[&wanted])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

impl Storage {
    /// Removes the keys of every group whose id `live` does not hold;
    /// gives how many.
    async fn remove_unless(
        &self,
        groups: HashMap<String, Vec<Key>>,
        live: &HashSet<String>,
    ) -> u64 {
        let mut removed = 0;
        for (id, keys) in groups {
            if !live.contains(&id) {
                for key in keys {
                    self.backend().remove(&key).await;
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Sweeps the projects `projects` gives every `interval`, forever
    /// (spawn it); a project that fails is logged and the rest go on.
    pub async fn sweep_forever<F, Fut>(self, interval: Duration, grace: Duration, projects: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Vec<supa_core::ProjectConfig>>,
    {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for config in projects().await {
                let Ok(project) = StorageProject::from_config(&config) else {
                    continue;
                };
                if let Err(e) = self.sweep(&project, grace).await {
                    tracing::warn!(project = %config.project_ref, error = %e, "storage sweep failed");
                }
            }
        }
    }

    /// Sweeps one project: removes what no row names and is older than
    /// `grace`.
    pub async fn sweep(&self, project: &StorageProject, grace: Duration) -> Result<Swept, Error> {
        let prefix = self.prefix(&project.project_ref);
        let now = supa_core::time::since_epoch();
        let old_enough = |l: &Listed| l.modified <= now.as_secs() as i64 - grace.as_secs() as i64;
        let listed = self.backend().list(&Key::from(prefix.as_str())).await?;
        let mut swept = Swept::default();
        let mut versions: HashMap<String, Vec<(String, String, Key)>> = HashMap::new();
        let mut uploads: HashMap<String, Vec<Listed>> = HashMap::new();
        let mut parts: HashMap<String, Vec<Key>> = HashMap::new();
        let mut renders: HashMap<String, Vec<Key>> = HashMap::new();
        for entry in listed {
            let segs = segments(&entry.key);
            // segs[0] is the prefix.
            match segs.get(1).map(String::as_str) {
                Some(UPLOADS) if segs.len() == 4 => {
                    uploads.entry(segs[2].clone()).or_default().push(entry);
                }
                Some(MULTIPART) if segs.len() >= 4 && old_enough(&entry) => {
                    parts.entry(segs[2].clone()).or_default().push(entry.key);
                }
                Some(RENDERS) if segs.len() == 4 && old_enough(&entry) => {
                    renders.entry(segs[2].clone()).or_default().push(entry.key);
                }
                Some(bucket)
                    if segs.len() >= 4
                        && is_version(&segs[segs.len() - 1])
                        && old_enough(&entry) =>
                {
                    let name = segs[2..segs.len() - 1].join("/");
                    versions
                        .entry(segs[segs.len() - 1].clone())
                        .or_default()
                        .push((bucket.to_owned(), name, entry.key));
                }
                _ => {}
            }
        }
        // What rows still name, asked in three statements; the connection
        // goes back to the pool before any byte is removed.
        let client = self.client(project).await?;
        let wanted: Vec<String> = versions.keys().cloned().collect();
        let live_versions: HashSet<(String, String, String)> = client
            .query(
                "SELECT bucket_id, name, version FROM storage.objects WHERE version = ANY($1)",
                &[&wanted],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let rendered = found(
            &client,
            "SELECT version FROM storage.objects WHERE version = ANY($1)",
            &renders,
        )
        .await?;
        let uploading = found(
            &client,
            "SELECT id FROM storage.s3_multipart_uploads WHERE id = ANY($1)",
            &parts,
        )
        .await?;
        drop(client);

        // Versions: bytes whose (bucket, name, version) no row has.
        for (version, keys) in versions {
            for (bucket, name, key) in keys {
                if !live_versions.contains(&(bucket, name, version.clone())) {
                    self.backend().remove(&key).await;
                    swept.orphans += 1;
                }
            }
        }
        // Renditions of versions no row has any more; parts of multipart
        // uploads completed, aborted or never recorded.
        swept.stale_renders = self.remove_unless(renders, &rendered).await;
        swept.stale_parts = self.remove_unless(parts, &uploading).await;

        // Resumable uploads past their expiry (or whose state is lost).
        let now_ms = now.as_millis() as u64;
        for (_, entries) in uploads {
            let info = entries.iter().find(|l| l.key.filename() == Some("info"));
            let expired = match info {
                Some(info) => match self.backend().get_small(&info.key).await? {
                    Some(blob) => serde_json::from_slice::<Value>(&blob)
                        .ok()
                        .and_then(|v| v.get("expires_ms").and_then(Value::as_u64))
                        .is_none_or(|expires| expires < now_ms),
                    None => false,
                },
                None => entries.iter().all(old_enough),
            };
            if expired {
                for entry in entries {
                    self.backend().remove(&entry.key).await;
                    swept.expired_uploads += 1;
                }
            }
        }
        if swept.total() > 0 {
            tracing::info!(project = %project.project_ref, ?swept, "storage sweep removed unreferenced bytes");
        }
        Ok(swept)
    }
}
