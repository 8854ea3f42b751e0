//! The outbound HTTP client every crate builds the same way: plain HTTP
//! and HTTPS with rustls on the `ring` provider (no C build), the
//! system's roots, pooled connections.

use std::sync::Once;
use std::time::Duration;

/// Makes rustls on `ring` the process's TLS provider (once), for every
/// client built on reqwest here or in a library (object_store's S3).
pub fn install_tls_provider() {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Fails only when a provider is already installed: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A pooled client whose requests time out after `timeout`.
pub fn client(timeout: Duration) -> reqwest::Client {
    install_tls_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .expect("a client with static settings builds")
}
