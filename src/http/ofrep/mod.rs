//! OFREP: `POST /ofrep/v1/evaluate/flags/{key}` and `POST /ofrep/v1/evaluate/flags`.
//!
//! The hot path: read the body (bounded), pull the four subject attributes out of `context`
//! in one pass without building a JSON tree, load the snapshot (lock-free), evaluate, and
//! write the answer from pre-serialized pieces.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::Auth;
use super::error::{ApiError, Unauthorized, json_body};
use super::event_streams;
use super::precondition::IfNoneMatch;
use super::schema::{
    BulkEvaluationFailure, BulkEvaluationSuccess, EvaluationFailure, EvaluationRequest,
    EvaluationSuccess,
};
use crate::snapshot::SnapshotStore;

mod answer;
mod common_body;
mod context;

pub use answer::{BulkAnswer, bulk_answer, render_bulk};
use answer::{bulk_answer_with, single_answer};
pub use context::{Context, parse_context, parse_context_by_serde};

/// Settings the OFREP handlers need, fixed at start.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    /// `environment` from the config, for callers that name none.
    pub default_env: Option<Arc<str>>,
    pub max_body_bytes: usize,
    /// Announce `/ofrep/v1/sse` in bulk answers.
    pub change_stream: bool,
}

/// What the OFREP handlers see of the application: one `Arc`, so taking it for a request
/// is one reference count, not one per part.
#[derive(Clone)]
pub(crate) struct OfrepState(Arc<OfrepParts>);

impl OfrepState {
    pub(crate) fn new(parts: OfrepParts) -> Self {
        OfrepState(Arc::new(parts))
    }
}

impl std::ops::Deref for OfrepState {
    type Target = OfrepParts;
    fn deref(&self) -> &OfrepParts {
        &self.0
    }
}

/// The parts of [`OfrepState`].
pub(crate) struct OfrepParts {
    pub store: Arc<SnapshotStore>,
    pub auth: Arc<Auth>,
    pub settings: Arc<EvalSettings>,
    /// `streams.inactivityDelaySec`, announced in `eventStreams`.
    pub inactivity_delay_sec: u64,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The fleet this relay runs in, if any: a bulk request naming a set this replica does
    /// not serve yet waits for it.
    pub(crate) fleet: Option<Arc<crate::fleet::Fleet>>,
}

/// How long a bulk request naming a flag set this replica does not serve may wait for it to
/// come from the fleet's Redis.
const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// The bulk request's query (ADR-0008 with protocol PR #84): what the client last heard from
/// the change stream. Anything else in the query is ignored.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct BulkQuery {
    #[serde(rename = "flagConfigEtag")]
    flag_config_etag: Option<String>,
}

/// OFREP error codes this relay answers with.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    ParseError,
    InvalidContext,
    FlagNotFound,
    General,
}

impl ErrorCode {
    fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::InvalidContext => "INVALID_CONTEXT",
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::General => "GENERAL",
        }
    }
}

/// An OFREP error answer; `key` is set for single-flag requests.
#[derive(Debug)]
pub struct OfrepError {
    pub key: Option<String>,
    pub code: ErrorCode,
    pub details: String,
}

impl IntoResponse for OfrepError {
    fn into_response(self) -> Response {
        let status = match self.code {
            ErrorCode::FlagNotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut body = serde_json::Map::new();
        if let Some(k) = self.key {
            body.insert("key".into(), k.into());
        }
        body.insert("errorCode".into(), self.code.as_str().into());
        body.insert("errorDetails".into(), self.details.into());
        (
            status,
            json_body(serde_json::Value::Object(body).to_string()),
        )
            .into_response()
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// `POST /ofrep/v1/evaluate/flags/{key}`. The answer is written by [`answer`], not
/// serialized from the declared types (see `http/schema.rs` for why).
#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags/{*key}", tag = "ofrep",
    operation_id = "ofrepEvaluateFlag", summary = "Evaluate one flag",
    description = "The key may arrive percent-encoded or raw, and may contain `/`. Never answers \
        413, 422 or 503: the OFREP clients treat those as unexpected (an over-long body is 400 \
        INVALID_CONTEXT; before the first flag set is loaded every key is 404 FLAG_NOT_FOUND).",
    params(("key" = String, Path, description = "The flag key.", min_length = 1,
        example = "new-checkout")),
    request_body(content = Option<EvaluationRequest>, content_type = "application/json",
        description = "A missing body, a missing `context` and a missing `targetingKey` are all \
            accepted."),
    security(("ApiKey" = []), ("Bearer" = [])),
    responses(
        (status = 200, description = "The flag's value for this context.",
            body = EvaluationSuccess),
        (status = 400, body = EvaluationFailure, description = "PARSE_ERROR (the body is not \
            JSON), INVALID_CONTEXT (context is not an object, a subject attribute is not a \
            string, or the body is over the size limit) or GENERAL (the key in the path cannot \
            be decoded; `key` is then absent)."),
        (status = 401, response = Unauthorized),
        (status = 404, description = "FLAG_NOT_FOUND: the key is not in the flag set.",
            body = EvaluationFailure),
    ))]
pub(crate) async fn evaluate_flag(
    State(s): State<OfrepState>,
    key: Result<Path<String>, axum::extract::rejection::PathRejection>,
    request: Request,
) -> Response {
    // The request taken whole, not as `HeaderMap` and `Body`: that extractor clones the headers.
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let caller = match s.auth.evaluation_caller(headers, None) {
        Ok(c) => c,
        Err(d) => return ApiError::from(d).into_response(),
    };
    let key = match key {
        Ok(Path(k)) => k,
        Err(e) => return error(None, ErrorCode::General, e.body_text()).into_response(),
    };
    let bytes = match read_body(body, s.settings.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.with_key(&key).into_response(),
    };
    let ctx = match parse_context(&bytes) {
        Ok(c) => c,
        Err(e) => return e.with_key(&key).into_response(),
    };
    let served = s.store.peek();
    let Some(snapshot) = served.as_deref() else {
        // Not ready: OFREP clients must not see 503 here, and the flag is not known (yet).
        return error(
            Some(key),
            ErrorCode::FlagNotFound,
            "no flag set is loaded yet".into(),
        )
        .into_response();
    };
    let metrics = &s.metrics;
    let Some(entry) = snapshot.get(&key) else {
        metrics.evaluation_unknown();
        let details = format!("flag {key:?} is not in the current flag set");
        return error(Some(key), ErrorCode::FlagNotFound, details).into_response();
    };
    let subject = ctx.subject(&caller, &s.settings);
    let outcome = entry.evaluate(&subject);
    metrics.evaluation(snapshot, entry, outcome.reason);
    json_body(single_answer(entry, outcome))
}

/// `POST /ofrep/v1/evaluate/flags`. The answer is written by [`bulk_answer_with`].
#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags", tag = "ofrep",
    operation_id = "ofrepEvaluateFlags", summary = "Evaluate every flag",
    description = "Flags are sorted by key. `ETag` is a strong hash of the exact body; \
        `If-None-Match` listing it (RFC 9110, weak comparison) answers 304 with no body, unless \
        `flagConfigEtag` names a flag set this relay does not serve. `If-None-Match: *` answers \
        412 (RFC 9110 13.1.2: never true for this POST). With a credential, `eventStreams` names \
        the stream as a URL with a short-lived stream ticket.",
    params(
        ("If-None-Match" = Option<String>, Header, nullable = false),
        ("flagConfigEtag" = Option<String>, Query, description = "The flag-set etag of the \
            change event that caused this fetch: when it is not the served set's, the answer \
            is never 304."),
        ("flagConfigLastModified" = Option<String>, Query, description = "Accepted and ignored."),
    ),
    request_body(content = Option<EvaluationRequest>, content_type = "application/json",
        description = "A missing body, a missing `context` and a missing `targetingKey` are all \
            accepted."),
    security(("ApiKey" = []), ("Bearer" = [])),
    responses(
        (status = 200, description = "Every flag evaluated for this context.",
            body = BulkEvaluationSuccess,
            headers(("ETag" = String, description = "A strong entity tag."))),
        (status = 304, description = "The answer would be the one the client has \
            (`If-None-Match`).",
            headers(("ETag" = String, description = "A strong entity tag."))),
        (status = 400, description = "The whole request is bad: PARSE_ERROR or INVALID_CONTEXT.",
            body = BulkEvaluationFailure),
        (status = 401, response = Unauthorized),
        (status = 412, description = "`If-None-Match: *`: a failed precondition on this POST \
            (GENERAL).", body = BulkEvaluationFailure),
    ))]
pub(crate) async fn evaluate_all(
    State(s): State<OfrepState>,
    query: Result<axum::extract::Query<BulkQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Response {
    // The request taken whole: the `Uri` and `HeaderMap` extractors clone what they extract.
    let (parts, body) = request.into_parts();
    let (headers, uri) = (&parts.headers, &parts.uri);
    let (caller, ticket) = match s.auth.bulk_caller(headers, s.settings.change_stream) {
        Ok(c) => c,
        Err(d) => return ApiError::from(d).into_response(),
    };
    let bytes = match read_body(body, s.settings.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let ctx = match parse_context(&bytes) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let precondition = IfNoneMatch::from_headers(headers);
    if precondition == IfNoneMatch::Any {
        // RFC 9110 §13.1.2: `*` is false whenever a representation exists, and a false
        // If-None-Match on a method other than GET/HEAD is 412, never 304.
        return error(
            None,
            ErrorCode::General,
            "If-None-Match: * never holds for this POST; send the ETag of the last answer".into(),
        )
        .with_status(StatusCode::PRECONDITION_FAILED);
    }
    let mut snapshot = s.store.load();
    let heard = query
        .as_ref()
        .ok()
        .and_then(|q| q.flag_config_etag.as_deref())
        .map(|e| e.trim_matches('"'));
    if let (Some(heard), Some(fleet)) = (heard, &s.fleet)
        && snapshot.as_ref().is_none_or(|s| s.etag != heard)
    {
        // The client heard (from a change stream, maybe another replica's) of a set this
        // replica does not serve yet: take it from Redis first, within a bounded wait.
        let _ = tokio::time::timeout(CATCH_UP_WAIT, fleet.catch_up()).await;
        snapshot = s.store.load();
    }
    let subject = ctx.subject(&caller, &s.settings);
    let streams = s.settings.change_stream.then(|| {
        let origin = ticket
            .as_ref()
            .and_then(|_| event_streams::request_origin(headers, uri));
        event_streams::render(ticket.as_deref(), origin.as_deref(), s.inactivity_delay_sec)
    });
    let BulkAnswer { body, etag } = s.metrics.bulk(snapshot.as_deref(), |recorder| {
        bulk_answer_with(
            snapshot.as_deref(),
            &subject,
            streams.as_deref(),
            |i, reason| recorder.record(i, reason),
        )
    });
    // A client that heard of a flag set this relay does not serve (yet) must not be told its
    // copy is current (ADR-0008, protocol PR #84); a query we cannot read counts as such.
    let heard_of_served = query.is_ok()
        && heard.is_none_or(|heard| snapshot.as_ref().is_some_and(|s| s.etag == heard));
    let mut res = if heard_of_served && precondition.lists(&etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        json_body(body)
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// For a GET: `If-None-Match` lists `etag` or is `*` (RFC 9110 §13.1.2, weak comparison).
pub(crate) fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    super::precondition::not_modified(headers, etag)
}

fn error(key: Option<String>, code: ErrorCode, details: String) -> OfrepError {
    OfrepError { key, code, details }
}

impl OfrepError {
    /// This error's body with another status than its code's (412 for a precondition).
    fn with_status(self, status: StatusCode) -> Response {
        let mut res = self.into_response();
        *res.status_mut() = status;
        res
    }

    fn with_key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }
}

/// Read the whole body, but no more than `limit` bytes. Over the limit is OFREP's 400
/// INVALID_CONTEXT, not 413: the OFREP clients treat 413 as unexpected.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, OfrepError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let details = match super::conn::body_timed_out(&e) {
            Some(why) => why,
            None => format!("request body is larger than {limit} bytes or was cut off"),
        };
        error(None, ErrorCode::InvalidContext, details)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_forms() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(if_none_match(&h, "\"a\""));
        assert!(if_none_match(&h, "\"b\""));
        assert!(!if_none_match(&h, "\"c\""));
    }
}
