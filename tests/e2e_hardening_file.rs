//! Hardening (issue 12) end to end: the file retriever.
//!
//! - item 8: a FIFO at the path neither blocks a thread per poll nor breaks refresh for good:
//!   it is refused as "not a regular file", and refresh works again once the file is back;

mod support;

use std::time::Duration;

use support::hardening::{admin_refresh, start_over, thread_count};
use support::relay::{wait_ready, write_atomic};

const FLAGS: &str = "on-flag: {enabled: true, rollout: 100}\n";
const ADMIN: &str = "admin-key-0001";

fn config(poll_ms: u64) -> String {
    format!(
        "pollingInterval: {poll_ms}
retrievers: [{{kind: file, path: \"{{{{dir}}}}/flags.yaml\", timeout: 300}}]
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
    let (status, answer) = admin_refresh(&relay, ADMIN, "").await;
    assert_eq!(status, 502, "{answer}");
    let error = answer["retrievers"][0]["error"]
        .as_str()
        .unwrap_or_default();
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
