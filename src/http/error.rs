//! Error answers. OFREP endpoints answer in OFREP's shape (`errorCode`, `errorDetails`); every
//! other endpoint answers `{"error": "<code>", "message": "<text>"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{ToResponse, ToSchema};

use super::auth::Denied;

/// The body of every non-OFREP error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody<'a> {
    /// A machine-readable code, e.g. `unauthorized`.
    pub(crate) error: &'a str,
    pub(crate) message: &'a str,
}

/// `401`: shared by every authenticated operation of the document.
#[derive(ToResponse)]
#[response(
    description = "Missing, unknown or expired credential.",
    headers(("WWW-Authenticate" = String, description = "`Bearer`"))
)]
#[allow(dead_code)] // a description for the document; the answer is built by `ApiError`
pub(crate) struct Unauthorized(ErrorBody<'static>);

/// A non-OFREP error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Unauthenticated => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing, unknown or expired credential",
            ),
            Denied::Forbidden => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this credential may not call this endpoint",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            json_body(
                serde_json::to_string(&ErrorBody {
                    error: self.code,
                    message: &self.message,
                })
                .unwrap_or_default(),
            ),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// The answer for a path no route serves.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The router's own 405 (a known path, another method) has no body: give it the JSON error
/// body every other error has, keeping its `Allow` header.
pub(crate) fn json_for_bare_errors(res: Response) -> Response {
    if res.status() != StatusCode::METHOD_NOT_ALLOWED
        || res.headers().contains_key(header::CONTENT_TYPE)
    {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    // The bare answer may say `content-length: 0`, which the JSON body would contradict.
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not answer this method",
    )
    .into_response();
    let (body_parts, body) = body.into_parts();
    parts.headers.extend(body_parts.headers);
    Response::from_parts(parts, body)
}

/// A body that is already JSON text.
pub(crate) fn json_body(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}
