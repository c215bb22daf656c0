//! Token signing, tokens from the relay and credential encodings for tests, with the crates the relay itself uses
//! (`jsonwebtoken`, `base64`, `aws-lc-rs`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// An HS256 JWT over `payload`, signed with `secret`.
pub fn hs256(payload: &serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        payload,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Standard base64 with padding of `s`, as in a `Basic` authorization header.
pub fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

/// Lower-case hex SHA-256 of `s`, as in a `sha256:` hashed key.
pub fn sha256_hex(s: &str) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref())
}

/// Lower-case hex HMAC-SHA256 of `body` under `secret`, as in a webhook signature.
pub fn hmac_sha256_hex(secret: &str, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    hex(aws_lc_rs::hmac::sign(&key, body).as_ref())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A token from the relay's `POST /client/auth` for the evaluation key `key`.
pub async fn issue_token(relay: &super::relay::Relay, key: &str) -> String {
    let r = super::relay::client()
        .post(relay.url("/client/auth"))
        .json(&serde_json::json!({"apiKey": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["expiresIn"].as_u64().unwrap() > 0);
    v["authToken"].as_str().unwrap().to_owned()
}
