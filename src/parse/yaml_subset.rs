//! A hand-written reader for the YAML flag files are written in: block mappings and sequences,
//! one-line flow sequences and mappings, quoted strings without escapes, and plain scalars whose
//! type is beyond doubt. It is hand-written because it measured better than any reader that
//! builds YAML's full model: a first load of 100,000 flags (12.9 MB) took 2.0–2.2 s of CPU with
//! saphyr and takes 0.41–0.47 s with it (BENCHMARKS.md, "YAML first load"), and a relay's start
//! and every refresh wait for it.
//!
//! It only has to be right about what it accepts. On anything else (anchors, tags, block
//! scalars, escapes, floats, nulls, multi-line scalars, tabs, directives, a flag written as a
//! flow mapping, a word YAML might read as something other than a string) it gives up, and
//! saphyr reads the piece as before (`fast::yaml_piece`). The tests below hold every document
//! it accepts to what the two-stage path makes of it.

use serde_json::{Map, Value};

use super::model::{FlagDef, FlagValue};
use super::pieces::Flags;

/// The document's flags in order, or `None` when saphyr must read it.
pub(super) fn read(text: &str) -> Option<Flags> {
    let mut lines = Lines {
        rest: text,
        peeked: None,
    };
    let mut flags = Flags::new();
    while let Some(line) = lines.next()? {
        if line.indent != 0 {
            return None;
        }
        let (key, rest) = key(line.body)?;
        if inline(rest)?.is_some() {
            return None;
        }
        flags.push((key, flag(&mut lines)?));
    }
    Some(flags)
}

#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    body: &'a str,
}

/// The lines that hold something (not blank, not only a comment), with one of lookahead.
struct Lines<'a> {
    rest: &'a str,
    peeked: Option<Line<'a>>,
}

impl<'a> Lines<'a> {
    /// The next line, `Some(None)` at the end, `None` on a line with a tab or another control
    /// character (YAML's rules for those are not worth a fast path).
    fn next(&mut self) -> Option<Option<Line<'a>>> {
        if let Some(line) = self.peeked.take() {
            return Some(Some(line));
        }
        while !self.rest.is_empty() {
            let (line, rest) = self.rest.split_once('\n').unwrap_or((self.rest, ""));
            self.rest = rest;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.bytes().any(|b| b < b' ' || b == 0x7f) {
                return None;
            }
            let body = line.trim_start_matches(' ');
            if !body.is_empty() && !body.starts_with('#') {
                let indent = line.len() - body.len();
                return Some(Some(Line { indent, body }));
            }
        }
        Some(None)
    }

    fn peek(&mut self) -> Option<Option<Line<'a>>> {
        if self.peeked.is_none() {
            self.peeked = self.next()?;
        }
        Some(self.peeked)
    }

    /// After a nested block: the next line must belong to an enclosing block at `indent` or
    /// less (a deeper one would be a continuation this reader does not follow).
    fn closes(&mut self, indent: usize) -> Option<()> {
        match self.peek()? {
            Some(line) if line.indent > indent => None,
            _ => Some(()),
        }
    }
}

/// One flag's block mapping of fields, read straight into a [`FlagDef`].
fn flag(lines: &mut Lines) -> Option<FlagDef> {
    let mut def = FlagDef::default();
    let indent = lines.peek()??.indent;
    if indent == 0 {
        return None;
    }
    // Bit per field: a repeated field is for the two-stage path to report.
    let mut seen = 0u8;
    while let Some(line) = lines.peek()? {
        if line.indent < indent {
            break;
        }
        if line.indent > indent {
            return None;
        }
        lines.next();
        let (field, rest) = key(line.body)?;
        let value = inline(rest)?;
        let bit = match field.as_str() {
            "enabled" => {
                def.enabled = whole(value?, |s| typed(s, false, Scalar::bool))?;
                1
            }
            "rollout" => {
                def.rollout = whole(value?, |s| typed(s, false, Scalar::int))?;
                2
            }
            "users" | "tenants" | "envs" => {
                let list = match value {
                    Some(text) => whole(text, flow_strings)?,
                    None => block_strings(lines, indent)?,
                };
                let (slot, bit) = match field.as_str() {
                    "users" => (&mut def.users, 4),
                    "tenants" => (&mut def.tenants, 8),
                    _ => (&mut def.envs, 16),
                };
                *slot = list;
                bit
            }
            "value" => {
                def.value = on_off(map(value, lines, indent)?)?;
                32
            }
            "description" => {
                def.description = Some(whole(value?, |s| typed(s, false, Scalar::string))?);
                64
            }
            "metadata" => {
                def.metadata = Some(map(value, lines, indent)?);
                128
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
    }
    Some(def)
}

/// A mapping key and what follows its `:`: a quoted string, or a plain word that is none of
/// YAML's null, boolean or number spellings.
fn key(text: &str) -> Option<(String, &str)> {
    let (key, rest) = match text.as_bytes().first()? {
        b'"' | b'\'' => quoted(text)?,
        _ => {
            let end = text.find(|c: char| !is_plain_char(c, true))?;
            let word = &text[..end];
            if !starts_plain(word) || is_special(word, true) {
                return None;
            }
            (word.to_owned(), &text[end..])
        }
    };
    let rest = rest.strip_prefix(':')?;
    (rest.is_empty() || rest.starts_with(' ')).then_some((key, rest))
}

/// What follows a key's `:` on its line: `Some(value)`, or `None` when the value is a nested
/// block on the lines below (nothing but maybe a comment after the `:`).
fn inline(rest: &str) -> Option<Option<&str>> {
    let value = rest.trim_start_matches(' ');
    if value.is_empty() || (value.starts_with('#') && value.len() < rest.len()) {
        return Some(None);
    }
    Some(Some(value))
}

/// `read` applied to all of `text`: nothing may follow but spaces and a comment.
fn whole<T>(text: &str, read: impl FnOnce(&str) -> Option<(T, &str)>) -> Option<T> {
    let (value, rest) = read(text)?;
    inline(rest)?.is_none().then_some(value)
}

/// `value` or `metadata`: a flow mapping on the key's line or a block mapping below it, of
/// scalars, no key twice.
fn map(value: Option<&str>, lines: &mut Lines, indent: usize) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    let mut put = |k: String, v: Scalar| out.insert(k, v.into_value()).is_none().then_some(());
    match value {
        Some(text) => {
            let rest = flow(text, b'{', b'}', |item| {
                let (k, rest) = key(item)?;
                let rest = rest.trim_start_matches(' ');
                let (v, rest) = scalar(rest, true)?;
                put(k, v)?;
                Some(rest)
            })?;
            inline(rest)?.is_none().then_some(())?;
        }
        None => {
            let inner = lines.peek()??.indent;
            if inner <= indent {
                return None;
            }
            while let Some(line) = lines.peek()? {
                if line.indent != inner {
                    break;
                }
                lines.next();
                let (k, rest) = key(line.body)?;
                put(k, whole(inline(rest)??, |s| scalar(s, false))?)?;
            }
            lines.closes(indent)?;
        }
    }
    Some(out)
}

fn on_off(mut map: Map<String, Value>) -> Option<FlagValue> {
    let (on, off) = (map.remove("on")?, map.remove("off")?);
    map.is_empty().then_some(FlagValue { on, off })
}

/// `[a, "b", 'c']` on one line.
fn flow_strings(text: &str) -> Option<(Vec<String>, &str)> {
    let mut out = Vec::new();
    let rest = flow(text, b'[', b']', |item| {
        let (s, rest) = typed(item, true, Scalar::string)?;
        out.push(s);
        Some(rest)
    })?;
    Some((out, rest))
}

/// `- a` lines, at the key's indent or deeper.
fn block_strings(lines: &mut Lines, indent: usize) -> Option<Vec<String>> {
    let inner = lines.peek()??.indent;
    if inner < indent {
        return None;
    }
    let mut out = Vec::new();
    while let Some(line) = lines.peek()? {
        let Some(item) = line.body.strip_prefix("- ") else {
            break;
        };
        if line.indent != inner {
            break;
        }
        lines.next();
        out.push(whole(item.trim_start_matches(' '), |s| {
            typed(s, false, Scalar::string)
        })?);
    }
    if out.is_empty() {
        return None;
    }
    lines.closes(indent)?;
    Some(out)
}

/// A one-line flow collection between `open` and `close`, each item read by `item` (which
/// returns what follows it); no trailing comma. Returns what follows `close`.
fn flow<'t>(
    text: &'t str,
    open: u8,
    close: u8,
    mut item: impl FnMut(&'t str) -> Option<&'t str>,
) -> Option<&'t str> {
    let spaces = |s: &'t str| s.trim_start_matches(' ');
    let mut rest = spaces(text.strip_prefix(open as char)?);
    if let Some(after) = rest.strip_prefix(close as char) {
        return Some(after);
    }
    loop {
        rest = spaces(item(rest)?);
        match *rest.as_bytes().first()? {
            b',' => rest = spaces(&rest[1..]),
            b if b == close => return Some(&rest[1..]),
            _ => return None,
        }
    }
}

/// A scalar whose YAML type is certain.
enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Scalar {
    fn bool(self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn int(self) -> Option<i64> {
        match self {
            Scalar::Int(i) => Some(i),
            _ => None,
        }
    }

    fn string(self) -> Option<String> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    fn into_value(self) -> Value {
        match self {
            Scalar::Str(s) => Value::String(s),
            Scalar::Int(i) => Value::from(i),
            Scalar::Bool(b) => Value::Bool(b),
        }
    }
}

/// A scalar of the one type `pick` takes (see [`scalar`]), and what follows it.
fn typed<T>(text: &str, flow: bool, pick: fn(Scalar) -> Option<T>) -> Option<(T, &str)> {
    let (value, rest) = scalar(text, flow)?;
    Some((pick(value)?, rest))
}

/// A scalar at the start of `text` and what follows it. `flow`: inside `[]`/`{}`, where a plain
/// scalar has no spaces.
fn scalar(text: &str, flow: bool) -> Option<(Scalar, &str)> {
    if matches!(text.as_bytes().first()?, b'"' | b'\'') {
        let (s, rest) = quoted(text)?;
        return Some((Scalar::Str(s), rest));
    }
    let end = text
        .find(|c: char| !is_plain_char(c, flow))
        .unwrap_or(text.len());
    let word = text[..end].trim_end_matches(' ');
    let rest = &text[word.len()..];
    let value = match word {
        "true" => Scalar::Bool(true),
        "false" => Scalar::Bool(false),
        _ if is_integer(word) => Scalar::Int(word.parse().ok()?),
        _ if starts_plain(word) && !is_special(word, false) => Scalar::Str(word.to_owned()),
        _ => return None,
    };
    Some((value, rest))
}

/// `"…"` without escapes or `'…'` with `''` for a quote, on one line, of printable characters.
fn quoted(text: &str) -> Option<(String, &str)> {
    let quote = text.as_bytes()[0];
    let body = &text[1..];
    let (content, rest) = if quote == b'"' {
        let end = body.find(['"', '\\'])?;
        (body[..end].to_owned(), body[end..].strip_prefix('"')?)
    } else {
        let mut content = String::new();
        let mut rest = body;
        loop {
            let end = rest.find('\'')?;
            content.push_str(&rest[..end]);
            match rest[end + 1..].strip_prefix('\'') {
                Some(more) => {
                    content.push('\'');
                    rest = more;
                }
                None => break (content, &rest[end + 1..]),
            }
        }
    };
    // YAML allows only printable characters; `Lines` already refused the C0 controls.
    let printable = |c: char| {
        !matches!(
            c,
            '\u{7f}'..='\u{9f}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
    };
    (content.is_ascii() || content.chars().all(printable)).then_some((content, rest))
}

/// Letters, digits and `_-./@+`, and spaces and commas outside a flow collection.
fn is_plain_char(c: char, flow: bool) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '_' | '-' | '.' | '/' | '@' | '+')
        || (matches!(c, ' ' | ',') && !flow)
}

fn starts_plain(word: &str) -> bool {
    word.as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
}

/// `0` or `-?[1-9][0-9]*`, short enough for i64.
fn is_integer(word: &str) -> bool {
    let digits = word.strip_prefix('-').unwrap_or(word);
    word == "0"
        || (!digits.is_empty()
            && digits.len() <= 18
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0'))
}

/// Words YAML (1.1 or 1.2, any case) or a float parser might read as null, a boolean or a
/// number. As a mapping key, where the value is always read as a string, only the null,
/// boolean and number spellings of YAML 1.2 are refused, so `on:`/`off:` stay readable.
fn is_special(word: &str, key: bool) -> bool {
    const ALWAYS: [&str; 6] = ["null", "true", "false", "inf", "infinity", "nan"];
    const VALUES: [&str; 6] = ["yes", "no", "on", "off", "y", "n"];
    let is = |w: &&str| word.eq_ignore_ascii_case(w);
    ALWAYS.iter().any(is) || (!key && VALUES.iter().any(is))
}

#[cfg(test)]
#[path = "yaml_subset_tests.rs"]
mod tests;
