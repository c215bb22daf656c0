//! Fleet mode end to end (shared/spec/fleet.md): real relays, a real Redis, the flag file or an
//! HTTP source they share.

use support::{http_source, tls};
mod support;

use std::time::Duration;

use support::fleet::{
    FlagFile, admin_refresh, bulk, config, flags, greeting, redis_map, same_version, version,
};
use support::redis::RedisServer;
use support::relay::{Relay, client, get_json, wait_ready};

const LONG: Duration = Duration::from_secs(30);

/// Three replicas on one file: admin refresh on one answers once the other two serve the new
/// value; all answer byte-identical bulk bodies and ETags (promises 2, 3, 4).
#[tokio::test(flavor = "multi_thread")]
async fn admin_refresh_reaches_every_replica_with_identical_answers() {
    let redis = RedisServer::start();
    let file = FlagFile::new("v1");
    let retriever = file.retriever();
    // Polling off: only the admin refresh changes anything.
    let cfg = config("three", &redis_map(&redis), &retriever, 0);
    let relays: Vec<Relay> = (0..3).map(|_| Relay::start(&cfg)).collect();
    for r in &relays {
        wait_ready(r).await;
    }
    let all: Vec<&Relay> = relays.iter().collect();
    let v1 = same_version(&all, LONG).await;
    assert!(v1 >= 1);

    // Byte-identical answers for one version.
    let first = bulk(&relays[0]).await;
    for r in &relays[1..] {
        assert_eq!(
            bulk(r).await,
            first,
            "bulk ETag and body differ between replicas"
        );
    }
    assert!(
        first.1.contains(&format!("\"flagSetVersion\":{v1}")),
        "{}",
        first.1
    );
    let sync = |r: &Relay| {
        let url = r.url("/v1/flags");
        async move {
            let res = client().get(url).send().await.unwrap();
            let etag = res.headers()["etag"].to_str().unwrap().to_owned();
            (etag, res.text().await.unwrap())
        }
    };
    let s0 = sync(&relays[0]).await;
    for r in &relays[1..] {
        assert_eq!(sync(r).await, s0, "/v1/flags differs between replicas");
    }
    // A client's If-None-Match gets its 304 from another replica.
    let r = client()
        .post(relays[2].url("/ofrep/v1/evaluate/flags"))
        .header("if-none-match", &first.0)
        .json(&serde_json::json!({"context": {"targetingKey": "user-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // A change stream on the third replica: its events carry the fleet version as `id:`.
    let stream = client()
        .get(relays[2].url("/ofrep/v1/sse"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut events = support::sse::SseReader::new(stream);

    // The change, and an admin refresh on the second replica.
    file.set("v2");
    let (status, body) = admin_refresh(&relays[1]).await;
    assert_eq!(status, 200, "{body}");
    let fleet = &body["fleet"];
    assert_eq!(fleet["converged"], true, "{body}");
    assert_eq!(fleet["replicas"], 3, "{body}");
    let v2 = fleet["version"].as_u64().unwrap();
    assert!(v2 > v1, "{body}");
    // When it answered, every replica serves the new value: no waiting here.
    for r in &relays {
        assert_eq!(greeting(r).await.as_deref(), Some("v2"));
        assert_eq!(version(r).await, Some(v2));
    }
    let event = loop {
        let e = events
            .next(LONG)
            .await
            .expect("a change event on the third replica");
        if e.data.contains("refetchEvaluation") && e.id.as_deref() == Some(&v2.to_string()) {
            break e;
        }
    };
    assert!(event.data.contains("\"lastModified\":"), "{event:?}");
    assert!(body["fleet"]["tookMs"].as_f64().is_some(), "{body}");
    let second = bulk(&relays[0]).await;
    assert_ne!(second.0, first.0);
    for r in &relays[1..] {
        assert_eq!(bulk(r).await, second);
    }

    // Side effects once (promise 8): exactly one replica published v2, the one whose publish
    // wrote it; the others only loaded it.
    let marker = format!("\"msg\":\"published a new flag set to the fleet\",\"version\":{v2},");
    let publishers: usize = relays
        .iter()
        .map(|r| r.logs().iter().filter(|l| l.contains(&marker)).count())
        .sum();
    assert_eq!(publishers, 1, "v2 published {publishers} times");

    // Unchanged content publishes nothing: the version stays.
    let (status, body) = admin_refresh(&relays[2]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fleet"]["version"].as_u64(), Some(v2), "{body}");
    assert_eq!(body["changed"], false);

    // /info and /metrics tell the role and the version.
    let roles: Vec<String> = {
        let mut v = Vec::new();
        for r in &relays {
            v.push(
                get_json(r, "/info").await["fleet"]["role"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        v
    };
    assert_eq!(
        roles.iter().filter(|r| *r == "leader").count(),
        1,
        "{roles:?}"
    );
    let metrics = client()
        .get(relays[1].url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("flagrelay_fleet_served_version {v2}")),
        "{metrics}"
    );
    assert!(metrics.contains("flagrelay_fleet_redis_up 1"));
    // Replica 1 answered one admin refresh (the second went to replica 2).
    assert!(
        metrics.contains("flagrelay_fleet_convergence_seconds_count 1"),
        "{metrics}"
    );
}

/// Two relays without a fleet, on the same file, answer the same bulk ETag (issue 14 item 4):
/// `lastModified` is the file's, not each process's load time.
#[tokio::test(flavor = "multi_thread")]
async fn standalone_relays_on_one_file_give_identical_bulk_etags() {
    let file = FlagFile::new("same");
    let cfg = format!("pollingInterval: 0\nretrievers: [{}]\n", file.retriever());
    let a = Relay::start(&cfg);
    wait_ready(&a).await;
    // A second later: a different load time, the same answer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let b = Relay::start(&cfg);
    wait_ready(&b).await;
    let (ea, ba) = bulk(&a).await;
    let (eb, bb) = bulk(&b).await;
    assert_eq!(ba, bb);
    assert_eq!(ea, eb);
    let mtime = std::fs::metadata(&file.path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(ba.contains(&format!("\"lastModified\":{mtime}")), "{ba}");
    assert!(
        !ba.contains("flagSetVersion"),
        "no version outside fleet mode: {ba}"
    );
}

/// A published document that does not parse is refused with an error naming the fleet key,
/// and the replica keeps serving what it has.
#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_published_set_is_refused_and_named() {
    let redis = RedisServer::start();
    let file = FlagFile::new("good");
    let retriever = file.retriever();
    let cfg = config("corrupt", &redis_map(&redis), &retriever, 0);
    let relay = Relay::start(&cfg);
    wait_ready(&relay).await;
    let v = same_version(&[&relay], LONG).await;
    let key = "flagrelay:{corrupt}:set";
    redis.cli(&[
        "HSET",
        key,
        "version",
        &(v + 1).to_string(),
        "flags",
        "{not json",
    ]);
    redis.cli(&[
        "PUBLISH",
        "flagrelay:{corrupt}:changes",
        &(v + 1).to_string(),
    ]);
    let line = relay
        .wait_for_log(
            |l| l.contains("refused the fleet's published flag set"),
            LONG,
        )
        .unwrap_or_else(|| panic!("no refusal logged:\n{}", relay.all_output()));
    assert!(line.contains(key), "{line}");
    assert_eq!(greeting(&relay).await.as_deref(), Some("good"));
    assert_eq!(version(&relay).await, Some(v));
}

/// Bad fleet settings stop the start with exit code 2, naming the key.
#[tokio::test(flavor = "multi_thread")]
async fn bad_fleet_settings_exit_2_naming_the_key() {
    for (redis, key) in [
        ("{url: \"http://127.0.0.1:1\"}", "fleet.redis.url"),
        (
            "{sentinel: {masterName: m, nodes: [\"nohost\"]}}",
            "fleet.redis.sentinel.nodes[0]",
        ),
        (
            "{url: \"rediss://127.0.0.1:1\", caCertPath: /nonexistent/ca.pem}",
            "fleet.redis.caCertPath",
        ),
    ] {
        let cfg = config("bad", redis, "{kind: file, path: /nonexistent}", 0);
        let mut relay = Relay::start_with(support::relay::Options {
            config: &cfg,
            wait_listening: false,
            ..Default::default()
        });
        let status = relay.wait_exit(Duration::from_secs(20)).expect("exits");
        assert_eq!(status.code(), Some(2), "{}", relay.all_output());
        assert!(
            relay.all_output().contains(key),
            "{key}: {}",
            relay.all_output()
        );
    }
}

/// Wrong Redis password: a clear error, the relay serves alone, and the password appears in no
/// log line, nor in /info or /metrics.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_redis_password_is_a_clear_error_without_the_secret() {
    let redis = RedisServer::start_with(Some("the-right-one"), None);
    let file = FlagFile::new("alone");
    let retriever = file.retriever();
    let secret = "wrong-pass-7f3a9c";
    // The password through its environment variable, as the Helm chart passes it.
    let cfg = config("auth", &redis_map(&redis), &retriever, 500);
    let relay = Relay::start_with(support::relay::Options {
        config: &cfg,
        env: &[("FLAGRELAY_FLEET_REDIS_PASSWORD", secret)],
        ..Default::default()
    });
    wait_ready(&relay).await;
    assert_eq!(greeting(&relay).await.as_deref(), Some("alone"));
    let line = relay
        .wait_for_log(
            |l| l.contains("AuthenticationFailed") || l.contains("WRONGPASS"),
            LONG,
        )
        .unwrap_or_else(|| panic!("no auth error logged:\n{}", relay.all_output()));
    // An authentication failure, not "unauthenticated": the password did arrive.
    assert!(line.contains("fleet"), "{line}");
    let i = get_json(&relay, "/info").await;
    assert_eq!(i["fleet"]["redisReachable"], false, "{i}");
    let metrics = client()
        .get(relay.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("flagrelay_fleet_redis_up 0"));
    // Let it retry a few times (lease, heartbeat, follow) before looking for the secret.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let everything = format!("{}\n{i}\n{metrics}", relay.all_output());
    assert!(
        !everything.contains(secret),
        "the password leaked:\n{everything}"
    );
}

/// A live replica that does not confirm the new version in time: 504, naming it (so `curl
/// --fail` in CI fails). The laggard is a heartbeat entry written by hand, as a hung replica
/// would leave it.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_does_not_confirm_in_time_gets_a_504_naming_it() {
    let redis = RedisServer::start();
    let file = FlagFile::new("v1");
    let retriever = file.retriever();
    let cfg = config("laggard", &redis_map(&redis), &retriever, 0)
        .replace("convergenceTimeout: 20s", "convergenceTimeout: 1s");
    let relay = Relay::start(&cfg);
    wait_ready(&relay).await;
    same_version(&[&relay], LONG).await;
    let forever = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000)
        .to_string();
    redis.cli(&[
        "ZADD",
        "flagrelay:{laggard}:alive",
        &forever,
        "hung-replica-1",
    ]);
    redis.cli(&["HSET", "flagrelay:{laggard}:serving", "hung-replica-1", "0"]);

    file.set("v2");
    let (status, body) = admin_refresh(&relay).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["refreshed"], true, "{body}");
    assert_eq!(body["fleet"]["converged"], false, "{body}");
    assert_eq!(body["fleet"]["replicas"], 2, "{body}");
    assert_eq!(
        body["fleet"]["laggards"],
        serde_json::json!(["hung-replica-1"]),
        "{body}"
    );
    // The refresh itself took effect here.
    assert_eq!(greeting(&relay).await.as_deref(), Some("v2"));
}

/// TLS to Redis (rustls with the process's aws-lc-rs provider) with a private CA and a client
/// certificate (mTLS): the fleet works; without the client certificate Redis refuses the
/// relay, which then serves alone.
#[tokio::test(flavor = "multi_thread")]
async fn redis_over_tls_with_a_client_certificate() {
    let pki = tls::Pki::new();
    let redis = RedisServer::start_tls(support::redis::Tls {
        cert: pki.server_cert_pem.clone(),
        key: pki.server_key_pem.clone(),
        ca: pki.ca_pem.clone(),
        require_client_cert: true,
    });
    let file = FlagFile::new("tls");
    let retriever = file.retriever();
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let with_cert = format!(
        "{{url: \"{url}\", caCertPath: {}, clientCertPath: {}, clientKeyPath: {}}}",
        pki.ca_pem.display(),
        pki.client_cert_pem.display(),
        pki.client_key_pem.display()
    );
    let a = Relay::start(&config("tls", &with_cert, &retriever, 0));
    let b = Relay::start(&config("tls", &with_cert, &retriever, 0));
    wait_ready(&a).await;
    wait_ready(&b).await;
    let v = same_version(&[&a, &b], LONG).await;
    assert!(v >= 1);
    assert_eq!(get_json(&a, "/info").await["fleet"]["redisReachable"], true);

    let no_cert = format!("{{url: \"{url}\", caCertPath: {}}}", pki.ca_pem.display());
    let c = Relay::start(&config("tls", &no_cert, &retriever, 0));
    wait_ready(&c).await;
    assert_eq!(greeting(&c).await.as_deref(), Some("tls"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let i = get_json(&c, "/info").await;
    assert_eq!(i["fleet"]["redisReachable"], false, "{i}");
    assert_eq!(i["fleet"]["version"], serde_json::Value::Null, "{i}");
}

/// Side effects once (promise 8): with a webhook notifier on every replica, a change is
/// delivered once for the fleet, by the replica that published it, with the fleet version.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_is_notified_once_for_the_fleet() {
    let redis = RedisServer::start();
    let hook = http_source::Server::start(|_| http_source::Reply::ok("", &[])).await;
    let file = FlagFile::new("v1");
    let retriever = file.retriever();
    let cfg = format!(
        "{}notifiers:\n  - {{kind: webhook, url: \"{}\"}}\n",
        config("notify", &redis_map(&redis), &retriever, 0),
        hook.url("http", "/hook")
    );
    let relays: Vec<Relay> = (0..3).map(|_| Relay::start(&cfg)).collect();
    for r in &relays {
        wait_ready(r).await;
    }
    let all: Vec<&Relay> = relays.iter().collect();
    same_version(&all, LONG).await;

    file.set("v2");
    let (status, body) = admin_refresh(&relays[2]).await;
    assert_eq!(status, 200, "{body}");
    let v2 = body["fleet"]["version"].as_u64().unwrap();
    support::relay::eventually(LONG, "the delivery", || async {
        (!hook.requests().is_empty()).then_some(())
    })
    .await;
    // Time for duplicates to show up, were there any.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = hook.requests();
    assert_eq!(got.len(), 1, "{} deliveries for one change", got.len());
    let v: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(v["version"].as_u64(), Some(v2), "{v}");
}

/// A bulk re-fetch naming a flag set the replica does not serve yet (`flagConfigEtag`, heard
/// from a change stream) makes the replica take it from Redis before answering, not at its
/// next check (issue 14 item 3); the answer is never a 304.
#[tokio::test(flavor = "multi_thread")]
async fn a_flag_config_etag_ahead_is_loaded_from_the_fleet_before_answering() {
    let redis = RedisServer::start();
    let file = FlagFile::new("before");
    let retriever = file.retriever();
    let cfg = config("catchup", &redis_map(&redis), &retriever, 0);
    let relay = Relay::start(&cfg);
    wait_ready(&relay).await;
    let v = same_version(&[&relay], LONG).await;
    let (etag, _) = bulk(&relay).await;

    // Another replica published a new set; its announcement has not reached this one (written
    // here without PUBLISH, so only the next check, within a second, would find it).
    let doc = flagrelay::parse::parse_document("t", flags("after").as_bytes(), None).unwrap();
    let defs: std::collections::BTreeMap<_, _> = doc.flags.into_iter().collect();
    let new_etag = flagrelay::snapshot::content_hash(&defs);
    redis.cli(&[
        "HSET",
        "flagrelay:{catchup}:set",
        "version",
        &(v + 1).to_string(),
        "etag",
        &new_etag,
        "lastModified",
        "1700000000",
        "flags",
        &serde_json::to_string(&defs).unwrap(),
        "format",
        "1",
        "publishedBy",
        "another-replica",
    ]);
    let res = client()
        .post(relay.url(&format!(
            "/ofrep/v1/evaluate/flags?flagConfigEtag={new_etag}"
        )))
        .header("if-none-match", &etag)
        .json(&serde_json::json!({"context": {"targetingKey": "user-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "never a 304 for a set the client is ahead of"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["metadata"]["flagSetEtag"], new_etag.as_str());
    assert_eq!(body["metadata"]["flagSetVersion"], v + 1);
    assert_eq!(greeting(&relay).await.as_deref(), Some("after"));
}
