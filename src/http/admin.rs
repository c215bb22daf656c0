//! `POST /admin/v1/retriever/refresh`: run the retrievers now (admin key only).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, Unauthorized};
use crate::fleet::Convergence;
use crate::refresh::Refresher;

#[derive(Clone)]
pub(crate) struct AdminState {
    pub refresher: Arc<Refresher>,
    pub auth: Arc<Auth>,
    pub(crate) fleet: Option<Arc<crate::fleet::Fleet>>,
}

#[derive(Debug, Default, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RefreshQuery {
    /// Let this refresh remove more than `maxFlagRemovalPercent` of the flags.
    #[serde(default)]
    force: bool,
}

/// The answer of an admin refresh (200, 502 and 504 alike).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RefreshReport)]
pub(crate) struct RefreshBody<'a> {
    refreshed: bool,
    changed: bool,
    /// Flags served after the refresh.
    flags: usize,
    /// The flag-set etag served after the refresh.
    etag: Option<&'a str>,
    retrievers: Vec<RetrieverOutcome<'a>>,
    /// Every retriever succeeded but the new set was refused: it would remove more than
    /// maxFlagRemovalPercent of the flags (retry with force=true if intended).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// Fleet mode: whether every live replica serves the version this refresh left.
    #[serde(skip_serializing_if = "Option::is_none")]
    fleet: Option<Convergence>,
}

/// One retriever's part in a refresh.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RetrieverOutcome<'a> {
    kind: &'a str,
    source: &'a str,
    status: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    Ok,
    Error,
}

#[utoipa::path(post, path = "/admin/v1/retriever/refresh", tag = "admin",
    operation_id = "adminRefresh", summary = "Run every retriever now",
    description = "Synchronous; swaps the flag set in when every retriever succeeded. Concurrent \
        calls share one refresh. 502 when a retriever failed (the last good flag set keeps \
        serving), so `curl --fail` fails.",
    params(RefreshQuery),
    security(("ApiKey" = []), ("Bearer" = [])),
    responses(
        (status = 200, description = "Every retriever succeeded.", body = RefreshBody),
        (status = 400, description = "The query is not `force=true|false`.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Not an admin credential.", body = ErrorBody),
        (status = 502, body = RefreshBody, description = "A retriever failed, or the new set \
            was refused by the mass-removal guard (`error`); `refreshed` is false."),
        (status = 504, body = RefreshBody, description = "Fleet mode: the refresh succeeded but \
            a live replica did not confirm serving it within `fleet.convergenceTimeout`; \
            `fleet.laggards` names them."),
    ))]
pub(crate) async fn refresh(
    State(s): State<AdminState>,
    headers: HeaderMap,
    query: Result<Query<RefreshQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(d) = s.auth.admin_caller(&headers) {
        return ApiError::from(d).into_response();
    }
    let Ok(Query(query)) = query else {
        return ApiError::bad_request("the query must be empty or force=true|false")
            .into_response();
    };
    let report = if query.force {
        s.refresher.refresh_allowing_removal().await
    } else {
        s.refresher.refresh_forced().await
    };
    let retrievers = report
        .retrievers
        .iter()
        .map(|(kind, source, error)| RetrieverOutcome {
            kind,
            source,
            status: if error.is_none() {
                Outcome::Ok
            } else {
                Outcome::Error
            },
            error: error.as_deref(),
        })
        .collect();
    let mut body = RefreshBody {
        refreshed: report.ok,
        changed: report.changed,
        flags: report.flags,
        etag: report.etag.as_deref(),
        retrievers,
        error: report.refused.as_deref(),
        fleet: None,
    };
    // 502 makes `curl --fail` in CI fail when a source is broken.
    let mut status = if report.ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    // Fleet mode: answer once every live replica serves what this one now serves; 504 (naming
    // the laggards) when one did not confirm in time.
    if report.ok
        && let Some(fleet) = &s.fleet
    {
        let c = fleet.converge().await;
        if !c.converged {
            status = StatusCode::GATEWAY_TIMEOUT;
        }
        body.fleet = Some(c);
    }
    (status, Json(body)).into_response()
}
