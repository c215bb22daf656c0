//! End to end through the real binary: what a Prometheus scrape shows after traffic, request
//! ids, request log lines, and the served OpenAPI document.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::relay::{
    Options, Relay, admin_refresh, client, eventually, get_json, wait_ready, write_atomic,
};

const EVAL_KEY: &str = "e2e-obs-evaluation-key-5d41402a";
const ADMIN_KEY: &str = "e2e-obs-admin-key-7d793037a076";

const FLAGS: &str = "
on-flag: {enabled: true, rollout: 100}
disabled-flag: {enabled: false, rollout: 100}
allow-list: {enabled: true, users: [alice], rollout: 0}
";

fn start() -> Relay {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flags.yaml"), FLAGS).unwrap();
    let config = format!(
        "logLevel: debug\npollingInterval: 0\nretrievers:\n  - {{kind: file, path: \"{{{{dir}}}}/flags.yaml\"}}\n\
         authorizedKeys:\n  evaluation: [\"{EVAL_KEY}\"]\n  admin: [\"{ADMIN_KEY}\"]\n"
    );
    Relay::start_in(
        dir,
        Options {
            config: &config,
            ..Options::default()
        },
    )
}

async fn eval(relay: &Relay, key: &str, user: &str) -> u16 {
    client()
        .post(relay.url(&format!("/ofrep/v1/evaluate/flags/{key}")))
        .header("x-api-key", EVAL_KEY)
        .json(&json!({"context": {"targetingKey": user}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Scrape `/metrics`: every sample as `name{labels}` → value, after checking the text's shape.
async fn scrape(relay: &Relay) -> BTreeMap<String, f64> {
    let res = client().get(relay.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    support::exposition::parse(&res.text().await.unwrap())
}

fn get(s: &BTreeMap<String, f64>, series: &str) -> f64 {
    *s.get(series).unwrap_or_else(|| {
        let near: Vec<_> = s
            .keys()
            .filter(|k| k.starts_with(series.split('{').next().unwrap()))
            .collect();
        panic!("no series {series}; have {near:#?}")
    })
}

fn requests(route: &str, method: &str, status: u16) -> String {
    format!(
        "flagrelay_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
    )
}

fn evaluations(flag: &str, reason: &str) -> String {
    format!("flagrelay_evaluations_total{{flag=\"{flag}\",reason=\"{reason}\"}}")
}

const SINGLE: &str = "/ofrep/v1/evaluate/flags/{*key}";
const BULK: &str = "/ofrep/v1/evaluate/flags";

#[tokio::test]
async fn a_scrape_after_traffic_shows_the_numbers() {
    let relay = start();
    wait_ready(&relay).await;
    let c = client();

    // Single evaluations: 3 STATIC, 1 DISABLED, 1 TARGETING_MATCH, 1 DEFAULT; 2 unknown keys.
    for user in ["u1", "u2", "u3"] {
        assert_eq!(eval(&relay, "on-flag", user).await, 200);
    }
    assert_eq!(eval(&relay, "disabled-flag", "u1").await, 200);
    assert_eq!(eval(&relay, "allow-list", "alice").await, 200);
    assert_eq!(eval(&relay, "allow-list", "bob").await, 200);
    assert_eq!(eval(&relay, "no-such-flag", "u1").await, 404);
    assert_eq!(eval(&relay, "another/missing", "u1").await, 404);
    // No credential: 401, still counted by route.
    let r = c
        .post(relay.url("/ofrep/v1/evaluate/flags/on-flag"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // One bulk evaluation (3 flags).
    let r = c
        .post(relay.url(BULK))
        .header("x-api-key", EVAL_KEY)
        .json(&json!({"context": {"targetingKey": "alice"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Paths no route matches share one label.
    for p in ["/nope", "/wp-admin/setup.php", "/ofrep/v2/x"] {
        assert_eq!(c.get(relay.url(p)).send().await.unwrap().status(), 404);
    }
    // A flag-set change through an admin refresh, then a failing refresh.
    write_atomic(
        &relay.path("flags.yaml"),
        &format!("{FLAGS}new-flag: {{enabled: true, rollout: 100}}\n"),
    );
    assert_eq!(admin_refresh(&relay, ADMIN_KEY, "").await.0, 200);
    write_atomic(
        &relay.path("flags.yaml"),
        "on-flag: {enabled: [not a bool]}\n",
    );
    assert_eq!(admin_refresh(&relay, ADMIN_KEY, "").await.0, 502);
    // An open event stream.
    let stream = c
        .get(relay.url("/ofrep/v1/sse"))
        .header("x-api-key", EVAL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    let s = scrape(&relay).await;
    assert_eq!(get(&s, &requests(SINGLE, "POST", 200)), 6.0);
    assert_eq!(get(&s, &requests(SINGLE, "POST", 404)), 2.0);
    assert_eq!(get(&s, &requests(SINGLE, "POST", 401)), 1.0);
    assert_eq!(get(&s, &requests(BULK, "POST", 200)), 1.0);
    assert_eq!(get(&s, &requests("__unmatched__", "GET", 404)), 3.0);
    assert_eq!(
        get(&s, &requests("/admin/v1/retriever/refresh", "POST", 200)),
        1.0
    );
    assert_eq!(
        get(&s, &requests("/admin/v1/retriever/refresh", "POST", 502)),
        1.0
    );
    assert!(
        !s.keys()
            .any(|k| k.contains("no-such-flag") || k.contains("wp-admin")),
        "raw paths and unknown keys never become labels"
    );
    let latency = |suffix: &str| {
        get(
            &s,
            &format!("flagrelay_http_request_duration_seconds_{suffix}{{route=\"{SINGLE}\"}}"),
        )
    };
    assert_eq!(latency("count"), 9.0);
    assert!(latency("sum") > 0.0);
    assert_eq!(
        get(
            &s,
            &format!(
                "flagrelay_http_request_duration_seconds_bucket{{route=\"{SINGLE}\",le=\"+Inf\"}}"
            )
        ),
        9.0
    );

    // Evaluations by flag and reason: single ones plus the bulk one (alice: on-flag STATIC,
    // disabled-flag DISABLED, allow-list TARGETING_MATCH).
    assert_eq!(get(&s, &evaluations("on-flag", "STATIC")), 4.0);
    assert_eq!(get(&s, &evaluations("disabled-flag", "DISABLED")), 2.0);
    assert_eq!(get(&s, &evaluations("allow-list", "TARGETING_MATCH")), 2.0);
    assert_eq!(get(&s, &evaluations("allow-list", "DEFAULT")), 1.0);
    assert_eq!(get(&s, &evaluations("__unknown__", "ERROR")), 2.0);
    assert_eq!(get(&s, "flagrelay_bulk_evaluations_total"), 1.0);
    assert_eq!(get(&s, "flagrelay_bulk_evaluated_flags_total"), 3.0);

    // Refreshes: the first load and the admin one succeeded, the last one failed.
    assert_eq!(
        get(&s, "flagrelay_refreshes_total{outcome=\"success\"}"),
        2.0
    );
    assert_eq!(
        get(&s, "flagrelay_refreshes_total{outcome=\"failure\"}"),
        1.0
    );
    let source = relay.path("flags.yaml").display().to_string();
    let by_retriever = |outcome: &str| {
        get(
            &s,
            &format!(
                "flagrelay_retriever_refreshes_total{{kind=\"file\",source=\"{source}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    assert_eq!(by_retriever("success"), 2.0);
    assert_eq!(by_retriever("failure"), 1.0);
    assert_eq!(get(&s, "flagrelay_refresh_duration_seconds_count"), 3.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = get(&s, "flagrelay_last_successful_refresh_timestamp_seconds");
    assert!(last > now - 60.0 && last <= now + 1.0, "{last} vs {now}");
    // The first load and the change; the failed refresh kept serving the 4 flags.
    assert_eq!(get(&s, "flagrelay_flag_set_changes_total"), 2.0);
    assert_eq!(get(&s, "flagrelay_flags_loaded"), 4.0);
    assert_eq!(get(&s, "flagrelay_sse_clients"), 1.0);

    // Build info agrees with /info.
    let info: Value = c
        .get(relay.url("/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let build = format!(
        "flagrelay_build_info{{version=\"{}\",fips140=\"{}\"}}",
        env!("CARGO_PKG_VERSION"),
        info["fips140"].as_bool().unwrap()
    );
    assert_eq!(get(&s, &build), 1.0);

    // The stream closes: the gauge follows.
    drop(stream);
    eventually(Duration::from_secs(5), "sse gauge back to 0", || {
        let relay = &relay;
        async move { (get(&scrape(relay).await, "flagrelay_sse_clients") == 0.0).then_some(()) }
    })
    .await;
    // Counters never go backwards for flags that stay; the flag set is unchanged here.
    assert_eq!(eval(&relay, "on-flag", "u9").await, 200);
    let s = scrape(&relay).await;
    assert_eq!(get(&s, &evaluations("on-flag", "STATIC")), 5.0);
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated_and_logged_without_credentials() {
    let relay = start();
    wait_ready(&relay).await;
    let c = client();
    let body_marker = "body-marker-never-logged-8c1f";

    // Taken from the request when sane, echoed.
    let r = c
        .post(relay.url("/ofrep/v1/evaluate/flags/on-flag"))
        .header("x-api-key", EVAL_KEY)
        .header("x-request-id", "e2e-given-id.42")
        .json(&json!({"context": {"targetingKey": body_marker}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "e2e-given-id.42");

    // Generated otherwise (also for paths no route matches), unique.
    let mut ids = std::collections::BTreeSet::new();
    for path in ["/health", "/health", "/no/such/path"] {
        let r = c.get(relay.url(path)).send().await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 3);
    let r = c
        .get(relay.url("/health"))
        .header("x-request-id", "not sane; has spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "not sane; has spaces");

    // Rejected credentials, in a header and in an event stream's query.
    let wrong = "wrong-credential-never-logged-3b9a";
    let r = c
        .post(relay.url("/ofrep/v1/evaluate/flags/on-flag"))
        .header("authorization", format!("Bearer {wrong}"))
        .header("x-request-id", "e2e-unauthorized")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-request-id"], "e2e-unauthorized");
    let r = c
        .get(relay.url(&format!("/ofrep/v1/sse?apiKey={EVAL_KEY}")))
        .header("x-request-id", "e2e-sse-query-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(r);
    assert_eq!(admin_refresh(&relay, ADMIN_KEY, "").await.0, 200);

    // One debug line per request, with the id, the route template and the status.
    let line = relay
        .wait_for_log(
            |l| l.contains("\"request_id\":\"e2e-given-id.42\""),
            Duration::from_secs(5),
        )
        .expect("a log line for the request");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "debug");
    assert_eq!(v["msg"], "request");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["route"], SINGLE);
    assert_eq!(v["path"], "/ofrep/v1/evaluate/flags/on-flag");
    assert_eq!(v["status"], 200);
    assert!(v["duration_ms"].as_f64().unwrap() >= 0.0);
    // The 401 at warn.
    let line = relay
        .wait_for_log(
            |l| l.contains("\"request_id\":\"e2e-unauthorized\""),
            Duration::from_secs(5),
        )
        .expect("a log line for the 401");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (v["level"].as_str(), v["status"].as_u64()),
        (Some("warn"), Some(401))
    );
    // The stream's line: the path without its query.
    let line = relay
        .wait_for_log(
            |l| l.contains("\"request_id\":\"e2e-sse-query-key\""),
            Duration::from_secs(5),
        )
        .expect("a log line for the stream");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["path"], "/ofrep/v1/sse");
    // Unmatched paths log under the one label, with their generated id.
    assert!(
        relay
            .wait_for_log(
                |l| l.contains("\"route\":\"__unmatched__\"")
                    && l.contains("\"path\":\"/no/such/path\""),
                Duration::from_secs(5)
            )
            .is_some()
    );

    // No credential, and no body, anywhere in the output.
    let all = relay.all_output();
    for secret in [EVAL_KEY, ADMIN_KEY, wrong, body_marker] {
        assert!(!all.contains(secret), "{secret} was logged:\n{all}");
    }
    // Exactly one line per request (the id appears once).
    let n = relay
        .logs()
        .iter()
        .filter(|l| l.contains("e2e-given-id.42"))
        .count();
    assert_eq!(n, 1);
}

/// Every operation of the served document answers from a handler on the live relay: not the
/// JSON 404 of unknown paths, not 405, and counted under its own route, not `__unmatched__`.
#[tokio::test]
async fn openapi_document_is_served_and_every_operation_answers() {
    let relay = start();
    wait_ready(&relay).await;
    let r = client()
        .get(relay.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("ApiKey") && schemes.contains_key("Bearer"));

    let fallback = get_json(&relay, "/no/such/endpoint").await;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let url = relay.url(&path.replace("{key}", "flag-on"));
            let method: reqwest::Method = method.to_ascii_uppercase().parse().unwrap();
            let res = client()
                .request(method.clone(), &url)
                .header("x-api-key", ADMIN_KEY)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            assert_ne!(status, 405, "{method} {path}");
            if status == 404 {
                let body: Value = res.json().await.unwrap_or_default();
                assert_ne!(body, fallback, "{method} {path}: answered by the fallback");
            }
        }
    }
    assert!(operations >= 12, "{operations}");
    let m = scrape(&relay).await;
    let unmatched: f64 = m
        .iter()
        .filter(|(k, _)| k.contains("route=\"__unmatched__\"") && k.contains("requests_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(unmatched, 1.0, "only /no/such/endpoint is unmatched");
}
