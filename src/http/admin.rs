//! `POST /admin/v1/retriever/refresh`: run the retrievers now (admin key only).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::Auth;
use super::error::ApiError;
use crate::refresh::Refresher;

#[derive(Clone)]
pub(crate) struct AdminState {
    pub refresher: Arc<Refresher>,
    pub auth: Arc<Auth>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct RefreshQuery {
    /// Let this refresh remove more than `maxFlagRemovalPercent` of the flags.
    #[serde(default)]
    force: bool,
}

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
    let retrievers: Vec<_> = report
        .retrievers
        .iter()
        .map(|(kind, source, error)| match error {
            None => json!({"kind": kind, "source": source, "status": "ok"}),
            Some(e) => json!({"kind": kind, "source": source, "status": "error", "error": e}),
        })
        .collect();
    let mut body = json!({
        "refreshed": report.ok,
        "changed": report.changed,
        "flags": report.flags,
        "etag": report.etag,
        "retrievers": retrievers,
    });
    if let Some(why) = &report.refused {
        body["error"] = why.as_str().into();
    }
    // 502 makes `curl --fail` in CI fail when a source is broken.
    let mut status = if report.ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    // Fleet mode: answer once every live replica serves what this one now serves; 504 (naming
    // the laggards) when one did not confirm in time.
    if report.ok
        && let Some(fleet) = crate::fleet::running()
    {
        let c = fleet.converge().await;
        if !c.converged {
            status = StatusCode::GATEWAY_TIMEOUT;
        }
        body["fleet"] = serde_json::to_value(&c).unwrap_or_default();
    }
    (status, Json(body)).into_response()
}
