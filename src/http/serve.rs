//! The accept loop every listener runs (the HTTP API, the monitoring port, the flagd port).
//!
//! hyper-util's server is used directly (rather than `axum::serve`) for the limits axum does
//! not expose: a deadline for the first request and for request heads (against slowloris, and
//! to close idle keep-alive connections), a cap on their size, on open connections, and on the
//! time a request body may take; see [`super::conn`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::response::Response;

use tokio::net::TcpListener;

use super::conn::{AcceptErrors, ConnBudget, MarkFirst, first_request_deadline};
use crate::config::ServerConfig;

/// Connection limits every listener applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub(crate) read_header_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_connections: usize,
    pub(crate) read_body_timeout: Duration,
}

impl ConnLimits {
    /// The `server.*` limits (`maxConnections` defaults to a share of the descriptor limit).
    pub(crate) fn from_config(server: &ServerConfig) -> ConnLimits {
        ConnLimits {
            read_header_timeout: server
                .read_header_timeout
                .duration()
                .unwrap_or(Duration::from_secs(10)),
            max_header_bytes: server.max_header_bytes,
            max_connections: server
                .max_connections
                .unwrap_or_else(super::conn::default_max_connections),
            read_body_timeout: server
                .read_body_timeout
                .duration()
                .unwrap_or(Duration::from_secs(10)),
        }
    }
}

/// Whether a listener's requests go through the request metrics, logs and ids (the HTTP API
/// and monitoring ports), or keep their own (the flagd listener counts per RPC).
#[derive(Clone)]
pub(crate) enum Observe {
    Requests(super::observe::ObserveLayer),
    Own,
}

/// Accept connections until `stop` turns true, then stop accepting and let open connections
/// finish their in-flight requests (the caller bounds how long that may take).
///
/// hyper-util's server is used directly (rather than `axum::serve`) for the limits axum does
/// not expose: a deadline for request headers (against slowloris, and to close idle
/// keep-alive connections) and a cap on their size.
pub(crate) async fn run_server<S>(
    listener: TcpListener,
    app: S,
    limits: ConnLimits,
    observe: Observe,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    // Unpin: the request observer polls it in place rather than boxing it.
    S::Future: Send + Unpin + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_header_timeout)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .keep_alive_interval(Some(limits.read_header_timeout));
    // Around the whole router (not per route, as `Router::layer` would): one layer call per
    // request, and it sees every answer, the fallback's and the panic handler's included.
    let app = match observe {
        Observe::Requests(layer) => tower::util::Either::Left(tower::Layer::layer(&layer, app)),
        Observe::Own => tower::util::Either::Right(app),
    };
    // A body must arrive whole within server.readBodyTimeout (a trickle holds no connection).
    let body_deadline = limits.read_body_timeout;
    let app = tower::util::MapRequest::new(app, move |req| {
        super::conn::with_body_deadline(req, body_deadline)
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let budget = ConnBudget::new(limits.max_connections);
    let accept_errors = AcceptErrors::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    accept_errors.record(&e, "listener");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        // Over server.maxConnections: close this one at once, the others are untouched.
        let Some(permit) = budget.admit() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let seen = Arc::new(tokio::sync::Notify::new());
        let service = TowerToHyperService::new(MarkFirst {
            inner: app.clone(),
            seen: seen.clone(),
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let deadline = limits.read_header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            // Errors here are the client's (reset, timeout, malformed request).
            first_request_deadline(conn, seen, deadline).await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send: drop it here, not across an await.
    let _ = stop.wait_for(|s| *s).await;
}
