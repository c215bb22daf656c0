//! `/health`, `/ready`, `/info`: never authenticated.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::refresh::Refresher;
use crate::shared::rfc3339;

/// Process-wide facts the monitoring endpoints report.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    pub version: &'static str,
    pub fips140: bool,
    /// Set when shutdown starts: readiness turns 503 so load balancers stop sending traffic.
    draining: AtomicBool,
    /// Tells servers and open streams to finish.
    stop: tokio::sync::watch::Sender<bool>,
    /// `/info`'s `flagd` entry, set at start when that listener is on (`null` otherwise).
    flagd: std::sync::OnceLock<serde_json::Value>,
}

impl Lifecycle {
    pub(crate) fn new(fips140: bool) -> Arc<Lifecycle> {
        Arc::new(Lifecycle {
            version: env!("CARGO_PKG_VERSION"),
            fips140,
            draining: AtomicBool::new(false),
            stop: tokio::sync::watch::Sender::new(false),
            flagd: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn set_flagd_info(&self, info: serde_json::Value) {
        let _ = self.flagd.set(info);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Fail readiness (so load balancers stop sending traffic) while still serving: the first
    /// step of a shutdown, `server.shutdownDelay` before [`Self::begin_shutdown`].
    pub(crate) fn begin_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Start shutting down: readiness fails, servers stop accepting, streams close.
    pub(crate) fn begin_shutdown(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.stop.send_replace(true);
    }

    /// A receiver that turns `true` when shutdown starts.
    pub(crate) fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }
}

#[derive(Clone)]
pub(crate) struct MonitoringState {
    pub refresher: Arc<Refresher>,
    pub lifecycle: Arc<Lifecycle>,
}

pub(crate) async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

pub(crate) async fn ready(State(s): State<MonitoringState>) -> Response {
    let not_ready = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": reason})),
        )
            .into_response()
    };
    if s.lifecycle.is_draining() {
        return not_ready("shutting down");
    }
    match s.refresher.store().load() {
        Some(snap) => {
            Json(json!({"status": "ready", "flags": snap.len(), "etag": snap.etag})).into_response()
        }
        None => not_ready("no flag set loaded yet"),
    }
}

pub(crate) async fn info(State(s): State<MonitoringState>) -> Response {
    let snap = s.refresher.store().load();
    Json(json!({
        "version": s.lifecycle.version,
        "fips140": s.lifecycle.fips140,
        "flags": snap.as_ref().map_or(0, |s| s.len()),
        "etag": snap.as_ref().map(|s| s.etag.clone()),
        "lastModified": snap.as_ref().map(|s| rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s.last_modified))),
        "fleet": crate::fleet::running().map(|f| f.info()),
        "lastRefresh": s.refresher.last_refresh().map(rfc3339),
        "retrievers": s.refresher.statuses(),
        "flagd": s.lifecycle.flagd.get(),
    }))
    .into_response()
}
