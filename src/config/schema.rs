//! The configuration's JSON Schema, generated from the serde model (`schemars`), and the walks
//! over it that environment variables, `--set` flags and error scrubbing need.
//!
//! Nothing here lists a key: a field added to a config struct is a key of the schema, so it
//! has its `FLAGRELAY_…` variable and its `--set` path at once. A struct that does not derive
//! `JsonSchema` does not compile as a config field, so the two cannot drift.

use std::borrow::Cow;
use std::sync::OnceLock;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

use super::{Config, EvaluationKey, Millis, Secret};

/// The highest list index a variable or flag may name. Entries are added one by one, so a
/// larger number is a typo, and growing a list to it would allocate without bound.
pub(crate) const MAX_LIST_INDEX: usize = 999;

/// Marks a schema node whose value is a credential: never echoed in an error.
const SECRET_MARK: &str = "x-secret";

impl JsonSchema for Secret {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "writeOnly": true, "x-secret": true})
    }
}

impl JsonSchema for Millis {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Millis".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["integer", "string"],
            "description": "milliseconds, or a string such as \"30s\""
        })
    }
}

/// A key string, or `{key, env}`; mirrors the hand-written `Deserialize`.
impl JsonSchema for EvaluationKey {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "EvaluationKey".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let key = generator.subschema_for::<Secret>();
        json_schema!({
            "anyOf": [
                key,
                {
                    "type": "object",
                    "properties": {"key": key, "env": {"type": ["string", "null"]}},
                    "required": ["key"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// The schema of [`Config`], generated once.
pub(crate) fn root() -> &'static Value {
    static ROOT: OnceLock<Value> = OnceLock::new();
    ROOT.get_or_init(|| schemars::schema_for!(Config).to_value())
}

/// Follow `$ref`s to the node they name.
fn deref(node: &Value) -> &Value {
    let mut node = node;
    for _ in 0..16 {
        let Some(r) = node.get("$ref").and_then(Value::as_str) else {
            break;
        };
        match r.strip_prefix('#').and_then(|p| root().pointer(p)) {
            Some(target) => node = target,
            None => break,
        }
    }
    node
}

/// The alternatives a node allows: itself, or the variants of `anyOf`/`oneOf`/`allOf`,
/// with `null` left out (an `Option` is set by giving it a value).
pub(crate) fn variants(node: &Value) -> Vec<&Value> {
    let node = deref(node);
    let mut out = Vec::new();
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = node.get(combinator).and_then(Value::as_array) {
            for v in list {
                out.extend(variants(v));
            }
        }
    }
    let null_only = node.get("type") == Some(&Value::from("null"));
    if (out.is_empty() && !null_only) || node.get("properties").is_some() {
        out.push(node);
    }
    out
}

/// Whether `node`'s `type` is or includes `name`.
pub(crate) fn is_type(node: &Value, name: &str) -> bool {
    match node.get("type") {
        Some(Value::String(t)) => t == name,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == name),
        _ => {
            name == "string"
                && (node.get("enum").is_some_and(|e| e[0].is_string())
                    || node.get("const").is_some_and(Value::is_string))
        }
    }
}

/// The schema of the values of a map (`additionalProperties` that is a schema, not `false`).
fn map_values(node: &Value) -> Option<&Value> {
    node.get("additionalProperties").filter(|v| v.is_object())
}

/// Whether a node, or anything under it, is a credential.
pub(crate) fn holds_secret(node: &Value) -> bool {
    fn walk(node: &Value, depth: usize) -> bool {
        if depth > 24 {
            return false;
        }
        let node = deref(node);
        if node.get(SECRET_MARK).and_then(Value::as_bool) == Some(true) {
            return true;
        }
        let under = |key: &str| node.get(key);
        let mut children: Vec<&Value> = Vec::new();
        if let Some(Value::Object(props)) = under("properties") {
            if props.keys().any(|k| secret_name(k)) {
                return true;
            }
            children.extend(props.values());
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(Value::Array(list)) = under(key) {
                children.extend(list);
            }
        }
        children.extend(under("items"));
        children.extend(map_values(node));
        children.into_iter().any(|c| walk(c, depth + 1))
    }
    walk(node, 0)
}

/// A key whose name says it holds a credential, whatever its type: a safety net for a field
/// added as a plain `String` that should have been a [`Secret`].
pub(crate) fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["password", "secret", "apikey", "credential", "privatekey"]
        .iter()
        .any(|w| lower.contains(w))
}

/// One step of a resolved key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

impl Step {
    pub(crate) fn parse_path(dotted: &str) -> Vec<Step> {
        dotted
            .split('.')
            .map(|s| match s.parse::<usize>() {
                Ok(i) if s.bytes().all(|b| b.is_ascii_digit()) => Step::Index(i),
                _ => Step::Key(s.to_owned()),
            })
            .collect()
    }
}

/// Render a path the way errors name keys: `retrievers[0].headers.authorization`.
pub(crate) fn display(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// How the free-form key of a map (`headers`) is spelled by the segments left.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MapKeys {
    /// Environment variables: `…_HEADERS_X_API_KEY` is header `x-api-key` (names are upper
    /// case and cannot hold `-`; HTTP header names are case-insensitive).
    Env,
    /// `--set retrievers.0.headers.X-Api-Key=…`: the rest of the path as written.
    Flag,
}

/// Why a path does not name a key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ResolveError {
    /// The first segment is no top-level key.
    NotOurs(String),
    Invalid(String),
}

/// Resolve case-insensitive segments (`["server", "PORT"]`) to the canonical path and the
/// schema of the value there.
pub(crate) fn resolve<'a>(
    segments: &[&str],
    map_keys: MapKeys,
) -> Result<(Vec<Step>, &'a Value), ResolveError> {
    let invalid = |m: String| Err(ResolveError::Invalid(m));
    let mut node = root();
    let mut path = Vec::with_capacity(segments.len());
    let mut i = 0;
    while i < segments.len() {
        let seg = segments[i];
        if seg.is_empty() {
            return invalid("empty segment in the name".into());
        }
        let alts = variants(node);
        let property = alts.iter().find_map(|v| {
            v.get("properties")?
                .as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(seg))
        });
        if let Some((name, sub)) = property {
            path.push(Step::Key(name.clone()));
            node = sub;
            i += 1;
            continue;
        }
        if i == 0 {
            return Err(ResolveError::NotOurs(seg.to_ascii_lowercase()));
        }
        if let Some(items) = alts.iter().find_map(|v| v.get("items"))
            && seg.bytes().all(|b| b.is_ascii_digit())
        {
            let index = seg.parse::<usize>().ok().filter(|&n| n <= MAX_LIST_INDEX);
            let Some(index) = index else {
                return invalid(format!(
                    "list index {seg} of `{}` is out of range (0 to {MAX_LIST_INDEX})",
                    display(&path)
                ));
            };
            path.push(Step::Index(index));
            node = items;
            i += 1;
            continue;
        }
        if let Some(values) = alts.iter().find_map(|v| map_values(v)) {
            // A map of plain values takes the rest of the name as its key.
            let leaf = variants(values)
                .iter()
                .all(|v| v.get("properties").is_none());
            let (key, used) = match (leaf, map_keys) {
                (true, MapKeys::Env) => (
                    segments[i..].join("-").to_ascii_lowercase(),
                    segments.len() - i,
                ),
                (true, MapKeys::Flag) => (segments[i..].join("."), segments.len() - i),
                (false, MapKeys::Env) => (seg.to_ascii_lowercase(), 1),
                (false, MapKeys::Flag) => (seg.to_owned(), 1),
            };
            path.push(Step::Key(key));
            node = values;
            i += used;
            continue;
        }
        let what = if alts.iter().any(|v| v.get("items").is_some()) {
            format!(
                "`{}` is a list: the next segment must be an index (0, 1, …)",
                display(&path)
            )
        } else if alts.iter().any(|v| v.get("properties").is_some()) {
            format!(
                "`{}` is not a configuration key under `{}`",
                seg.to_ascii_lowercase(),
                display(&path)
            )
        } else {
            format!("`{}` has no keys under it", display(&path))
        };
        return invalid(what);
    }
    Ok((path, node))
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;

/// Every settable key of the schema with the schema of its value: scalars and lists of
/// scalars as themselves, lists of maps through index 0, maps through the key `name`.
#[cfg(test)]
pub(crate) fn leaves() -> Vec<(Vec<Step>, &'static Value)> {
    fn walk(
        node: &'static Value,
        path: &mut Vec<Step>,
        out: &mut Vec<(Vec<Step>, &'static Value)>,
    ) {
        if path.len() > 12 {
            return;
        }
        let alts = variants(node);
        let mut inner = false;
        for v in &alts {
            if let Some(Value::Object(props)) = v.get("properties") {
                inner = true;
                for (k, sub) in props {
                    path.push(Step::Key(k.clone()));
                    walk(sub, path, out);
                    path.pop();
                }
            }
            if let Some(values) = map_values(v) {
                inner = true;
                path.push(Step::Key("name".into()));
                walk(values, path, out);
                path.pop();
            }
            if let Some(items) = v.get("items")
                && variants(items)
                    .iter()
                    .any(|i| i.get("properties").is_some())
            {
                inner = true;
                path.push(Step::Index(0));
                walk(items, path, out);
                path.pop();
            }
        }
        // A node that is both a value and a map (`{key, env}` or a string) is a leaf too.
        if !inner || settable_whole(node) {
            out.push((path.clone(), node));
        }
    }
    let mut out = Vec::new();
    walk(root(), &mut Vec::new(), &mut out);
    out
}

/// Whether a node takes a value from one variable: a scalar, or a list with scalar items.
pub(crate) fn settable_whole(node: &Value) -> bool {
    let scalar = |v: &&Value| {
        ["string", "integer", "number", "boolean"]
            .iter()
            .any(|t| is_type(v, t))
    };
    variants(node).iter().any(|v| {
        scalar(v)
            || v.get("items")
                .is_some_and(|items| variants(items).iter().any(scalar))
    })
}
