//! The flagd listener's wire handling end to end: bad gRPC input (garbage frames, a context
//! nested 10,000 deep, a 10 MB message, garbage on the connection) answers an error status and
//! harms no other call; the Connect protocol's unary calls, server stream and the metrics.

mod support;

use std::time::Duration;

use flagrelay::flagd::proto::v2;
use serde_json::{Value, json};
use support::flagd::{channel, frame, nested_request, raw_grpc_status, start, with_key};
use support::relay::{client, wait_ready};

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
