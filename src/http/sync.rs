//! The sync API for SDKs that evaluate in-process (`GET /v1/flags`), and the token exchange
//! (`POST /client/auth`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Auth, Denied};
use super::error::{ApiError, ErrorBody, Unauthorized, json_body};
use super::ofrep::if_none_match;
use super::schema::SyncFlags;
use crate::snapshot::SnapshotStore;

#[derive(Clone)]
pub(crate) struct SyncState {
    pub store: Arc<SnapshotStore>,
    pub auth: Arc<Auth>,
    /// `maxRequestBodyBytes`, for `/client/auth`.
    pub max_body_bytes: usize,
}

/// `GET /v1/flags`: the flag definitions exactly as evaluation.md defines them.
#[utoipa::path(get, path = "/v1/flags", tag = "sync", operation_id = "syncFlags",
    summary = "The flag definitions",
    description = "The flag definitions exactly as the evaluation spec defines them, with `ETag` \
        (the quoted flag-set etag) and 304 on a matching `If-None-Match`.",
    params(("If-None-Match" = Option<String>, Header, nullable = false)),
    security(("ApiKey" = []), ("Bearer" = [])),
    responses(
        (status = 200, description = "The flag set.", body = SyncFlags,
            headers(("ETag" = String, description = "A strong entity tag."))),
        (status = 304, description = "The client has this flag set (`If-None-Match`).",
            headers(("ETag" = String, description = "A strong entity tag."))),
        (status = 401, response = Unauthorized),
        (status = 503, description = "No flag set is loaded yet.", body = ErrorBody),
    ))]
pub(crate) async fn flags(State(s): State<SyncState>, headers: HeaderMap) -> Response {
    if let Err(d) = s.auth.evaluation_caller(&headers, None) {
        return ApiError::from(d).into_response();
    }
    let Some(snap) = s.store.load() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "no flag set is loaded yet",
        )
        .into_response();
    };
    let etag = format!("\"{}\"", snap.etag);
    let mut res = if if_none_match(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        json_body(snap.sync_json().to_string())
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct TokenRequest {
    #[serde(rename = "apiKey")]
    api_key: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenResponse {
    auth_token: String,
    /// Seconds.
    expires_in: u64,
}

/// `POST /client/auth {"apiKey"}` → `{"authToken", "expiresIn"}`.
#[utoipa::path(post, path = "/client/auth", tag = "auth", operation_id = "clientAuth",
    summary = "Exchange an evaluation key for a token",
    description = "The token (HS256 JWT) carries the key's environment and an expiry, and may be \
        used wherever the key may.",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "The token.", body = TokenResponse),
        (status = 400, description = "The body is not `{\"apiKey\": \"...\"}`.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Only evaluation keys can be exchanged for tokens.",
            body = ErrorBody),
        (status = 404, description = "Token exchange is not configured (`auth.jwtSecret`).",
            body = ErrorBody),
        (status = 413, description = "The body is larger than `maxRequestBodyBytes`.",
            body = ErrorBody),
    ))]
pub(crate) async fn client_auth(State(s): State<SyncState>, body: Body) -> Response {
    if !s.auth.tokens_enabled() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "token exchange is not configured (auth.jwtSecret)",
        )
        .into_response();
    }
    // maxRequestBodyBytes, as for OFREP; a body past server.readBodyTimeout is a bad request.
    let body = match axum::body::to_bytes(body, s.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            return match super::conn::body_timed_out(&e) {
                Some(why) => ApiError::bad_request(why),
                None => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!(
                        "the body is larger than maxRequestBodyBytes ({} bytes)",
                        s.max_body_bytes
                    ),
                ),
            }
            .into_response();
        }
    };
    let req: TokenRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => {
            return ApiError::bad_request("the body must be {\"apiKey\": \"...\"}").into_response();
        }
    };
    match s.auth.issue_token(&req.api_key) {
        Ok((token, ttl)) => json_body(
            serde_json::to_string(&TokenResponse {
                auth_token: token,
                expires_in: ttl,
            })
            .unwrap_or_default(),
        ),
        Err(Denied::Forbidden) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only evaluation keys can be exchanged for tokens",
        )
        .into_response(),
        Err(d) => ApiError::from(d).into_response(),
    }
}
