//! Prometheus metrics of the gateway, rendered as text exposition format.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use supa_core::usage::Usage;

/// Upper bounds (seconds) of the upstream latency histogram.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// One upstream kind's latencies: a count per bucket (made cumulative when
/// rendered), so recording is two atomic adds and a third for the sum.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// Upstream kinds counted (`none`: refused before any upstream).
const KINDS: [&str; 4] = ["none", "embedded", "http", "lambda"];

/// Counters a gateway keeps: plain atomics indexed by upstream kind (and
/// status), so the request path takes no lock.
#[derive(Debug)]
pub struct Metrics {
    requests: Vec<AtomicU64>,
    latency: [Histogram; KINDS.len()],
    /// Memory cache hits.
    pub l1_hits: AtomicU64,
    /// Memory cache misses.
    pub l1_misses: AtomicU64,
    /// Redis cache hits.
    pub l2_hits: AtomicU64,
    /// Redis cache misses (fetched from the directory).
    pub l2_misses: AtomicU64,
    /// JWTs minted or reused for network upstreams.
    pub mints: AtomicU64,
    /// Each project's last hour, for dashboards (not exported here: a
    /// label per project would not scale in Prometheus).
    pub usage: Arc<Usage>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: (0..KINDS.len() * 600).map(|_| AtomicU64::new(0)).collect(),
            latency: Default::default(),
            l1_hits: AtomicU64::new(0),
            l1_misses: AtomicU64::new(0),
            l2_hits: AtomicU64::new(0),
            l2_misses: AtomicU64::new(0),
            mints: AtomicU64::new(0),
            usage: Arc::default(),
        }
    }
}

fn kind_index(upstream: &str) -> usize {
    KINDS.iter().position(|k| *k == upstream).unwrap_or(0)
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, status: u16, upstream: &'static str) {
        let status = usize::from(status.min(599));
        self.requests[kind_index(upstream) * 600 + status].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long an upstream took.
    pub fn upstream_latency(&self, upstream: &'static str, took: Duration) {
        let secs = took.as_secs_f64();
        let h = &self.latency[kind_index(upstream)];
        let bucket = BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(BUCKETS.len());
        h.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        h.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP supa_gateway_requests_total Requests answered, by status and upstream kind.\n",
        );
        out.push_str("# TYPE supa_gateway_requests_total counter\n");
        for (i, counter) in self.requests.iter().enumerate() {
            let n = counter.load(Ordering::Relaxed);
            if n > 0 {
                let (upstream, status) = (KINDS[i / 600], i % 600);
                let _ = writeln!(
                    out,
                    "supa_gateway_requests_total{{status=\"{status}\",upstream=\"{upstream}\"}} {n}"
                );
            }
        }
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str(
            "# HELP supa_gateway_cache_requests_total Cache lookups by tier and result.\n",
        );
        out.push_str("# TYPE supa_gateway_cache_requests_total counter\n");
        for (tier, hits, misses) in [
            ("l1", &self.l1_hits, &self.l1_misses),
            ("l2", &self.l2_hits, &self.l2_misses),
        ] {
            let _ = writeln!(
                out,
                "supa_gateway_cache_requests_total{{tier=\"{tier}\",result=\"hit\"}} {}",
                load(hits)
            );
            let _ = writeln!(
                out,
                "supa_gateway_cache_requests_total{{tier=\"{tier}\",result=\"miss\"}} {}",
                load(misses)
            );
        }
        out.push_str("# HELP supa_gateway_cache_hit_ratio Hits over lookups, by tier.\n");
        out.push_str("# TYPE supa_gateway_cache_hit_ratio gauge\n");
        for (tier, hits, misses) in [
            ("l1", &self.l1_hits, &self.l1_misses),
            ("l2", &self.l2_hits, &self.l2_misses),
        ] {
            let (h, m) = (load(hits), load(misses));
            let ratio = if h + m == 0 {
                0.0
            } else {
                h as f64 / (h + m) as f64
            };
            let _ = writeln!(
                out,
                "supa_gateway_cache_hit_ratio{{tier=\"{tier}\"}} {ratio}"
            );
        }
        out.push_str("# HELP supa_gateway_jwt_mints_total JWTs handed to network upstreams (minted or reused).\n");
        out.push_str("# TYPE supa_gateway_jwt_mints_total counter\n");
        let _ = writeln!(out, "supa_gateway_jwt_mints_total {}", load(&self.mints));
        out.push_str("# HELP supa_gateway_upstream_seconds Time the upstream took, by kind.\n");
        out.push_str("# TYPE supa_gateway_upstream_seconds histogram\n");
        for (upstream, h) in KINDS.iter().zip(&self.latency) {
            let counts: Vec<u64> = h.buckets.iter().map(load).collect();
            let count: u64 = counts.iter().sum();
            if count == 0 {
                continue;
            }
            let mut below = 0;
            for (bound, n) in BUCKETS.iter().zip(&counts) {
                below += n;
                let _ = writeln!(
                    out,
                    "supa_gateway_upstream_seconds_bucket{{upstream=\"{upstream}\",le=\"{bound}\"}} {below}"
                );
            }
            let _ = writeln!(
                out,
                "supa_gateway_upstream_seconds_bucket{{upstream=\"{upstream}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "supa_gateway_upstream_seconds_sum{{upstream=\"{upstream}\"}} {}",
                load(&h.sum_nanos) as f64 / 1e9
            );
            let _ = writeln!(
                out,
                "supa_gateway_upstream_seconds_count{{upstream=\"{upstream}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP supa_gateway_upstream_connections_opened_total Connections opened to plain-HTTP upstreams.\n",
        );
        out.push_str("# TYPE supa_gateway_upstream_connections_opened_total counter\n");
        let _ = writeln!(
            out,
            "supa_gateway_upstream_connections_opened_total {}",
            crate::pool::connections_opened()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_ratios_and_histograms() {
        let m = Metrics::default();
        m.request(200, "embedded");
        m.request(200, "embedded");
        m.request(401, "none");
        m.l1_hits.store(3, Ordering::Relaxed);
        m.l1_misses.store(1, Ordering::Relaxed);
        m.upstream_latency("embedded", Duration::from_micros(700));
        let text = m.render();
        assert!(
            text.contains("supa_gateway_requests_total{status=\"200\",upstream=\"embedded\"} 2")
        );
        assert!(text.contains("supa_gateway_requests_total{status=\"401\",upstream=\"none\"} 1"));
        assert!(text.contains("supa_gateway_cache_hit_ratio{tier=\"l1\"} 0.75"));
        assert!(text.contains(
            "supa_gateway_upstream_seconds_bucket{upstream=\"embedded\",le=\"0.0005\"} 0"
        ));
        assert!(text.contains(
            "supa_gateway_upstream_seconds_bucket{upstream=\"embedded\",le=\"0.001\"} 1"
        ));
        assert!(text.contains("supa_gateway_upstream_seconds_count{upstream=\"embedded\"} 1"));
    }
}
