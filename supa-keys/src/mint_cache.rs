use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use supa_core::{ProjectRef, Role};

use crate::jwt::{JwtKey, mint};

/// How long before its `exp` a cached token stops being handed out, so a
/// token always has at least this long to cross the upstream hop.
const REFRESH_MARGIN_SECS: i64 = 60;

#[derive(Clone)]
struct Entry {
    token: Arc<str>,
    exp: i64,
    key_fingerprint: u64,
}

/// Reuses one minted token per (project, role) until 60 s before it expires.
///
/// A gateway mints for nearly every request; with the cache the hot path is a
/// read lock, a hash lookup and an `Arc` clone. Entries remember which secret
/// signed them, so a rotated project secret is never answered with a token
/// signed by the old one. Shared between threads by reference (`Sync`).
pub struct MintCache {
    entries: RwLock<HashMap<(ProjectRef, Role), Entry>>,
    capacity: usize,
}

impl MintCache {
    /// A cache holding tokens for at most `capacity` (project, role) pairs.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// A token for `(project_ref, role)` signed by `key`, valid for at least
    /// another 60 s at `now`: the cached one, or a freshly minted one.
    pub fn get(&self, key: &JwtKey, project_ref: &ProjectRef, role: Role, now: i64) -> Arc<str> {
        let usable =
            |e: &Entry| e.key_fingerprint == key.fingerprint() && now < e.exp - REFRESH_MARGIN_SECS;
        {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = entries.get(&(*project_ref, role)).filter(|e| usable(e)) {
                return e.token.clone();
            }
        }
        // Minting happens outside the lock; two threads missing at once both
        // mint, which costs a microsecond and keeps readers unblocked.
        let token: Arc<str> = mint(key, project_ref, role, now).into();
        let entry = Entry {
            token: token.clone(),
            exp: now + crate::jwt::DEFAULT_TTL_SECS,
            key_fingerprint: key.fingerprint(),
        };
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&(*project_ref, role)) {
            entries.retain(|_, e| now < e.exp - REFRESH_MARGIN_SECS);
            if entries.len() >= self.capacity {
                // Every entry is live: drop them all rather than track recency;
                // re-minting costs about a microsecond each.
                entries.clear();
            }
        }
        entries.insert((*project_ref, role), entry);
        token
    }

    /// Forgets a project's tokens (project deleted or its secret rotated).
    pub fn invalidate(&self, project_ref: &ProjectRef) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        for role in Role::ALL {
            entries.remove(&(*project_ref, role));
        }
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for MintCache {
    /// Room for two roles of 50,000 projects.
    fn default() -> Self {
        Self::new(100_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::verify;

    const NOW: i64 = 1_700_000_000;

    fn key(fill: u8) -> JwtKey {
        JwtKey::new(&[fill; 32]).unwrap()
    }

    fn pr(s: &str) -> ProjectRef {
        ProjectRef::parse(s).unwrap()
    }

    #[test]
    fn reuses_until_sixty_seconds_before_expiry() {
        let cache = MintCache::default();
        let (k, p) = (key(1), pr("aaaaaaaaaaaaaaaaaaaa"));
        let first = cache.get(&k, &p, Role::Anon, NOW);
        assert!(Arc::ptr_eq(
            &first,
            &cache.get(&k, &p, Role::Anon, NOW + 239)
        ));
        let renewed = cache.get(&k, &p, Role::Anon, NOW + 240);
        assert!(!Arc::ptr_eq(&first, &renewed));
        assert_eq!(verify(&k, &renewed, NOW + 240).unwrap().exp(), NOW + 540);
    }

    #[test]
    fn keys_by_project_role_and_secret() {
        let cache = MintCache::default();
        let (a, b) = (pr("aaaaaaaaaaaaaaaaaaaa"), pr("bbbbbbbbbbbbbbbbbbbb"));
        let anon = cache.get(&key(1), &a, Role::Anon, NOW);
        let service = cache.get(&key(1), &a, Role::ServiceRole, NOW);
        let other = cache.get(&key(1), &b, Role::Anon, NOW);
        assert_eq!(
            verify(&key(1), &service, NOW).unwrap().role(),
            Some("service_role")
        );
        assert_eq!(
            verify(&key(1), &other, NOW).unwrap().project_ref(),
            Some(b.as_str())
        );
        assert_ne!(anon, service);
        assert_eq!(cache.len(), 3);
        // A rotated secret is never answered with the old signature.
        let rotated = cache.get(&key(2), &a, Role::Anon, NOW);
        assert!(verify(&key(2), &rotated, NOW).is_ok());
        cache.invalidate(&a);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn stays_bounded() {
        let cache = MintCache::new(4);
        for _ in 0..20 {
            cache.get(&key(1), &ProjectRef::generate(), Role::Anon, NOW);
        }
        assert!(cache.len() <= 4);
    }

    #[test]
    fn shared_between_threads() {
        let cache = Arc::new(MintCache::default());
        let p = pr("cccccccccccccccccccc");
        let tokens: Vec<Arc<str>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| cache.get(&key(3), &p, Role::Anon, NOW)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // Every thread got a token for the same claims, hence the same token.
        assert!(tokens.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(cache.len(), 1);
    }
}
