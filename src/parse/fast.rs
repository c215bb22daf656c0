//! The fast path: one typed pass from the text straight into [`FlagDef`]s, with no
//! intermediate value tree, no per-flag `serde_path_to_error` and no key positions.
//!
//! It accepts only what the two-stage path (`raw_from_*` + `validate_raw`) accepts and builds
//! the same definitions; on anything else (a bad flag, a field of an unexpected type, a
//! duplicate key, even a form the two-stage path would accept such as `value: [on, off]`) it
//! gives up and the caller runs the two-stage path over the whole document, which produces the
//! located errors. A bad document is parsed twice; a good one, the common case, once.
//!
//! On/off values and metadata are read as the two-stage path reads them (`Value`'s own
//! `Deserialize` for YAML, [`NoDupValue`] for JSON), so they come out identical.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::model::{FlagDef, FlagValue};
use super::nodup::NoDupValue;

use super::pieces::{self, Flags};

/// A YAML document's flags, or `None` when the two-stage path must decide. A large document
/// is read in pieces ([`pieces::yaml`]).
pub(super) fn yaml(text: &str) -> Option<Flags> {
    yaml_in(pieces::yaml(text, pieces::parallelism(), pieces::PIECE_MIN))
}

fn yaml_in(pieces: Vec<&str>) -> Option<Flags> {
    finish(pieces::read_each(&pieces, |p| yaml_piece(p))?)
}

fn yaml_piece(text: &str) -> Option<Flags> {
    if let Some(flags) = super::yaml_subset::read(text) {
        return Some(flags);
    }
    let parsed: Option<Top<Plain, serde_saphyr::Spanned<String>>> =
        serde_saphyr::from_str_with_options(text, super::yaml_options(text.len())).ok()?;
    Some(parsed?.0)
}

/// A JSON document's flags, or `None` when the two-stage path must decide. A large document
/// is read in pieces ([`pieces::json`]); if a piece does not read, the whole document is read
/// in one, which decides.
pub(super) fn json(text: &str) -> Option<Flags> {
    json_in(
        text,
        pieces::json(text, pieces::parallelism(), pieces::PIECE_MIN),
    )
}

fn json_in(text: &str, runs: Option<Vec<&str>>) -> Option<Flags> {
    finish(match runs.and_then(|runs| json_runs(&runs)) {
        Some(flags) => flags,
        None => json_whole(text)?,
    })
}

/// Each run of members read as the object `{` + run + `}`.
fn json_runs(runs: &[&str]) -> Option<Flags> {
    pieces::read_each(runs, |run| {
        let mut object = String::with_capacity(run.len() + 2);
        object.push('{');
        object.push_str(run);
        object.push('}');
        json_whole(&object)
    })
}

fn json_whole(text: &str) -> Option<Flags> {
    let mut de = serde_json::Deserializer::from_str(text);
    let top: Top<NoDup, String> = serde::Deserialize::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(top.0)
}

/// The checks `validate_raw` makes across flags and per flag; any failure defers to it.
pub(super) fn finish(mut flags: Flags) -> Option<Flags> {
    let mut seen = HashSet::with_capacity(flags.len());
    for (key, def) in &mut flags {
        let key: &str = key;
        if key.is_empty() || !seen.insert(key) {
            return None;
        }
        super::check_flag(def).ok()?;
    }
    drop(seen);
    Some(flags)
}

/// How on/off values and metadata are read: as the two-stage path reads them per format.
trait ReadValue: Copy {
    fn read<'de, D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error>;
}

#[derive(Clone, Copy)]
struct Plain;

impl ReadValue for Plain {
    fn read<'de, D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

#[derive(Clone, Copy)]
struct NoDup;

impl ReadValue for NoDup {
    fn read<'de, D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        NoDupValue.deserialize(d)
    }
}

struct Val<R>(R);

impl<'de, R: ReadValue> DeserializeSeed<'de> for Val<R> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.0.read(d)
    }
}

/// A top-level key as the two-stage path reads it (a `Spanned<String>` for YAML).
trait TopKey: for<'de> serde::Deserialize<'de> {
    fn into_key(self) -> String;
}

impl TopKey for String {
    fn into_key(self) -> String {
        self
    }
}

impl TopKey for serde_saphyr::Spanned<String> {
    fn into_key(self) -> String {
        self.value
    }
}

/// The error every refusal carries: it is discarded, the two-stage path explains.
fn refuse<E: de::Error>() -> E {
    E::custom("not on the fast path")
}

struct Top<R, K>(Flags, PhantomData<(R, K)>);

impl<'de, R: ReadValue + Default, K: TopKey> serde::Deserialize<'de> for Top<R, K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<R, K>(PhantomData<(R, K)>);
        impl<'de, R: ReadValue + Default, K: TopKey> Visitor<'de> for V<R, K> {
            type Value = Top<R, K>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map from flag key to flag")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(key) = map.next_key::<K>()? {
                    let def = map.next_value_seed(Flag(R::default()))?;
                    out.push((key.into_key(), def));
                }
                Ok(Top(out, PhantomData))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl Default for Plain {
    fn default() -> Self {
        Plain
    }
}

impl Default for NoDup {
    fn default() -> Self {
        NoDup
    }
}

/// One flag's map of fields, read field by field into a [`FlagDef`].
struct Flag<R>(R);

impl<'de, R: ReadValue> DeserializeSeed<'de> for Flag<R> {
    type Value = FlagDef;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<FlagDef, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, R: ReadValue> Visitor<'de> for Flag<R> {
    type Value = FlagDef;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of flag fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FlagDef, A::Error> {
        let mut def = FlagDef::default();
        // Bit per field: a repeated field defers to the two-stage path.
        let mut seen = 0u8;
        while let Some(field) = map.next_key::<String>()? {
            let bit = match field.as_str() {
                "enabled" => {
                    def.enabled = map.next_value_seed(Scalar::<bool>(PhantomData))?;
                    1
                }
                "rollout" => {
                    def.rollout = map.next_value_seed(Scalar::<i64>(PhantomData))?;
                    2
                }
                "users" => {
                    def.users = map.next_value_seed(Strings)?;
                    4
                }
                "tenants" => {
                    def.tenants = map.next_value_seed(Strings)?;
                    8
                }
                "envs" => {
                    def.envs = map.next_value_seed(Strings)?;
                    16
                }
                "value" => {
                    def.value = map.next_value_seed(OnOff(self.0))?;
                    32
                }
                "description" => {
                    def.description = map.next_value_seed(Scalar::<Option<String>>(PhantomData))?;
                    64
                }
                "metadata" => {
                    def.metadata = match map.next_value_seed(Val(self.0))? {
                        Value::Null => None,
                        Value::Object(m) => Some(m),
                        _ => return Err(refuse()),
                    };
                    128
                }
                _ => return Err(refuse()),
            };
            if seen & bit != 0 {
                return Err(refuse());
            }
            seen |= bit;
        }
        Ok(def)
    }
}

/// `value: {on, off}`, both present, nothing else.
struct OnOff<R>(R);

impl<'de, R: ReadValue> DeserializeSeed<'de> for OnOff<R> {
    type Value = FlagValue;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<FlagValue, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, R: ReadValue> Visitor<'de> for OnOff<R> {
    type Value = FlagValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("{on, off}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FlagValue, A::Error> {
        let (mut on, mut off) = (None, None);
        while let Some(field) = map.next_key::<String>()? {
            let slot = match field.as_str() {
                "on" => &mut on,
                "off" => &mut off,
                _ => return Err(refuse()),
            };
            if slot.is_some() {
                return Err(refuse());
            }
            *slot = Some(map.next_value_seed(Val(self.0))?);
        }
        match (on, off) {
            (Some(on), Some(off)) => Ok(FlagValue { on, off }),
            _ => Err(refuse()),
        }
    }
}

/// A list of strings, each read as the value tree would (a number is not a string).
struct Strings;

impl<'de> DeserializeSeed<'de> for Strings {
    type Value = Vec<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strings {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(s) = seq.next_element_seed(Scalar::<String>(PhantomData))? {
            out.push(s);
        }
        Ok(out)
    }
}

/// A scalar read through `deserialize_any`, accepting only the JSON types the value tree would
/// turn into `T`: `true`/`false` for a bool, an integer in range for i64, a string for a
/// string, and also null for an optional string.
struct Scalar<T>(PhantomData<T>);

impl<'de, T> DeserializeSeed<'de> for Scalar<T>
where
    Scalar<T>: Visitor<'de, Value = T>,
{
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for Scalar<bool> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean")
    }
    fn visit_bool<E>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
}

impl Visitor<'_> for Scalar<i64> {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_i64<E>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| refuse())
    }
}

impl Visitor<'_> for Scalar<String> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

impl Visitor<'_> for Scalar<Option<String>> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or null")
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<String>, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Option<String>, E> {
        Ok(Some(v))
    }
    fn visit_unit<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, two_stage};

    /// The fast pass either defers or gives exactly what the two stages give.
    fn same(text: &str, format: Format) -> bool {
        let fast = match format {
            Format::Json => super::json(text),
            Format::Yaml => super::yaml(text),
        };
        let slow = two_stage("t", text, Some(format)).map(|d| d.flags);
        match fast {
            Some(flags) => {
                assert_eq!(Ok(flags), slow.map_err(|_| ()), "{text}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn good_documents_take_the_fast_pass_and_match() {
        for yaml in [
            "a: {enabled: true, rollout: 150, users: [x, \"y\"], tenants: [], envs: [prod]}\n",
            "a:\n  value: {on: 2.5, off: 1.0}\n  description: d\n  metadata: {team: t, n: 2, b: true}\nb: {}\n",
            "a: {value: {on: {k: [1, 2]}, off: {k: []}}, description: ~, metadata: ~}\n",
            "a: {rollout: -5, value: {on: \"x\", off: 'y'}}\nb: &x {enabled: true}\nc: *x\n",
            "{}\n",
        ] {
            assert!(same(yaml, Format::Yaml), "deferred: {yaml}");
        }
        for json in [
            r#"{"a": {"enabled": true, "rollout": 150, "users": ["x"], "envs": ["p"]}}"#,
            r#"{"a": {"value": {"on": 1.0, "off": 2}, "metadata": {"m": "v"}}, "b": {}}"#,
            r#"{"a": {"value": {"on": {"k": {"z": 1, "a": 2}}, "off": {}}, "description": null}}"#,
            "{}",
        ] {
            assert!(same(json, Format::Json), "deferred: {json}");
        }
    }

    /// Read in pieces of at least `min` bytes on up to 4 threads: deferring is allowed, a
    /// different answer is not.
    fn same_in_pieces(text: &str, min: usize) -> Option<usize> {
        let pieces = super::pieces::yaml(text, 4, min);
        assert_eq!(pieces.concat(), text, "the pieces are the document");
        let n = pieces.len();
        let fast = super::yaml_in(pieces)?;
        let slow = two_stage("t", text, Some(Format::Yaml)).map(|d| d.flags);
        assert_eq!(Ok(fast), slow.map_err(|_| ()), "{text}");
        Some(n)
    }

    #[test]
    fn a_document_read_in_pieces_is_the_document() {
        let mut doc = String::from("%YAML 1.2\n---\n# flags\n");
        for i in 0..200 {
            doc.push_str(&format!(
                "flag-{i:03}:\n  enabled: true\n  rollout: {}\n  description: >\n    folded\n    text: {i}\n\n  users: [a, 'b: c']\n  value: {{on: \"x\\ny\", off: z}}\n  metadata:\n    k: |\n      block\n      k2: v\n",
                i % 101
            ));
            if i % 7 == 0 {
                doc.push_str(
                    "# a comment\nz.x_-1:\n  enabled: false\n"
                        .replace("z.", &format!("z{i}."))
                        .as_str(),
                );
            }
        }
        assert!(
            same(&doc, Format::Yaml),
            "whole, the document takes the fast pass"
        );
        assert_eq!(same_in_pieces(&doc, 1000), Some(4));
        assert_eq!(
            super::pieces::yaml(&doc, 4, doc.len()).len(),
            1,
            "small documents are read whole"
        );
    }

    #[test]
    fn a_json_document_read_in_pieces_is_the_document() {
        // With `trap`, each flag's list breaks onto a line indented like a member, so cuts
        // land inside lists too; those runs do not read and the whole document decides.
        let doc = |trap: &str| {
            let mut doc = String::from("{\n");
            for i in 0..300 {
                doc.push_str(&format!(
                    "  \"f{i}\": {{\"rollout\": {}, \"users\": [\"u\",{trap} \"v\"], \"value\": {{\"on\": \"x\\n  \\\"y\", \"off\": \"z\"}}, \"metadata\": {{\"k\": {i}}}}},\n",
                    i % 101
                ));
            }
            doc + "  \"last\": {}\n}\n"
        };
        for (doc, traps) in [(doc(""), false), (doc("\n "), true)] {
            let slow = two_stage("t", &doc, Some(Format::Json)).unwrap().flags;
            for n in [2, 3, 8, 64, 600] {
                let runs = super::pieces::json(&doc, n, 1).unwrap();
                assert!(runs.len() > 1);
                assert_eq!(super::json_runs(&runs).is_some(), !traps, "{n} pieces");
                assert_eq!(super::json_in(&doc, Some(runs)), Some(slow.clone()), "{n}");
            }
        }
        // What does not read whole does not read in pieces either.
        let good = doc("");
        let bad = good.replace("\"f7\": {\"rollout\": 7,", "\"f7\": {\"rollout\": 7,,");
        let dup = good.replace("\"f250\"", "\"f3\"");
        for doc in [bad, dup] {
            assert_eq!(super::json_in(&doc, super::pieces::json(&doc, 8, 1)), None);
        }
    }

    #[test]
    fn a_cut_inside_an_open_construct_defers() {
        // Each document has a line that looks like a top-level key but is inside something
        // that started before it; whatever the cut, the answer is the two stages' or none.
        let filler = |p: &str| -> String {
            (0..20)
                .map(|i| format!("{p}{i}:\n  enabled: true\n"))
                .collect()
        };
        for inner in [
            "a: {description: \"x\nb: y\", enabled: true}\n",
            "a: {users: [x,\nb: y]}\n",
            "a:\n  description: 'multi\nb: line'\n",
        ] {
            let doc = format!("{}{inner}{}", filler("p"), filler("q"));
            for min in [1, 50, 200, 400] {
                same_in_pieces(&doc, min);
            }
            // The cut exactly at the line that looks like a key.
            let cut = doc.find("\nb: ").unwrap() + 1;
            let (left, right) = doc.split_at(cut);
            assert_eq!(super::yaml_in(vec![left, right]), None, "{doc}");
        }
        let alias = format!("a: &x {{enabled: true}}\n{}b: *x\n", filler("p"));
        assert!(same(&alias, Format::Yaml), "whole, the alias resolves");
        assert_eq!(
            same_in_pieces(&alias, 1),
            None,
            "an alias across pieces defers"
        );
    }

    #[test]
    fn anything_doubtful_defers_to_the_two_stages() {
        for yaml in [
            "a: {enabled: yes}\n",
            "a: {rollout: 5.0}\n",
            "a: {rollout: 99999999999999999999}\n",
            "a: {users: [1]}\n",
            "a: {users: ~}\n",
            "a: {value: [1, 2]}\n",
            "a: {value: {on: 1}}\n",
            "a: {value: {on: 1, off: x}}\n",
            "a: {description: 5}\n",
            "a: {metadata: {k: [1]}}\n",
            "a: {metadata: 5}\n",
            "a: {nope: 1}\n",
            "a: 5\n",
            "a: ~\n",
            "\"\": {}\n",
            "a: {}\na: {}\n",
            "a: {rollout: 1, rollout: 2}\n",
            "- a\n",
        ] {
            assert!(!same(yaml, Format::Yaml), "took the fast pass: {yaml}");
        }
        for json in [
            r#"{"a": {"rollout": 1, "rollout": 2}}"#,
            r#"{"a": {"value": {"on": {"k": 1, "k": 2}, "off": {}}}}"#,
            r#"{"a": {"metadata": {"k": 1, "k": 2}}}"#,
            r#"{"a": {}, "a": {}}"#,
            r#"{"a": {"rollout": 1e2}}"#,
            r#"{"a": {"users": null}}"#,
            r#"{"a": {}} x"#,
            "[]",
        ] {
            assert!(!same(json, Format::Json), "took the fast pass: {json}");
        }
    }
}
