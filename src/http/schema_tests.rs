//! The hand-tuned writers' real output parses into the declared schema types (which deny
//! unknown fields): what the document says of those bodies is what they are.
use super::*;
use crate::evaluator::Subject;
use crate::http::ofrep::{OfrepError, bulk_answer};
use crate::snapshot::Snapshot;
use axum::response::IntoResponse;

const FLAGS: &[u8] = b"
a: {enabled: true, rollout: 50, value: {on: {x: [1, 2]}, off: {x: []}}}
b: {enabled: true, users: [u1], description: the b flag, metadata: {team: x, n: 3, ok: true}}
c: {enabled: false, value: {on: 1.5, off: 2}}
d/e: {enabled: true, tenants: [t], envs: [prod]}
";

fn snapshot(src: &[u8], salt: Option<&str>) -> Snapshot {
    let defs = crate::parse::parse_document("t", src, None).unwrap().flags;
    Snapshot::build(defs.into_iter().collect(), salt)
}

#[test]
fn bulk_answers_are_bulk_evaluation_successes() {
    let snap = snapshot(FLAGS, None);
    for user in ["u1", "u2", "u3", ""] {
        let s = Subject {
            user,
            tenant: "t",
            env: "prod",
        };
        for stream in [false, true] {
            for snap in [Some(&snap), None] {
                let a = bulk_answer(snap, &s, stream, |_, _| {});
                let parsed: BulkEvaluationSuccess =
                    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{e}: {}", a.body));
                assert_eq!(parsed.flags.len(), snap.map_or(0, |s| s.len()));
                assert_eq!(parsed.event_streams.is_some(), stream);
            }
        }
    }
}

#[test]
fn event_streams_are_event_streams() {
    for (ticket, origin) in [
        (None, None),
        (Some("1.k.AA.x"), Some("https://h:1")),
        (Some("1.k.AA.x"), None),
    ] {
        let text = super::super::event_streams::render(ticket, origin, 30);
        let parsed: Vec<EventStream> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].endpoint.is_some(), parsed[0].url.is_none());
    }
}

#[tokio::test]
async fn ofrep_errors_are_evaluation_failures() {
    for key in [Some("k/1".to_owned()), None] {
        for code in [
            ErrorCode::ParseError,
            ErrorCode::InvalidContext,
            ErrorCode::FlagNotFound,
            ErrorCode::General,
        ] {
            let res = OfrepError {
                key: key.clone(),
                code,
                details: "why \"quoted\"".into(),
            }
            .into_response();
            let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
            let parsed: EvaluationFailure = serde_json::from_slice(&body).unwrap();
            assert_eq!(parsed.key, key);
            assert_eq!(parsed.error_code, code);
            if key.is_none() {
                let _: BulkEvaluationFailure = serde_json::from_slice(&body).unwrap();
            }
        }
    }
}

#[test]
fn sync_bodies_are_sync_flags_and_changes() {
    for salt in [None, Some("pepper")] {
        let snap = snapshot(FLAGS, salt);
        let parsed: SyncFlags = serde_json::from_str(snap.sync_json()).unwrap();
        assert_eq!(parsed.flags.len(), 4);
        assert_eq!(parsed.salt.as_deref(), salt);
    }
    let before = snapshot(FLAGS, None);
    let after = snapshot(
        b"a: {enabled: false}\nz: {enabled: true, metadata: {v: 2}}\nc: {enabled: false, value: {on: 1.5, off: 2}}\n",
        None,
    );
    let text = super::super::stream::change_json(&before, &after);
    let parsed: SyncChange = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(parsed.deleted.len(), 2);
    assert_eq!(parsed.added.len(), 1);
    assert_eq!(parsed.updated.len(), 1);
}
