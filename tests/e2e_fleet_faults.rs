//! Fleet mode under faults: one poller and its successor, Redis lost and back, a start with the
//! source down, a Sentinel failover (shared/spec/fleet.md promises 1, 5, 6, 7).

use support::http_source;
mod support;

use std::time::{Duration, Instant};

use http_source::{Answer, Server};
use support::fleet::{
    FlagFile, admin_refresh, all_serve, bulk, config, flags, greeting, redis_map, same_version,
    version,
};
use support::redis::{RedisServer, Sentinel, cli};
use support::relay::{Relay, eventually, get_json, wait_ready};

const LONG: Duration = Duration::from_secs(40);

/// An HTTP source answering `(status, body)`, counting the requests it gets.
async fn source(body: &str) -> (Server, Answer) {
    Server::answering(body, "application/x-yaml").await
}

fn count(s: &Server) -> usize {
    s.requests().len()
}

/// Only the leader polls: three replicas fetch once per interval, not three times; when the
/// leader dies, another takes the lease and the polling goes on.
#[tokio::test(flavor = "multi_thread")]
async fn one_upstream_fetch_per_interval_and_a_successor_when_the_leader_dies() {
    let redis = RedisServer::start();
    let (server, _) = source(&flags("one")).await;
    let retriever = format!(
        "{{kind: http, url: \"{}\"}}",
        server.url("http", "/flags.yaml")
    );
    let cfg = config("poller", &redis_map(&redis), &retriever, 1000);
    let mut relays: Vec<Relay> = (0..3).map(|_| Relay::start(&cfg)).collect();
    for r in &relays {
        wait_ready(r).await;
    }
    let all: Vec<&Relay> = relays.iter().collect();
    same_version(&all, LONG).await;
    let leader = eventually(LONG, "a leader", || async {
        for (i, r) in relays.iter().enumerate() {
            if get_json(r, "/info").await["fleet"]["role"] == "leader" {
                return Some(i);
            }
        }
        None
    })
    .await;

    // Six intervals: one poller makes about six requests, three would make about eighteen.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = count(&server);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let fetched = count(&server) - before;
    assert!(
        (2..=9).contains(&fetched),
        "{fetched} upstream requests in 6 intervals for the fleet"
    );

    // Kill the leader without a goodbye: its lease must expire.
    relays[leader].signal("KILL");
    let killed = Instant::now();
    let dead = relays.remove(leader);
    drop(dead);
    let successor = eventually(LONG, "a successor to lead", || async {
        for (i, r) in relays.iter().enumerate() {
            if get_json(r, "/info").await["fleet"]["role"] == "leader" {
                return Some(i);
            }
        }
        None
    })
    .await;
    let took = killed.elapsed();
    // Two lease periods (2 s each) on an idle machine; leave room for a loaded one.
    assert!(took < Duration::from_secs(12), "a successor took {took:?}");
    let before = count(&server);
    eventually(LONG, "the successor to poll", || async {
        (count(&server) >= before + 2).then_some(())
    })
    .await;
    assert_eq!(
        get_json(&relays[1 - successor], "/info").await["fleet"]["role"],
        "follower"
    );
}

/// Redis lost: every replica polls its own source and follows it; Redis back (empty): the
/// fleet converges on one version, and no replica ever serves a lower one.
#[tokio::test(flavor = "multi_thread")]
async fn without_redis_each_replica_polls_alone_and_converges_when_it_is_back() {
    let mut redis = RedisServer::start();
    let file = FlagFile::new("v1");
    let retriever = file.retriever();
    let cfg = config("outage", &redis_map(&redis), &retriever, 500);
    let relays: Vec<Relay> = (0..2).map(|_| Relay::start(&cfg)).collect();
    for r in &relays {
        wait_ready(r).await;
    }
    let all: Vec<&Relay> = relays.iter().collect();
    let v1 = same_version(&all, LONG).await;

    redis.kill();
    file.set("v2");
    all_serve(&all, "v2", LONG).await;
    for r in &relays {
        assert!(version(r).await.unwrap() >= v1, "a replica went back");
    }

    redis.restart();
    // Watch the versions while the fleet converges: never down on any replica.
    let mut seen: Vec<Vec<u64>> = vec![Vec::new(); relays.len()];
    let end = Instant::now() + LONG;
    let converged = loop {
        let mut now = Vec::new();
        for (i, r) in relays.iter().enumerate() {
            let v = version(r).await.unwrap_or(0);
            seen[i].push(v);
            now.push(v);
        }
        if now[0] == now[1] && now[0] > v1 && bulk(&relays[0]).await == bulk(&relays[1]).await {
            break now[0];
        }
        assert!(Instant::now() < end, "no convergence: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for s in &seen {
        assert!(
            s.windows(2).all(|w| w[0] <= w[1]),
            "a version went down: {seen:?}"
        );
    }
    assert_eq!(
        redis.cli(&["HGET", "flagrelay:{outage}:set", "version"]),
        converged.to_string()
    );
    all_serve(&all, "v2", LONG).await;

    // And the fleet works again: a change reaches both through one admin refresh.
    file.set("v3");
    let (status, body) = admin_refresh(&relays[0]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fleet"]["converged"], true, "{body}");
    assert!(body["fleet"]["version"].as_u64().unwrap() > converged);
    assert_eq!(greeting(&relays[1]).await.as_deref(), Some("v3"));
}

/// A replica whose source is down at start, with a published set in Redis, starts ready with
/// it: no volume, the same answers as the rest of the fleet.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_starts_from_the_published_set_when_its_source_is_down() {
    let redis = RedisServer::start();
    let (server, answer) = source(&flags("published")).await;
    let retriever = format!(
        "{{kind: http, url: \"{}\"}}",
        server.url("http", "/flags.yaml")
    );
    let cfg = config("restart", &redis_map(&redis), &retriever, 0);
    let first = Relay::start(&cfg);
    wait_ready(&first).await;
    let v = same_version(&[&first], LONG).await;

    answer.set_status(503);
    let second = Relay::start(&cfg);
    wait_ready(&second).await;
    assert_eq!(greeting(&second).await.as_deref(), Some("published"));
    assert_eq!(version(&second).await, Some(v));
    assert_eq!(bulk(&second).await, bulk(&first).await);
    assert!(
        second
            .wait_for_log(
                |l| l.contains("serving the fleet's published flag set"),
                LONG
            )
            .is_some(),
        "{}",
        second.all_output()
    );
}

/// Sentinel: a primary, a replica, three Sentinels. The primary dies; the relays follow the
/// promoted replica without a restart, and the published version is not lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_sentinel_failover_is_followed_without_losing_a_version() {
    let mut primary = RedisServer::start();
    let replica = RedisServer::start_with(None, Some(primary.port));
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|_| Sentinel::start("fleetmaster", primary.port))
        .collect();
    // The Sentinels must know the replica and each other before a failover can be voted.
    eventually(
        LONG,
        "the sentinels to see the replica and each other",
        || async {
            sentinels
                .iter()
                .all(|s| {
                    let out = cli(s.port, None, &["SENTINEL", "master", "fleetmaster"]);
                    let field = |name: &str| {
                        let mut lines = out.lines();
                        lines.find(|l| l.trim() == name)?;
                        lines.next().map(|v| v.trim().to_owned())
                    };
                    field("num-slaves").as_deref() == Some("1")
                        && field("num-other-sentinels").as_deref() == Some("2")
                })
                .then_some(())
        },
    )
    .await;

    let file = FlagFile::new("before");
    let retriever = file.retriever();
    let nodes: Vec<String> = sentinels
        .iter()
        .map(|s| format!("\"127.0.0.1:{}\"", s.port))
        .collect();
    let redis_cfg = format!(
        "{{sentinel: {{masterName: fleetmaster, nodes: [{}]}}}}",
        nodes.join(", ")
    );
    let cfg = config("sentinel", &redis_cfg, &retriever, 0);
    let relays: Vec<Relay> = (0..2).map(|_| Relay::start(&cfg)).collect();
    for r in &relays {
        wait_ready(r).await;
    }
    let all: Vec<&Relay> = relays.iter().collect();
    same_version(&all, LONG).await;

    file.set("published");
    let (status, body) = admin_refresh(&relays[0]).await;
    assert_eq!(status, 200, "{body}");
    let v2 = body["fleet"]["version"].as_u64().unwrap();
    // Replicated before the primary dies.
    eventually(LONG, "the replica to hold the version", || async {
        (replica.cli(&["HGET", "flagrelay:{sentinel}:set", "version"]) == v2.to_string())
            .then_some(())
    })
    .await;

    primary.kill();
    eventually(LONG, "the sentinels to promote the replica", || async {
        (sentinels[0].primary_port("fleetmaster") == Some(replica.port)).then_some(())
    })
    .await;

    // The relays reconnect through Sentinel on their own; the next change reaches both. (An
    // admin refresh during the reconnect may count only the replicas already back: repeat it,
    // unchanged, until both are live on the new primary and serve the version.)
    file.set("after");
    let body = eventually(
        LONG,
        "an admin refresh converged on both relays",
        || async {
            let (status, body) = admin_refresh(&relays[1]).await;
            (status == 200 && body["fleet"]["replicas"] == 2).then_some(body)
        },
    )
    .await;
    let v3 = body["fleet"]["version"].as_u64().unwrap();
    assert!(v3 > v2, "version {v3} after {v2}: one was lost");
    assert_eq!(greeting(&relays[0]).await.as_deref(), Some("after"));
    assert_eq!(
        replica.cli(&["HGET", "flagrelay:{sentinel}:set", "version"]),
        v3.to_string()
    );
}

/// The harness hands out distinct ports: a Sentinel setup asks for several in a row, and the
/// kernel may give a port just released to the next bind.
#[test]
fn free_ports_are_never_handed_out_twice() {
    let ports: Vec<u16> = (0..300).map(|_| support::redis::free_port()).collect();
    let distinct: std::collections::HashSet<&u16> = ports.iter().collect();
    assert_eq!(distinct.len(), ports.len());
}
