//! OFREP request bodies: arbitrary bytes to `parse_context`, held to serde alone (the
//! common-shape reader only skips work: a body it takes must come out as serde reads it), then
//! the subject mapping for an anonymous caller, an unbound key and a key bound to an
//! environment, with and without a default environment, then a bulk answer over the example
//! flag set.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use flagrelay::http::auth::Caller;
use flagrelay::http::ofrep::{
    ErrorCode, EvalSettings, parse_context, parse_context_by_serde, render_bulk,
};
use flagrelay::parse::{Format, parse_document};
use flagrelay::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let doc = parse_document(
            "config/flags.yaml",
            include_bytes!("../../config/flags.yaml"),
            Some(Format::Yaml),
        )
        .expect("the example flag set parses");
        Snapshot::build(doc.flags.into_iter().collect::<BTreeMap<_, _>>(), None)
    })
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse_context(data);
    match (&parsed, parse_context_by_serde(data)) {
        (Ok(fast), Ok(slow)) => assert_eq!(fast, &slow, "the reader and serde disagree"),
        (Err(fast), Err(slow)) => assert_eq!(
            (fast.code, &fast.details),
            (slow.code, &slow.details),
            "the reader and serde refuse differently"
        ),
        (fast, slow) => panic!("the reader and serde disagree: {fast:?} against {slow:?}"),
    }
    let ctx = match parsed {
        Ok(ctx) => ctx,
        Err(e) => {
            assert!(!e.details.is_empty());
            // A body any JSON parser accepts as an object (or null) is never "not JSON".
            if e.code == ErrorCode::ParseError
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(data)
            {
                assert!(
                    !(v.is_object() || v.is_null()),
                    "valid JSON object answered PARSE_ERROR: {}",
                    e.details
                );
            }
            return;
        }
    };
    let callers = [
        Caller::Anonymous,
        Caller::Evaluation { env: None },
        Caller::Evaluation {
            env: Some(Arc::from("bound-env")),
        },
    ];
    for default_env in [None, Some(Arc::from("default-env"))] {
        let settings = EvalSettings {
            default_env,
            max_body_bytes: 1 << 20,
            change_stream: false,
        };
        for caller in &callers {
            let subject = ctx.subject(caller, &settings);
            if caller.bound_env().is_some() {
                assert_eq!(
                    subject.env, "bound-env",
                    "a bound environment was overridden"
                );
            }
            let body = render_bulk(Some(snapshot()), &subject, settings.change_stream);
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&body) {
                panic!("bulk answer is not JSON ({e}): {body}");
            }
        }
    }
});
