//! Per-project request series over the last hour, for dashboards: each
//! gateway counts every answered request of a project into the current
//! minute (requests, server errors, a latency histogram), keeps the last
//! [`MINUTES`] minutes, and can hand what is new on (to Redis, where the
//! gateways' minutes add up). Histograms rather than quantiles
//! are kept because they add: the p99 of several gateways is read from
//! their summed buckets.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::ProjectRef;

/// Minutes kept.
pub const MINUTES: usize = 60;

/// Upper bounds (milliseconds) of the latency buckets; one more bucket
/// counts what is slower than the last.
pub const BOUNDS_MS: [u32; 13] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

/// Shards of the project map, so concurrent requests rarely share a lock.
const SHARDS: usize = 32;

/// One minute of one project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests answered.
    pub requests: u64,
    /// Of which answered with a 5xx status.
    pub errors: u64,
    /// Requests per latency bucket ([`BOUNDS_MS`], then the overflow).
    pub latency: [u64; BOUNDS_MS.len() + 1],
}

impl Counts {
    /// Adds `other` in.
    pub fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a += b;
        }
    }

    /// What `self` counted beyond `earlier` (an earlier reading of it).
    pub fn minus(&self, earlier: &Counts) -> Counts {
        let mut out = *self;
        out.requests -= earlier.requests;
        out.errors -= earlier.errors;
        for (a, b) in out.latency.iter_mut().zip(earlier.latency) {
            *a -= b;
        }
        out
    }

    /// The upper bound (ms) of the bucket holding the 99th percentile;
    /// `None` without requests, or when it is slower than the last bound.
    pub fn p99_ms(&self) -> Option<u32> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        // The smallest rank at or above 99 % of the requests.
        let rank = total - total / 100;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return BOUNDS_MS.get(i).copied();
            }
        }
        None
    }

    /// The fields as Redis hash fields (`r`, `e`, `h0`...), non-zero only.
    pub fn fields(&self) -> Vec<(String, u64)> {
        let mut out = vec![
            ("r".to_owned(), self.requests),
            ("e".to_owned(), self.errors),
        ];
        out.extend(
            self.latency
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("h{i}"), *n)),
        );
        out.retain(|(_, n)| *n > 0);
        out
    }

    /// Counts back from [`Counts::fields`]; unknown fields are ignored.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, u64)>) -> Self {
        let mut counts = Counts::default();
        for (name, n) in fields {
            match name {
                "r" => counts.requests = n,
                "e" => counts.errors = n,
                _ => {
                    if let Some(slot) = name
                        .strip_prefix('h')
                        .and_then(|i| i.parse::<usize>().ok())
                        .and_then(|i| counts.latency.get_mut(i))
                    {
                        *slot = n;
                    }
                }
            }
        }
        counts
    }
}

/// A slot's counts packed: requests, 5xx, then the latency buckets. `u32`
/// halves a ring: no gateway answers 4 billion requests of one project in
/// a minute.
type Packed = [u32; 2 + BOUNDS_MS.len() + 1];

fn unpack(packed: &Packed) -> Counts {
    let mut counts = Counts {
        requests: u64::from(packed[0]),
        errors: u64::from(packed[1]),
        ..Counts::default()
    };
    for (c, p) in counts.latency.iter_mut().zip(&packed[2..]) {
        *c = u64::from(*p);
    }
    counts
}

/// One minute of a ring: which minute (Unix minutes), its counts, and how
/// much of them was handed on already (see [`Usage::take_new`]).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    minute: u32,
    counts: Packed,
    handed: Packed,
}

/// The last hour of a project: a slot per minute that had requests,
/// oldest first, so a project seen once an hour costs one slot.
type Ring = Vec<Slot>;

/// Every project's last hour, in memory. Recording takes one short lock
/// of one shard; a project costs memory only while it had requests in
/// the last hour: 132 bytes per minute that had some.
#[derive(Debug)]
pub struct Usage {
    shards: [Mutex<HashMap<ProjectRef, Ring>>; SHARDS],
    hasher: RandomState,
}

impl Default for Usage {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            hasher: RandomState::new(),
        }
    }
}

/// How long a minute stays in Redis: past the hour a dashboard shows.
pub const REDIS_TTL_SECS: u64 = 2 * 3600;

/// The Redis hash holding one project's minute, summed over gateways.
pub fn redis_key(project: &ProjectRef, minute: u64) -> String {
    format!("supa:usage:{project}:{minute}")
}

/// The Unix minute `since_epoch` falls in.
pub fn minute_of(since_epoch: Duration) -> u64 {
    since_epoch.as_secs() / 60
}

impl Usage {
    fn shard(&self, project: &ProjectRef) -> &Mutex<HashMap<ProjectRef, Ring>> {
        let i = self.hasher.hash_one(project) as usize % SHARDS;
        &self.shards[i]
    }

    /// Counts one answered request of `project` in minute `minute`.
    pub fn record(&self, project: &ProjectRef, minute: u64, status: u16, took: Duration) {
        let ms = took.as_millis();
        let bucket = BOUNDS_MS
            .iter()
            .position(|bound| ms <= u128::from(*bound))
            .unwrap_or(BOUNDS_MS.len());
        let mut projects = self
            .shard(project)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ring = projects.entry(*project).or_default();
        let minute = minute as u32;
        // Nearly always the last slot; a request that read the clock just
        // before the minute turned may land one further back.
        let at = match ring.iter().rposition(|s| s.minute <= minute) {
            Some(i) if ring[i].minute == minute => i,
            found => {
                let oldest = minute.saturating_sub(MINUTES as u32 - 1);
                let at = found.map_or(0, |i| i + 1);
                ring.insert(
                    at,
                    Slot {
                        minute,
                        ..Slot::default()
                    },
                );
                let gone = ring.iter().take_while(|s| s.minute < oldest).count();
                ring.drain(..gone);
                at - gone.min(at)
            }
        };
        let slot = &mut ring[at];
        let counts = &mut slot.counts;
        counts[0] = counts[0].saturating_add(1);
        if status >= 500 {
            counts[1] = counts[1].saturating_add(1);
        }
        counts[2 + bucket] = counts[2 + bucket].saturating_add(1);
    }

    /// The project's minutes in the hour ending with minute `now`, oldest
    /// first, zeros where nothing was counted.
    pub fn series(&self, project: &ProjectRef, now: u64) -> Series {
        let projects = self
            .shard(project)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ring = projects.get(project);
        Series::from_fn(now, |minute| {
            ring.and_then(|r| r.iter().find(|s| u64::from(s.minute) == minute))
                .map(|s| unpack(&s.counts))
                .unwrap_or_default()
        })
    }

    /// What each minute of the hour ending with `now` counted since the
    /// last call, as `(project, minute, counts)`; projects without a minute
    /// in the last hour are forgotten.
    pub fn take_new(&self, now: u64) -> Vec<(ProjectRef, u64, Counts)> {
        let oldest = now.saturating_sub(MINUTES as u64 - 1) as u32;
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut projects = shard.lock().unwrap_or_else(PoisonError::into_inner);
            projects.retain(|project, ring| {
                for slot in ring.iter_mut() {
                    if slot.minute >= oldest && slot.counts != slot.handed {
                        let new = unpack(&slot.counts).minus(&unpack(&slot.handed));
                        out.push((*project, u64::from(slot.minute), new));
                        slot.handed = slot.counts;
                    }
                }
                ring.retain(|s| s.minute >= oldest);
                !ring.is_empty()
            });
        }
        out
    }
}

/// A project's last hour as a dashboard draws it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// The first minute (Unix minutes).
    pub first_minute: u64,
    /// Counts of each minute from `first_minute` on, [`MINUTES`] of them.
    pub minutes: Vec<Counts>,
}

impl Series {
    /// The hour ending with minute `now`, each minute from `counts`.
    pub fn from_fn(now: u64, counts: impl FnMut(u64) -> Counts) -> Self {
        let first_minute = now.saturating_sub(MINUTES as u64 - 1);
        Self {
            first_minute,
            minutes: (first_minute..=now).map(counts).collect(),
        }
    }

    /// The whole hour's counts.
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for m in &self.minutes {
            total.add(m);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(c: char) -> ProjectRef {
        ProjectRef::parse(&c.to_string().repeat(20)).unwrap()
    }

    #[test]
    fn a_minute_counts_requests_errors_and_latency() {
        let usage = Usage::default();
        let p = project('a');
        for _ in 0..98 {
            usage.record(&p, 100, 200, Duration::from_micros(300));
        }
        usage.record(&p, 100, 503, Duration::from_millis(40));
        usage.record(&p, 100, 404, Duration::from_millis(700));
        let series = usage.series(&p, 100);
        assert_eq!(series.minutes.len(), MINUTES);
        assert_eq!(series.first_minute, 41);
        let last = series.minutes[MINUTES - 1];
        assert_eq!((last.requests, last.errors), (100, 1));
        assert_eq!(last.latency[0], 98);
        // 99 of 100 are at or under 50 ms: the 99th is the 40 ms one.
        assert_eq!(last.p99_ms(), Some(50));
        assert_eq!(usage.series(&project('b'), 100).total(), Counts::default());
    }

    #[test]
    fn an_old_minute_is_overwritten_not_added_to() {
        let usage = Usage::default();
        let p = project('a');
        usage.record(&p, 5, 200, Duration::ZERO);
        usage.record(&p, 5 + MINUTES as u64, 200, Duration::ZERO);
        let series = usage.series(&p, 5 + MINUTES as u64);
        assert_eq!(series.total().requests, 1);
    }

    #[test]
    fn new_counts_are_handed_on_once_and_idle_projects_forgotten() {
        let usage = Usage::default();
        let (a, b) = (project('a'), project('b'));
        usage.record(&a, 10, 200, Duration::ZERO);
        usage.record(&a, 11, 500, Duration::ZERO);
        let mut first = usage.take_new(11);
        first.sort_by_key(|(_, minute, _)| *minute);
        let got: Vec<_> = first
            .iter()
            .map(|(p, m, c)| (*p, *m, c.requests, c.errors))
            .collect();
        assert_eq!(got, [(a, 10, 1, 0), (a, 11, 1, 1)]);
        assert!(usage.take_new(11).is_empty());
        // The running minute goes on: only what is new is handed on.
        usage.record(&a, 11, 200, Duration::ZERO);
        usage.record(&b, 11, 200, Duration::ZERO);
        let mut second = usage.take_new(11);
        second.sort_by_key(|(p, ..)| *p);
        let got: Vec<_> = second
            .iter()
            .map(|(p, m, c)| (*p, *m, c.requests, c.errors))
            .collect();
        assert_eq!(got, [(a, 11, 1, 0), (b, 11, 1, 0)]);
        // An hour later nothing is left of either project.
        usage.take_new(12 + MINUTES as u64);
        assert!(usage.shards.iter().all(|s| s.lock().unwrap().is_empty()));
    }

    #[test]
    fn a_slot_is_small_and_a_late_request_finds_its_minute() {
        assert!(std::mem::size_of::<Slot>() <= 132);
        let usage = Usage::default();
        let p = project('a');
        usage.record(&p, 100, 200, Duration::ZERO);
        usage.record(&p, 102, 200, Duration::ZERO);
        // Read the clock at minute 101, recorded after 102's.
        usage.record(&p, 101, 200, Duration::ZERO);
        usage.record(&p, 100, 200, Duration::ZERO);
        let minutes: Vec<u64> = usage
            .series(&p, 102)
            .minutes
            .iter()
            .map(|c| c.requests)
            .collect();
        assert_eq!(minutes[MINUTES - 3..], [2, 1, 1]);
        // Minute 100 + MINUTES pushes minute 100 out, keeps 101 and 102.
        usage.record(&p, 100 + MINUTES as u64, 200, Duration::ZERO);
        let ring = usage.shard(&p).lock().unwrap().get(&p).unwrap().clone();
        let kept: Vec<u32> = ring.iter().map(|s| s.minute).collect();
        assert_eq!(kept, [101, 102, 160]);
    }

    #[test]
    fn fields_round_trip_and_sum() {
        let mut c = Counts {
            requests: 3,
            errors: 1,
            ..Counts::default()
        };
        c.latency[2] = 2;
        c.latency[BOUNDS_MS.len()] = 1;
        let fields = c.fields();
        assert!(fields.iter().all(|(_, n)| *n > 0));
        let back = Counts::from_fields(fields.iter().map(|(k, n)| (k.as_str(), *n)));
        assert_eq!(back, c);
        let mut sum = back;
        sum.add(&c);
        assert_eq!(sum.requests, 6);
        // The slowest 1 of 3 is past the last bound.
        assert_eq!(c.p99_ms(), None);
        assert_eq!(Counts::default().p99_ms(), None);
    }
}
