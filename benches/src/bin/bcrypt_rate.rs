//! The physical limit of a password grant: bcrypt verifications per second
//! at GoTrue's cost (10) on every core, the baseline `benches/auth/run.py`
//! compares the auth server's password grants with.

use std::time::{Duration, Instant};

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hash = bcrypt::hash("correct horse battery", 10).expect("bcrypt hashes");
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let counts: Vec<u64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while Instant::now() < until {
                        assert!(bcrypt::verify("correct horse battery", &hash).unwrap_or(false));
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).collect()
    });
    let total: u64 = counts.iter().sum();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    // One line of JSON for the runner.
    let line = format!(
        "{{\"threads\": {threads}, \"verifications\": {total}, \"per_second\": {rate:.1}}}"
    );
    std::io::Write::write_all(&mut std::io::stdout(), format!("{line}\n").as_bytes())
        .expect("stdout");
}
