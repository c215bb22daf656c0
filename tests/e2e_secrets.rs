//! Secrets never logged, through the real binary (issue 8, item 7): one run with every kind
//! of credential, every endpoint hit with right and wrong ones and both flag sources failing,
//! leaves none of them in any output line.
//!
//! - `no_secret_reaches_any_log_line`: at `logLevel: debug`;
//! - `no_secret_reaches_any_log_line_with_rust_log_trace`: with `RUST_LOG=trace`, which opens
//!   the dependencies' own logs too.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::relay::{Options, Relay, admin_refresh, client, get_text, wait_exit, wait_ready};
use support::tokens::{b64, hs256, issue_token, sha256_hex};
use support::upstreams::{Upstream, UpstreamState, fake_http_source, fake_s3, set_upstream};

const EVAL_PLAIN: &str = "evalkey-plain-Zq8rT3vW9xY2";
const EVAL_BOUND: &str = "evalkey-bound-Hn4kP7sL1mB6";
const EVAL_HASHED: &str = "evalkey-hashed-Rc5tG8yU2eJ9";
const ADMIN_KEY: &str = "adminkey-Wd3fV6bN9qK4zX";
const JWT_SECRET: &str = "jwtsecret-Lp2mQ7wE4rT9yU1iO3pA6sD8fG0hJ5k";
const UPSTREAM_BEARER: &str = "upstream-bearer-Xk9Jm2Nq5Rt8Vw3Yz";
const URL_PASSWORD: &str = "urlpass-Bt6Hy1Mc4Qe7";
const URL_SIG: &str = "urlsig-Fg3Kd8Ls2Pw5";
const AWS_KEY_ID: &str = "AKIAFLAGRELAYE2E7Q3Z";
const AWS_SECRET: &str = "awsSecret/Tm4Vb8Nc2Xz6Lk9Jh3Gf5Ds1Aq7We0Rt";
const AWS_TOKEN: &str = "awsSessionToken-Ui8Op3Kl6Mn2Bv5";
/// The value of a misspelt `FLAGRELAY_` variable, which the relay warns about.
const DECOY_ENV: &str = "decoy-env-value-Yh7Tg2Rf5Ed8";
/// Credentials a client sends that the relay does not know: still never logged.
const WRONG_KEY: &str = "wrongkey-Sx4Dc7Fv1Gb9";
const WRONG_BEARER: &str = "wrongbearer-Nh6Jm3Kl8Pq2";
const WRONG_QUERY: &str = "wrongquery-Zx5Cv8Bn2Mq4";

const HTTP_DOC: &str = r#"{"color": {"enabled": true, "rollout": 100, "value": {"on": "red", "off": "grey"}},
  "staging-only": {"enabled": true, "envs": ["staging"], "rollout": 100}}"#;
const S3_DOC: &str = r#"{"from-s3": {"enabled": true, "rollout": 100}}"#;

/// How a request carries a credential.
#[derive(Clone, Debug)]
enum Cred {
    None,
    Key(String),
    Bearer(String),
    Query(String),
    Basic(String),
    RawAuthorization(String),
}

impl Cred {
    fn secret(&self) -> Option<&str> {
        match self {
            Cred::None => None,
            Cred::Key(s)
            | Cred::Bearer(s)
            | Cred::Query(s)
            | Cred::Basic(s)
            | Cred::RawAuthorization(s) => Some(s),
        }
    }
}

/// One request; for an answer that rejects the credential, check that its body does not
/// repeat it. Event streams are dropped as soon as their head arrives.
async fn hit(base: &str, method: &str, path: &str, cred: &Cred) -> u16 {
    let c = client();
    let mut url = format!("{base}{path}");
    if let Cred::Query(k) = cred {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("apiKey={k}"));
    }
    let mut req = match method {
        "GET" => c.get(&url),
        _ => c.post(&url).body(r#"{"context": {"targetingKey": "u1"}}"#),
    };
    req = match cred {
        Cred::Key(k) => req.header("x-api-key", k),
        Cred::Bearer(k) => req.header("authorization", format!("Bearer {k}")),
        Cred::Basic(k) => req.header("authorization", format!("Basic {}", b64(&format!("u:{k}")))),
        Cred::RawAuthorization(k) => req.header("authorization", k),
        Cred::None | Cred::Query(_) => req,
    };
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let streaming = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    if !streaming {
        let body = res.text().await.unwrap_or_default();
        if let Some(s) = cred.secret()
            && status >= 400
        {
            assert!(
                !body.contains(s),
                "{method} {path} {cred:?}: {status} repeats the credential: {body}"
            );
        }
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_log_line() {
    secrets_case(None).await;
}

/// `RUST_LOG` replaces the `logLevel` filter and opens the dependencies' own logs (HTTP
/// client, TLS, object store) too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_log_line_with_rust_log_trace() {
    secrets_case(Some("trace")).await;
}

async fn secrets_case(rust_log: Option<&str>) {
    let upstream: Upstream = Arc::new(Mutex::new(UpstreamState {
        http_status: 200,
        s3_status: 200,
        ..Default::default()
    }));
    let http_addr = fake_http_source(upstream.clone(), UPSTREAM_BEARER, HTTP_DOC).await;
    let s3_addr = fake_s3(upstream.clone(), AWS_KEY_ID, AWS_TOKEN, S3_DOC).await;
    let config = format!(
        "logLevel: debug
pollingInterval: 400
retrievers:
  - kind: http
    url: \"http://user:{URL_PASSWORD}@{http_addr}/flags.json?sig={URL_SIG}\"
    headers: {{Authorization: \"Bearer {UPSTREAM_BEARER}\"}}
    timeout: 3000
  - {{kind: s3, bucket: flags, item: relay/flags.json, region: us-east-1, endpoint: \"http://{s3_addr}\", forcePathStyle: true, timeout: 3000}}
authorizedKeys:
  evaluation:
    - {EVAL_PLAIN}
    - {{key: {EVAL_BOUND}, env: staging}}
    - \"sha256:{}\"
  admin: [{ADMIN_KEY}]
",
        sha256_hex(EVAL_HASHED)
    );
    let mut env = vec![
        ("FLAGRELAY_AUTH_JWTSECRET", JWT_SECRET),
        ("FLAGRELAY_AUTHX_SECRET", DECOY_ENV),
        ("AWS_ACCESS_KEY_ID", AWS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ("AWS_SESSION_TOKEN", AWS_TOKEN),
    ];
    if let Some(filter) = rust_log {
        env.push(("RUST_LOG", filter));
    }
    let mut relay = Relay::start_with(Options {
        config: &config,
        env: &env,
        ..Options::default()
    });
    let base = relay.url("");
    wait_ready(&relay).await;

    // Tokens, and the token endpoint's error paths with keys in the body.
    let mut tokens = Vec::new();
    for key in [EVAL_PLAIN, EVAL_BOUND, EVAL_HASHED] {
        tokens.push(issue_token(&relay, key).await);
    }
    for body in [
        json!({"apiKey": WRONG_KEY}).to_string(),
        json!({"apiKey": [EVAL_PLAIN]}).to_string(),
        json!({"apiKey": EVAL_PLAIN, "unexpected": ADMIN_KEY}).to_string(),
        format!("{{\"apiKey\": \"{EVAL_PLAIN}\""),
        json!({"key": ADMIN_KEY}).to_string(),
    ] {
        let r = client()
            .post(format!("{base}/client/auth"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(
            status >= 400 || body.contains("unexpected"),
            "{body}: {status}"
        );
        for s in [EVAL_PLAIN, ADMIN_KEY, WRONG_KEY] {
            assert!(!text.contains(s), "{body}: answer repeats a key: {text}");
        }
    }
    let mut tampered = tokens[0].clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let forged = hs256(
        &json!({"sub": "x", "exp": exp}),
        "another-secret-that-is-32-bytes-long!!",
    );
    let expired = hs256(&json!({"sub": "x", "exp": 1_000_000_000u64}), JWT_SECRET);

    let creds = vec![
        Cred::None,
        Cred::Key(EVAL_PLAIN.into()),
        Cred::Bearer(EVAL_PLAIN.into()),
        Cred::Key(EVAL_BOUND.into()),
        Cred::Key(EVAL_HASHED.into()),
        Cred::Key(ADMIN_KEY.into()),
        Cred::Bearer(ADMIN_KEY.into()),
        Cred::Bearer(tokens[0].clone()),
        Cred::Bearer(tokens[1].clone()),
        Cred::Bearer(tokens[2].clone()),
        Cred::Query(EVAL_PLAIN.into()),
        Cred::Query(tokens[0].clone()),
        Cred::Query(WRONG_QUERY.into()),
        Cred::Key(WRONG_KEY.into()),
        Cred::Key(format!("{WRONG_KEY}-{}", "z".repeat(300))),
        Cred::Bearer(WRONG_BEARER.into()),
        Cred::Bearer(tampered.clone()),
        Cred::Bearer(forged.clone()),
        Cred::Bearer(expired.clone()),
        Cred::Basic(EVAL_PLAIN.into()),
        Cred::RawAuthorization(EVAL_PLAIN.into()),
        Cred::RawAuthorization(format!("Bearer  {WRONG_BEARER} extra")),
    ];
    let endpoints = [
        ("POST", "/ofrep/v1/evaluate/flags/color"),
        ("POST", "/ofrep/v1/evaluate/flags/staging-only"),
        ("POST", "/ofrep/v1/evaluate/flags/no-such-flag"),
        ("POST", "/ofrep/v1/evaluate/flags"),
        ("GET", "/v1/flags"),
        ("GET", "/ofrep/v1/sse"),
        ("GET", "/v1/flags/stream"),
        ("POST", "/admin/v1/retriever/refresh"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/info"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/no/such/route"),
    ];
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for (method, path) in endpoints {
        for cred in &creds {
            *statuses
                .entry(hit(&base, method, path, cred).await)
                .or_default() += 1;
        }
    }
    // Spot checks that the matrix means what it should.
    let ofrep = "/ofrep/v1/evaluate/flags/color";
    let admin = "/admin/v1/retriever/refresh";
    for (method, path, cred, want) in [
        ("POST", ofrep, Cred::Key(EVAL_PLAIN.into()), 200),
        ("POST", ofrep, Cred::Bearer(tokens[0].clone()), 200),
        ("POST", ofrep, Cred::Key(EVAL_HASHED.into()), 200),
        ("POST", ofrep, Cred::Key(WRONG_KEY.into()), 401),
        ("POST", ofrep, Cred::Bearer(forged.clone()), 401),
        ("POST", ofrep, Cred::Bearer(expired.clone()), 401),
        ("GET", "/ofrep/v1/sse", Cred::Query(EVAL_PLAIN.into()), 200),
        ("GET", "/ofrep/v1/sse", Cred::Query(WRONG_QUERY.into()), 401),
        ("POST", admin, Cred::Key(EVAL_PLAIN.into()), 403),
        ("POST", admin, Cred::Key(ADMIN_KEY.into()), 200),
    ] {
        assert_eq!(
            hit(&base, method, path, &cred).await,
            want,
            "{method} {path} {cred:?}"
        );
    }

    // Both sources failing, in every way: refresh failures logged by the poller and answered
    // by the admin endpoint (502).
    let mut failures = 0;
    for (http, s3) in [(401, 200), (500, 200), (200, 403), (500, 403)] {
        set_upstream(&upstream, http, s3);
        let (status, body) = admin_refresh(&relay, ADMIN_KEY, "").await;
        assert_eq!(status, 502, "{http}/{s3}: {body}");
        let text = body.to_string();
        for s in [
            UPSTREAM_BEARER,
            URL_PASSWORD,
            URL_SIG,
            AWS_KEY_ID,
            AWS_SECRET,
        ] {
            assert!(
                !text.contains(s),
                "the admin answer repeats a secret: {text}"
            );
        }
        failures += 1;
        // Let the poller fail at least once too.
        tokio::time::sleep(Duration::from_millis(900)).await;
        let info = get_text(&relay, "/info").await;
        for s in [
            UPSTREAM_BEARER,
            URL_PASSWORD,
            URL_SIG,
            AWS_KEY_ID,
            AWS_SECRET,
        ] {
            assert!(!info.contains(s), "/info repeats a secret: {info}");
        }
        // Still serving the last good set, to the right credentials.
        assert_eq!(
            hit(&base, "POST", ofrep, &Cred::Bearer(tokens[0].clone())).await,
            200
        );
    }
    set_upstream(&upstream, 200, 200);
    let (status, body) = admin_refresh(&relay, ADMIN_KEY, "").await;
    assert_eq!(status, 200, "{body}");

    relay.signal("TERM");
    let status = wait_exit(&mut relay, Duration::from_secs(20)).expect("exits");
    assert!(status.success());
    let output = relay.all_output();

    // The run did what it claims: credentials reached the upstreams, errors were logged.
    {
        let st = upstream.lock().unwrap();
        assert!(st.http_requests > 0 && st.s3_requests > 0);
        assert_eq!(
            st.http_bad_auth, 0,
            "the bearer header did not reach the source"
        );
        assert_eq!(st.s3_bad_auth, 0, "the AWS credentials were not used");
    }
    for expected in [
        "answered HTTP 401",
        "answered HTTP 500",
        "InvalidAccessKeyId",
        "\"status\":401",
        "\"status\":403",
        "\"level\":\"debug\"",
        "FLAGRELAY_AUTHX_SECRET",
    ] {
        assert!(
            output.contains(expected),
            "no {expected:?} in the output:\n{output}"
        );
    }
    println!(
        "{} output lines, {failures} failure phases, statuses {statuses:?}",
        output.lines().count()
    );

    let mut secrets: Vec<(&str, String)> = vec![
        ("evaluation key", EVAL_PLAIN.into()),
        ("bound evaluation key", EVAL_BOUND.into()),
        ("hashed evaluation key", EVAL_HASHED.into()),
        ("admin key", ADMIN_KEY.into()),
        ("JWT secret", JWT_SECRET.into()),
        ("upstream bearer", UPSTREAM_BEARER.into()),
        ("URL password", URL_PASSWORD.into()),
        ("URL basic auth", b64(&format!("user:{URL_PASSWORD}"))),
        ("URL query signature", URL_SIG.into()),
        ("AWS access key id", AWS_KEY_ID.into()),
        ("AWS secret key", AWS_SECRET.into()),
        (
            "AWS secret key, URL-encoded",
            AWS_SECRET.replace('/', "%2F"),
        ),
        ("AWS session token", AWS_TOKEN.into()),
        ("misspelt variable's value", DECOY_ENV.into()),
        ("wrong key", WRONG_KEY.into()),
        ("wrong bearer", WRONG_BEARER.into()),
        ("wrong query key", WRONG_QUERY.into()),
        ("tampered token", tampered.clone()),
        ("forged token", forged.clone()),
        ("expired token", expired.clone()),
    ];
    for t in &tokens {
        secrets.push(("issued token", t.clone()));
        let sig = t.rsplit('.').next().unwrap().to_owned();
        secrets.push(("issued token's signature", sig));
    }
    let leaks: Vec<String> = output
        .lines()
        .flat_map(|line| {
            secrets
                .iter()
                .filter(|(_, s)| line.contains(s.as_str()))
                .map(move |(what, _)| format!("{what}: {line}"))
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "secrets in the output:\n{}",
        leaks.join("\n")
    );
}
