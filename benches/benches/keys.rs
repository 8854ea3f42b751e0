//! Micro-benchmarks of the per-request work of the gateway.
//!
//! Targets (checked by reading `benches/RESULTS.md`, never by a timed test):
//! validate < 500 ns, cached mint < 100 ns, fresh mint < 2 µs, verify < 3 µs,
//! SigV4 with a cached key at most half of `aws-sigv4`'s own sign.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use supa_benches::{AwsSigV4Baseline, REGION, SIGN_AT, supa_credentials, supa_request};
use supa_core::{KeyKind, ProjectRef, Role};
use supa_keys::{JwtKey, MintCache, SigV4Signer};

const NOW: i64 = 1_700_000_000;

fn keys(c: &mut Criterion) {
    let project = ProjectRef::parse("runvpplxfmoostzzpjco").unwrap();
    let key = supa_keys::generate(&project, KeyKind::Secret);
    c.bench_function("key_validate", |b| {
        b.iter(|| supa_keys::validate(black_box(&project), black_box(&key)))
    });
    c.bench_function("key_hash", |b| b.iter(|| supa_keys::hash(black_box(&key))));
}

fn jwt(c: &mut Criterion) {
    let project = ProjectRef::parse("runvpplxfmoostzzpjco").unwrap();
    let secret = JwtKey::new(b"a-project-jwt-secret-of-at-least-32-bytes").unwrap();
    c.bench_function("jwt_mint_fresh", |b| {
        b.iter(|| supa_keys::mint(black_box(&secret), black_box(&project), Role::Anon, NOW))
    });
    let cache = MintCache::default();
    cache.get(&secret, &project, Role::Anon, NOW);
    c.bench_function("jwt_mint_cached", |b| {
        b.iter(|| cache.get(black_box(&secret), black_box(&project), Role::Anon, NOW))
    });
    let token = supa_keys::mint(&secret, &project, Role::Anon, NOW);
    c.bench_function("jwt_verify", |b| {
        b.iter(|| supa_keys::verify(black_box(&secret), black_box(&token), NOW))
    });
}

fn sigv4(c: &mut Criterion) {
    let signer = SigV4Signer::lambda();
    let (request, credentials) = (supa_request(), supa_credentials());
    c.bench_function("sigv4_supa_cached_key", |b| {
        b.iter(|| signer.sign(black_box(&request), &credentials, REGION, SIGN_AT))
    });
    c.bench_function("sigv4_supa_uncached_key", |b| {
        b.iter(|| SigV4Signer::lambda().sign(black_box(&request), &credentials, REGION, SIGN_AT))
    });
    let baseline = AwsSigV4Baseline::default();
    c.bench_function("sigv4_aws_sigv4", |b| {
        b.iter(|| baseline.authorization(black_box("lambda")))
    });
}

criterion_group!(benches, keys, jwt, sigv4);
criterion_main!(benches);
