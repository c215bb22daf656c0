//! Settings through the binary: every key has its variable, bad settings exit 2 naming the key
//! (or variable), and credentials never appear in what the relay prints.

mod support;

use std::time::Duration;

use support::relay::{Options, Relay};
use support::startup::exit_of;

/// A relay that starts without flags (the source is missing, which the flag allows).
const NO_SOURCE: &str = "retrievers: [{kind: file, path: missing.yaml}]\n";
const START_EMPTY: &[&str] = &["--start-with-retriever-error"];

#[test]
fn keys_the_old_variable_list_lost_start_the_relay() {
    let relay = Relay::start_with(Options {
        config: NO_SOURCE,
        args: START_EMPTY,
        env: &[
            ("FLAGRELAY_SERVER_MAXSSECLIENTS", "5"),
            ("FLAGRELAY_SERVER_READHEADERTIMEOUT", "5s"),
            ("FLAGRELAY_SERVER_MAXHEADERBYTES", "16384"),
        ],
        ..Options::default()
    });
    assert!(relay.addr.is_some());
}

#[test]
fn set_flag_sets_any_key_and_refuses_unknown_ones() {
    let relay = Relay::start_with(Options {
        config: NO_SOURCE,
        args: &[
            "--start-with-retriever-error",
            "--set",
            "server.maxSseClients=5",
            "--set",
            "authorizedKeys.evaluation=k-from-set",
        ],
        ..Options::default()
    });
    relay
        .wait_for_log(
            |l| l.contains("\"evaluation_keys\":1"),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("no access line; output:\n{}", relay.all_output()));

    let (code, out) = exit_of(Options {
        config: NO_SOURCE,
        args: &["--set", "server.maxSseClientz=5"],
        ..Options::default()
    });
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("--set server.maxSseClientz") && out.contains("maxsseclientz"),
        "{out}"
    );
}

#[test]
fn a_huge_list_index_exits_2_at_once_naming_the_variable() {
    let (code, out) = exit_of(Options {
        env: &[("FLAGRELAY_RETRIEVERS_40000000_URL", "x")],
        ..Options::default()
    });
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("FLAGRELAY_RETRIEVERS_40000000_URL") && out.contains("out of range"),
        "{out}"
    );
}

#[test]
fn an_empty_evaluation_key_variable_does_not_open_the_relay() {
    let config = format!("{NO_SOURCE}authorizedKeys:\n  evaluation: [file-key-1]\n");
    let (code, out) = exit_of(Options {
        config: &config,
        args: START_EMPTY,
        env: &[("FLAGRELAY_AUTHORIZEDKEYS_EVALUATION", "")],
        ..Options::default()
    });
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("FLAGRELAY_AUTHORIZEDKEYS_EVALUATION") && out.contains("empty"),
        "{out}"
    );
}

#[test]
fn the_start_log_says_whether_evaluation_is_open() {
    let open = Relay::start_with(Options {
        config: NO_SOURCE,
        args: START_EMPTY,
        ..Options::default()
    });
    let line = open
        .wait_for_log(|l| l.contains("\"evaluation\":"), Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no access line; output:\n{}", open.all_output()));
    assert!(
        line.contains("\"evaluation\":\"open\"") && line.contains("\"level\":\"warn\""),
        "{line}"
    );

    let config = format!("{NO_SOURCE}authorizedKeys:\n  evaluation: [file-key-1, file-key-2]\n");
    let closed = Relay::start_with(Options {
        config: &config,
        args: START_EMPTY,
        ..Options::default()
    });
    let line = closed
        .wait_for_log(|l| l.contains("\"evaluation\":"), Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no access line; output:\n{}", closed.all_output()));
    assert!(
        line.contains("\"evaluation\":\"key required\"") && line.contains("\"evaluation_keys\":2"),
        "{line}"
    );
    assert!(!line.contains("file-key-1"), "{line}");
}

#[test]
fn a_credential_written_as_a_number_is_not_printed() {
    for config in [
        "authorizedKeys: {admin: [123456789012]}\n",
        "authorizedKeys: {evaluation: [{key: 123456789012, env: prod}]}\n",
        "auth: {jwtSecret: 123456789012}\n",
        "retrievers: [{kind: http, url: 'https://x.test/', headers: {authorization: 123456789012}}]\n",
    ] {
        let (code, out) = exit_of(Options {
            config,
            ..Options::default()
        });
        assert_eq!(code, Some(2), "{config}: {out}");
        assert!(
            !out.contains("123456789012"),
            "{config}: secret printed:\n{out}"
        );
    }
}

#[test]
fn bad_retriever_settings_exit_2_naming_the_key() {
    for (config, key) in [
        (
            "retrievers: [{kind: http, url: 'ftp://example.test/flags.yaml'}]\n",
            "retrievers[0].url",
        ),
        (
            "retrievers: [{kind: http, url: 'https://x.test/', headers: {X-Token: \"a\\nb\"}}]\n",
            "retrievers[0].headers.X-Token",
        ),
    ] {
        let (code, out) = exit_of(Options {
            config,
            ..Options::default()
        });
        assert_eq!(code, Some(2), "{config}: {out}");
        assert!(out.contains(key), "{config}: no key {key}:\n{out}");
    }
}
