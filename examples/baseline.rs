//! The load benchmark's baseline (`scripts/bench-load.sh`): the least an axum server on this
//! toolchain and release profile can do for the same requests, i.e. the limit of the HTTP stack.
//!
//! - `POST /ofrep/v1/evaluate/flags/{key}`: reads the request body, answers a fixed
//!   OFREP-sized JSON body (`--single FILE`, else a built-in one);
//! - `POST /ofrep/v1/evaluate/flags`: reads the request body, answers a precomputed body
//!   (`--bulk FILE`: the bench script saves the relay's 1,000-flag bulk answer there);
//! - `GET /health` → `{"status":"ok"}`; `GET /ready` → 200 (so the script waits the same way).
//!
//! Same runtime shape as the relay (tokio multi-thread, `axum::serve`), nothing else: no
//! parsing, no evaluation, no CORS, no ETag.
//!
//! `cargo run --release --example baseline -- --port 18032 [--single FILE] [--bulk FILE]`

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

const SINGLE: &str = r#"{"key":"flag-000042","value":"variant-a","reason":"SPLIT","variant":"off","metadata":{"description":"Generated flag 42","team":"team-8","ticket":"FR-42"}}"#;

fn json(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn main() {
    let mut port: u16 = 18032;
    let mut host = String::from("127.0.0.1");
    let mut single = Bytes::from_static(SINGLE.as_bytes());
    let mut bulk = Bytes::from_static(b"{\"flags\":[],\"metadata\":{}}");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--port" => port = value().parse().expect("--port is a number"),
            "--host" => host = value(),
            "--single" => single = std::fs::read(value()).expect("--single file").into(),
            "--bulk" => bulk = std::fs::read(value()).expect("--bulk file").into(),
            other => panic!("unknown argument {other}"),
        }
    }
    let app = Router::new()
        .route(
            "/ofrep/v1/evaluate/flags/{*key}",
            post(move |_body: Bytes| {
                let b = single.clone();
                async move { json(b) }
            }),
        )
        .route(
            "/ofrep/v1/evaluate/flags",
            post(move |_body: Bytes| {
                let b = bulk.clone();
                async move { json(b) }
            }),
        )
        .route(
            "/health",
            get(|| async { json(Bytes::from_static(b"{\"status\":\"ok\"}")) }),
        )
        .route(
            "/ready",
            get(|| async { json(Bytes::from_static(b"{\"status\":\"ready\"}")) }),
        );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                .await
                .expect("baseline binds its port");
            eprintln!("baseline listening on {}", listener.local_addr().unwrap());
            axum::serve(listener, app).await.expect("baseline serves");
        });
}
