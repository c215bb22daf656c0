pub mod config;
pub mod evaluator;
pub mod parse;
