//! The listeners (`app::run_server`, the flagd server) and their per-connection guards: a
//! listen backlog that takes a burst, a cap on open connections, a deadline for the first
//! request, a deadline for reading a request body, and accept errors logged without flooding
//! the log.
//!
//! hyper's own `header_read_timeout` starts when hyper reads a head, and before a connection's
//! first head hyper-util's protocol detection waits for bytes without any deadline, so a
//! connection that never sends a byte would stay open forever: [`first_request_deadline`]
//! closes it. (Between keep-alive requests hyper's timer runs from the end of the last answer,
//! so an idle keep-alive connection is closed after `server.readHeaderTimeout` too.)

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How many finished handshakes may wait for `accept`. tokio's `TcpListener::bind` listens with
/// std's 128, and a burst of clients connecting at once (a fleet's pods restarting together, a
/// flood) overflowed it: the kernel drops each SYN past it, and that client waits a second for
/// its retransmit (1 or 2 of 400 connections in `e2e_hardening_conns`, on 3 runs of 5). Linux
/// caps the number at `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: u32 = 4096;

/// Listen on `addr` (`host:port`; an IP, `::` and bracketed IPv6 included, or a name the OS
/// resolves: the first of its addresses that binds), with [`LISTEN_BACKLOG`].
pub(crate) async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last_err = None;
    for a in tokio::net::lookup_host(addr).await? {
        match listen_on(a) {
            Ok(l) => return Ok(l),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "resolves to no address")
    }))
}

fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As tokio's bind does: a restarted relay binds its port again at once, past the old
    // process's connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Connections a monitoring listener accepts at once: its own budget, so a flood of the API
/// port leaves `/health` and `/ready` answerable there.
pub(crate) const MONITORING_CONNECTIONS: usize = 64;

/// The open-connection cap of one listener. Beyond it a new connection is closed at once,
/// which costs the others nothing.
#[derive(Debug, Clone)]
pub(crate) struct ConnBudget(Arc<Semaphore>);

impl ConnBudget {
    pub(crate) fn new(max: usize) -> ConnBudget {
        ConnBudget(Arc::new(Semaphore::new(max.max(1))))
    }

    pub(crate) fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

/// The default `server.maxConnections`: well under the process's descriptor limit, leaving
/// room for the monitoring listener, source connections, files and the runtime.
pub(crate) fn default_max_connections() -> usize {
    derive_max_connections(nofile_limit())
}

fn derive_max_connections(nofile: u64) -> usize {
    let reserve = MONITORING_CONNECTIONS as u64 + 64;
    let budget = (nofile.saturating_mul(3) / 4).saturating_sub(reserve);
    budget.clamp(16, 1 << 20) as usize
}

/// The soft RLIMIT_NOFILE (1024 where it cannot be read).
fn nofile_limit() -> u64 {
    crate::tuning::open_files_limit().unwrap_or(1024)
}

/// Accept errors (out of descriptors and the like) come in bursts: log at most one line a
/// second, with how many happened since the last line.
#[derive(Debug)]
pub(crate) struct AcceptErrors {
    since_log: AtomicU64,
    last_log: std::sync::Mutex<Option<Instant>>,
}

impl AcceptErrors {
    pub(crate) fn new() -> AcceptErrors {
        AcceptErrors {
            since_log: AtomicU64::new(0),
            last_log: std::sync::Mutex::new(None),
        }
    }

    /// Count one error; log it (with how many came since the last line) unless a line went
    /// out less than a second ago. Returns whether it logged.
    pub(crate) fn record(&self, e: &std::io::Error, server: &str) -> bool {
        let count = self.since_log.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            return false;
        }
        *last = Some(now);
        self.since_log.store(0, Ordering::Relaxed);
        tracing::warn!(error = %e, count, server, "accept failed");
        true
    }
}

/// Wraps a connection's service to tell [`first_request_deadline`] that a request arrived.
#[derive(Clone)]
pub(crate) struct MarkFirst<S> {
    pub(crate) inner: S,
    pub(crate) seen: Arc<Notify>,
}

impl<S, B> tower::Service<Request<B>> for MarkFirst<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.seen.notify_one();
        self.inner.call(req)
    }
}

/// Run `conn` to its end, but drop it (closing the socket) if no complete request head
/// arrived within `limit` of the accept, whether or not a byte came.
pub(crate) async fn first_request_deadline<F: std::future::Future>(
    conn: F,
    seen: Arc<Notify>,
    limit: Duration,
) {
    tokio::pin!(conn);
    tokio::select! {
        _ = &mut conn => return,
        first = tokio::time::timeout(limit, seen.notified()) => {
            if first.is_err() {
                return;
            }
        }
    }
    conn.await;
}

/// Give a request's body a deadline for being read whole (`server.readBodyTimeout`): past it
/// the body fails, which the handlers answer as a bad request (OFREP's 400). The deadline
/// starts with the first read that has to wait (the handlers read at once), so a body that is
/// already here costs neither a timer nor a clock read.
pub(crate) fn with_body_deadline<B>(req: Request<B>, limit: Duration) -> Request<Body>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<axum::BoxError>,
{
    if req.body().is_end_stream() {
        // No body (most GETs): nothing to wait for, no timer.
        return req.map(Body::new);
    }
    req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline: None,
            limit,
        })
    })
}

struct DeadlineBody<B> {
    inner: B,
    /// Armed on the first read that has to wait, so a body read at once costs no timer.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    limit: Duration,
}

/// The error a body past its deadline fails with.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {}ms (server.readBodyTimeout)", .0.as_millis())]
pub(crate) struct BodyTimedOut(Duration);

/// The deadline's message, when `e` (or one of its causes) is a body past its deadline.
pub(crate) fn body_timed_out(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(t) = err.downcast_ref::<BodyTimedOut>() {
            return Some(t.to_string());
        }
        next = err.source();
    }
    None
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let limit = self.limit;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nobody accepts here, so every connection waits in the backlog; past it the kernel drops
    /// the SYN and `connect` hangs on retransmits (connection 130 did with tokio's bind).
    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_backlog() {
        let listener = listen("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        for i in 0..400 {
            let c =
                tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
                    .await;
            assert!(
                matches!(c, Ok(Ok(_))),
                "connection {i} of a burst was not taken"
            );
            held.push(c);
        }
    }

    #[tokio::test]
    async fn listens_on_ip_literals_and_names() {
        for addr in ["127.0.0.1:0", "[::1]:0", "localhost:0"] {
            if addr.contains("::1") && std::net::TcpListener::bind(addr).is_err() {
                continue; // no IPv6 loopback on this host
            }
            let l = listen(addr).await.unwrap_or_else(|e| panic!("{addr}: {e}"));
            assert!(l.local_addr().unwrap().ip().is_loopback(), "{addr}");
        }
        let e = listen("127.0.0.1:99999").await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    }

    #[test]
    fn default_budget_is_well_under_the_descriptor_limit() {
        assert_eq!(derive_max_connections(256), 64);
        assert!(derive_max_connections(1024) < 1024 - MONITORING_CONNECTIONS);
        assert_eq!(derive_max_connections(0), 16);
        assert!(derive_max_connections(u64::MAX) <= 1 << 20);
    }

    #[test]
    fn accept_errors_log_at_most_once_a_second() {
        let errors = AcceptErrors::new();
        let e = std::io::Error::other("too many open files");
        let logged = (0..1000).filter(|_| errors.record(&e, "api")).count();
        assert_eq!(logged, 1);
        assert_eq!(errors.since_log.load(Ordering::Relaxed), 999);
    }

    #[test]
    fn budget_refuses_past_its_size_and_frees() {
        let b = ConnBudget::new(2);
        let one = b.admit().unwrap();
        let _two = b.admit().unwrap();
        assert!(b.admit().is_none());
        drop(one);
        assert!(b.admit().is_some());
    }
}
