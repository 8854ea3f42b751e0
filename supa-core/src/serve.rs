//! The listener every HTTP server of Supa accepts on.

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
