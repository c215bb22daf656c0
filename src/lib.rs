pub mod config;
pub mod evaluator;
pub mod parse;
pub mod retriever;
