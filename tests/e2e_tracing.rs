//! OpenTelemetry traces through the binary, against an OTLP/HTTP receiver on loopback that
//! decodes the protobuf export: the server span of an OFREP request, parented by its
//! `traceparent` and free of credentials and context values; the refresh and retriever spans;
//! the standard `OTEL_*` variables; a parent-based ratio sampler.

use support::http_source;
mod support;

use std::time::Duration;

use http_source::{Reply, Server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::relay::{Options, Relay, client, eventually, wait_ready, write_atomic};
use support::tokens::hex;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const KEY: &str = "eval-key-that-must-not-be-exported";
const CONTEXT_VALUE: &str = "context-value-that-must-not-be-exported";

/// Every span the receiver got so far, with the resource's service name.
fn spans(receiver: &Server) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    for r in receiver.requests() {
        assert_eq!(r.path(), "/v1/traces");
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        let export = ExportTraceServiceRequest::decode(&r.body[..]).expect("OTLP protobuf");
        for rs in export.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    out.push((service.clone(), span));
                }
            }
        }
    }
    out
}

fn attr(span: &Span, key: &str) -> Option<String> {
    let v = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?;
    Some(match v.value.as_ref()? {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

fn start(receiver: &Server, extra_config: &str, env: &[(&str, &str)]) -> Relay {
    let config = format!(
        "pollingInterval: 200
retrievers:
  - {{kind: file, path: \"{{{{dir}}}}/flags.yaml\"}}
authorizedKeys: {{evaluation: [{KEY}]}}
{extra_config}"
    );
    let endpoint = receiver.url("http", "");
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    vars.extend_from_slice(env);
    Relay::start_over(
        "a: {enabled: true}\n",
        Options {
            config: &config,
            env: &vars,
            ..Options::default()
        },
    )
}

async fn evaluate(relay: &Relay, traceparent: Option<&str>) -> u16 {
    let mut req = client()
        .post(relay.url("/ofrep/v1/evaluate/flags/a"))
        .header("x-api-key", KEY)
        .body(format!(
            r#"{{"context":{{"targetingKey":"{CONTEXT_VALUE}","email":"{CONTEXT_VALUE}"}}}}"#
        ));
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn request_and_refresh_spans_reach_the_collector() {
    let receiver =
        Server::start(|_| Reply::ok("", &[("content-type", "application/x-protobuf")])).await;
    let relay = start(&receiver, "", &[("OTEL_SERVICE_NAME", "relay-under-test")]);
    wait_ready(&relay).await;
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    assert_eq!(evaluate(&relay, Some(&traceparent)).await, 200);
    write_atomic(&relay.path("flags.yaml"), "a: {enabled: false}\n");

    let all = eventually(
        Duration::from_secs(20),
        "the request and refresh spans",
        || async {
            let all = spans(&receiver);
            let has_request = all.iter().any(|(_, s)| hex(&s.trace_id) == TRACE_ID);
            let has_fetch = all.iter().any(|(_, s)| s.name == "fetch file");
            (has_request && has_fetch).then_some(all)
        },
    )
    .await;

    let (service, server) = all
        .iter()
        .find(|(_, s)| hex(&s.trace_id) == TRACE_ID)
        .unwrap();
    assert_eq!(service, "relay-under-test");
    assert_eq!(server.name, "POST /ofrep/v1/evaluate/flags/{*key}");
    assert_eq!(
        hex(&server.parent_span_id),
        PARENT_ID,
        "parented by traceparent"
    );
    assert_eq!(server.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(
        attr(server, "http.route").as_deref(),
        Some("/ofrep/v1/evaluate/flags/{*key}")
    );
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    for (_, s) in &all {
        let text = format!("{s:?}");
        assert!(!text.contains(KEY), "a credential in span {}", s.name);
        assert!(
            !text.contains(CONTEXT_VALUE),
            "a context value in span {}",
            s.name
        );
    }

    // Each retriever fetch is a child of its refresh.
    let (_, fetch) = all.iter().find(|(_, s)| s.name == "fetch file").unwrap();
    let (_, refresh) = all
        .iter()
        .find(|(_, s)| s.name == "refresh" && s.span_id == fetch.parent_span_id)
        .expect("the fetch's parent is a refresh span");
    assert_eq!(refresh.trace_id, fetch.trace_id);
    assert!(
        attr(fetch, "retriever.source")
            .unwrap()
            .ends_with("flags.yaml")
    );
}

#[tokio::test]
async fn a_ratio_of_zero_still_follows_a_sampled_parent() {
    ratio_zero_case("tracing: {otlp: {sampleRatio: 0}}\n", &[]).await;
}

#[tokio::test]
async fn the_standard_sampler_variables_apply() {
    ratio_zero_case(
        "",
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
    )
    .await;
}

async fn ratio_zero_case(config: &str, env: &[(&str, &str)]) {
    let receiver = Server::start(|_| Reply::ok("", &[])).await;
    let relay = start(&receiver, config, env);
    wait_ready(&relay).await;
    for _ in 0..5 {
        assert_eq!(evaluate(&relay, None).await, 200);
    }
    let sampled = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    assert_eq!(evaluate(&relay, Some(&sampled)).await, 200);
    let all = eventually(
        Duration::from_secs(20),
        "the sampled request's span",
        || async {
            let all = spans(&receiver);
            all.iter()
                .any(|(_, s)| hex(&s.trace_id) == TRACE_ID)
                .then_some(all)
        },
    )
    .await;
    let requests: Vec<_> = all
        .iter()
        .filter(|(_, s)| s.name.starts_with("POST "))
        .collect();
    assert_eq!(
        requests.len(),
        1,
        "only the request whose parent was sampled"
    );
    assert!(
        all.iter().all(|(_, s)| s.name != "refresh"),
        "no root span sampled at ratio 0"
    );
}

#[test]
fn a_bad_endpoint_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start_in(
        dir,
        Options {
            config: "tracing: {otlp: {endpoint: \"ftp://collector\"}}\n",
            wait_listening: false,
            ..Options::default()
        },
    );
    let status = relay.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(2));
    assert!(relay.all_output().contains("tracing.otlp.endpoint"));
}
