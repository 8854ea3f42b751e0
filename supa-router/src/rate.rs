//! Per-project request rate limit at the gateway: a token bucket per
//! project, so one busy project cannot take a shared gateway from its
//! neighbours. Each gateway keeps its own buckets (a limit of N per
//! second behind K gateways lets K×N through at most): no round trip to a
//! shared store on the request path.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use supa_core::ProjectRef;

const SHARDS: usize = 16;

/// Buckets kept per shard before full (idle) ones are dropped, at most
/// once a second.
const SWEEP_AT: usize = 4096;

#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<ProjectRef, Bucket>,
    swept: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets of `per_second` requests, holding up to a second's worth.
#[derive(Debug)]
pub struct RateLimit {
    per_second: f64,
    shards: [Mutex<Shard>; SHARDS],
    hasher: RandomState,
}

impl RateLimit {
    /// `per_second` requests a second per project (at least 1).
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            shards: std::array::from_fn(|_| Mutex::default()),
            hasher: RandomState::new(),
        }
    }

    /// Takes a token of `project` at `now`; when there is none, how long
    /// until there is.
    pub fn take(&self, project: &ProjectRef, now: Instant) -> Result<(), Duration> {
        let shard = &self.shards[self.hasher.hash_one(project) as usize % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let burst = self.per_second;
        let due = shard
            .swept
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if shard.buckets.len() >= SWEEP_AT && due && !shard.buckets.contains_key(project) {
            // A bucket refilled to the brim says nothing a new one would
            // not: forget it.
            let rate = self.per_second;
            shard.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            shard.swept = Some(now);
        }
        let bucket = shard.buckets.entry(*project).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(c: char) -> ProjectRef {
        ProjectRef::parse(&c.to_string().repeat(20)).unwrap()
    }

    #[test]
    fn a_second_of_requests_then_the_refill_rate() {
        let limit = RateLimit::new(10);
        let (a, b) = (project('a'), project('b'));
        let start = Instant::now();
        for _ in 0..10 {
            assert!(limit.take(&a, start).is_ok());
        }
        let wait = limit.take(&a, start).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another project has its own bucket.
        assert!(limit.take(&b, start).is_ok());
        // A tenth of a second later, one more.
        let later = start + Duration::from_millis(100);
        assert!(limit.take(&a, later).is_ok());
        assert!(limit.take(&a, later).is_err());
        // Idle for long, the bucket holds a second's worth, not more.
        let much_later = start + Duration::from_secs(60);
        for _ in 0..10 {
            assert!(limit.take(&a, much_later).is_ok());
        }
        assert!(limit.take(&a, much_later).is_err());
    }

    #[test]
    fn idle_buckets_are_forgotten_when_a_shard_fills() {
        let limit = RateLimit::new(1);
        let start = Instant::now();
        let refs = |from: usize, n: usize| {
            (from..from + n).map(|i| {
                let letters: String = (0..4)
                    .map(|d| char::from(b'a' + (i / 26usize.pow(d) % 26) as u8))
                    .collect();
                ProjectRef::parse(&format!("{letters}{}", "q".repeat(16))).unwrap()
            })
        };
        for r in refs(0, 20 * SWEEP_AT) {
            let _ = limit.take(&r, start);
        }
        let kept = || -> usize {
            limit
                .shards
                .iter()
                .map(|s| s.lock().unwrap().buckets.len())
                .sum()
        };
        assert_eq!(kept(), 20 * SWEEP_AT);
        // Seconds later, new projects arrive: the full buckets go.
        let later = start + Duration::from_secs(5);
        for r in refs(20 * SWEEP_AT, 64 * SHARDS) {
            let _ = limit.take(&r, later);
        }
        assert!(kept() < 64 * SHARDS + SWEEP_AT, "{}", kept());
    }
}
