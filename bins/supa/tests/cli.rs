//! The `supa` binary, run as a user runs it.

use std::process::{Command, Output};

const HOSTED_REF: &str = "runvpplxfmoostzzpjco";
const HOSTED_KEY: &str = "sb_publishable_mCQAAeREfJckZHeJE7CpuA_rcYLuPw-";
const SECRET: &str = "a-project-jwt-secret-of-at-least-32-bytes";

fn supa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_supa"))
        .args(args)
        .output()
        .expect("supa runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

#[test]
fn checks_the_hosted_key() {
    let out = supa(&["keys", "check", "--ref", HOSTED_REF, HOSTED_KEY]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "valid");

    let out = supa(&["keys", "check", "--ref", "aaaaaaaaaaaaaaaaaaaa", HOSTED_KEY]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("checksum"), "{}", stderr(&out));

    let out = supa(&["keys", "check", "--ref", HOSTED_REF, "sb_secret_nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("malformed API key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn generated_keys_check_as_valid() {
    for kind in ["publishable", "secret"] {
        let out = supa(&["keys", "gen", "--ref", HOSTED_REF, "--kind", kind]);
        assert!(out.status.success(), "{}", stderr(&out));
        let key = stdout(&out);
        assert!(key.starts_with(&format!("sb_{kind}_")), "{key}");
        let check = supa(&["keys", "check", "--ref", HOSTED_REF, &key]);
        assert_eq!(stdout(&check), "valid");
    }
}

#[test]
fn bad_arguments_are_explained() {
    let out = supa(&["keys", "gen", "--ref", "Nope", "--kind", "secret"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("exactly 20"), "{}", stderr(&out));
    let out = supa(&["keys", "gen", "--ref", HOSTED_REF, "--kind", "admin"]);
    assert_eq!(out.status.code(), Some(2));
    let out = supa(&[
        "jwt", "mint", "--secret", "short", "--ref", HOSTED_REF, "--role", "anon",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("at least 32 bytes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mints_and_verifies() {
    let out = supa(&[
        "jwt",
        "mint",
        "--secret",
        SECRET,
        "--ref",
        HOSTED_REF,
        "--role",
        "service_role",
        "--ttl",
        "60",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out);
    assert_eq!(token.split('.').count(), 3);

    let out = supa(&["jwt", "verify", "--secret", SECRET, &token]);
    assert!(out.status.success(), "{}", stderr(&out));
    let claims = stdout(&out);
    assert!(
        claims.starts_with('{') && claims.contains(r#""role":"service_role""#),
        "{claims}"
    );
    assert!(
        claims.contains(r#""ref":"runvpplxfmoostzzpjco""#),
        "{claims}"
    );

    let out = supa(&[
        "jwt",
        "verify",
        "--secret",
        &SECRET.replace('a', "b"),
        &token,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("signature"), "{}", stderr(&out));

    let out = supa(&["jwt", "verify", "--secret", SECRET, "not-a-token"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("malformed JWT"), "{}", stderr(&out));
}

#[test]
fn help_everywhere() {
    for args in [
        &["--help"][..],
        &["keys", "--help"],
        &["keys", "gen", "--help"],
        &["keys", "check", "--help"],
        &["jwt", "--help"],
        &["jwt", "mint", "--help"],
        &["jwt", "verify", "--help"],
    ] {
        let out = supa(args);
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage:"), "{args:?}");
    }
}
