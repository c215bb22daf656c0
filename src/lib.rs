pub mod evaluator;
pub mod parse;
