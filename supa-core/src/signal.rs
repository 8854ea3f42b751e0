//! When a server should stop: Ctrl-C, or SIGTERM (what ECS and Kubernetes
//! send), for every binary's graceful shutdown.

/// Resolves on Ctrl-C or SIGTERM.
pub async fn stopped() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
