//! The environment of Supabase Realtime's container, read as the
//! standalone `supa-realtime` binary's configuration, so it can take that
//! container's place in Supabase's docker-compose unchanged: `PORT`,
//! `DB_HOST`/`DB_PORT`/`DB_USER`/`DB_PASSWORD`/`DB_NAME`,
//! `API_JWT_SECRET`. Settings that only Supabase's Elixir server reads
//! (`SECRET_KEY_BASE`, `DB_ENC_KEY`, `ERL_AFLAGS`, `DNS_NODES`, ...) are
//! accepted and ignored; servers that share a channel find each other
//! through `SUPA_REDIS_URL`.

use std::collections::HashMap;
use std::time::Duration;

use supa_core::{ProjectDatabase, Secret};

/// What a standalone server is configured with.
#[derive(Debug, Clone)]
pub struct RealtimeEnv {
    /// `DB_*`: the database whose changes it serves.
    pub database: ProjectDatabase,
    /// `API_JWT_SECRET`: verifies clients' tokens.
    pub jwt_secret: Secret<String>,
    /// `PORT` (default 4000).
    pub port: u16,
    /// `SUPA_REDIS_URL`: the Redis other servers of the same database share.
    pub redis_url: Option<String>,
    /// `SUPA_REALTIME_SLOT_GRACE` (seconds, default 10).
    pub slot_grace: Duration,
}

/// Reads the configuration from `vars`; the error names the variable.
pub fn read(vars: impl IntoIterator<Item = (String, String)>) -> Result<RealtimeEnv, String> {
    let vars: HashMap<String, String> = vars
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let get = |name: &str| vars.get(name).cloned();
    let required = |name: &str| get(name).ok_or_else(|| format!("{name} is required"));
    let number = |name: &str, default: u64| match get(name) {
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{name} must be a number, not {v:?}")),
        None => Ok(default),
    };
    let port = |name: &str, default: u64| {
        u16::try_from(number(name, default)?).map_err(|_| format!("{name} is not a port"))
    };
    Ok(RealtimeEnv {
        database: ProjectDatabase {
            host: get("DB_HOST").unwrap_or_else(|| "localhost".into()),
            port: port("DB_PORT", 5432)?,
            name: get("DB_NAME").unwrap_or_else(|| "postgres".into()),
            user: get("DB_USER").unwrap_or_else(|| "supabase_admin".into()),
            password: Secret::new(required("DB_PASSWORD")?),
        },
        jwt_secret: Secret::new(required("API_JWT_SECRET")?),
        port: port("PORT", 4000)?,
        redis_url: get(supa_core::env::REDIS_URL),
        slot_grace: Duration::from_secs(number(supa_core::env::REALTIME_SLOT_GRACE, 10)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn supabase_compose_environment_is_read() {
        let env = read(vars(&[
            ("PORT", "4000"),
            ("DB_HOST", "db"),
            ("DB_PORT", "5432"),
            ("DB_USER", "supabase_admin"),
            ("DB_PASSWORD", "pw"),
            ("DB_NAME", "postgres"),
            ("DB_AFTER_CONNECT_QUERY", "SET search_path TO _realtime"),
            ("API_JWT_SECRET", "secret"),
            ("SECRET_KEY_BASE", "ignored"),
        ]))
        .unwrap();
        assert_eq!(env.port, 4000);
        assert_eq!(
            (env.database.host.as_str(), env.database.port),
            ("db", 5432)
        );
        assert_eq!(env.database.user, "supabase_admin");
        assert_eq!(env.jwt_secret.expose(), "secret");
        assert_eq!(env.slot_grace, Duration::from_secs(10));
        assert!(env.redis_url.is_none());
    }

    #[test]
    fn missing_or_bad_values_are_named() {
        assert_eq!(
            read(vars(&[("DB_PASSWORD", "pw")])).unwrap_err(),
            "API_JWT_SECRET is required"
        );
        let err = read(vars(&[
            ("DB_PASSWORD", "pw"),
            ("API_JWT_SECRET", "s"),
            ("PORT", "eighty"),
        ]))
        .unwrap_err();
        assert!(err.contains("PORT"), "{err}");
        let err = read(vars(&[
            ("DB_PASSWORD", "pw"),
            ("API_JWT_SECRET", "s"),
            ("DB_PORT", "70000"),
        ]))
        .unwrap_err();
        assert!(err.contains("DB_PORT"), "{err}");
    }
}
