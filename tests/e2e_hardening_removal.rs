//! Hardening (issue 12) end to end: the mass-removal guard.
//!
//! - item 5: a refresh that would remove more than `maxFlagRemovalPercent` (default 50) of the
//!   flags fails with a clear error and the set keeps serving, until an admin refresh with
//!   `?force=true`; removing up to that share goes through.

mod support;

use support::hardening::{ADMIN, flags_doc, start_admin_refreshed};
use support::relay::{admin_refresh, wait_ready, write_atomic};

#[tokio::test]
async fn mass_removal_needs_force() {
    let relay = start_admin_refreshed(&flags_doc(10));
    wait_ready(&relay).await;
    let path = relay.path("flags.yaml");

    // 5 of 10 removed: 50 %, allowed.
    write_atomic(&path, &flags_doc(5));
    let (status, answer) = admin_refresh(&relay, ADMIN, "").await;
    assert_eq!(
        (status, answer["flags"].as_u64()),
        (200, Some(5)),
        "{answer}"
    );

    // 3 of 5 removed: 60 %, refused; the 5 keep serving, and a second try is refused too.
    write_atomic(&path, &flags_doc(2));
    for _ in 0..2 {
        let (status, answer) = admin_refresh(&relay, ADMIN, "").await;
        assert_eq!(status, 502, "{answer}");
        assert_eq!(answer["flags"], 5, "{answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("maxFlagRemovalPercent") && error.contains("3 of the 5"),
            "{answer}"
        );
    }

    // Forced: goes through once.
    let (status, answer) = admin_refresh(&relay, ADMIN, "?force=true").await;
    assert_eq!(
        (status, answer["flags"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    let (status, answer) = admin_refresh(&relay, ADMIN, "?force=maybe").await;
    assert_eq!(status, 400, "{answer}");
}
