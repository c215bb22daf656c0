//! Starts that are expected to fail: run the relay until it exits on its own.

use std::time::Duration;

use super::relay::{Options, Relay};

/// Start the relay with `o` (not waiting for it to listen) and return its exit code and
/// everything it printed. Panics if it is still running after 20 s.
pub fn exit_of(o: Options<'_>) -> (Option<i32>, String) {
    let mut relay = Relay::start_with(Options {
        wait_listening: false,
        ..o
    });
    let status = relay
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the relay did not exit; output:\n{}", relay.all_output()));
    (status.code(), relay.all_output())
}
