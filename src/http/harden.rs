//! The service every HTTP listener serves: a router whose panics answer 500 (and are logged)
//! instead of dropping the connection, and whose bare errors (the router's own 405) get the
//! JSON body every other error has.
//!
//! Hand-written rather than tower-http's `CatchPanic` and a `MapResponse` under an outer
//! `Router`: `CatchPanic` boxes every response body (`UnsyncBoxBody`), and the outer router
//! cloned a boxed service and boxed a future per request only to reach them. With CORS around
//! the router instead of in each route (`cors.rs`), an OFREP evaluation's server CPU went from
//! 15.4 to 13.9 µs per request against bare axum's 11.4 (median of 4 alternating `wrk -c32`
//! runs, 2026-12-03; BENCHMARKS.md).

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::Service;

use super::error::{self, ApiError};

/// `inner` with panics answered 500 and bare errors given a JSON body.
#[derive(Clone)]
pub(crate) struct Harden<S> {
    inner: S,
}

impl<S> Harden<S> {
    pub(crate) fn new(inner: S) -> Harden<S> {
        Harden { inner }
    }
}

impl<S, B> Service<Request<B>> for Harden<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
    // Axum's router futures are `Unpin`: polled in place, not boxed.
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = HardenFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(inner) => HardenFuture::Running(inner),
            Err(panic) => HardenFuture::Panicked(Some(panicked(&*panic))),
        }
    }
}

/// The inner service's future, or the 500 its call panicked into.
pub(crate) enum HardenFuture<F> {
    Running(F),
    Panicked(Option<Response>),
}

impl<F> Future for HardenFuture<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let inner = match this {
            HardenFuture::Running(inner) => inner,
            HardenFuture::Panicked(res) => {
                return Poll::Ready(Ok(res.take().unwrap_or_else(internal)));
            }
        };
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(Ok(res))) => Poll::Ready(Ok(error::json_for_bare_errors(res))),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => {
                // The future is not polled again: a panicked future's state is unknown.
                *this = HardenFuture::Panicked(None);
                Poll::Ready(Ok(panicked(&*panic)))
            }
        }
    }
}

/// Log a handler's panic (its message, never a request's content) and answer 500.
fn panicked(panic: &(dyn std::any::Any + Send)) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic");
    tracing::error!(panic = %what, "a handler panicked; answered 500");
    internal()
}

fn internal() -> Response {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    /// `/boom` answers the JSON 500 without the panic's text, and `/fine` is served after it.
    async fn boom_is_500_and_serving_goes_on<S>(svc: S)
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone,
    {
        let get = |path| Request::get(path).body(Body::empty()).unwrap();
        let res = svc.clone().oneshot(get("/boom")).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        assert_eq!(
            &body[..],
            br#"{"error":"internal","message":"internal error"}"#
        );
        let res = svc.oneshot(get("/fine")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500() {
        async fn boom() -> &'static str {
            panic!("forced by a test")
        }
        let router = axum::Router::new()
            .route("/boom", axum::routing::get(boom))
            .route("/fine", axum::routing::get(|| async { "ok" }));
        boom_is_500_and_serving_goes_on(Harden::new(router)).await;
    }

    /// A panic in the service's `call` itself (before any future exists) answers 500 too.
    #[tokio::test]
    async fn a_panic_while_calling_answers_500() {
        let svc = Harden::new(tower::service_fn(|req: Request<Body>| {
            assert!(req.uri().path() != "/boom", "forced by a test");
            std::future::ready(Ok::<_, Infallible>(Response::new(Body::from("ok"))))
        }));
        boom_is_500_and_serving_goes_on(svc).await;
    }

    /// The router's bare 405 leaves with a JSON body and its `Allow` header.
    #[tokio::test]
    async fn a_bare_405_gets_the_json_body() {
        let router = axum::Router::new().route("/x", axum::routing::post(|| async { "ok" }));
        let res = Harden::new(router)
            .oneshot(Request::get("/x").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()["allow"], "POST");
        assert_eq!(res.headers()["content-type"], "application/json");
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        assert!(body.starts_with(br#"{"error":"method_not_allowed""#));
    }
}
