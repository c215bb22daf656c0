//! Shared pieces of the end-to-end tests.
#![allow(dead_code)]

pub mod fleet;
pub mod redis;
pub mod relay;
pub mod sse;
pub mod startup;
