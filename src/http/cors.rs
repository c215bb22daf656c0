//! CORS for browser requests only.
//!
//! Browsers send `Origin`; server-side SDKs never do. tower-http's `Cors` does its work on every
//! request all the same: the service (with its settings) is cloned per request and a header map
//! is built for the answer, about a sixth of an OFREP evaluation's CPU in a profile under load.
//! Without `Origin` there is nothing for CORS to add but `Vary`, so such requests skip it.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{HeaderName, HeaderValue, Method, Request, Response, header};
use futures_util::future::{Either, MapOk, TryFutureExt};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

/// `cors.allowedOrigins` as tower-http takes it: `["*"]` is any origin.
pub(crate) fn allow_origin(origins: &[String]) -> AllowOrigin {
    if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    }
}

/// The CORS settings of the API routes: `origins` may be `["*"]`. Used as a `Router` layer
/// (flagd's Connect routes) or around a whole router with [`CorsForBrowsers::except`].
pub(crate) fn layer(origins: &[String]) -> CorsForBrowsers {
    let cors = CorsLayer::new()
        .allow_origin(allow_origin(origins))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
            header::IF_NONE_MATCH,
        ])
        .expose_headers([header::ETAG]);
    CorsForBrowsers {
        cors: Some(Arc::new(cors)),
        except: Arc::from([]),
    }
}

/// What `Cors` puts in `Vary` (so caches keep browser and non-browser answers apart).
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// CORS for the requests that carry `Origin`, `Vary` for the others, on every path but the
/// exceptions.
#[derive(Clone)]
pub(crate) struct CorsForBrowsers {
    cors: Option<Arc<CorsLayer>>,
    /// Exact paths served without CORS or `Vary` (the monitoring routes, when they share the
    /// API's port).
    except: Arc<[String]>,
}

impl CorsForBrowsers {
    /// No CORS at all (a listener of the monitoring routes only).
    pub(crate) fn none() -> CorsForBrowsers {
        CorsForBrowsers {
            cors: None,
            except: Arc::from([]),
        }
    }

    /// The same, but `paths` are served untouched (for a layer around a whole router; see
    /// `http::harden`).
    pub(crate) fn except(self, paths: impl IntoIterator<Item = String>) -> CorsForBrowsers {
        CorsForBrowsers {
            except: paths.into_iter().collect(),
            ..self
        }
    }
}

impl<S> Layer<S> for CorsForBrowsers {
    type Service = CorsIfOrigin<S>;

    fn layer(&self, inner: S) -> CorsIfOrigin<S> {
        CorsIfOrigin {
            inner,
            cors: self.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct CorsIfOrigin<S> {
    inner: S,
    cors: CorsForBrowsers,
}

type AddVary<F, B> = MapOk<F, fn(Response<B>) -> Response<B>>;

fn add_vary<B>(mut res: Response<B>) -> Response<B> {
    res.headers_mut().append(header::VARY, VARY);
    res
}

fn untouched<B>(res: Response<B>) -> Response<B> {
    res
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CorsIfOrigin<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future =
        Either<AddVary<S::Future, ResBody>, <Cors<S> as Service<Request<ReqBody>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let cors = match &self.cors.cors {
            Some(c) if !self.cors.except.iter().any(|p| p == req.uri().path()) => c,
            _ => return Either::Left(self.inner.call(req).map_ok(untouched as fn(_) -> _)),
        };
        if req.headers().contains_key(header::ORIGIN) {
            // The service polled ready is the one that answers; a clone takes its place.
            let clone = self.inner.clone();
            let ready = std::mem::replace(&mut self.inner, clone);
            Either::Right(cors.layer(ready).call(req))
        } else {
            Either::Left(self.inner.call(req).map_ok(add_vary as fn(_) -> _))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/x", post(|| async { "ok" }))
            .layer(layer(&["https://app.example".into()]))
    }

    #[tokio::test]
    async fn only_requests_with_origin_get_cors_headers_and_all_get_vary() {
        let plain = app()
            .oneshot(Request::post("/x").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(plain.status(), 200);
        assert_eq!(plain.headers()[header::VARY], VARY);
        assert!(plain.headers().get("access-control-allow-origin").is_none());

        let browser = app()
            .oneshot(
                Request::post("/x")
                    .header(header::ORIGIN, "https://app.example")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(browser.status(), 200);
        assert_eq!(
            browser.headers()["access-control-allow-origin"],
            "https://app.example"
        );
        assert_eq!(browser.headers()["access-control-expose-headers"], "etag");
        assert!(browser.headers().get(header::VARY).is_some());

        let preflight = app()
            .oneshot(
                Request::options("/x")
                    .header(header::ORIGIN, "https://app.example")
                    .header("access-control-request-method", "POST")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(preflight.status(), 200);
        assert!(
            preflight.headers()["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
    }

    /// With the monitoring routes on the API's port, they are served as before CORS existed:
    /// no CORS headers for a browser and no `Vary`; the API routes beside them get both.
    #[tokio::test]
    async fn excepted_paths_get_neither_cors_nor_vary() {
        let app = Router::new()
            .route("/x", post(|| async { "ok" }))
            .route("/health", axum::routing::get(|| async { "ok" }));
        let svc = Layer::layer(&layer(&["*".into()]).except(["/health".to_string()]), app);
        let ask = |path: &'static str| {
            svc.clone().oneshot(
                Request::get(path)
                    .header(header::ORIGIN, "https://app.example")
                    .body(Body::empty())
                    .unwrap(),
            )
        };
        let health = ask("/health").await.unwrap();
        assert_eq!(health.status(), 200);
        assert!(health.headers().get(header::VARY).is_none());
        assert!(
            health
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
        let api = ask("/x").await.unwrap();
        assert_eq!(api.headers()["access-control-allow-origin"], "*");
        assert!(api.headers().get(header::VARY).is_some());
    }
}
