//! Shared pieces of the end-to-end tests.
// Each test crate includes this module and uses a different part of it, so items are `pub`
// (for the test files) and some go unused in any one crate.
#![allow(dead_code, unreachable_pub)]

pub mod azurite;
pub mod exposition;
pub mod fake_gcs;
pub mod flagd;
pub mod fleet;
pub mod hardening;
pub mod http_source;
pub mod postgres;
pub mod redis;
pub mod relay;
pub mod retrieving;
pub mod seaweedfs;
pub mod sse;
pub mod startup;
pub mod tls;
pub mod tokens;
pub mod upstreams;
