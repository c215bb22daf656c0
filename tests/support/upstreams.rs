//! Fake flag sources on loopback, served by axum: an HTTP source that wants a bearer token and
//! an S3 endpoint that checks the AWS credentials, both answering as the test sets them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};

/// Serve `app` on a fresh loopback port for the rest of the test.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// What the fake upstreams answer, and what they saw.
#[derive(Default)]
pub struct UpstreamState {
    /// 200, 401 or 500 for the HTTP source; 200 or 403 for the S3 store.
    pub http_status: u16,
    pub s3_status: u16,
    pub http_requests: u32,
    pub http_bad_auth: u32,
    pub s3_requests: u32,
    pub s3_bad_auth: u32,
}

pub type Upstream = Arc<Mutex<UpstreamState>>;

/// Set what the two fakes answer next.
pub fn set_upstream(state: &Upstream, http: u16, s3: u16) {
    let mut st = state.lock().unwrap();
    st.http_status = http;
    st.s3_status = s3;
}

/// `GET /flags.json` answering `doc` to `Authorization: Bearer <bearer>` (401 otherwise, counted
/// in `http_bad_auth`) while `http_status` is 200, or `http_status` with a short body.
pub async fn fake_http_source(
    state: Upstream,
    bearer: &'static str,
    doc: &'static str,
) -> SocketAddr {
    let app = axum::Router::new().route(
        "/flags.json",
        axum::routing::get(move |headers: HeaderMap| {
            let state = state.clone();
            async move {
                let mut st = state.lock().unwrap();
                st.http_requests += 1;
                let want = format!("Bearer {bearer}");
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&want) {
                    st.http_bad_auth += 1;
                    return (StatusCode::UNAUTHORIZED, "missing bearer".to_owned());
                }
                match st.http_status {
                    200 => (StatusCode::OK, doc.to_owned()),
                    s => (
                        StatusCode::from_u16(s).unwrap(),
                        "upstream says no".to_owned(),
                    ),
                }
            }
        }),
    );
    serve(app).await
}

/// Any object answering `doc` while `s3_status` is 200, or S3's 403 for an unknown key id (the
/// id repeated in the body). A request not signed with `key_id` and carrying `token` as its
/// session token is counted in `s3_bad_auth`.
pub async fn fake_s3(
    state: Upstream,
    key_id: &'static str,
    token: &'static str,
    doc: &'static str,
) -> SocketAddr {
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let state = state.clone();
        async move {
            let mut st = state.lock().unwrap();
            st.s3_requests += 1;
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let sent_token = headers
                .get("x-amz-security-token")
                .and_then(|v| v.to_str().ok());
            if !auth.contains(&format!("Credential={key_id}/")) || sent_token != Some(token) {
                st.s3_bad_auth += 1;
            }
            if st.s3_status == 200 {
                (
                    StatusCode::OK,
                    [
                        ("etag", "\"e2e-s3-etag-1\""),
                        ("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
                        ("content-type", "application/json"),
                    ],
                    doc.to_owned(),
                )
            } else {
                // What S3 answers for an unknown key id: the id comes back in the body.
                (
                    StatusCode::FORBIDDEN,
                    [
                        ("etag", "\"-\""),
                        ("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
                        ("content-type", "application/xml"),
                    ],
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidAccessKeyId</Code>\
                         <Message>The AWS Access Key Id you provided does not exist in our records.</Message>\
                         <AWSAccessKeyId>{key_id}</AWSAccessKeyId><RequestId>E2E0001</RequestId></Error>"
                    ),
                )
            }
        }
    });
    serve(app).await
}
