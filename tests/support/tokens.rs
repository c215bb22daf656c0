//! Token signing and credential encodings for tests, with the crates the relay itself uses
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
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
