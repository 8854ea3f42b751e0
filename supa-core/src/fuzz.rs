//! Fuzzing on the stable toolchain: a property run for a length of time
//! rather than a number of cases, so `make test` gives every parser of
//! untrusted input a short pass (`SUPA_FUZZ_SECS`, 1 s by default) and
//! `make fuzz` a long one with the same code. Each round is a proptest run
//! with a fresh random seed; a failure panics with the input shrunk to its
//! smallest form.

use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

/// Environment variable: seconds each fuzz target runs.
pub const FUZZ_SECS: &str = "SUPA_FUZZ_SECS";

/// How long each target runs: [`FUZZ_SECS`], or 1 s.
pub fn budget() -> Duration {
    let secs = std::env::var(FUZZ_SECS)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    Duration::from_secs_f64(secs)
}

/// Feeds `check` values of `strategy` for [`budget`], then prints how many
/// ran. `check` fails a case by returning an error or by panicking.
///
/// # Panics
/// On the first failing case, naming `target` and the shrunk input.
// The line printed is the report `make fuzz` collects: a test's own
// output, not a log.
#[allow(clippy::print_stdout)]
pub fn for_a_while<S>(
    target: &str,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let budget = budget();
    let started = Instant::now();
    let mut cases: u64 = 0;
    while started.elapsed() < budget {
        let config = Config {
            cases: 512,
            failure_persistence: None,
            ..Config::default()
        };
        // A random seed per round: each round explores new inputs.
        let mut runner = TestRunner::new(config);
        match runner.run(&strategy, &check) {
            Ok(()) => cases += 512,
            Err(TestError::Fail(reason, input)) => {
                panic!("fuzz target {target} failed: {reason}\nsmallest input: {input:?}")
            }
            Err(TestError::Abort(reason)) => panic!("fuzz target {target} aborted: {reason}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fuzz {target}: {cases} cases in {secs:.1} s ({:.0}/s), no failure",
        cases as f64 / secs
    );
}

/// Strings that look like what a parser expects, broken: pieces of
/// `alphabet` and of `samples` spliced with arbitrary characters.
pub fn near(samples: &[&str], alphabet: &'static str) -> impl Strategy<Value = String> + use<> {
    use proptest::prelude::*;
    let samples: Vec<String> = samples.iter().map(|s| (*s).to_owned()).collect();
    let piece = prop_oneof![
        4 => prop::sample::select(samples),
        4 => proptest::string::string_regex(alphabet).expect("a valid alphabet"),
        1 => any::<String>(),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|parts| parts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_check_panics_with_the_shrunk_input() {
        let failed = std::panic::catch_unwind(|| {
            for_a_while("demo", 0u32..1000, |n| {
                proptest::prop_assert!(n < 500);
                Ok(())
            })
        });
        let message = failed
            .expect_err("500 and above fail")
            .downcast::<String>()
            .expect("a message");
        assert!(message.contains("smallest input: 500"), "{message}");
    }

    #[test]
    fn fuzz_near_strings_mix_samples_and_noise() {
        for_a_while("near", near(&["eq.", "in.(", ")"], "[a-z,.()]{0,8}"), |s| {
            proptest::prop_assert!(s.chars().count() < 10_000);
            Ok(())
        });
    }
}
