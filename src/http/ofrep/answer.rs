//! Writing OFREP success answers from the snapshot's pre-serialized pieces: one flag's, and the
//! bulk answer's thousand with its ETag.

use super::event_streams;
use crate::evaluator::{Outcome, Reason, Subject};
use crate::snapshot::{ANSWER_TAIL_MAX, Entry, Snapshot, short_hash};

/// Bulk answer body: every flag evaluated, in key order.
pub fn render_bulk(
    snapshot: Option<&Snapshot>,
    subject: &Subject<'_>,
    change_stream: bool,
) -> Vec<u8> {
    bulk_answer(snapshot, subject, change_stream, |_, _| {}).body
}

/// A bulk answer and its strong ETag (quoted).
pub struct BulkAnswer {
    /// JSON (UTF-8): bytes because it is written in blocks cut back after each copy.
    pub body: Vec<u8>,
    pub etag: String,
}

/// The bulk answer, telling `seen` each flag's position and reason (for metrics).
///
/// The body is a function of the flag set (its etag, `lastModified` and fleet version: never
/// this process's load time, so replicas answer the same bytes), `change_stream` and each
/// flag's outcome, so the ETag hashes those: about one byte per flag instead of the whole body
/// (130 kB for 1,000 flags, where hashing the body was most of the request's CPU).
pub fn bulk_answer(
    snapshot: Option<&Snapshot>,
    subject: &Subject<'_>,
    change_stream: bool,
    seen: impl FnMut(usize, Reason),
) -> BulkAnswer {
    let streams = change_stream.then(|| event_streams::render(None, None, 120));
    bulk_answer_with(snapshot, subject, streams.as_deref(), seen)
}

/// [`bulk_answer`] with the `eventStreams` array given (rendered), or none.
pub(super) fn bulk_answer_with(
    snapshot: Option<&Snapshot>,
    subject: &Subject<'_>,
    event_streams: Option<&str>,
    mut seen: impl FnMut(usize, Reason),
) -> BulkAnswer {
    let entries = snapshot.map_or(&[][..], |s| s.entries());
    let per_flag = snapshot.map_or(0, Snapshot::bulk_size);
    let last_modified = snapshot.map(|s| s.last_modified.to_string());
    let version = snapshot
        .and_then(|s| s.fleet_version)
        .map(|v| v.to_string());
    // What the ETag covers: the flag set, its lastModified and version, the stream option,
    // every outcome.
    let mut validator = Vec::with_capacity(entries.len() + 64);
    if let (Some(s), Some(lm)) = (snapshot, &last_modified) {
        validator.extend_from_slice(s.etag.as_bytes());
        validator.push(b' ');
        validator.extend_from_slice(lm.as_bytes());
    }
    if let Some(v) = &version {
        validator.push(b'v');
        validator.extend_from_slice(v.as_bytes());
    }
    validator.push(b' ');
    if let Some(streams) = event_streams {
        validator.extend_from_slice(streams.as_bytes());
    }
    validator.push(0);
    // Every outcome first, then the body: the rollout hashes run several flags at a time.
    let outcomes = snapshot.map_or_else(Vec::new, |s| s.evaluate_all(subject));
    let mut out = Vec::with_capacity(per_flag + 256);
    out.extend_from_slice(b"{\"flags\":[");
    for (i, (entry, &outcome)) in entries.iter().zip(&outcomes).enumerate() {
        seen(i, outcome.reason);
        validator.push(outcome.code());
        // The head's comma separates this flag from the one before.
        success_pieces(entry, outcome, i == 0, |piece, len| {
            // A block of constant size is copied whole (a few moves, no call) and cut back;
            // `bulk_size` leaves room for a whole tail block after every flag.
            let at = out.len();
            out.extend_from_slice(piece);
            out.truncate(at + len);
        });
    }
    out.extend_from_slice(b"],\"metadata\":{");
    let mut put = |s: &str| out.extend_from_slice(s.as_bytes());
    if let (Some(s), Some(lm)) = (snapshot, &last_modified) {
        put("\"flagSetEtag\":\"");
        put(&s.etag);
        put("\",\"lastModified\":");
        put(lm);
    }
    if let Some(v) = &version {
        put(",\"flagSetVersion\":");
        put(v);
    }
    put("}");
    if let Some(streams) = event_streams {
        put(",\"eventStreams\":");
        put(streams);
    }
    put("}");
    BulkAnswer {
        body: out,
        etag: format!("\"{}\"", short_hash(&validator)),
    }
}

/// A success answer, `{"key":…,"metadata":…,"reason":…,"variant":…,"value":…}`, in pieces
/// given to `put` as `(bytes, len)`, the piece being the first `len` of `bytes`: the flag's
/// head (kept whole in the set's text, with a leading comma for the flags after a bulk
/// answer's first, dropped when `first`), the outcome's fields and, when those cannot carry
/// the value, the value and `}`. Head and fields come as blocks of constant size (see
/// [`Entry::answer_head_block`]) when they fit one. Most flags are then two copies: a bulk
/// answer writes a thousand of them per request, and it was seven copies each (each a call
/// to `memcpy`) with the value before the reason. Inlined into its two callers, `put` costs
/// nothing; an array of pieces returned instead went through memory on every flag.
#[inline(always)]
fn success_pieces<'e>(
    entry: &'e Entry,
    outcome: Outcome,
    first: bool,
    mut put: impl FnMut(&'e [u8], usize),
) {
    let fields = outcome_fields(outcome);
    let (head, len) = entry.answer_head_block(first);
    put(head, len);
    let mut exact = |s: &'e str| put(s.as_bytes(), s.len());
    if entry.plain_bool() {
        put(&fields.with_value_block, fields.with_value.len());
    } else {
        exact(fields.before_value);
        exact(if outcome.on {
            entry.on_json()
        } else {
            entry.off_json()
        });
        exact("}");
    }
}

/// A single evaluation's answer in a buffer of exactly its size: a body whose length is its
/// capacity becomes the response's `Bytes` as it is, where a larger buffer costs one more
/// allocation. Sized and written from the same pieces, so the size cannot drift.
pub(super) fn single_answer(entry: &Entry, outcome: Outcome) -> Vec<u8> {
    let mut len = 0;
    success_pieces(entry, outcome, true, |_, n| len += n);
    let mut out = Vec::with_capacity(len);
    success_pieces(entry, outcome, true, |p, n| out.extend_from_slice(&p[..n]));
    debug_assert_eq!(out.len(), out.capacity());
    out
}

/// `,"reason":"…","variant":"…","value":` of an outcome, and the same with `true}` or
/// `false}` after it for flags whose values are `true` and `false`.
struct OutcomeFields {
    before_value: &'static str,
    with_value: &'static str,
    /// `with_value` padded with spaces to a block of constant size.
    with_value_block: [u8; ANSWER_TAIL_MAX],
}

const fn block(s: &str) -> [u8; ANSWER_TAIL_MAX] {
    let mut out = [b' '; ANSWER_TAIL_MAX];
    let mut i = 0;
    while i < s.len() {
        out[i] = s.as_bytes()[i];
        i += 1;
    }
    out
}

fn outcome_fields(outcome: Outcome) -> &'static OutcomeFields {
    macro_rules! fields {
        (@before $reason:literal, $variant:literal) => {
            concat!(",\"reason\":\"", $reason, "\",\"variant\":\"", $variant, "\",\"value\":")
        };
        ($reason:literal, $variant:literal, $value:literal) => {
            OutcomeFields {
                before_value: fields!(@before $reason, $variant),
                with_value: concat!(fields!(@before $reason, $variant), $value, "}"),
                with_value_block: block(concat!(fields!(@before $reason, $variant), $value, "}")),
            }
        };
        ($reason:literal) => {{
            const BY_VARIANT: [OutcomeFields; 2] = [
                fields!($reason, "off", "false"),
                fields!($reason, "on", "true"),
            ];
            &BY_VARIANT
        }};
    }
    let by_variant: &'static [OutcomeFields; 2] = match outcome.reason {
        Reason::Disabled => fields!("DISABLED"),
        Reason::TargetingMatch => fields!("TARGETING_MATCH"),
        Reason::Static => fields!("STATIC"),
        Reason::Default => fields!("DEFAULT"),
        Reason::Split => fields!("SPLIT"),
    };
    &by_variant[usize::from(outcome.on)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The static fields say what `Reason::as_str` and the variant say, for every outcome,
    /// carry `true` and `false` as JSON values, and fit the room the snapshot sizes answers by.
    #[test]
    fn outcome_fields_name_the_reason_and_variant() {
        use Reason::*;
        for reason in [Disabled, TargetingMatch, Static, Default, Split] {
            for on in [false, true] {
                let variant = if on { "on" } else { "off" };
                let fields = outcome_fields(Outcome { on, reason });
                let before = format!(
                    ",\"reason\":\"{}\",\"variant\":\"{variant}\",\"value\":",
                    reason.as_str()
                );
                assert_eq!(fields.before_value, before);
                assert_eq!(fields.with_value, format!("{before}{on}}}"));
                assert!(fields.with_value.len() <= crate::snapshot::ANSWER_TAIL_MAX);
            }
        }
    }

    /// Every kind of flag's answer, single or inside a bulk answer, is the JSON it stands for:
    /// the pieces, the head's comma and the static value agree with the entry.
    #[test]
    fn answers_are_the_entries_json() {
        let defs = crate::parse::parse_document(
            "t",
            concat!(
                "a: {enabled: true, rollout: 100}\n",
                "b: {enabled: true, rollout: 0, description: d, metadata: {team: x}}\n",
                "c: {enabled: true, rollout: 100, value: {on: \"x\\\"y\", off: \"z\"}}\n",
                "d: {enabled: true, rollout: 100, value: {on: false, off: true}}\n",
                "\"e\\\"q\": {enabled: false}\n",
                // Heads longer than a block, and multi-byte text where blocks end.
                "f: {enabled: true, rollout: 100, description: \"",
                "0123456789012345678901234567890123456789012345678901234567890123456789",
                "0123456789012345678901234567890123456789012345678901234567890123456789\"}\n",
                "g: {enabled: true, rollout: 0, description: \"éééééééééééééééééééé\", ",
                "metadata: {t: \"日本日本日本日本日本日本日本日本日本日本日本日本\"}}\n",
                "h: {enabled: true, rollout: 0, description: \"ü\"}\n",
            )
            .as_bytes(),
            None,
        )
        .unwrap()
        .flags;
        let snap = Snapshot::build(defs.into_iter().collect(), None);
        let subject = Subject::default();
        let bulk = bulk_answer(Some(&snap), &subject, false, |_, _| {}).body;
        // Byte for byte the single answers, joined: no block left uncut.
        let singles: Vec<Vec<u8>> = snap
            .entries()
            .iter()
            .map(|e| single_answer(e, e.evaluate(&subject)))
            .collect();
        let joined = [
            &b"{\"flags\":["[..],
            &singles.join(&b","[..]),
            b"],\"metadata\":",
        ]
        .concat();
        assert!(
            bulk.starts_with(&joined),
            "{}",
            String::from_utf8_lossy(&bulk)
        );
        assert!(snap.entries().iter().any(|e| e.answer_head().len() > 128));
        let bulk: serde_json::Value =
            serde_json::from_str(std::str::from_utf8(&bulk).unwrap()).unwrap();
        let flags = bulk["flags"].as_array().unwrap();
        assert_eq!(flags.len(), snap.entries().len());
        for (entry, in_bulk) in snap.entries().iter().zip(flags) {
            let outcome = entry.evaluate(&subject);
            let single: serde_json::Value =
                serde_json::from_str(std::str::from_utf8(&single_answer(entry, outcome)).unwrap())
                    .unwrap();
            let value = if outcome.on {
                entry.on_json()
            } else {
                entry.off_json()
            };
            let expected = serde_json::json!({
                "key": entry.key(),
                "value": serde_json::from_str::<serde_json::Value>(value).unwrap(),
                "reason": outcome.reason.as_str(),
                "variant": if outcome.on { "on" } else { "off" },
                "metadata": serde_json::from_str::<serde_json::Value>(entry.metadata_json())
                    .unwrap(),
            });
            assert_eq!(single, expected);
            assert_eq!(in_bulk, &expected);
        }
        assert_eq!(flags[3]["value"], false, "d is on with the value false");
        assert_eq!(flags[1]["metadata"]["team"], "x");
    }

    /// The bulk ETag follows the body although it is not computed from it: equal bodies get
    /// equal tags, and any difference (an outcome, the stream option) a different tag.
    #[test]
    fn bulk_etag_changes_exactly_when_the_body_does() {
        let defs = crate::parse::parse_document(
            "t",
            b"a: {enabled: true, rollout: 50}\nb: {enabled: true, users: [u1]}\nc: {enabled: false}\n",
            None,
        )
        .unwrap()
        .flags;
        let snap = Snapshot::build(defs.into_iter().collect(), None);
        let answer = |user: &str, stream: bool| {
            let s = Subject {
                user,
                tenant: "",
                env: "",
            };
            bulk_answer(Some(&snap), &s, stream, |_, _| {})
        };
        let mut by_body = std::collections::HashMap::new();
        for user in (0..200).map(|i| format!("user-{i}")).chain(["u1".into()]) {
            for stream in [false, true] {
                let a = answer(&user, stream);
                let tag = by_body
                    .entry(a.body.clone())
                    .or_insert_with(|| a.etag.clone());
                assert_eq!(*tag, a.etag, "one body, two tags");
            }
        }
        // Rollout 50 over 200 users gives both outcomes, times u1's match, times two options.
        let tags: std::collections::HashSet<_> = by_body.values().collect();
        assert!(by_body.len() >= 5, "{}", by_body.len());
        assert_eq!(tags.len(), by_body.len(), "two bodies share a tag");
    }
}
