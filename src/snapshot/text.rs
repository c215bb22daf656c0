//! The text of a flag set, written once per build into one buffer: the sync API body (whose
//! `flags` object is the canonical JSON the etag hashes), followed by every flag's OFREP
//! answer head (`,{"key":…,"metadata":{…}`). Each entry keeps offsets into it instead of
//! strings of its own: the definition, the key, the on and off values, the head and the
//! metadata inside it are all slices of this buffer.
//! One allocation per flag set instead of half a dozen per flag is both less memory and less
//! for a refresh to fragment.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::parse::FlagDef;

/// A flag set's text and its packed allow lists (see [`crate::evaluator::Rules::compile_into`]),
/// shared by the set and its entries.
#[derive(Debug)]
pub(super) struct SetText {
    pub(super) json: String,
    pub(super) lists: Box<[u8]>,
}

/// Where one flag's texts are in the buffer. Offsets are u32: a flag set past 4 GiB of JSON is
/// not something a relay serves (see [`offset`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Spans {
    /// The quoted key starts here; the definition starts after it and a `:`.
    key_at: u32,
    def_at: u32,
    def_end: u32,
    /// `on` runs from here to `on_end`; `off` from after `,"off":` to `off_end`. In the
    /// definition for `true`/`false` values; otherwise in a copy right after the answer head,
    /// where a bulk answer reads them with the head instead of missing the cache for them.
    on_at: u32,
    on_end: u32,
    off_end: u32,
    /// The answer head runs from `head_at` to `meta_end`; the metadata object is its end.
    head_at: u32,
    meta_at: u32,
    meta_end: u32,
    /// The values are `true` and `false`: the static piece after the head carries them.
    plain_bool: bool,
    /// The key itself, for the few keys JSON escapes (0, 0 for the rest, whose key is the
    /// quoted key's inside).
    raw_at: u32,
    raw_end: u32,
}

impl Spans {
    pub(super) fn key<'a>(&self, text: &'a str) -> &'a str {
        if self.raw_end == 0 {
            &text[self.key_at as usize + 1..self.def_at as usize - 2]
        } else {
            &text[self.raw_at as usize..self.raw_end as usize]
        }
    }
    pub(super) fn def_json<'a>(&self, text: &'a str) -> &'a str {
        &text[self.def_at as usize..self.def_end as usize]
    }
    pub(super) fn on_json<'a>(&self, text: &'a str) -> &'a str {
        &text[self.on_at as usize..self.on_end as usize]
    }
    pub(super) fn off_json<'a>(&self, text: &'a str) -> &'a str {
        &text[self.on_end as usize + OFF.len()..self.off_end as usize]
    }
    pub(super) fn metadata_json<'a>(&self, text: &'a str) -> &'a str {
        &text[self.meta_at as usize..self.meta_end as usize]
    }
    pub(super) fn answer_head<'a>(&self, text: &'a str) -> &'a str {
        &text[self.head_at as usize..self.meta_end as usize]
    }
    pub(super) fn plain_bool(&self) -> bool {
        self.plain_bool
    }
}

/// How an answer head starts, and what comes between the key and the metadata.
const HEAD_START: &[u8] = b",{\"key\":";
const HEAD_METADATA: &[u8] = b",\"metadata\":";

const OFF: &[u8] = b",\"off\":";

/// Writes the buffer flag by flag (in key order), then finishes it.
pub(super) struct Writer {
    body: Vec<u8>,
    /// The answer heads (and the few escaped keys), appended to the body at the end (their
    /// offsets fixed up then).
    side: Vec<u8>,
    etag_at: usize,
    flags_at: usize,
    count: usize,
}

/// What a finished buffer is: the text, the etag, where `flags` starts and the body ends.
pub(super) struct Finished {
    pub(super) text: Arc<SetText>,
    pub(super) etag: String,
    pub(super) flags_at: usize,
    pub(super) body_end: usize,
}

impl Writer {
    pub(super) fn new(salt: Option<&str>, flags: usize) -> Writer {
        // About 130 bytes of canonical JSON per generated flag; growth is only a copy.
        let mut body = Vec::with_capacity(64 + flags * 144);
        body.extend_from_slice(b"{\"etag\":\"");
        let etag_at = body.len();
        body.extend_from_slice(&[b'0'; 32]);
        body.extend_from_slice(b"\",");
        if let Some(salt) = salt {
            body.extend_from_slice(b"\"salt\":");
            json(&mut body, salt);
            body.push(b',');
        }
        body.extend_from_slice(b"\"flags\":");
        let flags_at = body.len();
        body.push(b'{');
        let side = Vec::with_capacity(flags * 48);
        Writer {
            body,
            side,
            etag_at,
            flags_at,
            count: 0,
        }
    }

    /// Write one flag: `"key":{definition}` exactly as `serde_json` serializes a
    /// `BTreeMap<String, FlagDef>` entry (a unit test holds this to it), and its metadata.
    pub(super) fn push(&mut self, key: &str, def: &FlagDef) -> Spans {
        let b = &mut self.body;
        if self.count > 0 {
            b.push(b',');
        }
        self.count += 1;
        let key_at = b.len();
        json(b, key);
        // Escaped: the key as it is goes with the metadata, placed by `finish` like it.
        let (raw_at, raw_end) = if b.len() - key_at == key.len() + 2 {
            (0, 0)
        } else {
            let at = self.side.len();
            self.side.extend_from_slice(key.as_bytes());
            (offset(at), offset(self.side.len()))
        };
        let b = &mut self.body;
        b.push(b':');
        let def_at = b.len();
        b.extend_from_slice(b"{\"enabled\":");
        json(b, &def.enabled);
        b.extend_from_slice(b",\"rollout\":");
        json(b, &def.rollout);
        b.extend_from_slice(b",\"users\":");
        json(b, &def.users);
        b.extend_from_slice(b",\"tenants\":");
        json(b, &def.tenants);
        b.extend_from_slice(b",\"envs\":");
        json(b, &def.envs);
        b.extend_from_slice(b",\"value\":{\"on\":");
        let on_at = b.len();
        json(b, &def.value.on);
        let on_end = b.len();
        b.extend_from_slice(OFF);
        json(b, &def.value.off);
        let off_end = b.len();
        b.push(b'}');
        if let Some(d) = &def.description {
            b.extend_from_slice(b",\"description\":");
            json(b, d);
        }
        if let Some(m) = &def.metadata {
            b.extend_from_slice(b",\"metadata\":");
            json(b, m);
        }
        b.push(b'}');
        let def_end = b.len();
        // The head of this flag's OFREP answer, whole: a bulk answer writes it with one copy.
        let key_json = &self.body[key_at..def_at - 1];
        let side = &mut self.side;
        let head_at = side.len();
        side.extend_from_slice(HEAD_START);
        side.extend_from_slice(key_json);
        side.extend_from_slice(HEAD_METADATA);
        let meta_at = side.len();
        if def.description.is_none() && def.metadata.is_none() {
            side.extend_from_slice(b"{}");
        } else {
            write_metadata(side, def);
        }
        let meta_end = side.len();
        let plain_bool = def.value.on == Value::Bool(true) && def.value.off == Value::Bool(false);
        let (on_at, on_end, off_end) = if plain_bool {
            (on_at, on_end, off_end)
        } else {
            let at = side.len();
            side.extend_from_slice(&self.body[on_at..off_end]);
            (at, at + (on_end - on_at), side.len())
        };
        Spans {
            key_at: offset(key_at),
            def_at: offset(def_at),
            def_end: offset(def_end),
            // Relative to the side buffer until `finish` places it (values unless plain).
            on_at: offset(on_at),
            on_end: offset(on_end),
            off_end: offset(off_end),
            head_at: offset(head_at),
            meta_at: offset(meta_at),
            meta_end: offset(meta_end),
            plain_bool,
            raw_at,
            raw_end,
        }
    }

    /// Close the body, hash and patch in the etag, append the side buffer, and place `spans`'
    /// offsets into it after the body. `lists` are the set's packed allow lists.
    pub(super) fn finish(mut self, spans: &mut [Spans], lists: Vec<u8>) -> Finished {
        self.body.push(b'}');
        let etag = super::short_hash(&self.body[self.flags_at..]);
        self.body[self.etag_at..self.etag_at + 32].copy_from_slice(etag.as_bytes());
        self.body.push(b'}');
        let body_end = self.body.len();
        let place = |at: &mut u32| *at = offset(body_end + *at as usize);
        for s in spans {
            if !s.plain_bool {
                place(&mut s.on_at);
                place(&mut s.on_end);
                place(&mut s.off_end);
            }
            place(&mut s.head_at);
            place(&mut s.meta_at);
            place(&mut s.meta_end);
            if s.raw_end != 0 {
                place(&mut s.raw_at);
                place(&mut s.raw_end);
            }
        }
        self.body.extend_from_slice(&self.side);
        drop(self.side);
        let mut text =
            String::from_utf8(self.body).expect("serde_json writes UTF-8 between UTF-8 literals");
        text.shrink_to_fit();
        Finished {
            text: Arc::new(SetText {
                json: text,
                lists: lists.into(),
            }),
            etag,
            flags_at: self.flags_at,
            body_end,
        }
    }
}

fn json(out: &mut Vec<u8>, v: &(impl Serialize + ?Sized)) {
    // Strings, integers, finite floats and maps with string keys: serialization cannot fail.
    serde_json::to_writer(&mut *out, v).expect("a flag definition serializes");
}

/// The OFREP metadata object: `description` plus the flag's `metadata` (a `metadata` key named
/// `description` wins, in the description's place).
fn write_metadata(out: &mut Vec<u8>, def: &FlagDef) {
    let mut meta = serde_json::Map::new();
    if let Some(d) = &def.description {
        meta.insert("description".into(), Value::String(d.clone()));
    }
    if let Some(m) = &def.metadata {
        for (k, v) in m {
            meta.insert(k.clone(), v.clone());
        }
    }
    json(out, &meta);
}

/// An offset into the buffer.
fn offset(at: usize) -> u32 {
    u32::try_from(at).expect("a flag set under 4 GiB of JSON")
}
