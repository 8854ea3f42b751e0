//! Config profiles: `[profile.NAME]` tables of the config file, chosen with
//! `--profile NAME` or `SUPA_PROFILE`, and what the two built-in names mean.
//!
//! `production` refuses, at start and with one line each, the settings that
//! are fine on a laptop and lose data or secrets on a server; `test` relaxes
//! durability for throwaway platforms. Any other name only selects its table.
//! The checks live here once so `supa up`, `supa-tenant-manager`,
//! `supa-gateway` and `supa config check` refuse the same things.

use crate::env;

/// Fewest bytes a bearer token may have under `production` (256 bits).
pub const MIN_TOKEN_BYTES: usize = 32;

/// The profile a process runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile(Option<String>);

impl Profile {
    /// No profile: no table, no checks.
    pub const DEFAULT: Self = Self(None);
    /// Strict: unsafe settings are refused at start.
    pub const PRODUCTION: &'static str = "production";
    /// Relaxed: throwaway durability, nothing refused.
    pub const TEST: &'static str = "test";

    /// The profile named `name`; `None` is the default (no table, no checks).
    pub fn new(name: Option<String>) -> Self {
        Self(name.filter(|n| !n.is_empty()))
    }

    /// The chosen name, if any.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// `production`: refuse unsafe settings.
    pub fn is_production(&self) -> bool {
        self.name() == Some(Self::PRODUCTION)
    }

    /// `test`: clusters the platform creates itself skip `fsync`.
    pub fn is_test(&self) -> bool {
        self.name() == Some(Self::TEST)
    }

    /// Whether `name` needs no table in the config file.
    pub fn is_built_in(name: &str) -> bool {
        name == Self::PRODUCTION || name == Self::TEST
    }

    /// What this profile refuses in `posture`, one line each (empty unless
    /// `production`).
    pub fn refusals(&self, posture: &Posture<'_>) -> Vec<String> {
        if !self.is_production() {
            return Vec::new();
        }
        let mut out = Vec::new();
        if posture.embedded_database {
            out.push(format!(
                "production: the embedded database is refused; set {} to a PostgreSQL you back up",
                env::DATABASE_URL
            ));
        }
        if posture.generated_master_key {
            out.push(format!(
                "production: the master key would exist only in the data dir; give it as {} from a secret store (without it every project's secrets are lost)",
                env::MASTER_KEY
            ));
        }
        if let Some(url) = posture.redis_url
            && let Some(line) = redis_without_auth(url)
        {
            out.push(line);
        }
        for (var, token) in &posture.tokens {
            if let Some(token) = token
                && token.len() < MIN_TOKEN_BYTES
            {
                out.push(format!(
                    "production: {var} has {} bytes; use at least {MIN_TOKEN_BYTES} random bytes",
                    token.len()
                ));
            }
        }
        out
    }

    /// The refusal of a database whose `fsync` setting is `fsync` (as
    /// `SHOW fsync` prints it), if this profile refuses it.
    pub fn refuse_fsync(&self, what: &str, fsync: &str) -> Option<String> {
        (self.is_production() && fsync.eq_ignore_ascii_case("off")).then(|| {
            format!("production: {what} runs with fsync=off; a crash can corrupt it (set fsync=on)")
        })
    }
}

/// The settings a profile judges, as a process is about to use them.
#[derive(Debug, Default)]
pub struct Posture<'a> {
    /// The management database would be an embedded cluster in the data dir.
    pub embedded_database: bool,
    /// No master key was given, so one is (or was) generated into the data dir.
    pub generated_master_key: bool,
    /// The Redis URL, if Redis is used.
    pub redis_url: Option<&'a str>,
    /// Bearer tokens given by the operator, with their variable names;
    /// generated ones are long enough by construction.
    pub tokens: Vec<(&'static str, Option<&'a str>)>,
}

/// A refusal for a Redis URL that carries no password (`redis://host`);
/// `rediss://` without one is refused too: TLS does not authenticate the
/// client.
fn redis_without_auth(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed.password().is_none().then(|| {
        format!(
            "production: Redis at {} has no password; use {}://:PASSWORD@{} (Redis AUTH)",
            mask_url(url),
            parsed.scheme(),
            parsed.host_str().unwrap_or("host"),
        )
    })
}

/// `url` with its password replaced by `***`, for printing; text that is
/// not a URL is masked whole.
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.has_host() => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            // Secrets in the query (`?password=`) are masked too.
            if parsed.query().is_some() {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let secret = k.contains("password") || k.contains("token");
                        (
                            k.into_owned(),
                            if secret { "***".into() } else { v.into_owned() },
                        )
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        _ => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> Profile {
        Profile::new(Some("production".into()))
    }

    #[test]
    fn only_production_refuses() {
        let posture = Posture {
            embedded_database: true,
            generated_master_key: true,
            redis_url: Some("redis://127.0.0.1:6379"),
            tokens: vec![(env::ADMIN_TOKEN, Some("short"))],
        };
        for name in [None, Some("test"), Some("staging")] {
            assert!(
                Profile::new(name.map(Into::into))
                    .refusals(&posture)
                    .is_empty()
            );
        }
        let lines = production().refusals(&posture);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0].contains(env::DATABASE_URL));
        assert!(lines[1].contains(env::MASTER_KEY));
        assert!(
            lines[2].contains("redis://:PASSWORD@127.0.0.1"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].contains("SUPA_ADMIN_TOKEN has 5 bytes"),
            "{}",
            lines[3]
        );
        assert!(lines.iter().all(|l| !l.contains('\n')));
    }

    #[test]
    fn safe_settings_pass_production() {
        let token = "x".repeat(MIN_TOKEN_BYTES);
        let posture = Posture {
            embedded_database: false,
            generated_master_key: false,
            redis_url: Some("rediss://:s3cret@cache.internal:6379/0"),
            tokens: vec![(env::ADMIN_TOKEN, Some(&token)), (env::SERVICE_TOKEN, None)],
        };
        assert!(production().refusals(&posture).is_empty());
        // A user name alone is no password.
        let lines = production().refusals(&Posture {
            redis_url: Some("redis://default@cache:6379"),
            ..Posture::default()
        });
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn fsync_off_is_refused_in_production_only() {
        assert!(
            production()
                .refuse_fsync("the management database", "off")
                .is_some()
        );
        assert!(production().refuse_fsync("worker w1", "on").is_none());
        assert!(
            Profile::new(Some("test".into()))
                .refuse_fsync("w", "off")
                .is_none()
        );
    }

    #[test]
    fn urls_are_masked_for_printing() {
        assert_eq!(
            mask_url("postgres://supa:hunter2@db:5432/supa?sslmode=require&password=x"),
            "postgres://supa:***@db:5432/supa?sslmode=require&password=***"
        );
        assert_eq!(mask_url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(mask_url("not a url"), "***");
    }
}
