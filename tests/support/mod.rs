//! Shared pieces of the end-to-end tests.
#![allow(dead_code)]

pub mod exposition;
pub mod flagd;
pub mod fleet;
pub mod hardening;
pub mod redis;
pub mod relay;
pub mod sse;
pub mod startup;
pub mod tokens;
pub mod upstreams;
