//! For the tests that drive a retriever directly (included with `#[path]`): a config entry of a
//! kind, and the document of a fetch that must have changed.
#![allow(dead_code)]

use flagrelay::config::{RetrieverConfig, RetrieverKind};
use flagrelay::retriever::{Document, Fetched};

/// An entry of `kind` with the defaults and nothing set, the crypto provider installed first
/// (the relay installs it at start).
pub fn entry(kind: RetrieverKind) -> RetrieverConfig {
    flagrelay::crypto::install_default_provider();
    let mut c = RetrieverConfig::file("unused");
    c.kind = kind;
    c.path = None;
    c
}

pub fn changed(f: Fetched) -> Document {
    match f {
        Fetched::Changed(doc) => doc,
        Fetched::NotModified => panic!("expected a document, got NotModified"),
    }
}
