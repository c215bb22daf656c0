//! flagd's evaluation protocol, so flagd providers in RPC mode use the relay unchanged.
//!
//! An optional listener (`flagd.port`) serves `flagd.evaluation.v1.Service` (with
//! `ResolveAll`) and `flagd.evaluation.v2.Service` over gRPC (HTTP/2 cleartext) and over the
//! Connect protocol (HTTP/1.1 or 2 with JSON, as `@openfeature/flagd-web-provider` speaks it),
//! on one port as flagd does. Answers come from the same snapshot and rule chain as OFREP, with
//! the context `Struct` mapped to the subject as an OFREP context is; errors carry the gRPC
//! codes flagd's own server uses. flagd's in-process mode is out of scope: its providers
//! evaluate flagd's rule language, whose `fractional` bucketing is not the relay's FNV-1a.
//!
//! - [`resolve`]: one evaluation, wire-independent; errors and their codes.
//! - [`grpc`]: the generated tonic services ([`proto`], compiled by `build.rs`).
//! - [`connect`]: the Connect protocol (unary JSON and the server stream).
//! - [`events`]: what `EventStream` sends.
//! - [`server`]: the listener, authentication, dispatch by content type.
//! - [`metrics`]: requests by method and code, latency.

mod connect;
mod events;
mod grpc;
pub(crate) mod metrics;
pub mod proto;
mod resolve;
mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::Stream;

use crate::http::auth::Caller;
use crate::http::ofrep::{Context, EvalSettings};
use crate::http::{AppState, Lifecycle, StreamClients};
use crate::snapshot::SnapshotStore;
use metrics::{Protocol, Rpc, Version};
use resolve::{Answer, FlagdError, Want};

pub(crate) use server::{BindError, listen};

/// What the flagd services share.
#[derive(Clone)]
pub(crate) struct FlagdState {
    store: Arc<SnapshotStore>,
    settings: Arc<EvalSettings>,
    lifecycle: Arc<Lifecycle>,
    clients: Arc<StreamClients>,
    keep_alive: Duration,
    /// The relay's registry (evaluations) and the flagd families in it.
    metrics: Arc<crate::metrics::Metrics>,
    pub(crate) rpcs: Arc<metrics::FlagdMetrics>,
}

impl FlagdState {
    pub(crate) fn new(app: &AppState) -> Self {
        FlagdState {
            store: app.store.clone(),
            settings: app.settings.clone(),
            lifecycle: app.lifecycle.clone(),
            clients: app.stream_clients.clone(),
            keep_alive: events::KEEP_ALIVE,
            metrics: app.metrics.clone(),
            rpcs: metrics::FlagdMetrics::new(),
        }
    }

    /// One `Resolve*` call: evaluate and `build` the response, counting it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn unary<T>(
        &self,
        v: Version,
        rpc: Rpc,
        p: Protocol,
        caller: &Caller,
        key: &str,
        ctx: Result<Context<'_>, FlagdError>,
        want: Want,
        build: impl FnOnce(&Answer<'_>) -> T,
    ) -> Result<T, FlagdError> {
        let start = Instant::now();
        let snapshot = self.store.load();
        let res = ctx.and_then(|ctx| {
            resolve::resolve(
                &self.metrics,
                snapshot.as_deref(),
                key,
                want,
                &ctx,
                caller,
                &self.settings,
            )
            .map(|a| build(&a))
        });
        let code = res
            .as_ref()
            .map_or_else(|e| e.grpc_code(), |_| tonic::Code::Ok);
        self.rpcs.record(v, rpc, p, code, Some(start.elapsed()));
        res
    }

    /// v1 `ResolveAll`.
    pub(crate) fn all<T>(
        &self,
        p: Protocol,
        caller: &Caller,
        ctx: Result<Context<'_>, FlagdError>,
        build: impl FnOnce(&[Answer<'_>]) -> T,
    ) -> Result<T, FlagdError> {
        let start = Instant::now();
        let snapshot = self.store.load();
        let res = ctx.map(|ctx| {
            let mut answers = Vec::new();
            resolve::resolve_all(
                &self.metrics,
                snapshot.as_deref(),
                &ctx,
                caller,
                &self.settings,
                |a| answers.push(a),
            );
            build(&answers)
        });
        let code = res
            .as_ref()
            .map_or_else(|e| e.grpc_code(), |_| tonic::Code::Ok);
        self.rpcs
            .record(Version::V1, Rpc::ResolveAll, p, code, Some(start.elapsed()));
        res
    }

    /// Admit an `EventStream` against the shared stream limit.
    pub(crate) fn open_stream(
        &self,
        v: Version,
        p: Protocol,
    ) -> Result<impl Stream<Item = events::Event> + Send + 'static, tonic::Status> {
        let admitted = if self.lifecycle.is_draining() {
            Err(tonic::Status::unavailable("the relay is shutting down"))
        } else {
            self.clients.admit().ok_or_else(|| {
                tonic::Status::resource_exhausted("too many open event streams; retry later")
            })
        };
        let code = admitted
            .as_ref()
            .map_or_else(|e| e.code(), |_| tonic::Code::Ok);
        self.rpcs.record(v, Rpc::EventStream, p, code, None);
        let slot = admitted?;
        Ok(events::follow(
            &self.store,
            self.lifecycle.stopping(),
            slot,
            self.keep_alive,
        ))
    }
}
