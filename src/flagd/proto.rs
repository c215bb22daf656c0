//! The messages and services generated at build time from `proto/` (see `build.rs`). Public
//! so that tests and tools can call the relay with the generated clients.

#![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]

pub mod v1 {
    tonic::include_proto!("flagd.evaluation.v1");
}

pub mod v2 {
    tonic::include_proto!("flagd.evaluation.v2");
}
