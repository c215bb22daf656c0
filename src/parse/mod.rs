//! Parse and validate flag documents (YAML or JSON) into [`FlagDoc`]s.
//!
//! Parsing runs in two stages so that one bad flag does not hide the others:
//! 1. the document becomes an ordered list of `(key, location, raw JSON value)`;
//! 2. each raw value becomes a [`FlagDef`] and is checked against the rules of evaluation.md.
//!
//! Every error names the source, the flag key and the line/column where the format gives one.
//!
//! A good document takes neither stage: `fast` reads it in one typed pass (no value tree,
//! no positions). Only a document the fast pass refuses goes through the two stages, which
//! find every error and where it is.

mod fast;
pub(crate) mod model;
mod nodup;
mod pieces;
mod yaml_subset;

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::Value;

pub use model::{FlagDef, FlagValue};

/// Document formats a retriever can hand us.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// The format a file name implies, if it implies one.
    pub(crate) fn from_name(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        let path = lower.split(['?', '#']).next().unwrap_or_default();
        if path.ends_with(".json") {
            Some(Format::Json)
        } else if path.ends_with(".yaml") || path.ends_with(".yml") {
            Some(Format::Yaml)
        } else {
            None
        }
    }
}

/// A parsed, validated flag document, in document order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagDoc {
    pub flags: Vec<(String, FlagDef)>,
    /// The rollout salt the document dictates: only another relay's sync answer does
    /// (`kind: relay`), `Some(None)` when that upstream has no salt; `None` for every other
    /// source, which leaves the relay's own `rolloutSalt` in force.
    pub salt: Option<Option<String>>,
}

/// Where in a document something is (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

/// One problem found in a flag document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError {
    pub source: String,
    pub key: Option<String>,
    pub position: Option<Position>,
    pub message: String,
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        // Keys and messages may quote the document: bounded (see `errtext`).
        if let Some(k) = &self.key {
            let k = format!("{k:?}");
            write!(f, ": flag {}", crate::errtext::bounded(&k, 128))?;
        }
        let message = crate::errtext::bounded(&self.message, crate::errtext::MAX_MESSAGE);
        write!(f, ": {message}")
    }
}

/// Every problem found in one document (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError {
    pub errors: Vec<FlagError>,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 5;
        for (i, e) in self.errors.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        if self.errors.len() > SHOWN {
            write!(f, "; and {} more errors", self.errors.len() - SHOWN)?;
        }
        Ok(())
    }
}

impl std::error::Error for DocumentError {}

impl DocumentError {
    fn one(source: &str, position: Option<Position>, message: impl Into<String>) -> Self {
        DocumentError {
            errors: vec![FlagError {
                source: source.to_owned(),
                key: None,
                position,
                message: message.into(),
            }],
        }
    }
}

/// Parse and validate one flag document.
///
/// `format` is the declared format; `None` sniffs it (a document starting with `{` is JSON).
/// An empty document is an error: a source that means "no flags" says `{}`.
pub fn parse_document(
    source: &str,
    bytes: &[u8],
    format: Option<Format>,
) -> Result<FlagDoc, DocumentError> {
    let text = document_text(source, bytes)?;
    let json = match format {
        Some(f) => f == Format::Json,
        None => text.trim_start().starts_with('{'),
    };
    let fast = if json {
        fast::json(text)
    } else {
        fast::yaml(text)
    };
    match fast {
        Some(flags) => Ok(FlagDoc { flags, salt: None }),
        None => two_stage(source, text, format),
    }
}

/// [`parse_document`] by the two stages alone, without the fast readers. Not API: the fuzz
/// target `flag_document` holds the fast readers to it (whatever they accept must come out
/// exactly as the two stages make it).
#[doc(hidden)]
pub fn parse_document_two_stage(
    source: &str,
    bytes: &[u8],
    format: Option<Format>,
) -> Result<FlagDoc, DocumentError> {
    two_stage(source, document_text(source, bytes)?, format)
}

/// The document as text without its byte-order mark; an error when it is not UTF-8 or holds
/// no flags at all.
fn document_text<'a>(source: &str, bytes: &'a [u8]) -> Result<&'a str, DocumentError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DocumentError::one(
            source,
            None,
            format!("document is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if trimmed.is_empty() || trimmed.lines().all(is_yaml_blank_line) {
        return Err(DocumentError::one(
            source,
            None,
            "document is empty (a source with no flags must say {})",
        ));
    }
    Ok(text)
}

/// The two stages of the module comment: every error, located.
fn two_stage(source: &str, text: &str, format: Option<Format>) -> Result<FlagDoc, DocumentError> {
    let trimmed = text.trim_start();
    let raw = match format {
        Some(Format::Json) => raw_from_json(source, text)?,
        Some(Format::Yaml) => raw_from_yaml(source, text)?,
        None if trimmed.starts_with('{') => match raw_from_json(source, text) {
            Ok(raw) => raw,
            // A YAML flow mapping also starts with `{`; only fall back when YAML makes sense of it.
            Err(json_err) => raw_from_yaml(source, text).map_err(|_| json_err)?,
        },
        None => raw_from_yaml(source, text)?,
    };
    validate_raw(source, raw)
}

fn is_yaml_blank_line(line: &str) -> bool {
    let l = line.trim();
    l.is_empty() || l.starts_with('#') || l == "---" || l == "..."
}

/// A flag before validation: its key, where it is, and its fields as JSON.
struct RawFlag {
    key: String,
    position: Option<Position>,
    value: Value,
}

fn validate_raw(source: &str, raw: Vec<RawFlag>) -> Result<FlagDoc, DocumentError> {
    let mut errors = Vec::new();
    let mut flags = Vec::with_capacity(raw.len());
    let mut seen = std::collections::HashSet::with_capacity(raw.len());
    for RawFlag {
        key,
        position,
        value,
    } in raw
    {
        let mut fail = |message: String| {
            errors.push(FlagError {
                source: source.to_owned(),
                key: Some(key.clone()),
                position,
                message,
            })
        };
        if key.is_empty() {
            fail("flag key is empty".into());
            continue;
        }
        if !seen.insert(key.clone()) {
            fail("flag key appears twice in this document".into());
            continue;
        }
        if !value.is_object() {
            fail(format!(
                "a flag must be a map of fields, found {}",
                model::json_type(&value)
            ));
            continue;
        }
        let mut def: FlagDef = match serde_path_to_error::deserialize(value) {
            Ok(def) => def,
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                fail(if path == "." {
                    inner
                } else {
                    format!("field `{path}`: {inner}")
                });
                continue;
            }
        };
        match check_flag(&mut def) {
            Ok(()) => flags.push((key, def)),
            Err(message) => fail(message),
        }
    }
    if errors.is_empty() {
        Ok(FlagDoc { flags, salt: None })
    } else {
        Err(DocumentError { errors })
    }
}

/// The rules serde cannot express: on/off of one type, scalar metadata, rollout clamped.
/// In place: a `FlagDef` is a few hundred bytes, and moving 100,000 of them in and out was
/// 2 % of a JSON first load (perf, 2026-12-03).
fn check_flag(def: &mut FlagDef) -> Result<(), String> {
    let (on, off) = (
        model::json_type(&def.value.on),
        model::json_type(&def.value.off),
    );
    if on != off {
        return Err(format!(
            "field `value`: `on` is a {on} but `off` is a {off}; both must be of one JSON type"
        ));
    }
    if let Some(meta) = &def.metadata {
        for (k, v) in meta {
            if !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                return Err(format!(
                    "field `metadata.{k}`: must be a string, number or boolean, found {}",
                    model::json_type(v)
                ));
            }
        }
    }
    def.rollout = def.rollout.clamp(0, 100);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Stage 1, JSON.

fn raw_from_json(source: &str, text: &str) -> Result<Vec<RawFlag>, DocumentError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let pairs = TopLevel
        .deserialize(&mut de)
        .and_then(|pairs| de.end().map(|()| pairs))
        .map_err(|e| {
            let position = (e.line() > 0).then(|| Position {
                line: e.line() as u64,
                column: e.column() as u64,
            });
            DocumentError::one(source, position, e.to_string())
        })?;
    // serde_json has no spans: find each key's line by scanning forward for its quoted form.
    let mut finder = KeyFinder::default();
    Ok(pairs
        .into_iter()
        .map(|(key, value)| {
            let position = finder.find(text, &key);
            RawFlag {
                key,
                position,
                value,
            }
        })
        .collect())
}

/// Finds top-level keys of a JSON document in order, in one pass over the text: lines are
/// counted only between one key and the next (counting from the start for every key made a
/// 100,000-flag document take minutes). A key written with escapes serde_json would not use is
/// not found and has no position; after a few such misses the finder stops looking, since
/// each miss scans the rest of the document.
#[derive(Default)]
struct KeyFinder {
    /// Byte offset searched from, and the line (0-based) and line start at that offset.
    cursor: usize,
    line: u64,
    line_start: usize,
    misses: u32,
}

impl KeyFinder {
    const MAX_MISSES: u32 = 8;

    fn find(&mut self, text: &str, key: &str) -> Option<Position> {
        if self.misses >= Self::MAX_MISSES {
            return None;
        }
        let quoted = serde_json::to_string(key).ok()?;
        let mut from = self.cursor;
        while let Some(rel) = text.get(from..).and_then(|t| t.find(&quoted)) {
            let at = from + rel;
            let after = text[at + quoted.len()..].trim_start();
            if after.starts_with(':') {
                let skipped = &text[self.cursor..at];
                for (i, b) in skipped.bytes().enumerate() {
                    if b == b'\n' {
                        self.line += 1;
                        self.line_start = self.cursor + i + 1;
                    }
                }
                // A key holds no raw newline: the next search starts after it.
                self.cursor = at + quoted.len();
                let column = text[self.line_start..at].chars().count() as u64 + 1;
                return Some(Position {
                    line: self.line + 1,
                    column,
                });
            }
            from = at + quoted.len();
        }
        self.misses += 1;
        None
    }
}

/// The top level of a JSON document: a map from key to anything, kept in order.
struct TopLevel;

impl<'de> DeserializeSeed<'de> for TopLevel {
    type Value = Vec<(String, Value)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = Vec<(String, Value)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map from flag key to flag (the document is not a map)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value_seed(nodup::NoDupValue)?;
            out.push((key, value));
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Stage 1, YAML.

fn yaml_options(len: usize) -> serde_saphyr::Options {
    // The default budget (250k nodes, 1M events) protects against alias bombs but is too small
    // for a legitimate 100k-flag document; allow up to a few nodes per input byte, which no
    // honest document exceeds, while alias-expansion limits stay as they are.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = budget.max_nodes.max(len);
    budget.max_events = budget.max_events.max(len.saturating_mul(2));
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // YAML 1.2 booleans only: `yes`/`no`/`on`/`off` are strings, as in JSON, so `enabled: yes`
    // is an error naming the flag instead of a YAML 1.1 reading another tool may not share.
    options.strict_booleans = true;
    options
}

fn raw_from_yaml(source: &str, text: &str) -> Result<Vec<RawFlag>, DocumentError> {
    use serde_saphyr::Spanned;

    // `Option` so that a document of only `~`/`null` says "not a map" instead of a serde message.
    let parsed: Result<Option<YamlTop>, _> =
        serde_saphyr::from_str_with_options(text, yaml_options(text.len()));
    match parsed {
        Ok(Some(YamlTop(pairs))) => Ok(pairs
            .into_iter()
            .map(|(key, value): (Spanned<String>, Value)| RawFlag {
                position: location(&key.referenced),
                key: key.value,
                value,
            })
            .collect()),
        Ok(None) => Err(DocumentError::one(
            source,
            None,
            "the document is not a map from flag key to flag",
        )),
        Err(e) => {
            let position = e.location().and_then(|l| location(&l));
            // The error's Display repeats the location and a snippet; keep the first line only.
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default().to_owned();
            Err(DocumentError::one(source, position, first))
        }
    }
}

fn location(l: &serde_saphyr::Location) -> Option<Position> {
    (l.line() > 0).then(|| Position {
        line: l.line(),
        column: l.column(),
    })
}

struct YamlTop(Vec<(serde_saphyr::Spanned<String>, Value)>);

impl<'de> serde::Deserialize<'de> for YamlTop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = YamlTop;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map from flag key to flag (the document is not a map)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<YamlTop, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(key) = map.next_key::<serde_saphyr::Spanned<String>>()? {
                    let value: Value = map.next_value()?;
                    out.push((key, value));
                }
                Ok(YamlTop(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests;
