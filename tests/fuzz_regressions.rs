//! Regression tests for what the fuzz targets (fuzz/, `scripts/fuzz-smoke.sh`) found, and the
//! input limits of issue 8 item 2 they rely on: YAML alias expansion and JSON nesting depth.
//!
//! Each test calls the same public function as its fuzz target with the input that failed; the
//! input is inlined or read from fuzz/regressions/. A test of a defect not fixed yet is
//! `#[ignore]`d with the reason, and un-ignored by the fix.

use flagrelay::config::parse_text;
use flagrelay::http::Auth;
use flagrelay::http::auth::Caller;
use flagrelay::http::ofrep::{ErrorCode, parse_context, parse_context_by_serde};
use flagrelay::parse::{DocumentError, Format, parse_document, parse_document_two_stage};

/// How deep the nesting tests go: far past any stack's worth of recursion.
const DEEP: usize = 100_000;

fn regression(name: &str) -> String {
    let path = format!("{}/fuzz/regressions/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The classic billion-laughs document: ten levels of ten aliases, 10^9 scalars expanded.
fn billion_laughs() -> String {
    let names: Vec<char> = "abcdefghij".chars().collect();
    let mut doc = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for w in names.windows(2) {
        let (prev, this) = (w[0], w[1]);
        let refs = vec![format!("*{prev}"); 10].join(",");
        doc.push_str(&format!("{this}: &{this} [{refs}]\n"));
    }
    doc
}

fn one_error(e: &DocumentError) -> &str {
    assert_eq!(e.errors.len(), 1, "{e}");
    &e.errors[0].message
}

#[test]
fn billion_laughs_flag_document_fails_with_a_budget_error() {
    let doc = billion_laughs();
    for format in [Some(Format::Yaml), None] {
        let e = parse_document("laughs.yaml", doc.as_bytes(), format)
            .expect_err("a billion-laughs document must not load");
        let message = one_error(&e);
        assert!(message.contains("budget breached"), "{format:?}: {message}");
        assert!(e.errors[0].position.is_some(), "{e}");
        assert!(e.to_string().starts_with("laughs.yaml:"), "{e}");
    }
}

#[test]
fn billion_laughs_config_fails_with_a_budget_error() {
    let e = parse_text("flagrelay.yaml", &billion_laughs())
        .expect_err("a billion-laughs config must not load")
        .to_string();
    assert!(
        e.contains("flagrelay.yaml") && e.contains("budget breached"),
        "{e}"
    );
}

/// Aliases that copy a long string: 10^6 copies of 1,000 bytes would be a gigabyte.
#[test]
fn alias_copies_of_a_long_string_fail_with_a_budget_error() {
    let names: Vec<char> = "abcdefg".chars().collect();
    let mut doc = format!("a: &a [\"{}\"]\n", "x".repeat(1000));
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 10].join(",");
        doc.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    let e = parse_document("amp.yaml", doc.as_bytes(), Some(Format::Yaml)).unwrap_err();
    assert!(one_error(&e).contains("budget breached"), "{e}");
}

fn nested_array(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn deeply_nested_json_flag_value_fails_cleanly() {
    let doc = format!(
        r#"{{"f": {{"enabled": true, "value": {{"on": {}, "off": []}}}}}}"#,
        nested_array(DEEP)
    );
    // Sniffed, the JSON error wins over YAML's (a flow mapping also starts with `{`).
    for format in [Some(Format::Json), None] {
        let e = parse_document("deep.json", doc.as_bytes(), format).unwrap_err();
        assert!(
            one_error(&e).contains("recursion limit exceeded"),
            "{format:?}: {e}"
        );
    }
    // The same text read as YAML (flow collections) hits YAML's own depth limit.
    let e = parse_document("deep.yaml", doc.as_bytes(), Some(Format::Yaml)).unwrap_err();
    assert!(one_error(&e).contains("recursion limit exceeded"), "{e}");
}

#[test]
fn deeply_nested_yaml_block_sequences_fail_cleanly() {
    // `- - - x` is a sequence in a sequence in a sequence, all on one line.
    let doc = format!(
        "f:\n  value:\n    on:\n      {}x\n    off: []\n",
        "- ".repeat(DEEP)
    );
    let e = parse_document("deep.yaml", doc.as_bytes(), Some(Format::Yaml)).unwrap_err();
    let message = one_error(&e);
    assert!(
        message.contains("recursion limit") || message.contains("budget breached"),
        "{e}"
    );
}

#[test]
fn deeply_nested_config_fails_cleanly() {
    let json = format!(
        r#"{{"cors": {{"allowedOrigins": {}}}}}"#,
        nested_array(DEEP)
    );
    let e = parse_text("flagrelay.json", &json).unwrap_err().to_string();
    assert!(e.contains("recursion limit exceeded"), "{e}");
    let yaml = format!("cors:\n  allowedOrigins: {}\n", nested_array(DEEP));
    let e = parse_text("flagrelay.yaml", &yaml).unwrap_err().to_string();
    assert!(e.contains("recursion limit exceeded"), "{e}");
}

/// A deep value under an attribute the relay skips is skipped without recursion (serde_json
/// ignores values iteratively), so it may be accepted; one under a subject attribute is
/// INVALID_CONTEXT; and either way the call returns instead of overflowing the stack.
#[test]
fn deeply_nested_ofrep_context_is_handled_without_stack_overflow() {
    let skipped = format!(
        r#"{{"context": {{"targetingKey": "u1", "x": {}}}, "y": {}}}"#,
        nested_array(DEEP),
        nested_array(DEEP)
    );
    match parse_context(skipped.as_bytes()) {
        Ok(ctx) => assert_eq!(ctx.targeting_key.as_deref(), Some("u1")),
        Err(e) => assert!(
            e.code == ErrorCode::ParseError && e.details.contains("recursion limit"),
            "{e:?}"
        ),
    }
    let attribute = format!(
        r#"{{"context": {{"targetingKey": {}}}}}"#,
        nested_array(DEEP)
    );
    let e = parse_context(attribute.as_bytes()).unwrap_err();
    assert!(
        matches!(e.code, ErrorCode::InvalidContext | ErrorCode::ParseError),
        "{e:?}"
    );
    // Nested objects, not only arrays, skipped and under a subject attribute.
    let objects = |key: &str| {
        format!(
            r#"{{"context": {{"{key}": {}1{}}}}}"#,
            r#"{"a":"#.repeat(DEEP),
            "}".repeat(DEEP)
        )
    };
    match parse_context(objects("other").as_bytes()) {
        Ok(ctx) => assert_eq!(ctx.env, None),
        Err(e) => assert_eq!(e.code, ErrorCode::ParseError, "{e:?}"),
    }
    let e = parse_context(objects("env").as_bytes()).unwrap_err();
    assert!(
        matches!(e.code, ErrorCode::InvalidContext | ErrorCode::ParseError),
        "{e:?}"
    );
}

/// Found by the `config` target (fuzz/regressions/config-token-ttl-overflow.yaml): a valid
/// config with `auth.tokenTtl: 18446744073709551615` makes `Auth::issue_token` compute
/// `now + ttl`, which panics with "attempt to add with overflow" (src/http/auth.rs, `exp: now +
/// jwt.ttl`) where overflow checks are on, and wraps in release builds, so every token issued
/// is already expired. Fixed when the token is issued (or the ttl refused at load) and works.
#[test]
fn huge_token_ttl_does_not_overflow() {
    let config = match parse_text(
        "flagrelay.yaml",
        &regression("config-token-ttl-overflow.yaml"),
    ) {
        // Refusing the ttl at load, naming the key, is a fix too.
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("tokenTtl"), "{e}");
            return;
        }
        Ok(config) => config,
    };
    let auth = Auth::new(
        &config.authorized_keys,
        config.auth.jwt_secret.as_ref(),
        config.auth.token_ttl,
    )
    .unwrap();
    let (token, _) = auth.issue_token("k").expect("a token is issued for key k");
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    assert_eq!(
        auth.evaluation_caller(&headers, None),
        Ok(Caller::Evaluation { env: None }),
        "the token issued must be valid"
    );
}

/// bearer_token (CI's fuzz smoke, 2026-11-21): a token correctly signed with the relay's secret
/// whose claims carried a non-UTF-8 byte inside an unknown member was accepted, because serde
/// skips unknown members without validating them. RFC 7519 §7.2 says such a token is invalid.
#[test]
fn signed_token_with_non_utf8_claims_is_refused() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, EncodingKey};

    const SECRET: &str = "fuzz-regression-secret-0123456789abcdef";
    let keys = flagrelay::config::AuthorizedKeys {
        evaluation: vec![flagrelay::config::EvaluationKey {
            key: flagrelay::config::Secret("eval-plain".into()),
            env: None,
        }],
        admin: vec![],
    };
    let auth = Auth::new(&keys, Some(&flagrelay::config::Secret(SECRET.into())), 60).unwrap();
    let signing = EncodingKey::from_secret(SECRET.as_bytes());
    let kid = flagrelay::http::auth::key_id("eval-plain");
    let token = |header: &[u8], claims: &[u8]| {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &signing, Algorithm::HS256).unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "authorization",
            format!("Bearer {input}.{sig}").parse().unwrap(),
        );
        auth.evaluation_caller(&headers, None)
    };
    let good_header = br#"{"alg":"HS256","typ":"JWT"}"#.as_slice();
    let claims = |extra: &[u8]| {
        let mut c = format!(r#"{{"kid":"{kid}","iat":0,"exp":4102444801,"note":""#).into_bytes();
        c.extend_from_slice(extra);
        c.extend_from_slice(br#""}"#);
        c
    };
    // The same token with valid UTF-8 is accepted, so the refusals below are about the byte.
    assert_eq!(
        token(good_header, &claims(b"ok")),
        Ok(Caller::Evaluation { env: None })
    );
    assert!(token(good_header, &claims(b"87`S3849\xb4b7")).is_err());
    assert!(token(br#"{"alg":"HS256","x":"\xb4"}"#, &claims(b"ok")).is_err());
}

/// The committed corpus of one fuzz target: every input its runs kept.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = format!("{}/fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
    let inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(inputs.len() > 1000, "{dir}: {} inputs", inputs.len());
    inputs
}

/// The differential checks of the `flag_document` and `ofrep_request` targets over their
/// committed corpora, on stable in every test run: the fast readers (`yaml_subset`, the JSON
/// reader) and the common-shape body reader only skip work, so whatever they accept must come
/// out exactly as the reference paths make it.
#[test]
fn committed_corpora_agree_with_the_reference_paths() {
    let mut accepted = 0;
    for input in corpus("flag_document") {
        let Some((&selector, doc)) = input.split_first() else {
            continue;
        };
        let format = [None, Some(Format::Yaml), Some(Format::Json)][usize::from(selector % 3)];
        let Ok(fast) = parse_document("fuzz", doc, format) else {
            continue;
        };
        accepted += 1;
        match parse_document_two_stage("fuzz", doc, format) {
            Ok(slow) => assert_eq!(fast, slow, "{}", String::from_utf8_lossy(doc)),
            Err(e) => panic!("accepted, but the two stages refuse it: {e}"),
        }
    }
    assert!(accepted > 100, "only {accepted} corpus documents parse");

    let mut taken = 0;
    for body in corpus("ofrep_request") {
        match (parse_context(&body), parse_context_by_serde(&body)) {
            (Ok(fast), Ok(slow)) => {
                taken += 1;
                assert_eq!(fast, slow, "{}", String::from_utf8_lossy(&body));
            }
            (Err(fast), Err(slow)) => assert_eq!(
                (fast.code, fast.details),
                (slow.code, slow.details),
                "{}",
                String::from_utf8_lossy(&body)
            ),
            (fast, slow) => panic!(
                "{}: {fast:?} against {slow:?}",
                String::from_utf8_lossy(&body)
            ),
        }
    }
    assert!(taken > 50, "only {taken} corpus bodies parse");
}
