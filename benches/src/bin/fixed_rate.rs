//! A fixed-rate HTTP/1 load generator, for latency at a given fraction of
//! saturation (the open-loop model of wrk2).
//!
//! wrk sends a connection's next request when its last answer arrives, so
//! a slow answer also delays the requests that should have followed it and
//! their latency is never seen ("coordinated omission"). Here each of the
//! connections sends on a schedule (`rate / connections` requests a second,
//! staggered), and a request whose connection was still busy at its
//! scheduled time is timed from that time: the wait it spent queued behind
//! a slow answer counts. A request sent late only because the timer woke
//! late (tokio's timers are millisecond-grained) is timed from when it was
//! sent, so the tool's own timer does not show up as the server's latency.
//!
//! `fixed-rate URL --rate N [--connections 32] [--duration 10]
//! [--warmup 1] [--method GET] [--body TEXT] [--header 'name: value']...`
//! prints one JSON object: achieved rate, errors, non-2xx answers and
//! latency percentiles (ms).

use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

struct Args {
    url: http::Uri,
    rate: f64,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    headers: Vec<(HeaderName, HeaderValue)>,
    method: http::Method,
    body: Bytes,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let (mut rate, mut connections, mut duration, mut warmup) = (None, 32, 10.0, 1.0);
    let mut headers = Vec::new();
    let (mut method, mut body) = (http::Method::GET, Bytes::new());
    let number = |v: Option<String>, name: &str| -> Result<f64, String> {
        v.and_then(|v| v.parse().ok())
            .ok_or(format!("{name} wants a number"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rate" => rate = Some(number(args.next(), "--rate")?),
            "--connections" => connections = number(args.next(), "--connections")? as usize,
            "--duration" => duration = number(args.next(), "--duration")?,
            "--warmup" => warmup = number(args.next(), "--warmup")?,
            "--method" => {
                let m = args.next().ok_or("--method wants a method")?;
                method = m.parse().map_err(|_| format!("bad method {m}"))?;
            }
            "--body" => body = Bytes::from(args.next().ok_or("--body wants the body")?),
            "--header" => {
                let h = args.next().ok_or("--header wants 'name: value'")?;
                let (name, value) = h.split_once(':').ok_or("--header wants 'name: value'")?;
                headers.push((
                    name.trim()
                        .parse()
                        .map_err(|_| format!("bad header name in {h}"))?,
                    value
                        .trim()
                        .parse()
                        .map_err(|_| format!("bad header value in {h}"))?,
                ));
            }
            other if url.is_none() => {
                url = Some(other.parse().map_err(|e| format!("bad URL {other}: {e}"))?);
            }
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    let rate = rate
        .filter(|r| *r > 0.0)
        .ok_or("--rate N (requests per second) is required")?;
    Ok(Args {
        url: url.ok_or("a URL is required")?,
        rate,
        connections: connections.max(1),
        duration: Duration::from_secs_f64(duration),
        warmup: Duration::from_secs_f64(warmup),
        headers,
        method,
        body,
    })
}

/// What one connection saw after the warm-up.
#[derive(Default)]
struct Seen {
    latencies: Vec<u64>,
    errors: u64,
    non_2xx: u64,
}

async fn connect(authority: &str) -> Option<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(authority).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(send)
}

async fn connection(
    args: &Args,
    first: Instant,
    interval: Duration,
    end: Instant,
    record_from: Instant,
) -> Seen {
    let mut seen = Seen::default();
    let authority = args
        .url
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut scheduled = first;
    let mut free_since = first;
    while scheduled < end {
        tokio::time::sleep_until(scheduled.into()).await;
        let sent = Instant::now();
        // Busy at its time: the queueing counts. Idle: the timer's lateness
        // does not.
        let start = if free_since > scheduled {
            scheduled
        } else {
            sent
        };
        let mut request = Request::builder()
            .method(args.method.clone())
            .uri(args.url.clone())
            .header(http::header::HOST, &authority)
            .body(Full::new(args.body.clone()))
            .expect("a request from a parsed URL");
        request.headers_mut().extend(args.headers.iter().cloned());
        let mut outcome = Err(());
        // A server may close a kept-alive connection between requests (nginx
        // after `keepalive_requests`): a request it never saw goes out again
        // on a new connection, as any client would send it.
        for _ in 0..2 {
            if let Some(send) = &mut sender
                && send.ready().await.is_err()
            {
                sender = None;
            }
            if sender.is_none() {
                sender = connect(&authority).await;
            }
            let Some(send) = &mut sender else { break };
            match send.try_send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    if response.into_body().collect().await.is_ok() {
                        outcome = Ok(status);
                    }
                    break;
                }
                Err(mut e) => {
                    sender = None;
                    match e.take_message() {
                        Some(unsent) => request = unsent,
                        None => break,
                    }
                }
            }
        }
        let done = Instant::now();
        if outcome.is_err() {
            sender = None;
        }
        if scheduled >= record_from {
            match outcome {
                Ok(status) => {
                    if !status.is_success() {
                        seen.non_2xx += 1;
                    }
                    seen.latencies
                        .push(u64::try_from((done - start).as_nanos()).unwrap_or(u64::MAX));
                }
                Err(()) => seen.errors += 1,
            }
        }
        free_since = done;
        scheduled += interval;
    }
    seen
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| supa_benches::exit_with("fixed-rate", &e));
    // One thread, as a load generator sharing the machine should be small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let seen = runtime.block_on(async {
        let interval = Duration::from_secs_f64(args.connections as f64 / args.rate);
        let begin = Instant::now() + Duration::from_millis(50);
        let record_from = begin + args.warmup;
        let end = record_from + args.duration;
        let stagger = interval / args.connections as u32;
        let args = &args;
        let tasks = (0..args.connections)
            .map(|i| connection(args, begin + stagger * i as u32, interval, end, record_from));
        futures_util::future::join_all(tasks).await
    });
    let mut latencies: Vec<u64> = seen
        .iter()
        .flat_map(|s| s.latencies.iter().copied())
        .collect();
    latencies.sort_unstable();
    let errors: u64 = seen.iter().map(|s| s.errors).sum();
    let non_2xx: u64 = seen.iter().map(|s| s.non_2xx).sum();
    let pct = |p: f64| supa_benches::nearest_rank(&latencies, p).map_or(0.0, |ns| ns as f64 / 1e6);
    let report = serde_json::json!({
        "target_rate": args.rate,
        "rate": latencies.len() as f64 / args.duration.as_secs_f64(),
        "requests": latencies.len(),
        "errors": errors,
        "non_2xx": non_2xx,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": pct(1.0),
    });
    supa_benches::print_report(&report);
}
