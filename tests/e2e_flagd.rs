//! The flagd evaluation protocol end to end: the relay binary's flagd listener called with the
//! generated tonic clients (v1 and v2), raw gRPC frames and Connect JSON, against OFREP's
//! answers from the same relay.

mod support;

use std::time::Duration;

use flagrelay::flagd::proto::{v1, v2};
use prost_types::value::Kind;
use prost_types::{Struct, Value as PValue};
use serde_json::{Value, json};
use support::flagd::{FLAGS, channel, start, start_with, with_key};
use support::relay::{Relay, client, get_json, wait_ready, write_atomic};
use tonic::Code;

fn ctx(pairs: &[(&str, &str)]) -> Option<Struct> {
    Some(Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| {
                let v = PValue {
                    kind: Some(Kind::StringValue((*v).into())),
                };
                ((*k).to_owned(), v)
            })
            .collect(),
    })
}

async fn ofrep(relay: &Relay, key: &str, context: Value, api_key: &str) -> Value {
    client()
        .post(relay.url(&format!("/ofrep/v1/evaluate/flags/{key}")))
        .header("x-api-key", api_key)
        .json(&json!({ "context": context }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Every number as a float (a protobuf Struct has no integers).
fn norm(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.into_iter().map(norm).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, norm(v))).collect()),
        other => other,
    }
}

fn struct_json(s: &Struct) -> Value {
    fn val(v: &PValue) -> Value {
        match v.kind.as_ref() {
            Some(Kind::BoolValue(b)) => json!(b),
            Some(Kind::StringValue(s)) => json!(s),
            Some(Kind::NumberValue(n)) => json!(n),
            Some(Kind::StructValue(s)) => struct_json(s),
            Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(val).collect()),
            _ => Value::Null,
        }
    }
    Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), val(v))).collect())
}

#[tokio::test]
async fn every_type_answers_as_ofrep_does_over_v1_and_v2() {
    let relay = start("");
    wait_ready(&relay).await;
    let ch = channel(&relay).await;
    let mut c2 = v2::service_client::ServiceClient::new(ch.clone());
    let mut c1 = v1::service_client::ServiceClient::new(ch);
    let k = "eval-plain";
    let req = |key: &str| (key.to_owned(), ctx(&[("targetingKey", "user-7")]));

    let (key, context) = req("bool-on");
    let b = c2
        .resolve_boolean(with_key(
            v2::ResolveBooleanRequest {
                flag_key: key,
                context,
            },
            k,
        ))
        .await
        .unwrap()
        .into_inner();
    let o = ofrep(&relay, "bool-on", json!({"targetingKey": "user-7"}), k).await;
    assert_eq!(b.value, Some(true));
    assert_eq!(json!(b.reason), o["reason"]);
    assert_eq!(json!(b.variant), o["variant"]);
    assert_eq!(
        norm(struct_json(b.metadata.as_ref().unwrap())),
        norm(o["metadata"].clone())
    );
    assert_eq!(
        o["metadata"],
        json!({"description": "a switch", "team": "web", "tier": 2})
    );

    let (key, context) = req("str-flag");
    let s = c2
        .resolve_string(with_key(
            v2::ResolveStringRequest {
                flag_key: key,
                context,
            },
            k,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.value.as_deref(), Some("blue"));
    assert_eq!(s.reason, "STATIC");

    let (key, context) = req("int-flag");
    let i = c2
        .resolve_int(with_key(
            v2::ResolveIntRequest {
                flag_key: key,
                context,
            },
            k,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(i.value, Some(42));
    // The Node provider asks for every number through ResolveFloat.
    let (key, context) = req("int-flag");
    let f = c2
        .resolve_float(with_key(
            v2::ResolveFloatRequest {
                flag_key: key,
                context,
            },
            k,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.value, Some(42.0));
    let (key, context) = req("float-flag");
    let f = c2
        .resolve_float(with_key(
            v2::ResolveFloatRequest {
                flag_key: key,
                context,
            },
            k,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.value, Some(1.5));

    let (key, context) = req("obj-flag");
    let ob = c2
        .resolve_object(with_key(
            v2::ResolveObjectRequest {
                flag_key: key,
                context,
            },
            k,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        struct_json(ob.value.as_ref().unwrap()),
        json!({"a": 1.0, "b": ["x"]})
    );

    // DISABLED is an answer (the off value), as over OFREP.
    let (key, context) = req("off-flag");
    let d = c2
        .resolve_boolean(with_key(
            v2::ResolveBooleanRequest {
                flag_key: key,
                context,
            },
            k,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (d.value, d.reason.as_str(), d.variant.as_deref()),
        (Some(false), "DISABLED", Some("off"))
    );

    // Errors carry flagd's status codes.
    let (key, context) = req("no-such-flag");
    let e = c2
        .resolve_boolean(with_key(
            v2::ResolveBooleanRequest {
                flag_key: key,
                context,
            },
            k,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().starts_with("Flag not found"), "{}", e.message());
    let (key, context) = req("str-flag");
    let e = c2
        .resolve_boolean(with_key(
            v2::ResolveBooleanRequest {
                flag_key: key,
                context,
            },
            k,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let (key, context) = req("float-flag");
    let e = c2
        .resolve_int(with_key(
            v2::ResolveIntRequest {
                flag_key: key,
                context,
            },
            k,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let mut bad = ctx(&[]).unwrap();
    bad.fields.insert(
        "targetingKey".into(),
        PValue {
            kind: Some(Kind::NumberValue(5.0)),
        },
    );
    let e = c2
        .resolve_boolean(with_key(
            v2::ResolveBooleanRequest {
                flag_key: "bool-on".into(),
                context: Some(bad),
            },
            k,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unknown, "{e:?}");
    assert!(
        e.message().contains("context.targetingKey"),
        "{}",
        e.message()
    );

    // v1: the same answers, and ResolveAll with every flag.
    let (key, context) = req("int-flag");
    let i1 = c1
        .resolve_int(with_key(
            v1::ResolveIntRequest {
                flag_key: key,
                context,
            },
            k,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((i1.value, i1.variant.as_str()), (42, "on"));
    let all = c1
        .resolve_all(with_key(
            v1::ResolveAllRequest {
                context: ctx(&[("targetingKey", "user-7")]),
            },
            k,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.flags.len(), 8);
    for (key, flag) in &all.flags {
        let o = ofrep(&relay, key, json!({"targetingKey": "user-7"}), k).await;
        assert_eq!(json!(flag.reason), o["reason"], "{key}");
        assert_eq!(json!(flag.variant), o["variant"], "{key}");
        let value = match flag.value.as_ref().unwrap() {
            v1::any_flag::Value::BoolValue(b) => json!(b),
            v1::any_flag::Value::StringValue(s) => json!(s),
            v1::any_flag::Value::DoubleValue(d) => json!(d),
            v1::any_flag::Value::ObjectValue(s) => struct_json(s),
        };
        assert_eq!(norm(value), norm(o["value"].clone()), "{key}");
    }
}

#[tokio::test]
async fn credentials_and_environment_binding() {
    let relay = start("");
    wait_ready(&relay).await;
    let mut c = v2::service_client::ServiceClient::new(channel(&relay).await);
    let req = |env: &str| v2::ResolveBooleanRequest {
        flag_key: "staging-only".into(),
        context: ctx(&[("env", env)]),
    };
    let e = c
        .resolve_boolean(tonic::Request::new(req("staging")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = c
        .resolve_boolean(with_key(req("staging"), "wrong"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    // A key bound to staging: the context cannot claim production.
    let r = c
        .resolve_boolean(with_key(req("production"), "eval-staging"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.value, Some(true));
    // An unbound key: the context's environment counts.
    let r = c
        .resolve_boolean(with_key(req("production"), "eval-plain"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.value, Some(false));
    let mut bearer = tonic::Request::new(req("production"));
    bearer
        .metadata_mut()
        .insert("authorization", "Bearer eval-staging".parse().unwrap());
    assert_eq!(
        c.resolve_boolean(bearer).await.unwrap().into_inner().value,
        Some(true)
    );
    // Streams need a key too.
    let e = c
        .event_stream(tonic::Request::new(v2::EventStreamRequest {}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    // The opt-out, bound to an environment the context cannot override; logged at start.
    let open = start(", allowUnauthenticated: true, environment: staging");
    wait_ready(&open).await;
    assert!(
        open.logs()
            .iter()
            .any(|l| l.contains("allowUnauthenticated"))
    );
    let mut c = v2::service_client::ServiceClient::new(channel(&open).await);
    let r = c
        .resolve_boolean(tonic::Request::new(req("production")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.value, Some(true));
    let e = c
        .resolve_boolean(with_key(req("x"), "wrong"))
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::Unauthenticated,
        "a wrong key is refused even so"
    );
    let info = get_json(&open, "/info").await;
    assert_eq!(info["flagd"]["allowUnauthenticated"], true);
    assert!(
        info["flagd"]["addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}

async fn next(
    s: &mut tonic::Streaming<v2::EventStreamResponse>,
) -> Result<Option<v2::EventStreamResponse>, tonic::Status> {
    tokio::time::timeout(Duration::from_secs(15), s.message())
        .await
        .expect("an event in time")
}

#[tokio::test]
async fn event_stream_ready_change_limit_and_clean_close() {
    let relay = start_with("", "server: {maxSseClients: 2}");
    wait_ready(&relay).await;
    let mut c = v2::service_client::ServiceClient::new(channel(&relay).await);
    let mut stream = c
        .event_stream(with_key(v2::EventStreamRequest {}, "eval-plain"))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await.unwrap().unwrap();
    assert_eq!(first.r#type, "provider_ready");
    // The limit is shared with SSE: one SSE stream plus this one fill it.
    let sse = client()
        .get(relay.url("/ofrep/v1/sse"))
        .header("x-api-key", "eval-plain")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let e = c
        .event_stream(with_key(v2::EventStreamRequest {}, "eval-plain"))
        .await;
    let e = match e {
        Err(e) => e,
        Ok(r) => r.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    drop(sse);

    let flags = relay.path("flags.yaml");
    let text = FLAGS.replace("on: blue", "on: green") + "new-flag: {enabled: true}\n";
    write_atomic(&flags, &text);
    let ev = next(&mut stream).await.unwrap().unwrap();
    assert_eq!(ev.r#type, "configuration_change");
    let data = struct_json(ev.data.as_ref().unwrap());
    assert_eq!(
        data,
        json!({"flags": {"str-flag": {"type": "update"}, "new-flag": {"type": "write"}}})
    );

    // Shutdown ends the stream cleanly (status OK), and the relay exits.
    relay.signal("TERM");
    let end = next(&mut stream).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[test]
fn bad_flagd_settings_stop_the_relay_with_exit_code_2_naming_the_key() {
    for (config, key) in [
        (
            "flagd: {port: 0, environment: staging}\n",
            "flagd.environment",
        ),
        ("flagd: {port: nope}\n", "flagd.port"),
    ] {
        let mut relay = Relay::start_with(support::relay::Options {
            config,
            wait_listening: false,
            ..support::relay::Options::default()
        });
        let status = relay
            .wait_exit(Duration::from_secs(10))
            .expect("relay exits");
        assert_eq!(status.code(), Some(2), "{config}");
        assert!(relay.stderr_text().contains(key), "{}", relay.stderr_text());
    }
}
