//! What a gateway does with `supa-keys` for one request, end to end:
//! a project gets its keys, a client presents one, the gateway checks it
//! and mints the JWT the data plane will verify.

#![allow(clippy::print_stdout)]

use supa_core::{KeyKind, ProjectRef, Role};
use supa_keys::{JwtKey, MintCache, Validation};

fn main() {
    let project = ProjectRef::generate();
    let publishable = supa_keys::generate(&project, KeyKind::Publishable);
    let secret = supa_keys::generate(&project, KeyKind::Secret);
    println!("project     {project}");
    println!("publishable {publishable}");
    println!(
        "secret      {}  (stored as sha256 {})",
        supa_keys::redact(&secret),
        supa_keys::hash_hex(&secret)
    );

    // The gateway's first check needs no database: the checksum binds the key
    // to this project, and another project's key fails here.
    let kind = match supa_keys::validate(&project, &publishable) {
        Ok(Validation::Checked(kind)) => kind,
        other => panic!("a freshly generated key validates, got {other:?}"),
    };
    let other = ProjectRef::generate();
    assert!(supa_keys::validate(&other, &publishable).is_err());

    let jwt_key = JwtKey::new(b"a-project-jwt-secret-of-at-least-32-bytes").expect("long enough");
    let cache = MintCache::default();
    let now = supa_keys::unix_now();
    let token = cache.get(&jwt_key, &project, kind.role(), now);
    let claims = supa_keys::verify(&jwt_key, &token, now).expect("a minted token verifies");
    assert_eq!(claims.role(), Some(Role::Anon.as_str()));
    println!("consumer    {}", supa_keys::consumer_name(&project, kind));
    println!("claims      {}", claims.to_json());
}
