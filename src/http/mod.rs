//! The HTTP surface: routing, shared state, and serving with graceful shutdown.
//!
//! Each group of endpoints has its own small state ([`OfrepState`], [`AdminState`],
//! [`MonitoringState`]) extracted from [`AppState`] with `FromRef`, so handlers depend only on
//! what they use and can be tested against tiny states.

pub mod admin;
pub mod auth;
pub mod conn;
pub mod cors;
pub mod error;
mod event_streams;
pub mod monitoring;
pub mod observe;
pub mod ofrep;
pub mod openapi;
mod precondition;
mod request_id;
pub(crate) mod serve;
pub mod stream;
pub mod sync;
mod ticket;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};

pub use admin::AdminState;
pub use auth::Auth;
pub use monitoring::{Lifecycle, MonitoringState};
pub use ofrep::{EvalSettings, OfrepParts, OfrepState};
pub use stream::{DiffCache, StreamClients, StreamState};
pub use sync::SyncState;

use crate::refresh::Refresher;
use crate::snapshot::SnapshotStore;

/// Everything the handlers share: one `Arc` (axum clones the state for every request).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppParts {
    pub store: Arc<SnapshotStore>,
    pub refresher: Arc<Refresher>,
    pub auth: Arc<Auth>,
    pub settings: Arc<EvalSettings>,
    pub lifecycle: Arc<Lifecycle>,
    pub stream_clients: Arc<StreamClients>,
    pub diffs: Arc<DiffCache>,
    /// `streams.inactivityDelaySec`.
    pub inactivity_delay_sec: u64,
    /// The relay's registry (the refresher's).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The OFREP handlers' state, built once (the hot path clones one `Arc` of it).
    ofrep: OfrepState,
}

impl AppState {
    /// State for a relay serving `store`, with default settings (tests, embedding).
    pub fn new(
        refresher: Arc<Refresher>,
        auth: Arc<Auth>,
        settings: EvalSettings,
        max_streams: usize,
        fips140: bool,
    ) -> Self {
        AppState::from_parts(
            refresher.store().clone(),
            refresher,
            auth,
            Arc::new(settings),
            Lifecycle::new(fips140),
            StreamClients::new(max_streams),
            120,
        )
    }

    fn from_parts(
        store: Arc<SnapshotStore>,
        refresher: Arc<Refresher>,
        auth: Arc<Auth>,
        settings: Arc<EvalSettings>,
        lifecycle: Arc<Lifecycle>,
        stream_clients: Arc<StreamClients>,
        inactivity_delay_sec: u64,
    ) -> Self {
        let metrics = refresher.metrics().clone();
        let ofrep = OfrepState::new(ofrep::OfrepParts {
            store: store.clone(),
            auth: auth.clone(),
            settings: settings.clone(),
            inactivity_delay_sec,
            metrics: metrics.clone(),
        });
        AppState(Arc::new(AppParts {
            store,
            refresher,
            auth,
            settings,
            lifecycle,
            stream_clients,
            diffs: Arc::new(DiffCache::default()),
            inactivity_delay_sec,
            metrics,
            ofrep,
        }))
    }

    /// The same state with `streams.inactivityDelaySec` set (at start, before serving).
    pub fn with_inactivity_delay(self, secs: u64) -> Self {
        let p = &self.0;
        AppState::from_parts(
            p.store.clone(),
            p.refresher.clone(),
            p.auth.clone(),
            p.settings.clone(),
            p.lifecycle.clone(),
            p.stream_clients.clone(),
            secs,
        )
    }
}

impl FromRef<AppState> for StreamState {
    fn from_ref(s: &AppState) -> Self {
        StreamState {
            store: s.store.clone(),
            auth: s.auth.clone(),
            lifecycle: s.lifecycle.clone(),
            clients: s.stream_clients.clone(),
            diffs: s.diffs.clone(),
        }
    }
}

impl FromRef<AppState> for SyncState {
    fn from_ref(s: &AppState) -> Self {
        SyncState {
            store: s.store.clone(),
            auth: s.auth.clone(),
            max_body_bytes: s.settings.max_body_bytes,
        }
    }
}

impl FromRef<AppState> for OfrepState {
    fn from_ref(s: &AppState) -> Self {
        s.ofrep.clone()
    }
}

impl FromRef<AppState> for AdminState {
    fn from_ref(s: &AppState) -> Self {
        AdminState {
            refresher: s.refresher.clone(),
            auth: s.auth.clone(),
        }
    }
}

impl FromRef<AppState> for MonitoringState {
    fn from_ref(s: &AppState) -> Self {
        MonitoringState {
            refresher: s.refresher.clone(),
            lifecycle: s.lifecycle.clone(),
        }
    }
}

/// The API routes (OFREP, sync, streams, token exchange, admin).
pub fn api_router(state: AppState, cors_origins: &[String]) -> Router {
    Router::new()
        .route("/ofrep/v1/evaluate/flags", post(ofrep::evaluate_all))
        .route(
            "/ofrep/v1/evaluate/flags/{*key}",
            post(ofrep::evaluate_flag),
        )
        .route("/ofrep/v1/sse", get(stream::ofrep_sse))
        .route("/v1/flags", get(sync::flags))
        .route("/v1/flags/stream", get(stream::sync_stream))
        .route("/client/auth", post(sync::client_auth))
        .route("/admin/v1/retriever/refresh", post(admin::refresh))
        .route("/openapi.json", get(openapi::openapi))
        .layer(cors::layer(cors_origins))
        .with_state(state)
}

/// The monitoring routes, on the main port or on `server.monitoringPort`.
pub fn monitoring_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(monitoring::health))
        .route("/ready", get(monitoring::ready))
        .route("/info", get(monitoring::info))
        .route("/metrics", get(observe::metrics))
        .with_state(state)
}

/// A panic inside a handler answers 500 (and is logged) instead of dropping the connection,
/// and the relay keeps serving. (Request metrics, logs and ids wrap the whole router in
/// `app::run_server`, outside this, so they see every answer.)
///
/// Both layers wrap the router once, as its fallback service, rather than each route through
/// `Router::layer` (which nests another boxed service per layer, cloned for every request).
pub fn harden(router: Router) -> Router {
    let layers = tower::ServiceBuilder::new()
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |panic: Box<dyn std::any::Any + Send>| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(panic = %what, "a handler panicked; answered 500");
                axum::response::IntoResponse::into_response(error::ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                ))
            },
        ))
        .layer(tower::util::MapResponseLayer::new(
            error::json_for_bare_errors,
        ));
    Router::new().fallback_service(layers.service(router.fallback(error::not_found)))
}

#[cfg(test)]
mod tests;
