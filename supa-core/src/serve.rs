//! The listener every HTTP server of Supa accepts on, and the gateway's
//! thread-per-core serving.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::ListenerExt as _;
use tokio::net::{TcpListener, TcpStream};
use tower::Layer as _;

/// A listener that sets `TCP_NODELAY` on each connection it accepts.
pub type NoDelay = axum::serve::TapIo<TcpListener, fn(&mut TcpStream)>;

/// `listener` with `TCP_NODELAY` on each accepted connection: a streamed
/// response (a download, a proxied body) is written in several pieces, and
/// with Nagle's algorithm on, each piece after the first waits for the
/// client's delayed ACK (40 ms on Linux).
pub fn nodelay(listener: TcpListener) -> NoDelay {
    listener.tap_io(set_nodelay as fn(&mut TcpStream))
}

fn set_nodelay(tcp: &mut TcpStream) {
    // A refusal leaves the connection working, only slower.
    let _ = tcp.set_nodelay(true);
}

/// A gateway's drain window, for a graceful stop behind a load balancer:
/// once begun, every HTTP/1 response says `Connection: close`, so the
/// balancer stops reusing its kept-alive connections to this process while
/// it is still accepting and serving; when the window ends the listener
/// closes with (nearly) no idle connection left for the balancer to pick
/// at that instant and see reset.
#[derive(Debug, Clone, Default)]
pub struct Drain(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drain {
    /// `router`, answering `Connection: close` once the drain has begun.
    pub fn layer(&self, router: Router) -> Router {
        let draining = self.0.clone();
        router.layer(axum::middleware::map_response(
            move |mut response: axum::response::Response| {
                let closing = draining.load(std::sync::atomic::Ordering::Relaxed)
                    // An upgrade's 101 keeps its connection.
                    && response.status() != axum::http::StatusCode::SWITCHING_PROTOCOLS;
                if closing {
                    response.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                std::future::ready(response)
            },
        ))
    }

    /// Whether the drain has begun: health checks answer 503 from then on,
    /// so a balancer that probes takes the replica out first.
    pub fn draining(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Begins the drain and returns when `window` has passed.
    pub async fn run(&self, window: std::time::Duration) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(window).await;
    }
}

thread_local! {
    /// Which of [`per_thread`]'s threads this is, and how many there are.
    static SLOT: std::cell::Cell<Option<(usize, usize)>> = const { std::cell::Cell::new(None) };
}

/// When called on one of [`per_thread`]'s serving threads: its index and
/// the number of threads. Per-thread resources (an embedded data plane's
/// pools) are kept by this index, so a request uses connections whose
/// driver tasks run on its own thread.
pub fn serving_slot() -> Option<(usize, usize)> {
    SLOT.with(std::cell::Cell::get)
}

/// Serves `router` on `listener` from `threads` single-threaded runtimes
/// (default: one per CPU), one per OS thread, until `shutdown` resolves; then each lets its
/// requests in flight finish. Each request knows its peer
/// (`ConnectInfo<SocketAddr>`).
///
/// A connection lives on one thread with everything its requests do (the
/// upstream connections they take from the thread's idle list, the bodies
/// they stream): no hand-off between threads, no work stealing, the model
/// of nginx's workers and pingora's no-steal runtime. On a work-stealing
/// runtime a proxied request costs a third more CPU, most of it in the
/// kernel waking the sibling worker. The caller's runtime accepts and
/// deals connections to the threads in turn: left to race for `accept`,
/// one thread takes a burst of new connections whole.
///
/// Tasks a request spawns (a database connection's driver, a WebSocket)
/// run on that thread's runtime and may serve other threads' requests, so
/// every runtime keeps running until all threads have drained.
pub async fn per_thread(
    listener: TcpListener,
    router: Router,
    threads: Option<usize>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (release, released) = tokio::sync::watch::channel(false);
    let (done, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    let mut deal = Vec::with_capacity(threads);
    for i in 0..threads {
        let (hand, connections) = tokio::sync::mpsc::unbounded_channel();
        deal.push(hand);
        let router = router.clone();
        let (mut stopped, mut released) = (stopped.clone(), released.clone());
        let done = done.clone();
        std::thread::Builder::new()
            .name(format!("supa-serve-{i}"))
            .spawn(move || {
                SLOT.with(|slot| slot.set(Some((i, threads))));
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
                    // What `into_make_service_with_connect_info` does for
                    // a TcpListener: each connection's router knows its peer.
                    let service = tower::service_fn(
                        move |incoming: axum::serve::IncomingStream<'_, Dealt>| {
                            let peer = ConnectInfo(*incoming.remote_addr());
                            std::future::ready(Ok::<_, std::convert::Infallible>(
                                axum::Extension(peer).layer(router.clone()),
                            ))
                        },
                    );
                    let outcome = axum::serve(Dealt { connections, local }, service)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .await;
                    let _ = done.send(outcome);
                    drop(done);
                    let _ = released.wait_for(|r| *r).await;
                });
            })?;
    }
    drop(done);
    let accept = async {
        for turn in (0..threads).cycle() {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // A connection that died in the queue is its own
                    // business; anything else (out of descriptors) is
                    // given a moment to pass, as axum does.
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) {
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    continue;
                }
            };
            if let Ok(stream) = stream.into_std() {
                let _ = deal[turn].send((stream, peer));
            }
        }
    };
    // The signal, or the first thread to end (an error, a panic), stops
    // accepting and stops them all.
    let mut ended = Vec::with_capacity(threads);
    tokio::select! {
        () = shutdown => {}
        () = accept => {}
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

/// The connections dealt to one serving thread, as axum's listener.
struct Dealt {
    connections: tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for Dealt {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some((stream, peer)) = self.connections.recv().await else {
                // The acceptor has stopped: so will this server.
                return std::future::pending().await;
            };
            // Registered with this thread's runtime from here on.
            if let Ok(mut stream) = TcpStream::from_std(stream) {
                set_nodelay(&mut stream);
                return (stream, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// One request on a new connection: the body of the answer.
    async fn get(addr: SocketAddr) -> (String, SocketAddr) {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let me = tcp.local_addr().unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        (body.to_owned(), me)
    }

    #[tokio::test]
    async fn connections_are_dealt_to_each_thread_in_turn_and_drain_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router =
            Router::new().fallback(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                let thread = std::thread::current().name().unwrap_or_default().to_owned();
                let (slot, of) = serving_slot().unwrap_or_default();
                format!("{thread}:{slot}/{of} {peer}")
            });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(per_thread(listener, router, Some(2), async {
            let _ = stopped.await;
        }));
        let mut threads = Vec::new();
        for _ in 0..4 {
            let (body, me) = get(addr).await;
            let (thread, peer) = body.split_once(' ').unwrap();
            assert_eq!(peer, me.to_string(), "each request knows its peer");
            threads.push(thread.to_owned());
        }
        assert_eq!(
            threads,
            [
                "supa-serve-0:0/2",
                "supa-serve-1:1/2",
                "supa-serve-0:0/2",
                "supa-serve-1:1/2"
            ],
            "each thread knows its slot"
        );
        assert_eq!(serving_slot(), None, "off the serving threads, no slot");
        stop.send(()).unwrap();
        served.await.unwrap().unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer accepting after shutdown"
        );
    }
}
