//! Tests of the layers every router gets.
use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use tower::ServiceExt;

async fn boom() -> &'static str {
    panic!("forced by a test")
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_serving_goes_on() {
    let app = harden(
        Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "ok" })),
        cors::CorsForBrowsers::none(),
    );
    let res = app
        .clone()
        .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
    assert!(
        !String::from_utf8_lossy(&body).contains("forced"),
        "panic text leaked"
    );
    let res = app
        .oneshot(Request::get("/fine").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
