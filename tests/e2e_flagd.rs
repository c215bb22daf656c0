//! The flagd evaluation protocol end to end: the relay binary's flagd listener called with the
//! generated tonic clients (v1 and v2), raw gRPC frames and Connect JSON, against OFREP's
//! answers from the same relay.

mod support;

use std::time::Duration;

use flagrelay::flagd::proto::{v1, v2};
use prost_types::value::Kind;
use prost_types::{Struct, Value as PValue};
use serde_json::{Value, json};
use support::flagd::{channel, frame, raw_grpc_status, with_key};
use support::relay::{Options, Relay, client, wait_ready, write_atomic};
use tonic::Code;

const FLAGS: &str = "
bool-on: {enabled: true, rollout: 100, description: a switch, metadata: {team: web, tier: 2}}
str-flag: {enabled: true, rollout: 100, value: {on: blue, off: red}}
int-flag: {enabled: true, rollout: 100, value: {on: 42, off: 0}}
float-flag: {enabled: true, rollout: 100, value: {on: 1.5, off: 0.5}}
obj-flag: {enabled: true, rollout: 100, value: {on: {a: 1, b: [x]}, off: {}}}
staging-only: {enabled: true, envs: [staging], rollout: 100}
half: {enabled: true, rollout: 50}
off-flag: {enabled: false}
";

fn start(extra: &str) -> Relay {
    start_with(extra, "")
}

fn start_with(extra: &str, top: &str) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flags.yaml"), FLAGS).unwrap();
    let config = format!(
        "pollingInterval: 100
rolloutSalt: pepper
retrievers:
  - {{kind: file, path: \"{{{{dir}}}}/flags.yaml\"}}
authorizedKeys:
  evaluation:
    - eval-plain
    - {{key: eval-staging, env: staging}}
flagd: {{host: 127.0.0.1, port: 0{extra}}}
{top}
"
    );
    Relay::start_in(
        dir,
        Options {
            config: &config,
            ..Options::default()
        },
    )
}

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
    let info: Value = client()
        .get(open.url("/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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

/// Protobuf bytes of a `ResolveBooleanRequest` whose context is a Struct nested `depth` deep
/// (`{"k": {"k": ...}}`), written outer to inner without recursion.
fn nested_request(depth: usize) -> Vec<u8> {
    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn vlen(n: usize) -> usize {
        let mut v = Vec::new();
        varint(n, &mut v);
        v.len()
    }
    // Sizes of each level's Struct, from the innermost (empty) out.
    let mut sizes = vec![0usize];
    let mut levels = Vec::new();
    for _ in 0..depth {
        let inner = *sizes.last().unwrap();
        let value = 1 + vlen(inner) + inner;
        let entry = 4 + vlen(value) + value;
        levels.push((entry, value, inner));
        sizes.push(1 + vlen(entry) + entry);
    }
    let mut out = vec![0x0a, 7];
    out.extend_from_slice(b"bool-on");
    out.push(0x12);
    varint(*sizes.last().unwrap(), &mut out);
    for &(entry, value, inner) in levels.iter().rev() {
        out.push(0x0a);
        varint(entry, &mut out);
        out.extend_from_slice(&[0x0a, 1, b'k', 0x12]);
        varint(value, &mut out);
        out.push(0x2a);
        varint(inner, &mut out);
    }
    out
}

#[tokio::test]
async fn bad_input_gets_an_error_status_and_harms_no_other_call() {
    let relay = start("");
    wait_ready(&relay).await;
    let path = "/flagd.evaluation.v2.Service/ResolveBoolean";
    let ok = || async {
        let mut c = v2::service_client::ServiceClient::new(channel(&relay).await);
        let r = c
            .resolve_boolean(with_key(
                v2::ResolveBooleanRequest {
                    flag_key: "bool-on".into(),
                    context: None,
                },
                "eval-plain",
            ))
            .await
            .unwrap();
        assert_eq!(r.into_inner().value, Some(true));
    };
    ok().await;
    // Garbage inside a well-formed frame; a frame whose length lies; a compressed flag with
    // no compression agreed.
    for body in [
        frame(b"\xff\xff\xff\xff garbage"),
        vec![0, 0, 0, 0, 200, 1, 2, 3],
        {
            let mut f = frame(b"\x0a\x01x");
            f[0] = 1;
            f
        },
    ] {
        let status = raw_grpc_status(&relay, path, body, "eval-plain").await;
        assert!(
            matches!(status.as_deref(), Some(s) if s != "0"),
            "{status:?}"
        );
        ok().await;
    }
    // A context nested 10,000 deep.
    let status = raw_grpc_status(&relay, path, frame(&nested_request(10_000)), "eval-plain").await;
    assert!(
        matches!(status.as_deref(), Some(s) if s != "0"),
        "{status:?}"
    );
    ok().await;
    // A 10 MB message: over maxRequestBodyBytes; tonic answers OUT_OF_RANGE (11).
    let mut big = vec![0x0a, 7];
    big.extend_from_slice(b"bool-on");
    big.push(0x12);
    let filler = 10 * 1024 * 1024;
    let mut len = Vec::new();
    let mut n = filler;
    while n >= 0x80 {
        len.push((n as u8) | 0x80);
        n >>= 7;
    }
    len.push(n as u8);
    big.extend_from_slice(&len);
    big.resize(big.len() + filler, 0);
    let status = raw_grpc_status(&relay, path, frame(&big), "eval-plain").await;
    assert_eq!(status.as_deref(), Some("11"));
    ok().await;
    // Plain garbage on the TCP connection.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(support::flagd::addr(&relay))
            .await
            .unwrap();
        s.write_all(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x05\x09\xff\xff\xff\xff\xff garbage",
        )
        .await
        .unwrap();
        let mut buf = [0u8; 256];
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    }
    ok().await;
    // Connect: a context attribute nested 10,000 deep is skipped unread (as over OFREP); a
    // body that is not JSON is INVALID_ARGUMENT.
    let post = |body: String| {
        client()
            .post(format!("http://{}{path}", support::flagd::addr(&relay)))
            .header("content-type", "application/json")
            .header("x-api-key", "eval-plain")
            .body(body)
            .send()
    };
    let deep = "{\"flagKey\":\"bool-on\",\"context\":{\"deep\":".to_owned()
        + &"{\"a\":".repeat(10_000)
        + "1"
        + &"}".repeat(10_002);
    let r = post(deep).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["value"], true);
    let r = post("{nope".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_argument");
    ok().await;
}

#[tokio::test]
async fn connect_protocol_unary_stream_and_metrics() {
    let relay = start("");
    wait_ready(&relay).await;
    let base = format!("http://{}", support::flagd::addr(&relay));
    let call = |method: &str, body: Value| {
        client()
            .post(format!("{base}/flagd.evaluation.v1.Service/{method}"))
            .header("content-type", "application/json")
            .header("x-api-key", "eval-plain")
            .json(&body)
            .send()
    };
    let r = call(
        "ResolveInt",
        json!({"flagKey": "int-flag", "context": {"targetingKey": "u"}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"value": "42", "reason": "STATIC", "variant": "on", "metadata": {}})
    );
    let r = call("ResolveBoolean", json!({"flagKey": "nope"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
    let v: Value = call("ResolveAll", json!({"context": {}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["flags"]["float-flag"]["doubleValue"], 1.5);
    assert_eq!(
        v["flags"]["obj-flag"]["objectValue"],
        json!({"a": 1, "b": ["x"]})
    );
    assert_eq!(v["flags"]["bool-on"]["boolValue"], true);

    // The server stream: enveloped JSON, provider_ready first.
    let mut res = client()
        .post(format!("{base}/flagd.evaluation.v1.Service/EventStream"))
        .header("content-type", "application/connect+json")
        .header("x-api-key", "eval-plain")
        .body(vec![0, 0, 0, 0, 2, b'{', b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let chunk = tokio::time::timeout(Duration::from_secs(10), res.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(chunk[0], 0);
    let msg: Value = serde_json::from_slice(&chunk[5..]).unwrap();
    assert_eq!(msg["type"], "provider_ready");
    drop(res);

    let metrics = client()
        .get(relay.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("flagrelay_flagd_requests_total{service=\"flagd.evaluation.v1.Service\",method=\"ResolveInt\",protocol=\"connect\",code=\"OK\"} 1"), "{metrics}");
    assert!(
        metrics.contains("method=\"ResolveBoolean\",protocol=\"connect\",code=\"NOT_FOUND\"} 1")
    );
    assert!(metrics.contains("flagrelay_flagd_request_duration_seconds_count{service=\"flagd.evaluation.v1.Service\",method=\"ResolveAll\",protocol=\"connect\"} 1"));
}
