//! Hardening (issue 12) end to end: the file retriever.
//!
//! - item 8: a FIFO at the path neither blocks a thread per poll nor breaks refresh for good:
//!   it is refused as "not a regular file", and refresh works again once the file is back;
//! - item 5: a file rewritten in place is never served half-written (`rollout: 1` of
//!   `rollout: 100`), even while polled every 20 ms.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::hardening::{ADMIN, failed_refresh, thread_count};
use support::relay::{admin_refresh, client, start_over, wait_ready, write_atomic};

const FLAGS: &str = "on-flag: {enabled: true, rollout: 100}\n";

fn config(poll_ms: u64) -> String {
    format!(
        "pollingInterval: {poll_ms}
retrievers: [{{kind: file, path: \"{{{{dir}}}}/flags.yaml\", timeout: 2000}}]
authorizedKeys: {{admin: [{ADMIN}]}}
"
    )
}

#[tokio::test]
async fn a_fifo_at_the_path_is_refused_without_blocking() {
    let relay = start_over(FLAGS, &config(50));
    wait_ready(&relay).await;
    let path = relay.path("flags.yaml");
    std::fs::remove_file(&path).unwrap();
    let ok = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo");
    let before = thread_count(relay.pid());
    // 40 polls against the FIFO.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (error, answer) = failed_refresh(&relay).await;
    assert!(error.contains("not a regular file"), "{answer}");
    let after = thread_count(relay.pid());
    assert!(
        after <= before + 8,
        "threads grew from {before} to {after} polling a FIFO"
    );

    // Restored: refresh works again and serves the new content.
    std::fs::remove_file(&path).unwrap();
    write_atomic(
        &path,
        "on-flag: {enabled: true, rollout: 100}\nnew-flag: {enabled: true}\n",
    );
    let (status, answer) = admin_refresh(&relay, ADMIN, "").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["flags"], 2, "{answer}");
}

#[tokio::test]
async fn a_file_being_written_in_place_is_not_served_half_written() {
    let full = |n: u32| {
        format!("on-flag:\n  enabled: true\n  rollout: 100\n  value: {{on: v{n}, off: x}}\n")
    };
    let relay = start_over(&full(0), &config(20));
    wait_ready(&relay).await;
    let path = relay.path("flags.yaml");
    let writer = std::thread::spawn(move || {
        for n in 1..=5u32 {
            // In place: truncate, write up to "rollout: 1", pause, write the rest.
            let text = full(n);
            let cut = text.find("rollout: 1").unwrap() + "rollout: 1".len();
            let mut f = std::fs::File::create(&path).unwrap();
            f.write_all(&text.as_bytes()[..cut]).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(150));
            f.write_all(&text.as_bytes()[cut..]).unwrap();
            drop(f);
            std::thread::sleep(Duration::from_millis(400));
        }
    });
    let c = client();
    let mut seen = std::collections::BTreeSet::new();
    let end = Instant::now() + Duration::from_secs(20);
    let mut values = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        assert!(Instant::now() < end, "timed out; rollouts seen: {seen:?}");
        let v: serde_json::Value = c
            .get(relay.url("/v1/flags"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.insert(v["flags"]["on-flag"]["rollout"].to_string());
        values.insert(v["flags"]["on-flag"]["value"]["on"].to_string());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.join().unwrap();
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["100".to_string()],
        "only whole documents are served"
    );
    assert!(
        values.len() >= 3,
        "the rewrites were served: {values:?}; logs:\n{}",
        relay.all_output()
    );
}
