//! The messages and services generated at build time from `proto/` (see `build.rs`).

#![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]

pub(crate) mod v1 {
    tonic::include_proto!("flagd.evaluation.v1");
}

pub(crate) mod v2 {
    tonic::include_proto!("flagd.evaluation.v2");
}
