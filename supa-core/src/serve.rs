//! The listener every HTTP server of Supa accepts on, and the gateway's
//! thread-per-core serving.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::serve::ListenerExt as _;
use tokio::net::{TcpListener, TcpStream};

/// A listener that sets `TCP_NODELAY` on each connection it accepts.
pub type NoDelay = axum::serve::TapIo<TcpListener, fn(&mut TcpStream)>;

/// `listener` with `TCP_NODELAY` on each accepted connection: a streamed
/// response (a download, a proxied body) is written in several pieces, and
/// with Nagle's algorithm on, each piece after the first waits for the
/// client's delayed ACK (40 ms on Linux).
pub fn nodelay(listener: TcpListener) -> NoDelay {
    fn set(tcp: &mut TcpStream) {
        // A refusal leaves the connection working, only slower.
        let _ = tcp.set_nodelay(true);
    }
    listener.tap_io(set as fn(&mut TcpStream))
}

/// The serving threads when none are configured: one per CPU.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Serves `router` on `listener` from `threads` single-threaded runtimes,
/// one per OS thread, all accepting on the same socket, until `shutdown`
/// resolves; then each lets its requests in flight finish. Each request
/// knows its peer (`ConnectInfo<SocketAddr>`).
///
/// A connection lives on the thread that accepted it, with everything its
/// requests do (the upstream connections they take from the thread's idle
/// list, the bodies they stream): no hand-off between threads, no work
/// stealing, the model of nginx's workers and pingora's no-steal runtime.
/// On a work-stealing runtime a proxied request costs a third more CPU,
/// most of it in the kernel waking the sibling worker. Whichever thread is
/// free takes the next connection; an idle thread costs nothing.
///
/// Tasks a request spawns (a database connection's driver, a WebSocket)
/// run on that thread's runtime and may serve other threads' requests, so
/// every runtime keeps running until all threads have drained.
pub async fn per_thread(
    listener: TcpListener,
    router: Router,
    threads: usize,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let threads = threads.max(1);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (release, released) = tokio::sync::watch::channel(false);
    let (done, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..threads {
        let listener = listener.try_clone()?;
        let router = router.clone();
        let (mut stopped, mut released) = (stopped.clone(), released.clone());
        let done = done.clone();
        std::thread::Builder::new()
            .name(format!("supa-serve-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = done.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let outcome = match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let service =
                                router.into_make_service_with_connect_info::<SocketAddr>();
                            axum::serve(nodelay(listener), service)
                                .with_graceful_shutdown(async move {
                                    let _ = stopped.wait_for(|s| *s).await;
                                })
                                .await
                        }
                        Err(e) => Err(e),
                    };
                    let _ = done.send(outcome);
                    drop(done);
                    let _ = released.wait_for(|r| *r).await;
                });
            })?;
    }
    drop(done);
    // The signal, or the first thread to end (an error, a panic), stops
    // them all.
    let mut ended = Vec::with_capacity(threads);
    tokio::select! {
        () = shutdown => {}
        outcome = outcomes.recv() => ended.extend(outcome),
    }
    let _ = stop.send(true);
    while let Some(outcome) = outcomes.recv().await {
        ended.push(outcome);
    }
    let _ = release.send(true);
    if ended.len() < threads {
        return Err(std::io::Error::other("a serving thread panicked"));
    }
    ended.into_iter().collect()
}
