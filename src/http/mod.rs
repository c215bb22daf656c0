//! The HTTP surface: routing, shared state, and serving with graceful shutdown.
//!
//! Each group of endpoints has its own small state ([`OfrepState`], [`AdminState`],
//! [`MonitoringState`]) extracted from [`AppState`] with `FromRef`, so handlers depend only on
//! what they use and can be tested against tiny states.

pub(crate) mod admin;
pub mod auth;
pub(crate) mod conn;
pub(crate) mod cors;
pub(crate) mod error;
mod event_streams;
mod harden;
pub(crate) mod monitoring;
pub(crate) mod observe;
pub mod ofrep;
pub(crate) mod openapi;
mod precondition;
mod request_id;
mod schema;
pub(crate) mod serve;
pub(crate) mod stream;
pub(crate) mod sync;
mod ticket;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;

pub(crate) use admin::AdminState;
pub use auth::Auth;
pub(crate) use harden::Harden;
pub(crate) use monitoring::{Lifecycle, MonitoringState};
pub(crate) use ofrep::{EvalSettings, OfrepState};
pub(crate) use openapi::route_templates;
pub(crate) use stream::{DiffCache, StreamClients, StreamState};
pub(crate) use sync::SyncState;

use crate::fleet::Fleet;
use crate::refresh::Refresher;
use crate::snapshot::SnapshotStore;

/// Everything the handlers share: one `Arc` (axum clones the state for every request).
#[derive(Clone)]
pub(crate) struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub(crate) struct AppParts {
    pub store: Arc<SnapshotStore>,
    pub refresher: Arc<Refresher>,
    pub auth: Arc<Auth>,
    pub settings: Arc<EvalSettings>,
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) stream_clients: Arc<StreamClients>,
    pub(crate) diffs: Arc<DiffCache>,
    /// The relay's registry (the refresher's).
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The fleet this relay runs in, if any.
    pub(crate) fleet: Option<Arc<Fleet>>,
    /// The OFREP handlers' state, built once (the hot path clones one `Arc` of it).
    ofrep: OfrepState,
}

impl AppState {
    /// State for a relay serving `store`, with default settings (tests, embedding).
    pub(crate) fn new(
        refresher: Arc<Refresher>,
        auth: Arc<Auth>,
        settings: EvalSettings,
        max_streams: usize,
        fips140: bool,
    ) -> Self {
        AppState::from_parts(
            refresher,
            auth,
            Arc::new(settings),
            Lifecycle::new(fips140),
            StreamClients::new(max_streams),
            120,
            None,
        )
    }

    fn from_parts(
        refresher: Arc<Refresher>,
        auth: Arc<Auth>,
        settings: Arc<EvalSettings>,
        lifecycle: Arc<Lifecycle>,
        stream_clients: Arc<StreamClients>,
        inactivity_delay_sec: u64,
        fleet: Option<Arc<Fleet>>,
    ) -> Self {
        let store = refresher.store().clone();
        let metrics = refresher.metrics().clone();
        let ofrep = OfrepState::new(ofrep::OfrepParts {
            store: store.clone(),
            auth: auth.clone(),
            settings: settings.clone(),
            inactivity_delay_sec,
            metrics: metrics.clone(),
            fleet: fleet.clone(),
        });
        AppState(Arc::new(AppParts {
            store,
            refresher,
            auth,
            settings,
            lifecycle,
            stream_clients,
            diffs: Arc::new(DiffCache::default()),
            metrics,
            fleet,
            ofrep,
        }))
    }

    /// The same state with what a running relay adds: `streams.inactivityDelaySec` and the
    /// fleet it joined, if any (at start, before serving).
    pub(crate) fn for_relay(self, secs: u64, fleet: Option<Arc<Fleet>>) -> Self {
        let p = &self.0;
        AppState::from_parts(
            p.refresher.clone(),
            p.auth.clone(),
            p.settings.clone(),
            p.lifecycle.clone(),
            p.stream_clients.clone(),
            secs,
            fleet,
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
            fleet: s.fleet.clone(),
        }
    }
}

impl FromRef<AppState> for MonitoringState {
    fn from_ref(s: &AppState) -> Self {
        MonitoringState {
            refresher: s.refresher.clone(),
            lifecycle: s.lifecycle.clone(),
            fleet: s.fleet.clone(),
        }
    }
}

/// What a listener of the HTTP API serves: a router behind CORS and [`Harden`].
pub(crate) type Served = Harden<cors::CorsIfOrigin<Router>>;

/// The API routes (OFREP, sync, streams, token exchange, admin, `/openapi.json`), as declared
/// in `openapi::api`, with the monitoring routes too when they share the port
/// (`server.monitoringPort` unset). CORS covers the API routes only.
pub(crate) fn api_service(state: AppState, cors_origins: &[String], monitoring: bool) -> Served {
    // Build and serialize the document now, at start, not on the first request for it.
    openapi::document();
    let (mut router, _) = openapi::api().split_for_parts();
    let mut cors = cors::layer(cors_origins);
    if monitoring {
        let (routes, _) = openapi::monitoring().split_for_parts();
        router = router.merge(routes);
        cors = cors.except(openapi::monitoring_templates());
    }
    harden(router.with_state(state), cors)
}

/// The monitoring routes alone, on `server.monitoringPort`.
pub(crate) fn monitoring_service(state: AppState) -> Served {
    harden(monitoring_router(state), cors::CorsForBrowsers::none())
}

/// The monitoring routes, as declared in `openapi::monitoring`.
pub(crate) fn monitoring_router(state: AppState) -> Router {
    let (router, _) = openapi::monitoring().split_for_parts();
    router.with_state(state)
}

/// `router` with the JSON 404 for unknown paths, `cors` around it, and [`Harden`] around
/// that. (Request metrics, logs and ids wrap this in `serve::run_server`, so they see every
/// answer, the panic handler's included.)
///
/// Layers go around the whole router, not through `Router::layer`, which nests one more boxed
/// service per route, cloned and with its future boxed on every request.
pub(crate) fn harden(router: Router, cors: cors::CorsForBrowsers) -> Served {
    Harden::new(tower::Layer::layer(
        &cors,
        router.fallback(error::not_found),
    ))
}
