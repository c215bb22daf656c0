//! Request observation, one layer around every route: request metrics, one log line per
//! request, and the `X-Request-Id` header; plus the `GET /metrics` handler.
//!
//! # Request ids
//!
//! A request's `X-Request-Id` is kept when it is sane (1–128 characters of `A-Z a-z 0-9` and
//! `- _ . : @ + = / ~`), else replaced by a generated one (32 hex digits: a per-process random
//! key mixed with a counter, so ids are unique without revealing how many requests came before).
//! The id is set on the request (header and [`RequestId`] extension) for handlers, and echoed on
//! the response.
//!
//! # Log lines
//!
//! One line per request, whose level depends on the answer:
//!
//! | status | level | why |
//! |---|---|---|
//! | 1xx–3xx, 404, 405, 429 | `debug` | normal traffic: unknown flags and paths are routine for OFREP clients and scanners, and 429 would flood the log under the very load it sheds |
//! | other 4xx (400, 401, 403, 413, …) | `warn` | a client is misconfigured or sends bad requests |
//! | 503 | `warn` (`debug` on `/ready`) | the relay is not ready or is draining: a state, not a fault; `/ready` answers 503 by design |
//! | other 5xx | `error` | something failed |
//!
//! Fields: `method`, `route` (the route template, or `__unmatched__`), `path` (without the query,
//! where `?apiKey=` lives; at most 256 bytes), `status`, `duration_ms` (until the response head),
//! `request_id`. No other header, and no body, is ever logged.
//!
//! # Metrics
//!
//! Requests are counted by route *template* (axum's `MatchedPath`, never the raw path), method
//! and status, with a latency histogram per template; see [`crate::metrics`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, State};
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use tower::{Layer, Service};

use super::AppState;
use crate::metrics::{self, Metrics, Scrape};

/// The request id header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, as a request extension for handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub HeaderValue);

/// The layer over the process-wide registry ([`metrics::global`]).
pub fn layer() -> ObserveLayer {
    ObserveLayer::new(metrics::global().clone())
}

/// Observes every request of the routes it wraps. Apply it to the finished router (after
/// `merge`) so that the fallback (unmatched paths) is observed too.
#[derive(Clone)]
pub struct ObserveLayer {
    shared: Arc<Shared>,
}

struct Shared {
    metrics: Arc<Metrics>,
    ids: IdGen,
}

impl ObserveLayer {
    pub fn new(metrics: Arc<Metrics>) -> ObserveLayer {
        ObserveLayer {
            shared: Arc::new(Shared {
                metrics,
                ids: IdGen::new(),
            }),
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqB, ResB> Service<Request<ReqB>> for Observe<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResB: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let started = Instant::now();
        let shared = self.shared.clone();
        let route = shared.metrics.route(
            req.extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str),
        );
        let method = req.method().clone();
        let uri = req.uri().clone();
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(v) if sane_request_id(v) => v.clone(),
            _ => {
                let v = shared.ids.next();
                req.headers_mut().insert(X_REQUEST_ID.clone(), v.clone());
                v
            }
        };
        req.extensions_mut().insert(RequestId(id.clone()));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            let took = started.elapsed();
            let status = res.status();
            shared.metrics.record_request(
                route,
                metrics::method_index(&method),
                status.as_u16(),
                took,
            );
            log_request(
                &method,
                shared.metrics.route_label(route),
                uri.path(),
                status,
                took.as_secs_f64() * 1000.0,
                &id,
            );
            res.headers_mut().entry(X_REQUEST_ID.clone()).or_insert(id);
            Ok(res)
        })
    }
}

/// How loud a request's line is (see the module docs).
pub fn log_level(status: StatusCode, route: &str) -> tracing::Level {
    use tracing::Level;
    match status.as_u16() {
        503 if route == "/ready" => Level::DEBUG,
        503 => Level::WARN,
        500..=599 => Level::ERROR,
        404 | 405 | 429 => Level::DEBUG,
        400..=499 => Level::WARN,
        _ => Level::DEBUG,
    }
}

fn log_request(
    method: &axum::http::Method,
    route: &str,
    path: &str,
    status: StatusCode,
    duration_ms: f64,
    request_id: &HeaderValue,
) {
    let level = log_level(status, route);
    // Cheap when the level is off: the macros check before building anything.
    macro_rules! line {
        ($mac:ident, $msg:literal) => {
            tracing::$mac!(
                method = method.as_str(),
                route,
                path = truncate(path, 256),
                status = status.as_u16(),
                duration_ms,
                request_id = request_id.to_str().unwrap_or(""),
                $msg
            )
        };
    }
    match level {
        tracing::Level::ERROR => line!(error, "request failed"),
        tracing::Level::WARN => line!(warn, "request rejected"),
        _ => line!(debug, "request"),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A client's request id is kept when it is 1–128 characters of a conservative set.
pub fn sane_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:@+=/~".contains(c))
}

/// Unique ids without a lock: a counter through a bijective mix keyed per process.
struct IdGen {
    prefix: u64,
    key: u64,
    counter: AtomicU64,
}

impl IdGen {
    fn new() -> IdGen {
        let mut seed = [0u8; 16];
        // The system RNG through aws-lc-rs (the crate's one crypto library); if it failed, ids
        // would still be unique within the process.
        let _ = aws_lc_rs::rand::fill(&mut seed);
        IdGen {
            prefix: u64::from_le_bytes(seed[..8].try_into().unwrap_or_default()),
            key: u64::from_le_bytes(seed[8..].try_into().unwrap_or_default()),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mixed = splitmix(n ^ self.key);
        let mut buf = [0u8; 32];
        hex_into(&mut buf[..16], self.prefix);
        hex_into(&mut buf[16..], mixed);
        HeaderValue::from_bytes(&buf).expect("hex digits are a valid header value")
    }
}

/// SplitMix64's finalizer: a bijection on u64, so distinct counters give distinct ids.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hex_into(out: &mut [u8], v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate().take(16) {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// `GET /metrics`: the Prometheus text exposition of [`metrics::global`].
pub async fn metrics(State(s): State<AppState>) -> axum::response::Response {
    let snapshot = s.store.load();
    let text = metrics::global().render(&Scrape {
        version: s.lifecycle.version,
        fips140: s.lifecycle.fips140,
        snapshot: snapshot.as_deref(),
        sse_clients: s.stream_clients.open(),
        last_refresh: s.refresher.last_refresh(),
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn app(m: Arc<Metrics>) -> Router {
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route(
                "/ofrep/v1/evaluate/flags/{*key}",
                post(|| async { StatusCode::NOT_FOUND }),
            )
            .route("/boom", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
            .layer(ObserveLayer::new(m))
    }

    fn registry() -> Arc<Metrics> {
        Arc::new(Metrics::new([
            "/health",
            "/ofrep/v1/evaluate/flags/{*key}",
            "/boom",
        ]))
    }

    async fn send(app: &Router, method: &str, uri: &str, id: Option<&str>) -> Response<Body> {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(id) = id {
            b = b.header("x-request-id", id);
        }
        app.clone()
            .oneshot(b.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn scrape(m: &Metrics) -> String {
        m.render(&Scrape {
            version: "t",
            ..Scrape::default()
        })
    }

    #[tokio::test]
    async fn counts_by_template_not_raw_path() {
        let m = registry();
        let app = app(m.clone());
        for key in ["a", "b/c", "d%20e"] {
            let res = send(
                &app,
                "POST",
                &format!("/ofrep/v1/evaluate/flags/{key}"),
                None,
            )
            .await;
            assert_eq!(res.status(), 404);
        }
        send(&app, "GET", "/health", None).await;
        send(&app, "GET", "/no/such/path/1", None).await;
        send(&app, "GET", "/no/such/path/2", None).await;
        send(&app, "DELETE", "/health", None).await;
        send(&app, "GET", "/boom", None).await;
        let text = scrape(&m);
        for line in [
            r#"flagrelay_http_requests_total{route="/ofrep/v1/evaluate/flags/{*key}",method="POST",status="404"} 3"#,
            r#"flagrelay_http_requests_total{route="/health",method="GET",status="200"} 1"#,
            r#"flagrelay_http_requests_total{route="/health",method="DELETE",status="405"} 1"#,
            r#"flagrelay_http_requests_total{route="__unmatched__",method="GET",status="404"} 2"#,
            r#"flagrelay_http_requests_total{route="/boom",method="GET",status="500"} 1"#,
            r#"flagrelay_http_request_duration_seconds_count{route="/ofrep/v1/evaluate/flags/{*key}"} 3"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("/no/such"), "raw paths never become labels");
        assert!(!text.contains("b/c"));
    }

    #[tokio::test]
    async fn request_id_taken_or_generated_and_echoed() {
        let app = app(registry());
        let res = send(&app, "GET", "/health", Some("abc-123_x.y")).await;
        assert_eq!(res.headers()["x-request-id"], "abc-123_x.y");
        let a = send(&app, "GET", "/health", None).await;
        let b = send(&app, "GET", "/no/such", None).await;
        let (a, b) = (&a.headers()["x-request-id"], &b.headers()["x-request-id"]);
        assert_eq!(a.len(), 32);
        assert!(a.to_str().unwrap().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        // Not sane: replaced.
        let long = "x".repeat(129);
        for bad in ["has space", "semi;colon", long.as_str(), "quote\"d"] {
            let res = send(&app, "GET", "/health", Some(bad)).await;
            let got = res.headers()["x-request-id"].to_str().unwrap().to_owned();
            assert_ne!(got, bad);
            assert_eq!(got.len(), 32);
        }
    }

    #[tokio::test]
    async fn handlers_see_the_request_id() {
        let app = Router::new()
            .route(
                "/id",
                get(
                    |axum::Extension(RequestId(id)): axum::Extension<RequestId>| async move {
                        id.to_str().unwrap().to_owned()
                    },
                ),
            )
            .layer(ObserveLayer::new(registry()));
        let res = send(&app, "GET", "/id", Some("given")).await;
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"given");
    }

    #[test]
    fn levels() {
        use tracing::Level;
        let l = |s: u16, r: &str| log_level(StatusCode::from_u16(s).unwrap(), r);
        assert_eq!(l(200, "/health"), Level::DEBUG);
        assert_eq!(l(304, "/v1/flags"), Level::DEBUG);
        assert_eq!(l(404, "/ofrep/v1/evaluate/flags/{*key}"), Level::DEBUG);
        assert_eq!(l(429, "/x"), Level::DEBUG);
        assert_eq!(l(400, "/x"), Level::WARN);
        assert_eq!(l(401, "/x"), Level::WARN);
        assert_eq!(l(403, "/x"), Level::WARN);
        assert_eq!(l(503, "/ready"), Level::DEBUG);
        assert_eq!(l(503, "/v1/flags"), Level::WARN);
        assert_eq!(l(500, "/x"), Level::ERROR);
        assert_eq!(l(502, "/admin/v1/retriever/refresh"), Level::ERROR);
    }

    #[test]
    fn ids_are_unique() {
        let g = IdGen::new();
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| g.next()).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("é", 1), "");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
