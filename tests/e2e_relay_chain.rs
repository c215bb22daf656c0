//! Two relays chained (`kind: relay`): the downstream serves what the upstream serves, with the
//! upstream's salt, follows its changes through the stream, and rides out its restarts.

mod support;

use std::time::{Duration, Instant};

use flagrelay::evaluator::{Rules, Subject};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use support::relay::{
    Options, Relay, admin_refresh, client, eventually, get_json, wait_ready, write_atomic,
};

const SALT: &str = "chain-salt-7";
const UP_KEY: &str = "upstream-eval-key-0123";
const ADMIN_KEY: &str = "upstream-admin-key-0123";

struct Case {
    key: String,
    flag: Map<String, Value>,
    user: String,
    tenant: String,
    env: String,
}

fn cases() -> Vec<Case> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = std::env::var_os("FLAGRELAY_SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"));
    let text = std::fs::read_to_string(shared.join("vectors/evaluation.json")).unwrap();
    let raw: Vec<Value> = serde_json::from_str(&text).unwrap();
    raw.into_iter()
        .map(|c| {
            let mut flag = c["flag"].as_object().unwrap().clone();
            let key = flag.remove("key").unwrap().as_str().unwrap().to_owned();
            let s = |f: &str| c[f].as_str().unwrap().to_owned();
            Case {
                key,
                flag,
                user: s("user"),
                tenant: s("tenant"),
                env: s("env"),
            }
        })
        .collect()
}

fn flags_doc(cases: &[Case], extra: &[(&str, Value)]) -> String {
    let mut doc = Map::new();
    for c in cases {
        doc.insert(c.key.clone(), Value::Object(c.flag.clone()));
    }
    for (k, v) in extra {
        doc.insert((*k).to_owned(), v.clone());
    }
    Value::Object(doc).to_string()
}

fn start_upstream(flags: &str, port: Option<u16>) -> Relay {
    start_upstream_salted(flags, port, SALT)
}

fn start_upstream_salted(flags: &str, port: Option<u16>, salt: &str) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flags.json"), flags).unwrap();
    let config = format!(
        "rolloutSalt: {salt}\npollingInterval: 600000\n\
         authorizedKeys: {{evaluation: [{UP_KEY}], admin: [{ADMIN_KEY}]}}\n\
         retrievers: [{{kind: file, path: '{{{{dir}}}}/flags.json'}}]\n"
    );
    let port = port.map(|p| p.to_string());
    let args: Vec<&str> = match &port {
        Some(p) => vec!["--port", p],
        None => vec![],
    };
    Relay::start_in(
        dir,
        Options {
            config: &config,
            args: &args,
            ..Options::default()
        },
    )
}

fn start_downstream(upstream: &Relay) -> Relay {
    // Polling every 10 minutes: within the test, only the stream can carry a change.
    let config = format!(
        "pollingInterval: 600000\nauthorizedKeys: {{admin: [{ADMIN_KEY}]}}\n\
         retrievers: [{{kind: relay, url: '{}', apiKey: {UP_KEY}, timeout: 5000}}]\n",
        upstream.url("")
    );
    Relay::start(&config)
}

/// `(value, reason)` of one evaluation, or the status when it was not 200.
async fn eval(c: &reqwest::Client, relay: &Relay, key: &str, ctx: Value) -> Result<Value, u16> {
    let mut req = c
        .post(relay.url(&format!("/ofrep/v1/evaluate/flags/{}", encode(key))))
        .json(&json!({ "context": ctx }));
    req = req.header("x-api-key", UP_KEY);
    let res = req.send().await.map_err(|_| 0u16)?;
    if res.status() != 200 {
        return Err(res.status().as_u16());
    }
    let v: Value = res.json().await.unwrap();
    Ok(json!([v["value"], v["reason"]]))
}

/// A flag key as one path segment (vector keys hold `/`, spaces, non-ASCII).
fn encode(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_relays_answer_alike_follow_changes_and_survive_upstream_restarts() {
    let cases = cases();
    assert_eq!(cases.len(), 2000);
    let upstream = start_upstream(&flags_doc(&cases, &[]), None);
    wait_ready(&upstream).await;
    let downstream = start_downstream(&upstream);
    wait_ready(&downstream).await;

    // The salt came with the set.
    let c = client();
    let sync: Value = c
        .get(downstream.url("/v1/flags"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        sync["salt"], SALT,
        "the downstream serves the upstream's salt"
    );
    assert_eq!(sync["flags"].as_object().unwrap().len(), 2000);

    // Every vector: the downstream answers as the upstream does, and both as the evaluator
    // does with the upstream's salt (which, for some rollouts, differs from no salt at all).
    let answers = futures_util::stream::iter(cases.iter().map(|case| {
        let c = c.clone();
        let (up, down) = (&upstream, &downstream);
        async move {
            let ctx = json!({"targetingKey": case.user, "tenant": case.tenant, "env": case.env});
            let u = eval(&c, up, &case.key, ctx.clone()).await;
            let d = eval(&c, down, &case.key, ctx).await;
            (case, u, d)
        }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    let mut salt_matters = 0;
    for (case, up, down) in &answers {
        let up = up
            .as_ref()
            .unwrap_or_else(|s| panic!("{}: upstream {s}", case.key));
        assert_eq!(Ok(up), down.as_ref(), "flag {}", case.key);
        let doc = json!({ case.key.clone(): case.flag.clone() }).to_string();
        let parsed = flagrelay::parse::parse_document("v", doc.as_bytes(), None).unwrap();
        let subject = Subject {
            user: &case.user,
            tenant: &case.tenant,
            env: &case.env,
        };
        let salted = Rules::compile(&case.key, &parsed.flags[0].1, Some(SALT)).evaluate(&subject);
        let plain = Rules::compile(&case.key, &parsed.flags[0].1, None).evaluate(&subject);
        assert_eq!(up[1], salted.reason.as_str(), "flag {}", case.key);
        salt_matters += usize::from(salted.on != plain.on);
    }
    assert!(salt_matters > 0, "some answers must depend on the salt");

    // A change upstream reaches the downstream through the stream (its poll is 10 min away).
    write_atomic(
        &upstream.path("flags.json"),
        &flags_doc(
            &cases,
            &[("chain-new", json!({"enabled": true, "rollout": 100}))],
        ),
    );
    assert_eq!(admin_refresh(&upstream, ADMIN_KEY, "").await.0, 200);
    let changed = Instant::now();
    eventually(Duration::from_secs(20), "the change downstream", || {
        let c = c.clone();
        let d = &downstream;
        async move { eval(&c, d, "chain-new", json!({})).await.ok() }
    })
    .await;
    eprintln!(
        "change upstream → served downstream in {:?}",
        changed.elapsed()
    );

    // The upstream stops: the downstream keeps serving, a refresh fails and changes nothing.
    let port = upstream.addr.unwrap().port();
    drop(upstream);
    assert_eq!(admin_refresh(&downstream, ADMIN_KEY, "").await.0, 502);
    assert_eq!(
        eval(&c, &downstream, "chain-new", json!({})).await,
        Ok(json!([true, "STATIC"]))
    );
    let info = get_json(&downstream, "/info").await;
    let status = &info["retrievers"][0];
    assert_eq!(status["kind"], "relay");
    let error = status["lastError"].as_str().unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{port}/v1/flags")),
        "{error}"
    );
    assert!(!info.to_string().contains(UP_KEY));
    let metrics = c
        .get(downstream.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failure = format!(
        "flagrelay_retriever_refreshes_total{{kind=\"relay\",source=\"http://127.0.0.1:{port}/v1/flags\",outcome=\"failure\"}}"
    );
    assert!(metrics.contains(&failure), "{metrics}");
    assert!(!metrics.contains(UP_KEY));

    // It comes back with another set: the downstream picks it up without a poll or a refresh.
    let upstream = start_upstream(
        &flags_doc(
            &cases,
            &[("chain-back", json!({"enabled": true, "rollout": 100}))],
        ),
        Some(port),
    );
    wait_ready(&upstream).await;
    eventually(
        Duration::from_secs(30),
        "the returned upstream's set",
        || {
            let c = c.clone();
            let d = &downstream;
            async move { eval(&c, d, "chain-back", json!({})).await.ok() }
        },
    )
    .await;
    assert_eq!(
        eval(&c, &downstream, "chain-new", json!({})).await,
        Err(404)
    );

    // It comes back once more with another salt and the same flags: the salt alone changes the
    // answers, so the downstream must take it although the flags hash the same.
    let flags = std::fs::read_to_string(upstream.path("flags.json")).unwrap();
    drop(upstream);
    let upstream = start_upstream_salted(&flags, Some(port), "another-salt");
    wait_ready(&upstream).await;
    eventually(Duration::from_secs(30), "the upstream's new salt", || {
        let c = c.clone();
        let url = downstream.url("/v1/flags");
        async move {
            let v: Value = c.get(url).send().await.ok()?.json().await.ok()?;
            (v["salt"] == "another-salt").then_some(())
        }
    })
    .await;
    drop(upstream);
    assert!(
        !downstream.all_output().contains(UP_KEY),
        "the key never reaches a log"
    );
}
