//! `/health`, `/ready`, `/info`: never authenticated.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::refresh::{Refresher, RetrieverStatus};
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
    pub(crate) fleet: Option<Arc<crate::fleet::Fleet>>,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
}

/// `GET /ready` once a flag set is loaded.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ready {
    #[schema(value_type = String, pattern = "^ready$")]
    status: &'static str,
    flags: usize,
    etag: String,
}

/// `GET /ready` before the first flag set, and while shutting down.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NotReady {
    #[schema(value_type = String, pattern = "^not ready$")]
    status: &'static str,
    reason: &'static str,
}

/// `GET /info`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Info {
    version: &'static str,
    fips140: bool,
    flags: usize,
    etag: Option<String>,
    /// RFC 3339: the sources' last modification of the flag set served (its load time when no
    /// source says).
    last_modified: Option<String>,
    /// Fleet mode: name, replica id, role, served version, Redis reachability, live replicas.
    #[schema(value_type = Option<Object>)]
    fleet: Option<serde_json::Value>,
    /// RFC 3339: the last refresh in which every retriever succeeded.
    last_refresh: Option<String>,
    retrievers: Vec<RetrieverStatus>,
    /// The flagd port, when it is served.
    #[schema(value_type = Option<Object>)]
    flagd: serde_json::Value,
}

#[utoipa::path(get, path = "/health", tag = "monitoring", operation_id = "health",
    summary = "Liveness",
    responses((status = 200, description = "The process serves.", body = Health)))]
pub(crate) async fn health() -> Response {
    Json(Health { status: "ok" }).into_response()
}

#[utoipa::path(get, path = "/ready", tag = "monitoring", operation_id = "ready",
    summary = "Readiness",
    description = "200 once a flag set is loaded (from the retrievers, the persisted snapshot, \
        or empty under startWithRetrieverError); 503 before, and while shutting down.",
    responses(
        (status = 200, description = "Ready.", body = Ready),
        (status = 503, description = "Not ready.", body = NotReady),
    ))]
pub(crate) async fn ready(State(s): State<MonitoringState>) -> Response {
    let not_ready = |reason: &'static str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(NotReady {
                status: "not ready",
                reason,
            }),
        )
            .into_response()
    };
    if s.lifecycle.is_draining() {
        return not_ready("shutting down");
    }
    match s.refresher.store().load() {
        Some(snap) => Json(Ready {
            status: "ready",
            flags: snap.len(),
            etag: snap.etag.clone(),
        })
        .into_response(),
        None => not_ready("no flag set loaded yet"),
    }
}

#[utoipa::path(get, path = "/info", tag = "monitoring", operation_id = "info",
    summary = "What this relay serves and where from",
    responses((status = 200, body = Info, description = "Version, FIPS mode, the flag set, and \
        each retriever's state (sources never carry credentials).")))]
pub(crate) async fn info(State(s): State<MonitoringState>) -> Response {
    let snap = s.refresher.store().load();
    Json(Info {
        version: s.lifecycle.version,
        fips140: s.lifecycle.fips140,
        flags: snap.as_ref().map_or(0, |s| s.len()),
        etag: snap.as_ref().map(|s| s.etag.clone()),
        last_modified: snap.as_ref().map(|s| {
            rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s.last_modified))
        }),
        fleet: s.fleet.as_ref().map(|f| f.info()),
        last_refresh: s.refresher.last_refresh().map(rfc3339),
        retrievers: s.refresher.statuses(),
        flagd: s.lifecycle.flagd.get().cloned().unwrap_or_default(),
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use crate::http::{AppState, Auth, EvalSettings};
    use crate::refresh::{RefreshOptions, Refresher};
    use crate::snapshot::SnapshotStore;

    /// `/info` of a relay that joined fleet `name`, or none; nothing connects to Redis.
    async fn info_of(fleet: Option<&str>) -> serde_json::Value {
        let yaml = fleet.map_or("{}\n".to_owned(), |name| {
            format!("fleet: {{name: {name}, redis: {{url: \"redis://127.0.0.1:1\"}}}}\n")
        });
        let config = crate::config::parse_text("c.yaml", &yaml).unwrap();
        let store = Arc::new(SnapshotStore::new());
        let refresher = Refresher::new(Vec::new(), store, RefreshOptions::default());
        let fleet = crate::fleet::attach(&config, &refresher).unwrap();
        let settings = EvalSettings {
            default_env: None,
            max_body_bytes: 1024,
            change_stream: true,
        };
        let state = AppState::new(refresher, Arc::new(Auth::open()), settings, 1, false)
            .for_relay(120, fleet);
        let res = crate::http::monitoring_router(state)
            .oneshot(Request::get("/info").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// The fleet is the relay's, not the process's: a second relay in the same process (tests,
    /// embedding) reports its own fleet or none, never the first one's.
    #[tokio::test]
    async fn each_relay_in_a_process_reports_its_own_fleet() {
        assert_eq!(info_of(Some("blue")).await["fleet"]["name"], "blue");
        assert_eq!(info_of(Some("green")).await["fleet"]["name"], "green");
        assert!(info_of(None).await["fleet"].is_null());
    }
}
