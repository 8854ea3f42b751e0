//! The listener every HTTP server of Supa accepts on, and the gateway's
//! thread-per-core serving.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

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

/// How the gateway port serves connections.
#[derive(Debug, Clone)]
pub struct Serving {
    /// Serving threads (default: one per CPU).
    pub threads: Option<usize>,
    /// How long a connection may take to send a whole request head,
    /// counted from when it starts waiting for one: a slow client
    /// (slowloris) is closed after it, and so is a kept-alive connection
    /// idle that long.
    pub header_timeout: Duration,
    /// Connections one client address may hold at once (0: no cap); one
    /// more is answered 429 and closed.
    pub max_connections_per_ip: usize,
}

impl Default for Serving {
    fn default() -> Self {
        Self {
            threads: None,
            // Longer than the idle timeout of the balancers in front
            // (nginx's upstream keepalive, an ALB's 60 s), so they close
            // an idle connection first and never reuse one being closed.
            header_timeout: Duration::from_secs(75),
            max_connections_per_ip: 0,
        }
    }
}

/// The gateway port's limits as command-line flags with their `SUPA_*`
/// variables (`supa up`, `supa-gateway`).
#[cfg(feature = "clap")]
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Seconds a connection may take to send a request head, from when it
    /// starts waiting for one (also how long an idle kept-alive connection
    /// lives); a slower client is closed.
    #[arg(long, env = crate::env::HEADER_TIMEOUT, default_value_t = 75)]
    pub header_timeout: u64,
    /// Connections one client address may hold at once (default 0: no
    /// cap); one more is answered 429. Leave it off behind a load
    /// balancer, whose few addresses carry every client.
    #[arg(long, env = crate::env::MAX_CONNECTIONS_PER_IP, default_value_t = 0)]
    pub max_connections_per_ip: usize,
    /// The largest request body passed to any service but storage (which
    /// has its own limits); past it, 413.
    #[arg(long, env = crate::env::MAX_BODY_BYTES, default_value_t = 64 << 20)]
    pub max_body_bytes: u64,
}

#[cfg(feature = "clap")]
impl ServeArgs {
    /// The settings, with `threads` serving threads.
    pub fn serving(&self, threads: Option<usize>) -> Serving {
        Serving {
            threads,
            header_timeout: Duration::from_secs(self.header_timeout.max(1)),
            max_connections_per_ip: self.max_connections_per_ip,
        }
    }
}

/// Serves `router` on `listener` from `serving.threads` single-threaded
/// runtimes (default: one per CPU), one per OS thread, until `shutdown`
/// resolves; then each lets its requests in flight finish. Each request
/// knows its peer (`ConnectInfo<SocketAddr>`).
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
    serving: Serving,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let threads = serving
        .threads
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
        let (stopped, mut released) = (stopped.clone(), released.clone());
        let done = done.clone();
        let header_timeout = serving.header_timeout;
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
                    serve_dealt(connections, router, header_timeout, stopped).await;
                    let _ = done.send(Ok(()));
                    drop(done);
                    let _ = released.wait_for(|r| *r).await;
                });
            })?;
    }
    drop(done);
    let per_ip = PerIp::new(serving.max_connections_per_ip);
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
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            };
            let slot = per_ip.take(peer.ip());
            if let Ok(stream) = stream.into_std() {
                let _ = deal[turn].send(Dealt { stream, peer, slot });
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

/// A connection the acceptor hands to a serving thread, with its place
/// under the per-address cap (`None`: over the cap).
struct Dealt {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slot: Option<Slot>,
}

/// One serving thread: HTTP/1 (with upgrades) on each connection dealt to
/// it until `stopped`, then a graceful shutdown of every connection (an
/// idle one closes, a busy one after its response) and a wait for them.
async fn serve_dealt(
    mut connections: tokio::sync::mpsc::UnboundedReceiver<Dealt>,
    router: Router,
    header_timeout: Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    // Each connection's task holds a receiver: `closed()` is their end.
    let (open, _) = tokio::sync::watch::channel(());
    loop {
        let dealt = tokio::select! {
            dealt = connections.recv() => match dealt {
                Some(dealt) => dealt,
                None => break,
            },
            _ = stopped.wait_for(|s| *s) => break,
        };
        // Registered with this thread's runtime from here on.
        let Ok(mut stream) = TcpStream::from_std(dealt.stream) else {
            continue;
        };
        let Some(slot) = dealt.slot else {
            tokio::spawn(refuse(stream));
            continue;
        };
        set_nodelay(&mut stream);
        let service = tower::ServiceExt::map_request(
            axum::Extension(ConnectInfo(dealt.peer)).layer(router.clone()),
            |request: axum::http::Request<hyper::body::Incoming>| {
                request.map(axum::body::Body::new)
            },
        );
        let mut builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .http1_only();
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout);
        let mut stopped = stopped.clone();
        let open = open.subscribe();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let hyper_service = hyper_util::service::TowerToHyperService::new(service);
            let connection = builder.serve_connection_with_upgrades(io, hyper_service);
            let mut connection = std::pin::pin!(connection);
            // The watch's guard must not live across the await below.
            let stopping = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stopping => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop((slot, open));
        });
    }
    open.closed().await;
}

/// The answer to a connection over its address's cap, in Kong's shape.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt as _;
    const BODY: &str = r#"{"message":"Too many connections from this address"}"#;
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Connections held per client address, when capped.
#[derive(Clone)]
struct PerIp {
    cap: usize,
    held: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

/// A connection's place under its address's cap, given back when dropped.
struct Slot(Option<(PerIp, std::net::IpAddr)>);

impl PerIp {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            held: Default::default(),
        }
    }

    /// A place for one more connection from `ip`, or `None` at the cap.
    fn take(&self, ip: std::net::IpAddr) -> Option<Slot> {
        if self.cap == 0 {
            return Some(Slot(None));
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(ip).or_default();
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot(Some((self.clone(), ip))))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((per_ip, ip)) = self.0.take() {
            let mut held = per_ip.held.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = held.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    held.remove(&ip);
                }
            }
        }
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
        let serving = Serving {
            threads: Some(2),
            ..Serving::default()
        };
        let served = tokio::spawn(async move {
            per_thread(listener, router, serving, async {
                let _ = stopped.await;
            })
            .await
        });
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

    #[tokio::test]
    async fn slow_heads_are_closed_and_one_address_holds_at_most_its_cap() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = Serving {
            threads: Some(1),
            header_timeout: Duration::from_millis(500),
            max_connections_per_ip: 2,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            let router = Router::new().fallback(|| async { "ok" });
            per_thread(listener, router, serving, async {
                let _ = stopped.await;
            })
            .await
        });
        // A client sending its head a byte at a time is cut off.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(Ok(_))),
            "closed by the server, not left open: {read:?}"
        );
        drop(slow);
        // Two connections held open: the third is refused with 429.
        let held = [
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        ];
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut third = TcpStream::connect(addr).await.unwrap();
        let mut answer = String::new();
        third.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
        assert!(
            answer.ends_with(r#"{"message":"Too many connections from this address"}"#),
            "{answer}"
        );
        // A place is given back when a connection ends.
        drop(held);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (body, _) = get(addr).await;
        assert_eq!(body, "ok");
        stop.send(()).unwrap();
        served.await.unwrap().unwrap();
    }
}
