//! Request observation, one layer around every route: request metrics, one log line per
//! request, and the `X-Request-Id` header; plus the `GET /metrics` handler.
//!
//! # Request ids
//!
//! A request's `X-Request-Id` is kept when it is sane (1–128 characters of `A-Z a-z 0-9` and
//! `- _ . : @ + = / ~`), else replaced by a generated one (32 hex digits: a per-process random
//! half, and a counter through a keyed bijection, so ids are unique without revealing how many
//! requests came before). The id is echoed on the response and logged; handlers do not see a
//! generated one (none needs it, and every request would pay for it).
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
//! Requests are counted by route *template* (never the raw path: paths no route matches share
//! one label), method and status, with a latency histogram per template; see
//! [`crate::metrics`] and [`layer`] for why the template comes from the route list rather than
//! from axum's `MatchedPath`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use axum::response::IntoResponse;
use tower::{Layer, Service};

use super::AppState;
use super::request_id::IdGen;
use crate::metrics::{self, Metrics, RouteId, Scrape};

/// The request id header.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layer over the relay's registry, for the finished router:
/// `observe::layer(&metrics).layer(router)`, the service then served.
///
/// Put it *around* the router rather than in it (`Router::layer` wraps every route separately,
/// which costs a boxed-service clone per request: about 40 % of what observing costs). Routes
/// are classified by [`Metrics::route_for_path`] against the templates of
/// `http::route_templates`, not by axum's `MatchedPath` (which only exists inside the
/// router); a test keeps the two in agreement. When recording is off ([`Metrics::set_enabled`]
/// before this is called), the layer passes requests straight through: no metrics, ids or
/// request logs.
pub(crate) fn layer(m: &Arc<Metrics>) -> ObserveLayer {
    if m.enabled() {
        ObserveLayer::new(m.clone())
    } else {
        ObserveLayer::pass_through()
    }
}

/// Observes every request of the service it wraps (a whole router).
#[derive(Clone)]
pub(crate) struct ObserveLayer {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    metrics: Arc<Metrics>,
    ids: IdGen,
}

impl ObserveLayer {
    pub(crate) fn new(metrics: Arc<Metrics>) -> ObserveLayer {
        ObserveLayer {
            shared: Some(Arc::new(Shared {
                metrics,
                ids: IdGen::new(),
            })),
        }
    }

    /// A layer that does nothing (observability off).
    pub(crate) fn pass_through() -> ObserveLayer {
        ObserveLayer { shared: None }
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
pub(crate) struct Observe<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Observe<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    // Axum's router futures are `Unpin`; requiring it saves boxing every request's future.
    S::Future: Unpin,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let Some(shared) = &self.shared else {
            return ObserveFuture {
                inner: self.inner.call(req),
                pending: None,
                span: None,
            };
        };
        let started = Instant::now();
        let route = shared.metrics.route_for_path(req.uri().path());
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(v) if sane_request_id(v) => v.clone(),
            _ => shared.ids.next(),
        };
        // Only when traces are exported (otherwise not even the headers are looked at), and only
        // for a sampled trace: an unsampled request builds no span at all.
        let span = if crate::telemetry::enabled() {
            crate::telemetry::request_span(
                req.method().as_str(),
                shared.metrics.route_label(route),
                req.headers(),
            )
        } else {
            None
        };
        let pending = Pending {
            shared: shared.clone(),
            started,
            route,
            method: req.method().clone(),
            // Cheap: the path's bytes are shared with the request, not copied.
            uri: req.uri().clone(),
            id,
        };
        let inner = {
            let _in_span = span.as_ref().map(tracing::Span::enter);
            self.inner.call(req)
        };
        ObserveFuture {
            inner,
            pending: Some(pending),
            span,
        }
    }
}

/// What a request's answer is recorded with.
struct Pending {
    shared: Arc<Shared>,
    started: Instant,
    route: RouteId,
    method: Method,
    uri: Uri,
    id: HeaderValue,
}

/// The inner service's future; records, logs and sets the id header when it is ready.
pub(crate) struct ObserveFuture<F> {
    inner: F,
    pending: Option<Pending>,
    /// The request's server span, entered while the handler runs; ends with the answer.
    span: Option<tracing::Span>,
}

impl<F, B, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<B>, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let polled = {
            let _in_span = this.span.as_ref().map(tracing::Span::enter);
            Pin::new(&mut this.inner).poll(cx)
        };
        let mut res = ready!(polled)?;
        if let Some(span) = this.span.take() {
            span.record("http.response.status_code", res.status().as_u16());
            if res.status().is_server_error() {
                span.record("otel.status_code", "ERROR");
            }
        }
        if let Some(p) = this.pending.take() {
            let took = p.started.elapsed();
            let status = res.status();
            let m = &p.shared.metrics;
            m.record_request(
                p.route,
                metrics::method_index(&p.method),
                status.as_u16(),
                took,
            );
            log_request(
                &p.method,
                m.route_label(p.route),
                p.uri.path(),
                status,
                took.as_secs_f64() * 1000.0,
                &p.id,
            );
            res.headers_mut()
                .entry(X_REQUEST_ID.clone())
                .or_insert(p.id);
        }
        Poll::Ready(Ok(res))
    }
}

/// How loud a request's line is (see the module docs).
pub(crate) fn log_level(status: StatusCode, route: &str) -> tracing::Level {
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
pub(crate) fn sane_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:@+=/~".contains(c))
}

/// `GET /metrics`: the Prometheus text exposition of the relay's registry.
#[utoipa::path(get, path = "/metrics", tag = "monitoring", operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "Text exposition format 0.0.4. Every metric is named `flagrelay_…`.",
    responses((status = 200, description = "The metrics.", content_type = "text/plain",
        body = String)))]
pub(crate) async fn metrics(State(s): State<AppState>) -> axum::response::Response {
    let snapshot = s.store.load();
    let mut text = s.metrics.render(&Scrape {
        version: s.lifecycle.version,
        fips140: s.lifecycle.fips140,
        snapshot: snapshot.as_deref(),
        sse_clients: s.stream_clients.open(),
        last_refresh: s.refresher.last_refresh(),
    });
    if let Some(fleet) = &s.fleet {
        fleet.render_metrics(&mut text);
    }
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

    fn app(m: Arc<Metrics>) -> Observe<Router> {
        let router = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route(
                "/ofrep/v1/evaluate/flags/{*key}",
                post(|| async { StatusCode::NOT_FOUND }),
            )
            .route("/boom", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }));
        ObserveLayer::new(m).layer(router)
    }

    fn registry() -> Arc<Metrics> {
        Arc::new(Metrics::new(&[
            "/health",
            "/ofrep/v1/evaluate/flags/{*key}",
            "/boom",
        ]))
    }

    async fn send(
        app: &Observe<Router>,
        method: &str,
        uri: &str,
        id: Option<&str>,
    ) -> Response<Body> {
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
    async fn pass_through_observes_nothing() {
        let router = Router::new().route("/health", get(|| async { "ok" }));
        let app = ObserveLayer::pass_through().layer(router);
        let res = app
            .oneshot(Request::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("x-request-id").is_none());
    }

    /// The route a path counts under is the one axum's router picks (its `MatchedPath`), for
    /// the relay's own templates and for the paths around them.
    #[tokio::test]
    async fn route_classification_agrees_with_axum() {
        use axum::extract::MatchedPath;
        use axum::routing::any;

        let routes = crate::http::route_templates();
        let mut router = Router::new();
        for t in &routes {
            router = router.route(
                t,
                any(|p: MatchedPath| async move { p.as_str().to_owned() }),
            );
        }
        let m = Metrics::new(&routes.iter().map(String::as_str).collect::<Vec<_>>());
        let mut paths: Vec<String> = routes
            .iter()
            .flat_map(|t| {
                [
                    t.replace("{*key}", "k"),
                    t.replace("{*key}", "a/b%20c"),
                    t.replace("{*key}", ""),
                    t.replace("{*key}", "/"),
                    t.replace("{*key}", "/x"),
                    format!("{t}/"),
                    format!("/{t}"),
                    format!("{t}x"),
                    t.to_ascii_uppercase(),
                ]
            })
            .collect();
        paths.extend(
            [
                "/",
                "/x",
                "//",
                "/ofrep",
                "/ofrep/v1/evaluate",
                "/v1/flags/stream/x",
                "/v1",
            ]
            .map(String::from),
        );
        for path in paths {
            let Ok(req) = Request::get(&path).body(Body::empty()) else {
                continue;
            };
            let res = router.clone().oneshot(req).await.unwrap();
            let axum_says = if res.status() == 404 {
                crate::metrics::UNMATCHED_ROUTE.to_owned()
            } else {
                let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
                String::from_utf8(body.to_vec()).unwrap()
            };
            assert_eq!(
                m.route_label(m.route_for_path(&path)),
                axum_says,
                "path {path:?}"
            );
        }
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
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("é", 1), "");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
