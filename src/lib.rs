pub mod config;
pub mod evaluator;
pub mod parse;
pub mod persist;
pub mod refresh;
pub mod retriever;
pub mod snapshot;
