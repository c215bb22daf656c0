//! flagrelay: a feature-flag relay proxy.
//!
//! Data flows through the modules in this order:
//!
//! ```text
//! source ─► retriever ─► parse (validate) ─► refresh (merge) ─► snapshot ─► evaluator ─► http
//! ```
//!
//! - [`retriever`]: fetch raw documents from files, HTTP(S), S3, Azure Blob, GCS, SQL tables
//!   and other relays.
//! - [`parse`]: turn a YAML/JSON document into validated flag definitions, with located errors.
//! - [`refresh`]: run the retrievers, merge their documents, swap in a new snapshot; polling.
//! - `fleet` (beside refresh): many replicas, one flag set, through Redis.
//! - [`snapshot`]: the immutable flag set served, behind a lock-free `arc-swap` pointer.
//! - [`evaluator`]: the rule chain, compiled once per flag at load time.
//! - [`http`]: OFREP, admin, monitoring endpoints.
//! - [`flagd`]: flagd's evaluation protocol (gRPC and Connect) on its own optional port.
//!
//! Around them: [`config`] (file, environment, flags), `persist` (the saved snapshot),
//! `app` (startup and shutdown), [`cli`], [`crypto`] (the one crypto module), `logging`,
//! [`tuning`] (glibc malloc, background priority), `notify` (change notifications),
//! `telemetry` (OpenTelemetry traces over OTLP).
//!
//! The public items are what the benches, fuzzers and integration tests drive directly
//! (parsing, evaluation, snapshots, retrievers, credentials, OFREP rendering); everything else
//! is `pub(crate)`, which `unreachable_pub` and dead-code warnings keep honest.

pub(crate) mod app;
pub mod cli;
pub mod config;
pub mod crypto;
mod errtext;
pub mod evaluator;
pub mod flagd;
pub(crate) mod fleet;
pub mod http;
pub(crate) mod logging;
pub mod metrics;
pub(crate) mod notify;
pub mod parse;
pub(crate) mod persist;
pub mod refresh;
pub mod retriever;
pub(crate) mod shared;
mod signals;
pub mod snapshot;
pub(crate) mod telemetry;
pub mod tuning;
