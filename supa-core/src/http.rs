//! The outbound HTTP client every crate builds the same way: plain HTTP
//! and HTTPS with rustls on the `ring` provider (no C build), the
//! system's roots, pooled connections.

use std::sync::Once;
use std::time::Duration;

/// A pooled client whose requests time out after `timeout`.
pub fn client(timeout: Duration) -> reqwest::Client {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Fails only when a provider is already installed: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .expect("a client with static settings builds")
}
