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
//! - [`fleet`] (beside refresh): many replicas, one flag set, through Redis.
//! - [`snapshot`]: the immutable flag set served, behind a lock-free `arc-swap` pointer.
//! - [`evaluator`]: the rule chain, compiled once per flag at load time.
//! - [`http`]: OFREP, admin, monitoring endpoints.
//! - [`flagd`]: flagd's evaluation protocol (gRPC and Connect) on its own optional port.
//!
//! Around them: [`config`] (file, environment, flags), [`persist`] (the saved snapshot),
//! [`app`] (startup and shutdown), [`cli`], [`crypto`] (the one crypto module), [`logging`],
//! [`tuning`] (glibc malloc, background priority), [`notify`] (change notifications),
//! [`telemetry`] (OpenTelemetry traces over OTLP).

pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
mod errtext;
pub mod evaluator;
pub mod flagd;
pub mod fleet;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod parse;
pub mod persist;
pub mod refresh;
pub mod retriever;
mod signals;
pub mod snapshot;
pub mod telemetry;
pub mod tuning;
