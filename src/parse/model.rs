//! The flag definition exactly as `shared/spec/evaluation.md` defines it.
//!
//! This is both what a flag file holds and what the sync API hands to SDKs that evaluate
//! in-process, so it serializes in its canonical form: every field explicit, rollout already
//! clamped, `value` always present.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One flag. Field order here is the order of the canonical serialization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FlagDef {
    #[serde(default)]
    pub enabled: bool,
    /// Percentage 0..=100 after loading; a document may say anything in i64 and gets clamped.
    #[serde(default)]
    pub rollout: i64,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub envs: Vec<String>,
    #[serde(default)]
    pub value: FlagValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Strings, numbers and booleans only (checked on load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// What the flag evaluates to when on and when off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagValue {
    pub on: Value,
    pub off: Value,
}

impl Default for FlagValue {
    fn default() -> Self {
        FlagValue {
            on: Value::Bool(true),
            off: Value::Bool(false),
        }
    }
}

/// The JSON type of a value, as the "same type" rule for `on`/`off` sees it: every number is one
/// type (an integer `on` with a float `off` is fine).
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
