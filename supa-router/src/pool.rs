//! HTTP/1 connections to plain-HTTP upstreams, each driven by the task
//! that uses it.
//!
//! A pooled client (reqwest, hyper-util's) runs every connection in a task
//! of its own: the request's head crosses to that task, the answer comes
//! back through a channel and so does every chunk of its body, so each
//! proxied request costs several task wake-ups, often across the runtime's
//! threads. Here the task serving the client's connection polls the
//! upstream connection itself: while it waits for the answer's head, then
//! from the body it hands back, which polls the connection before each
//! chunk. Once the body has ended the connection goes to an idle list of
//! the thread that released it (no lock, no contention); it is checked for
//! closure before reuse, and a request the upstream never saw is sent again
//! on a new connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Idle connections kept per upstream and thread: enough for bursts of
/// the runtime's concurrency, bounded so a quiet upstream holds few sockets.
const MAX_IDLE: usize = 64;

/// Idle connections older than this are closed rather than reused: below
/// the keep-alive timeouts of common servers (nginx 75 s, Node 5 s is
/// caught by the closure check).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections opened to upstreams by every pool of the process.
static OPENED: AtomicU64 = AtomicU64::new(0);

/// Connections opened so far (a metric, and how tests see reuse).
pub(crate) fn connections_opened() -> u64 {
    OPENED.load(Ordering::Relaxed)
}

/// A plain-HTTP upstream, parsed once per project config.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// `host:port`: where to connect, and the idle lists' key.
    key: Arc<str>,
    /// The `Host` header sent.
    host: HeaderValue,
    /// The URL's path without its trailing `/`, put before each request's.
    base_path: Box<str>,
}

impl Origin {
    /// The origin of an `http://` URL; `None` for other schemes.
    pub(crate) fn of(url: &url::Url) -> Option<Self> {
        if url.scheme() != "http" {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        // `host_str` keeps an IPv6 address's brackets, as both need them.
        let key: Arc<str> = format!("{host}:{port}").into();
        // `Host` omits the default port, as browsers and curl send it.
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        Some(Self {
            host: HeaderValue::from_str(&host_header).ok()?,
            key,
            base_path: url.path().trim_end_matches('/').into(),
        })
    }

    /// The request target: the URL's path, then `path_and_query`.
    pub(crate) fn uri(&self, path_and_query: &str) -> Result<Uri, http::uri::InvalidUri> {
        if self.base_path.is_empty() {
            Uri::try_from(path_and_query)
        } else {
            Uri::try_from(format!("{}{path_and_query}", self.base_path))
        }
    }
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made.
    Connect(std::io::Error),
    /// The connection failed before the answer's head arrived.
    Exchange(hyper::Error),
    /// No head within the timeout.
    Timeout,
}

struct Conn {
    origin: Arc<str>,
    send: http1::SendRequest<Body>,
    driver: Pin<Box<http1::Connection<TokioIo<TcpStream>, Body>>>,
    idle_since: Instant,
}

impl Conn {
    /// Polls the connection's I/O; `true` once it has ended (closed by the
    /// peer, failed, or done after a `Connection: close`).
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        self.driver.as_mut().poll(cx).is_ready()
    }
}

thread_local! {
    static IDLE: RefCell<HashMap<Arc<str>, Vec<Conn>>> = RefCell::new(HashMap::new());
}

/// A reusable idle connection to `origin`, if this thread has one.
async fn checkout(origin: &Origin) -> Option<Conn> {
    poll_fn(|cx| {
        Poll::Ready(IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let list = idle.get_mut(&*origin.key)?;
            while let Some(mut conn) = list.pop() {
                // Polling reads a close or an error the peer sent while
                // the connection sat idle; the head of a finished exchange
                // is processed and the sender becomes ready.
                if conn.idle_since.elapsed() < IDLE_TIMEOUT
                    && !conn.drive(cx)
                    && conn.send.is_ready()
                {
                    return Some(conn);
                }
            }
            None
        }))
    })
    .await
}

fn release(conn: Conn) {
    let mut conn = conn;
    conn.idle_since = Instant::now();
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(conn.origin.clone()).or_default();
        if list.len() < MAX_IDLE {
            list.push(conn);
        }
    });
}

async fn connect(origin: &Origin) -> Result<Conn, SendError> {
    let stream = TcpStream::connect(&*origin.key)
        .await
        .map_err(SendError::Connect)?;
    // Small requests and answers go out at once rather than waiting for an
    // acknowledgement (Nagle), as every proxy does.
    stream.set_nodelay(true).map_err(SendError::Connect)?;
    let (send, driver) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(SendError::Exchange)?;
    OPENED.fetch_add(1, Ordering::Relaxed);
    Ok(Conn {
        origin: origin.key.clone(),
        send,
        driver: Box::pin(driver),
        idle_since: Instant::now(),
    })
}

/// Sends `request` (origin-form URI, every header but `Host` set) to
/// `origin` and answers its response, whose body streams from the
/// connection. `timeout` bounds the wait for the connection and the head.
pub(crate) async fn send(
    origin: &Origin,
    mut request: Request<Body>,
    timeout: Duration,
) -> Result<Response<Body>, SendError> {
    request
        .headers_mut()
        .insert(http::header::HOST, origin.host.clone());
    tokio::time::timeout(timeout, async move {
        loop {
            let (mut conn, reused) = match checkout(origin).await {
                Some(conn) => (conn, true),
                None => (connect(origin).await?, false),
            };
            let mut sent = std::pin::pin!(conn.send.try_send_request(request));
            let mut live = true;
            let answer = poll_fn(|cx| {
                if live && conn.drive(cx) {
                    live = false;
                }
                sent.as_mut().poll(cx)
            })
            .await;
            match answer {
                Ok(response) => {
                    return Ok(response.map(|body| {
                        Body::new(Streamed {
                            body,
                            conn: live.then_some(conn),
                        })
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // A connection closed while idle, before any byte of
                    // the request was written: a new one gets it.
                    Some(again) if reused => request = again,
                    _ => return Err(SendError::Exchange(e.into_error())),
                },
            }
        }
    })
    .await
    .unwrap_or(Err(SendError::Timeout))
}

/// An upstream's response body, polling the connection it arrives on and
/// giving the connection back once it has ended.
struct Streamed {
    body: Incoming,
    conn: Option<Conn>,
}

impl Streamed {
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            release(conn);
        }
    }
}

impl http_body::Body for Streamed {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Some(conn) = &mut self.conn
            && conn.drive(cx)
        {
            // Ended: what it read is in the body's channel already.
            self.conn = None;
        }
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        match &frame {
            // The server stops polling a body once it says it has ended,
            // so the connection goes back with the last chunk.
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.finish(),
            Poll::Ready(None) => self.finish(),
            // A broken body leaves the connection in an unknown state.
            Poll::Ready(Some(Err(_))) => self.conn = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        // A body that ended without a last poll (no content: 204, HEAD)
        // leaves an idle connection; one dropped part way does not.
        if http_body::Body::is_end_stream(&self.body) {
            self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use axum::extract::ConnectInfo;
    use axum::routing::{any, get};
    use bytes::Bytes;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// An upstream that records each client port it saw (one per connection).
    async fn upstream() -> (Origin, Arc<Mutex<HashSet<u16>>>) {
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let record = seen.clone();
        let app = axum::Router::new()
            .route(
                "/base/json",
                get(|| async { axum::Json(serde_json::json!([{"id": 1}])) }),
            )
            .route(
                "/base/empty",
                any(|| async { axum::http::StatusCode::NO_CONTENT }),
            )
            .route(
                "/base/chunks",
                get(|| async {
                    let chunks =
                        (0..100).map(|i| Ok::<_, std::io::Error>(Bytes::from(format!("{i},"))));
                    Body::from_stream(futures_util::stream::iter(chunks))
                }),
            )
            .route(
                "/base/endless",
                get(|| async {
                    let chunks = futures_util::stream::repeat_with(|| {
                        Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 16 << 10]))
                    });
                    Body::from_stream(chunks)
                }),
            )
            .route(
                "/base/close",
                get(|| async { ([(http::header::CONNECTION, "close")], "bye") }),
            )
            .route("/base/echo", any(|body: Bytes| async move { body }))
            .layer(axum::middleware::from_fn(
                move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                      request,
                      next: axum::middleware::Next| {
                    record.lock().unwrap().insert(peer.port());
                    next.run(request)
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: url::Url = format!("http://{}/base/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        (Origin::of(&url).unwrap(), seen)
    }

    fn request(origin: &Origin, method: &str, path: &str, body: Body) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(origin.uri(path).unwrap())
            .body(body)
            .unwrap()
    }

    async fn call(origin: &Origin, method: &str, path: &str, body: Body) -> (u16, Bytes) {
        let response = send(
            origin,
            request(origin, method, path, body),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let status = response.status().as_u16();
        (
            status,
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn one_connection_serves_a_sequence_of_every_kind_of_answer() {
        let (origin, seen) = upstream().await;
        for i in 0..20 {
            assert_eq!(
                call(&origin, "GET", "/json", Body::empty()).await,
                (200, Bytes::from(r#"[{"id":1}]"#))
            );
            assert_eq!(
                call(&origin, "DELETE", "/empty", Body::empty()).await.0,
                204
            );
            assert_eq!(
                call(&origin, "HEAD", "/json", Body::empty()).await,
                (200, Bytes::new())
            );
            let chunked = call(&origin, "GET", "/chunks", Body::empty()).await.1;
            let expected: String = (0..100).map(|i| format!("{i},")).collect();
            assert_eq!(chunked, Bytes::from(expected));
            let payload = Bytes::from(vec![b'a' + (i % 26) as u8; 1 << 20]);
            let streamed = Body::from_stream(futures_util::stream::iter(
                payload
                    .chunks(4096)
                    .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                    .collect::<Vec<_>>(),
            ));
            assert_eq!(
                call(&origin, "POST", "/echo", streamed).await,
                (200, payload)
            );
        }
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "every exchange reused the first connection"
        );
    }

    #[tokio::test]
    async fn closed_and_abandoned_connections_are_not_reused() {
        let (origin, seen) = upstream().await;
        // The upstream says it closes: the next request opens another.
        assert_eq!(
            call(&origin, "GET", "/close", Body::empty()).await,
            (200, Bytes::from("bye"))
        );
        assert_eq!(call(&origin, "GET", "/json", Body::empty()).await.0, 200);
        assert_eq!(seen.lock().unwrap().len(), 2);
        // A body dropped part way closes its connection.
        let response = send(
            &origin,
            request(&origin, "GET", "/endless", Body::empty()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let mut body = response.into_body().into_data_stream();
        use futures_util::StreamExt as _;
        assert!(!body.next().await.unwrap().unwrap().is_empty());
        drop(body);
        assert_eq!(call(&origin, "GET", "/json", Body::empty()).await.0, 200);
        // Concurrent requests each get a connection, and all succeed.
        let calls = (0..16).map(|_| call(&origin, "GET", "/json", Body::empty()));
        for (status, _) in futures_util::future::join_all(calls).await {
            assert_eq!(status, 200);
        }
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_while_idle_is_replaced() {
        // Answers one request per connection, then closes it shortly after,
        // without saying so (as a server's keep-alive timeout does).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: url::Url = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    let _ = socket.read(&mut buf).await;
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                });
            }
        });
        let origin = Origin::of(&url).unwrap();
        for _ in 0..3 {
            assert_eq!(
                call(&origin, "GET", "/", Body::empty()).await,
                (200, Bytes::from("ok"))
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn unreachable_and_silent_upstreams_fail_clearly() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let origin = Origin::of(&format!("http://{dead}/").parse().unwrap()).unwrap();
        let e = send(
            &origin,
            request(&origin, "GET", "/", Body::empty()),
            Duration::from_secs(5),
        )
        .await;
        assert!(matches!(e, Err(SendError::Connect(_))), "{e:?}");

        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = Origin::of(
            &format!("http://{}/", silent.local_addr().unwrap())
                .parse()
                .unwrap(),
        )
        .unwrap();
        let held = tokio::spawn(async move { silent.accept().await });
        let e = send(
            &origin,
            request(&origin, "GET", "/", Body::empty()),
            Duration::from_millis(200),
        )
        .await;
        assert!(matches!(e, Err(SendError::Timeout)), "{e:?}");
        held.abort();
        assert!(Origin::of(&"https://example.com/".parse().unwrap()).is_none());
    }
}
