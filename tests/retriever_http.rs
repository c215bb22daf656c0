//! The http retriever against a real server on loopback (plain and TLS): conditional requests,
//! every failure the contract lists, and that no error shows a header value or URL credentials.

mod support;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{http_source, tls};

use flagrelay::config::{Millis, RetrieverConfig, RetrieverKind, Secret};
use flagrelay::parse::Format;
use flagrelay::retriever::{Fetched, Retriever, RetrieverError, Validators};
use http_source::{Reply, Request, Server};
use support::retrieving::{changed, entry};

const TOKEN: &str = "s3cr3t-token";
const PASSWORD: &str = "pa55w0rd";
const QUERY_SECRET: &str = "q5ecret";
const DOC_V1: &str = "flag-a: {enabled: true}\n";
const DOC_V2: &str = "flag-a: {enabled: false}\n";

fn cfg(url: &str) -> RetrieverConfig {
    let mut c = entry(RetrieverKind::Http);
    c.url = Some(url.into());
    c.timeout = Millis(2_000);
    c.max_bytes = 1_000;
    c.headers
        .insert("Authorization".into(), Secret(format!("Bearer {TOKEN}")));
    c
}

fn retriever(c: &RetrieverConfig) -> Retriever {
    let r = Retriever::from_config(c).expect("retriever builds");
    assert_eq!(r.kind(), RetrieverKind::Http);
    r
}

async fn fetch(r: &Retriever) -> Result<Fetched, RetrieverError> {
    r.fetch(&Validators::default()).await
}

/// The error names the URL as shown (no userinfo, no query) and holds no secret.
fn assert_names_url_without_secrets(e: &RetrieverError, shown: &str) {
    let text = e.to_string();
    assert!(text.contains(shown), "error does not name {shown}: {text}");
    for secret in [TOKEN, PASSWORD, QUERY_SECRET, "Bearer"] {
        assert!(!text.contains(secret), "error shows {secret:?}: {text}");
    }
    let debug = format!("{e:?}");
    for secret in [TOKEN, PASSWORD, QUERY_SECRET] {
        assert!(
            !debug.contains(secret),
            "error debug shows {secret:?}: {debug}"
        );
    }
}

/// A URL on `server` with credentials and a query that must never show in errors, and how it
/// should show.
fn secret_url(server: &Server, path: &str) -> (String, String) {
    (
        format!(
            "http://relay:{PASSWORD}@{}{path}?token={QUERY_SECRET}",
            server.addr
        ),
        format!("http://{}{path}", server.addr),
    )
}

struct Doc {
    body: &'static str,
    etag: &'static str,
    last_modified: &'static str,
}

/// A document source honouring If-None-Match like a real server (CDN, nginx, object store).
fn versioned(doc: Arc<Mutex<Doc>>) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |req: &Request| {
        let d = doc.lock().unwrap();
        let validators = [("ETag", d.etag), ("Last-Modified", d.last_modified)];
        if req.header("If-None-Match") == Some(d.etag) {
            Reply::status(304, "", &validators)
        } else {
            Reply::ok(d.body, &validators)
        }
    }
}

#[tokio::test]
async fn conditional_get_answers_304_then_picks_up_a_change() {
    let doc = Arc::new(Mutex::new(Doc {
        body: DOC_V1,
        etag: "\"v1\"",
        last_modified: "Mon, 01 Jan 2024 00:00:00 GMT",
    }));
    let server = Server::start(versioned(doc.clone())).await;
    let mut c = cfg(&server.url("http", "/flags.yaml"));
    c.headers.insert("X-Tenant".into(), Secret("acme".into()));
    let r = retriever(&c);
    assert_eq!(r.source(), server.url("http", "/flags.yaml"));

    // First fetch: unconditional, full document with its validators.
    let first = changed(fetch(&r).await.unwrap());
    assert_eq!(&first.bytes[..], DOC_V1.as_bytes());
    assert_eq!(first.format, Some(Format::Yaml));
    assert_eq!(first.validators.etag.as_deref(), Some("\"v1\""));
    assert_eq!(
        first.validators.last_modified.as_deref(),
        Some("Mon, 01 Jan 2024 00:00:00 GMT")
    );
    let req = server.last_request();
    assert_eq!(req.method, "GET");
    assert_eq!(req.header("If-None-Match"), None);
    assert_eq!(req.header("If-Modified-Since"), None);
    assert_eq!(
        req.header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(req.header("X-Tenant"), Some("acme"));

    // Unchanged: the validators go out, the server answers 304.
    let again = r.fetch(&first.validators).await.unwrap();
    assert!(matches!(again, Fetched::NotModified), "{again:?}");
    let req = server.last_request();
    assert_eq!(req.header("If-None-Match"), Some("\"v1\""));
    assert_eq!(
        req.header("If-Modified-Since"),
        Some("Mon, 01 Jan 2024 00:00:00 GMT")
    );

    // Changed upstream: the same conditional request now gets the new document.
    *doc.lock().unwrap() = Doc {
        body: DOC_V2,
        etag: "\"v2\"",
        last_modified: "Tue, 02 Jan 2024 00:00:00 GMT",
    };
    let second = changed(r.fetch(&first.validators).await.unwrap());
    assert_eq!(&second.bytes[..], DOC_V2.as_bytes());
    assert_eq!(second.validators.etag.as_deref(), Some("\"v2\""));
    assert_eq!(
        server.last_request().header("If-None-Match"),
        Some("\"v1\"")
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn status_500_is_an_error_naming_the_url() {
    let server =
        Server::start(|_: &Request| Reply::status(500, "oops Bearer s3cr3t-token", &[])).await;
    let (url, shown) = secret_url(&server, "/flags.yaml");
    let e = fetch(&retriever(&cfg(&url))).await.unwrap_err();
    assert!(
        matches!(e, RetrieverError::Status { status: 500, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("500"), "{e}");
    assert_names_url_without_secrets(&e, &shown);

    let server = Server::start(|_: &Request| Reply::status(404, "", &[])).await;
    let (url, shown) = secret_url(&server, "/missing.yaml");
    let e = fetch(&retriever(&cfg(&url))).await.unwrap_err();
    assert!(
        matches!(e, RetrieverError::Status { status: 404, .. }),
        "{e}"
    );
    assert_names_url_without_secrets(&e, &shown);
}

#[tokio::test]
async fn a_server_that_hangs_times_out() {
    let server = Server::start(|req: &Request| match req.path() {
        "/silent" => Reply::Silent,
        _ => Reply::Stall {
            declared: 100,
            first: b"flag-a:".to_vec(),
        },
    })
    .await;
    for path in ["/silent", "/stall"] {
        let (url, shown) = secret_url(&server, path);
        let mut c = cfg(&url);
        c.timeout = Millis(300);
        let started = Instant::now();
        let e = fetch(&retriever(&c)).await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(e, RetrieverError::Timeout { .. }), "{path}: {e}");
        assert!(e.to_string().contains("timed out after 300ms"), "{e}");
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(2),
            "{path}: took {took:?}"
        );
        assert_names_url_without_secrets(&e, &shown);
    }
}

#[tokio::test]
async fn a_truncated_body_is_an_error() {
    let server = Server::start(|req: &Request| match req.path() {
        // Content-Length larger than what is sent, then close.
        "/short" => Reply::Truncated {
            declared: 200,
            body: DOC_V1.as_bytes().to_vec(),
        },
        // A chunked body cut before its last chunk.
        _ => Reply::Chunked {
            chunks: vec![DOC_V1.as_bytes().to_vec()],
            finish: false,
        },
    })
    .await;
    for path in ["/short", "/cut"] {
        let (url, shown) = secret_url(&server, path);
        let e = fetch(&retriever(&cfg(&url))).await.unwrap_err();
        assert!(matches!(e, RetrieverError::Io { .. }), "{path}: {e}");
        assert!(e.to_string().contains("truncated"), "{path}: {e}");
        assert_names_url_without_secrets(&e, &shown);
    }
    // The same chunked body, finished, is fine.
    let server = Server::start(|_: &Request| Reply::Chunked {
        chunks: vec![b"flag-a: ".to_vec(), b"{enabled: true}\n".to_vec()],
        finish: true,
    })
    .await;
    let doc = changed(
        fetch(&retriever(&cfg(&server.url("http", "/ok"))))
            .await
            .unwrap(),
    );
    assert_eq!(&doc.bytes[..], DOC_V1.as_bytes());
    assert_eq!(doc.format, None);
}

#[tokio::test]
async fn an_empty_body_is_an_error() {
    let server = Server::start(|_: &Request| Reply::ok("", &[("ETag", "\"e\"")])).await;
    let (url, shown) = secret_url(&server, "/flags.json");
    let e = fetch(&retriever(&cfg(&url))).await.unwrap_err();
    assert!(matches!(e, RetrieverError::Empty { .. }), "{e}");
    assert_names_url_without_secrets(&e, &shown);
}

#[tokio::test]
async fn a_body_over_max_bytes_is_an_error_and_is_not_read_to_the_end() {
    let server = Server::start(|req: &Request| match req.path() {
        "/declared" => Reply::ok(vec![b'#'; 1_001], &[]),
        "/exact" => Reply::ok(vec![b'#'; 1_000], &[]),
        "/chunked" => Reply::Chunked {
            chunks: vec![vec![b'#'; 600], vec![b'#'; 600]],
            finish: true,
        },
        _ => Reply::Endless { chunk: 16 * 1024 },
    })
    .await;
    for path in ["/declared", "/chunked", "/endless"] {
        let (url, shown) = secret_url(&server, path);
        let mut c = cfg(&url);
        c.timeout = Millis(5_000);
        let started = Instant::now();
        let e = fetch(&retriever(&c)).await.unwrap_err();
        assert!(
            matches!(e, RetrieverError::TooLarge { limit: 1_000, .. }),
            "{path}: {e}"
        );
        // An endless body ends in TooLarge, not in a timeout: reading stopped at the limit.
        assert!(started.elapsed() < Duration::from_secs(2), "{path}");
        assert_names_url_without_secrets(&e, &shown);
    }
    // Exactly maxBytes is allowed.
    let doc = changed(
        fetch(&retriever(&cfg(&server.url("http", "/exact"))))
            .await
            .unwrap(),
    );
    assert_eq!(doc.bytes.len(), 1_000);
}

#[tokio::test]
async fn method_body_userinfo_and_connection_errors() {
    let server = Server::start(|req: &Request| {
        if req.method == "POST" && req.body == b"{\"env\":\"prod\"}" {
            Reply::ok("{}", &[])
        } else {
            Reply::status(400, "", &[])
        }
    })
    .await;
    let (url, _) = secret_url(&server, "/query");
    let mut c = cfg(&url);
    c.headers.clear();
    c.method = Some("post".into());
    c.body = Some("{\"env\":\"prod\"}".into());
    let doc = changed(fetch(&retriever(&c)).await.unwrap());
    assert_eq!(&doc.bytes[..], b"{}");
    let req = server.last_request();
    // URL userinfo becomes Basic auth ("relay:pa55w0rd"); the query is sent as configured.
    assert_eq!(
        req.header("Authorization"),
        Some("Basic cmVsYXk6cGE1NXcwcmQ=")
    );
    assert_eq!(req.target, format!("/query?token={QUERY_SECRET}"));

    // Nothing listening: a connection error that names the URL.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://relay:{PASSWORD}@127.0.0.1:{port}/flags.yaml?token={QUERY_SECRET}");
    let e = fetch(&retriever(&cfg(&url))).await.unwrap_err();
    assert!(matches!(e, RetrieverError::Io { .. }), "{e}");
    assert!(e.to_string().contains("cannot connect"), "{e}");
    assert_names_url_without_secrets(&e, &format!("http://127.0.0.1:{port}/flags.yaml"));
}

#[tokio::test]
async fn redirects_are_followed_but_never_carry_headers_to_another_origin() {
    let target = Server::start(|_: &Request| Reply::ok(DOC_V1, &[("ETag", "\"t\"")])).await;
    let target_url = target.url("http", "/flags.yaml");
    let front = Server::start(move |req: &Request| match req.path() {
        "/same" => Reply::status(302, "", &[("Location", "/moved")]),
        "/moved" => Reply::ok(DOC_V2, &[]),
        _ => Reply::status(302, "", &[("Location", target_url.as_str())]),
    })
    .await;

    let doc = changed(
        fetch(&retriever(&cfg(&front.url("http", "/same"))))
            .await
            .unwrap(),
    );
    assert_eq!(&doc.bytes[..], DOC_V2.as_bytes());
    assert_eq!(
        front.last_request().header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // Another origin with a secret header configured: refused, and the header never left.
    let (url, shown) = secret_url(&front, "/away");
    let e = fetch(&retriever(&cfg(&url))).await.unwrap_err();
    assert!(e.to_string().contains("redirect"), "{e}");
    assert_names_url_without_secrets(&e, &shown);
    assert!(target.requests().is_empty());

    // Without configured headers the cross-origin redirect is followed.
    let mut c = cfg(&front.url("http", "/away"));
    c.headers.clear();
    let doc = changed(fetch(&retriever(&c)).await.unwrap());
    assert_eq!(&doc.bytes[..], DOC_V1.as_bytes());
    assert_eq!(target.requests().len(), 1);
}

#[tokio::test]
async fn https_with_ca_cert_path() {
    let pki = tls::Pki::new();
    let server = Server::start_tls(pki.server_config(false), |_: &Request| {
        Reply::ok(DOC_V1, &[("ETag", "\"tls\"")])
    })
    .await;
    let url = server.url("https", "/flags.yaml");

    let mut c = cfg(&url);
    c.ca_cert_path = Some(pki.ca_pem.clone());
    let doc = changed(fetch(&retriever(&c)).await.unwrap());
    assert_eq!(&doc.bytes[..], DOC_V1.as_bytes());
    assert_eq!(doc.validators.etag.as_deref(), Some("\"tls\""));
    assert_eq!(server.last_request().client_certs, 0);

    // By name too (the certificate covers localhost).
    let mut c = cfg(&format!(
        "https://localhost:{}/flags.yaml",
        server.addr.port()
    ));
    c.ca_cert_path = Some(pki.ca_pem.clone());
    changed(fetch(&retriever(&c)).await.unwrap());

    // Without the test CA (system roots only), or trusting another CA: the handshake fails.
    for ca in [None, Some(pki.other_ca_pem.clone())] {
        let (secret, shown) = (
            format!(
                "https://relay:{PASSWORD}@{}/flags.yaml?token={QUERY_SECRET}",
                server.addr
            ),
            url.clone(),
        );
        let mut c = cfg(&secret);
        c.ca_cert_path = ca;
        let e = fetch(&retriever(&c)).await.unwrap_err();
        assert!(matches!(e, RetrieverError::Io { .. }), "{e}");
        assert!(
            e.to_string().to_lowercase().contains("certificate"),
            "the error should say why: {e}"
        );
        assert_names_url_without_secrets(&e, &shown);
    }
}

#[tokio::test]
async fn mtls_with_a_client_certificate() {
    let pki = tls::Pki::new();
    let server = Server::start_tls(pki.server_config(true), |_: &Request| {
        Reply::ok(DOC_V1, &[])
    })
    .await;
    let url = server.url("https", "/flags.yaml");

    let mut c = cfg(&url);
    c.ca_cert_path = Some(pki.ca_pem.clone());
    c.client_cert_path = Some(pki.client_cert_pem.clone());
    c.client_key_path = Some(pki.client_key_pem.clone());
    let doc = changed(fetch(&retriever(&c)).await.unwrap());
    assert_eq!(&doc.bytes[..], DOC_V1.as_bytes());
    assert_eq!(server.last_request().client_certs, 1);

    // No client certificate, or one the server does not trust: no request gets through.
    let before = server.requests().len();
    let mut none = cfg(&url);
    none.ca_cert_path = Some(pki.ca_pem.clone());
    let mut rogue = none.clone();
    rogue.client_cert_path = Some(pki.rogue_cert_pem.clone());
    rogue.client_key_path = Some(pki.rogue_key_pem.clone());
    for c in [none, rogue] {
        let e = fetch(&retriever(&c)).await.unwrap_err();
        assert!(matches!(e, RetrieverError::Io { .. }), "{e}");
        assert_names_url_without_secrets(&e, &url);
    }
    assert_eq!(server.requests().len(), before);

    // A key that does not match the certificate is refused at setup.
    let mut mismatched = cfg(&url);
    mismatched.client_cert_path = Some(pki.client_cert_pem.clone());
    mismatched.client_key_path = Some(pki.rogue_key_pem.clone());
    let e = Retriever::from_config(&mismatched).unwrap_err();
    assert!(matches!(e, RetrieverError::Setup { .. }), "{e}");
}
