//! The Connect protocol (connectrpc.com/docs/protocol) with the JSON codec, as
//! `@openfeature/flagd-web-provider` speaks it: unary calls are `POST /{service}/{method}` with
//! an `application/json` body, `EventStream` a server stream of `application/connect+json`
//! envelopes ending with an end-of-stream message. JSON contexts are read by the OFREP context
//! parser, so they map to the subject exactly as OFREP bodies do.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tower_http::cors::CorsLayer;

use super::FlagdState;
use super::metrics::{Protocol, Rpc, Version};
use super::resolve::{Answer, ErrorCode, FlagdError, Want};
use super::server::Gate;
use crate::http::ofrep;

const JSON: &str = "application/json";
const STREAM_JSON: &str = "application/connect+json";
/// Envelope flag of the end-of-stream message.
const END_STREAM: u8 = 0x02;

#[derive(Clone)]
struct ConnectState {
    flagd: FlagdState,
    gate: Gate,
    limit: usize,
}

pub(crate) fn router(
    flagd: FlagdState,
    gate: Gate,
    limit: usize,
    origins: &[String],
) -> axum::Router {
    let cors = CorsLayer::new()
        .allow_origin(crate::http::cors::allow_origin(origins))
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("connect-protocol-version"),
            HeaderName::from_static("connect-timeout-ms"),
            HeaderName::from_static("x-user-agent"),
        ]);
    axum::Router::new()
        .route("/{service}/{method}", axum::routing::post(handle))
        .fallback(|| async { error(tonic::Code::Unimplemented, "no such flagd method") })
        .layer(cors)
        .with_state(ConnectState { flagd, gate, limit })
}

/// Connect's error code names and HTTP statuses.
fn code_name(c: tonic::Code) -> (&'static str, StatusCode) {
    use tonic::Code as C;
    match c {
        C::Ok => ("ok", StatusCode::OK),
        C::Cancelled => (
            "canceled",
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        ),
        C::Unknown => ("unknown", StatusCode::INTERNAL_SERVER_ERROR),
        C::InvalidArgument => ("invalid_argument", StatusCode::BAD_REQUEST),
        C::DeadlineExceeded => ("deadline_exceeded", StatusCode::GATEWAY_TIMEOUT),
        C::NotFound => ("not_found", StatusCode::NOT_FOUND),
        C::AlreadyExists => ("already_exists", StatusCode::CONFLICT),
        C::PermissionDenied => ("permission_denied", StatusCode::FORBIDDEN),
        C::ResourceExhausted => ("resource_exhausted", StatusCode::TOO_MANY_REQUESTS),
        C::FailedPrecondition => ("failed_precondition", StatusCode::BAD_REQUEST),
        C::Aborted => ("aborted", StatusCode::CONFLICT),
        C::OutOfRange => ("out_of_range", StatusCode::BAD_REQUEST),
        C::Unimplemented => ("unimplemented", StatusCode::NOT_IMPLEMENTED),
        C::Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        C::Unavailable => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
        C::DataLoss => ("data_loss", StatusCode::INTERNAL_SERVER_ERROR),
        C::Unauthenticated => ("unauthenticated", StatusCode::UNAUTHORIZED),
    }
}

fn error_json(code: tonic::Code, message: &str) -> String {
    json!({"code": code_name(code).0, "message": message}).to_string()
}

/// A unary error answer.
fn error(code: tonic::Code, message: &str) -> Response {
    (
        code_name(code).1,
        [(header::CONTENT_TYPE, JSON)],
        error_json(code, message),
    )
        .into_response()
}

fn flagd_error(e: &FlagdError) -> Response {
    error(e.grpc_code(), &e.message())
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn handle(
    State(s): State<ConnectState>,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let call = Version::from_service(&service).zip(Rpc::from_name(&method));
    let Some((v, rpc)) = call.filter(|&(v, rpc)| !(v == Version::V2 && rpc == Rpc::ResolveAll))
    else {
        return error(
            tonic::Code::Unimplemented,
            &format!("no method {method:?} in service {service:?}"),
        );
    };
    let caller = s.gate.caller(&headers);
    if rpc == Rpc::EventStream {
        return event_stream(&s, v, caller.is_ok(), &headers, body).await;
    }
    let Ok(caller) = caller else {
        s.flagd.rpcs.record(
            v,
            rpc,
            Protocol::Connect,
            tonic::Code::Unauthenticated,
            None,
        );
        return error(
            tonic::Code::Unauthenticated,
            "a valid evaluation key is required in the x-api-key or authorization header",
        );
    };
    let ct = content_type(&headers);
    if !(ct == JSON || ct.starts_with("application/json;")) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            [(HeaderName::from_static("accept-post"), JSON)],
            format!("this server speaks Connect with {JSON} (got {ct:?})"),
        )
            .into_response();
    }
    let bytes = match axum::body::to_bytes(body, s.limit).await {
        Ok(b) => b,
        Err(_) => {
            let msg = format!(
                "request body is larger than {} bytes or was cut off",
                s.limit
            );
            s.flagd.rpcs.record(
                v,
                rpc,
                Protocol::Connect,
                tonic::Code::ResourceExhausted,
                None,
            );
            return error(tonic::Code::ResourceExhausted, &msg);
        }
    };
    let ctx = match ofrep::parse_context(&bytes) {
        Ok(c) => Ok(c),
        Err(e) if e.code == ofrep::ErrorCode::ParseError => {
            s.flagd.rpcs.record(
                v,
                rpc,
                Protocol::Connect,
                tonic::Code::InvalidArgument,
                None,
            );
            return error(tonic::Code::InvalidArgument, &e.details);
        }
        Err(e) => Err(FlagdError::new(ErrorCode::InvalidContext, e.details)),
    };
    if rpc == Rpc::ResolveAll {
        return match s.flagd.all(Protocol::Connect, &caller, ctx, all_json) {
            Ok(body) => json_response(body),
            Err(e) => flagd_error(&e),
        };
    }
    let key = match flag_key(&bytes) {
        Ok(k) => k,
        Err(msg) => {
            s.flagd.rpcs.record(
                v,
                rpc,
                Protocol::Connect,
                tonic::Code::InvalidArgument,
                None,
            );
            return error(tonic::Code::InvalidArgument, &msg);
        }
    };
    let want = match rpc {
        Rpc::ResolveBoolean => Want::Bool,
        Rpc::ResolveString => Want::String,
        Rpc::ResolveInt => Want::Int,
        Rpc::ResolveFloat => Want::Float,
        _ => Want::Object,
    };
    let res = s
        .flagd
        .unary(v, rpc, Protocol::Connect, &caller, &key, ctx, want, |a| {
            answer_json(a, want)
        });
    match res {
        Ok(body) => json_response(body),
        Err(e) => flagd_error(&e),
    }
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, JSON)], body).into_response()
}

/// `flagKey` (or `flag_key`, which proto3 JSON also accepts) of a request body.
fn flag_key(bytes: &[u8]) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct KeyOnly {
        #[serde(default, rename = "flagKey", alias = "flag_key")]
        flag_key: String,
    }
    serde_json::from_slice::<KeyOnly>(bytes)
        .map(|k| k.flag_key)
        .map_err(|e| format!("flagKey: {e}"))
}

/// A `Resolve*Response` in proto3 JSON: an `int64` is a string there.
fn answer_json(a: &Answer<'_>, want: Want) -> String {
    let value = match want {
        Want::Int => format!("\"{}\"", a.value.as_i64().unwrap_or_default()),
        _ => a.value.to_string(),
    };
    format!(
        "{{\"value\":{value},\"reason\":\"{}\",\"variant\":\"{}\",\"metadata\":{}}}",
        a.reason.as_str(),
        a.variant,
        a.entry.metadata_json()
    )
}

/// v1 `ResolveAllResponse` in proto3 JSON.
fn all_json(answers: &[Answer<'_>]) -> String {
    let mut flags = serde_json::Map::new();
    for a in answers {
        let (field, value) = match &a.value {
            Value::Bool(_) => ("boolValue", a.value.clone()),
            Value::String(_) => ("stringValue", a.value.clone()),
            Value::Number(n) => ("doubleValue", json!(n.as_f64().unwrap_or_default())),
            _ => ("objectValue", a.value.clone()),
        };
        let metadata: Value =
            serde_json::from_str(a.entry.metadata_json()).unwrap_or_else(|_| json!({}));
        flags.insert(
            a.entry.key().to_string(),
            json!({
                "reason": a.reason.as_str(),
                "variant": a.variant,
                field: value,
                "metadata": metadata,
            }),
        );
    }
    json!({"flags": flags, "metadata": {}}).to_string()
}

/// One envelope: flags, big-endian length, message.
fn envelope(flags: u8, message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(flags);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out.into()
}

/// `EventStream` over Connect. Errors of a stream travel in its end-of-stream message.
async fn event_stream(
    s: &ConnectState,
    v: Version,
    authenticated: bool,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let ct = content_type(headers);
    if !(ct == STREAM_JSON || ct.starts_with("application/connect+json;")) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            [(HeaderName::from_static("accept-post"), STREAM_JSON)],
            format!("EventStream over Connect takes {STREAM_JSON} (got {ct:?})"),
        )
            .into_response();
    }
    let end_with = |code: tonic::Code, message: &str| {
        let end = json!({"error": {"code": code_name(code).0, "message": message}}).to_string();
        stream_response(Body::from(envelope(END_STREAM, end.as_bytes())))
    };
    if !authenticated {
        s.flagd.rpcs.record(
            v,
            Rpc::EventStream,
            Protocol::Connect,
            tonic::Code::Unauthenticated,
            None,
        );
        return end_with(
            tonic::Code::Unauthenticated,
            "a valid evaluation key is required in the x-api-key or authorization header",
        );
    }
    // The request is one enveloped (empty) EventStreamRequest; it must at least be framed.
    match axum::body::to_bytes(body, s.limit).await {
        Ok(b) if b.len() >= 5 => {}
        _ => {
            return end_with(
                tonic::Code::InvalidArgument,
                "EventStream request must be one enveloped message",
            );
        }
    }
    let events = match s.flagd.open_stream(v, Protocol::Connect) {
        Ok(e) => e,
        Err(status) => return end_with(status.code(), status.message()),
    };
    let messages = events.map(|e| {
        let mut m = serde_json::Map::new();
        m.insert("type".into(), Value::String(e.kind.into()));
        if let Some(d) = e.data {
            m.insert("data".into(), Value::Object(d));
        }
        Ok::<_, Infallible>(envelope(0, Value::Object(m).to_string().as_bytes()))
    });
    let end = futures_util::stream::once(async { Ok(envelope(END_STREAM, b"{}")) });
    stream_response(Body::from_stream(messages.chain(end)))
}

fn stream_response(body: Body) -> Response {
    ([(header::CONTENT_TYPE, STREAM_JSON)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_and_keys() {
        assert_eq!(&envelope(2, b"{}")[..], &[2, 0, 0, 0, 2, b'{', b'}']);
        assert_eq!(flag_key(br#"{"flagKey":"a","context":{}}"#).unwrap(), "a");
        assert_eq!(flag_key(br#"{"flag_key":"b"}"#).unwrap(), "b");
        assert!(flag_key(b"{nope").is_err());
        assert_eq!(code_name(tonic::Code::NotFound).0, "not_found");
    }
}
