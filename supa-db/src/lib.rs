//! Shared database plumbing of the services that work in project databases
//! (the data plane, the metadata API, the auth server): a driver
//! configuration from a [`ProjectDatabase`] login, and the bounded pool
//! each keeps per project, built the same way everywhere (fast recycling,
//! 10 s to connect and to wait for a connection).

#![forbid(unsafe_code)]

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
pub use deadpool_postgres::{Object, Pool};
use supa_core::ProjectDatabase;
use tokio_postgres::NoTls;

/// How long connecting, and waiting for a pooled connection, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The driver configuration of `login`, naming `application` in
/// `pg_stat_activity`.
pub fn pg_config(login: &ProjectDatabase, application: &str) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(&login.host)
        .port(login.port)
        .dbname(&login.name)
        .user(&login.user)
        .password(login.password.expose())
        .application_name(application)
        .connect_timeout(CONNECT_TIMEOUT);
    c
}

/// A pool of at most `max_size` connections made with `config`, opened on
/// demand. The error says why it cannot be built.
pub fn pool(config: tokio_postgres::Config, max_size: usize) -> Result<Pool, String> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use supa_core::Secret;

    #[test]
    fn logins_become_driver_configurations() {
        let login = ProjectDatabase {
            host: "127.0.0.1".into(),
            port: 6543,
            name: "proj_abcdefghijabcdefghij".into(),
            user: "abcdefghijabcdefghij_auth".into(),
            password: Secret::new("pw".into()),
        };
        let c = pg_config(&login, "supa-auth");
        assert_eq!(c.get_ports(), [6543]);
        assert_eq!(c.get_dbname(), Some("proj_abcdefghijabcdefghij"));
        assert_eq!(c.get_user(), Some("abcdefghijabcdefghij_auth"));
        assert_eq!(c.get_application_name(), Some("supa-auth"));
        assert_eq!(c.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        // Building a pool opens nothing: no server is needed here.
        let p = pool(c, 3).unwrap();
        assert_eq!(p.status().max_size, 3);
    }
}
