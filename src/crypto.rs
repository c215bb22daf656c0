//! The one cryptographic module: AWS-LC through `aws-lc-rs`.
//!
//! rustls (for reqwest and the S3 client), token signing and key hashing all use it. With the
//! `fips` cargo feature, AWS-LC's FIPS 140-3 module is linked and rustls's FIPS provider is
//! installed as the process default, before any TLS client is built.

use rustls::crypto::CryptoProvider;

/// Install the process-wide rustls provider. Call first thing in `main`.
pub fn install_default_provider() {
    #[cfg(feature = "fips")]
    let provider = rustls::crypto::default_fips_provider();
    #[cfg(not(feature = "fips"))]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    // Fails only if one is installed already (tests may call this twice): keep that one.
    let _ = provider.install_default();
}

/// Whether FIPS mode is in force, as the installed provider itself reports it (not the build
/// flag): the provider only says so when the AWS-LC FIPS module is linked and self-tested.
pub(crate) fn fips_active() -> bool {
    CryptoProvider::get_default().is_some_and(|p| p.fips())
}

/// HMAC-SHA256 (stream tickets; through AWS-LC, so the FIPS build covers it).
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::hmac::sign(&key, message).as_ref());
    out
}
