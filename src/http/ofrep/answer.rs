//! Writing OFREP success answers from the snapshot's pre-serialized pieces: one flag's, and the
//! bulk answer's thousand with its ETag.

use super::event_streams;
use crate::evaluator::{Outcome, Reason, Subject};
use crate::snapshot::{Entry, Snapshot, short_hash};

/// Bulk answer body: every flag evaluated, in key order.
pub fn render_bulk(
    snapshot: Option<&Snapshot>,
    subject: &Subject<'_>,
    change_stream: bool,
) -> String {
    bulk_answer(snapshot, subject, change_stream, |_, _| {}).body
}

/// A bulk answer and its strong ETag (quoted).
pub struct BulkAnswer {
    pub body: String,
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
    let mut out = String::with_capacity(per_flag + 256);
    out.push_str("{\"flags\":[");
    for (i, (entry, &outcome)) in entries.iter().zip(&outcomes).enumerate() {
        seen(i, outcome.reason);
        validator.push(outcome.code());
        // The head's comma separates this flag from the one before.
        success_pieces(entry, outcome, i == 0, |piece| out.push_str(piece));
    }
    out.push_str("],\"metadata\":{");
    if let (Some(s), Some(lm)) = (snapshot, &last_modified) {
        out.push_str("\"flagSetEtag\":\"");
        out.push_str(&s.etag);
        out.push_str("\",\"lastModified\":");
        out.push_str(lm);
    }
    if let Some(v) = &version {
        out.push_str(",\"flagSetVersion\":");
        out.push_str(v);
    }
    out.push('}');
    if let Some(streams) = event_streams {
        out.push_str(",\"eventStreams\":");
        out.push_str(streams);
    }
    out.push('}');
    BulkAnswer {
        body: out,
        etag: format!("\"{}\"", short_hash(&validator)),
    }
}

/// A success answer, `{"key":…,"metadata":…,"reason":…,"variant":…,"value":…}`, in pieces
/// given to `put`: the flag's head (kept whole in the set's text, with a leading comma for the
/// flags after a bulk answer's first, dropped when `first`), the outcome's fields and, when
/// those cannot carry the value, the value and `}`. Most flags are then two copies: a bulk
/// answer writes a thousand of them per request, and it was seven copies each (each a call to
/// `memcpy`) with the value before the reason. Inlined into its two callers, `put` costs
/// nothing; an array of pieces returned instead went through memory on every flag.
#[inline(always)]
fn success_pieces<'e>(
    entry: &'e Entry,
    outcome: Outcome,
    first: bool,
    mut put: impl FnMut(&'e str),
) {
    let fields = outcome_fields(outcome);
    put(&entry.answer_head()[usize::from(first)..]);
    if entry.plain_bool() {
        put(fields.with_value);
    } else {
        put(fields.before_value);
        put(if outcome.on {
            entry.on_json()
        } else {
            entry.off_json()
        });
        put("}");
    }
}

/// A single evaluation's answer in a buffer of exactly its size: a body whose length is its
/// capacity becomes the response's `Bytes` as it is, where a larger buffer costs one more
/// allocation. Sized and written from the same pieces, so the size cannot drift.
pub(super) fn single_answer(entry: &Entry, outcome: Outcome) -> String {
    let mut len = 0;
    success_pieces(entry, outcome, true, |p| len += p.len());
    let mut out = String::with_capacity(len);
    success_pieces(entry, outcome, true, |p| out.push_str(p));
    debug_assert_eq!(out.len(), out.capacity());
    out
}

/// `,"reason":"…","variant":"…","value":` of an outcome, and the same with `true}` or
/// `false}` after it for flags whose values are `true` and `false`.
struct OutcomeFields {
    before_value: &'static str,
    with_value: &'static str,
}

fn outcome_fields(outcome: Outcome) -> &'static OutcomeFields {
    macro_rules! fields {
        ($reason:literal, $variant:literal, $value:literal) => {
            OutcomeFields {
                before_value: concat!(
                    ",\"reason\":\"",
                    $reason,
                    "\",\"variant\":\"",
                    $variant,
                    "\",\"value\":"
                ),
                with_value: concat!(
                    ",\"reason\":\"",
                    $reason,
                    "\",\"variant\":\"",
                    $variant,
                    "\",\"value\":",
                    $value,
                    "}"
                ),
            }
        };
        ($reason:literal) => {
            &[
                fields!($reason, "off", "false"),
                fields!($reason, "on", "true"),
            ]
        };
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
                // Long heads, and multi-byte text in heads.
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
        // Byte for byte the single answers, joined by commas.
        let singles: Vec<String> = snap
            .entries()
            .iter()
            .map(|e| single_answer(e, e.evaluate(&subject)))
            .collect();
        let joined = format!("{{\"flags\":[{}],\"metadata\":", singles.join(","));
        assert!(bulk.starts_with(&joined), "{bulk}");
        let bulk: serde_json::Value = serde_json::from_str(&bulk).unwrap();
        let flags = bulk["flags"].as_array().unwrap();
        assert_eq!(flags.len(), snap.entries().len());
        for (entry, in_bulk) in snap.entries().iter().zip(flags) {
            let outcome = entry.evaluate(&subject);
            let single: serde_json::Value =
                serde_json::from_str(&single_answer(entry, outcome)).unwrap();
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
