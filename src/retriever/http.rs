//! `kind: http`: a flag document behind an HTTP(S) URL.
//!
//! TLS is rustls with the process's installed crypto provider (aws-lc-rs, or its FIPS module in
//! a FIPS build), configured here rather than by reqwest so that the provider, the roots and the
//! client certificate are explicit. Server certificates are checked against the platform's roots
//! (`rustls-platform-verifier`, which on Linux reads the system bundle: `/etc/ssl/certs`, or
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`; nothing is fetched at run time) plus `caCertPath`.
//!
//! Conditional requests: the validators of the last good document go out as `If-None-Match` /
//! `If-Modified-Since`, and a 304 costs neither a transfer nor a parse.
//!
//! Errors name the URL without its userinfo, query or fragment ([`super::redact_url`]) and
//! never a configured header value or the request body.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use reqwest::header::{
    ETAG, HeaderMap, HeaderName, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use reqwest::{Method, StatusCode, Url};
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{Fetched, RetrieverError, Validators, error_chain, format_for, redact_url};
use crate::config::RetrieverConfig;
use crate::parse::Format;

/// How many redirects a fetch follows before giving up.
const MAX_REDIRECTS: usize = 10;

#[derive(Debug)]
pub struct HttpRetriever {
    client: reqwest::Client,
    url: Url,
    method: Method,
    /// Configured headers, marked sensitive so that no debug output shows their values.
    headers: HeaderMap,
    body: Option<bytes::Bytes>,
    source: String,
    format: Option<Format>,
    max_bytes: u64,
    timeout: Duration,
    allow_unverified_length: bool,
}

impl HttpRetriever {
    pub(crate) fn new(cfg: &RetrieverConfig) -> Result<Self, RetrieverError> {
        let raw = cfg.url.as_deref().unwrap_or_default();
        // A URL that does not parse cannot be redacted reliably, so it is not repeated.
        let url = Url::parse(raw).map_err(|e| RetrieverError::Setup {
            source_name: "http retriever".into(),
            message: format!("url is not a valid URL ({e})"),
        })?;
        let source = redact_url(&url);
        let setup = |message: String| RetrieverError::Setup {
            source_name: source.clone(),
            message,
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(setup(format!(
                "url scheme must be http or https, not {:?}",
                url.scheme()
            )));
        }
        let method = match cfg.method.as_deref().map(str::trim) {
            None | Some("") => Method::GET,
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| setup(format!("method {m:?} is not a valid HTTP method")))?,
        };
        let headers = sensitive_headers(&cfg.headers).map_err(setup)?;
        let timeout = cfg.timeout.duration().unwrap_or(Duration::from_secs(10));
        let tls = tls_config(cfg, &url).map_err(setup)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("flagrelay/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .redirect(redirect_policy(!headers.is_empty()))
            .build()
            .map_err(|e| setup(format!("cannot build the HTTP client: {}", error_chain(&e))))?;
        Ok(HttpRetriever {
            client,
            format: format_for(cfg, url.path()),
            url,
            method,
            headers,
            body: cfg.body.clone().map(bytes::Bytes::from),
            source,
            max_bytes: cfg.max_bytes,
            timeout,
            allow_unverified_length: cfg.allow_unverified_length,
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The configured client (TLS, redirects), for a `relay` source's change stream.
    pub(super) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// One request, its body streamed and bounded; the whole of it within `timeout`.
    pub(crate) async fn fetch(&self, since: &Validators) -> Result<Fetched, RetrieverError> {
        super::within(&self.source, self.timeout, self.request(since)).await
    }

    fn timed_out(&self) -> RetrieverError {
        RetrieverError::timeout(&self.source, self.timeout)
    }

    fn io(&self, message: String) -> RetrieverError {
        RetrieverError::Io {
            source_name: self.source.clone(),
            message,
        }
    }

    async fn request(&self, since: &Validators) -> Result<Fetched, RetrieverError> {
        let mut req = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        if let Some(etag) = since.etag.as_deref().and_then(header_value) {
            req = req.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = since.last_modified.as_deref().and_then(header_value) {
            req = req.header(IF_MODIFIED_SINCE, lm);
        }
        if let Some(body) = &self.body {
            req = req.body(body.clone());
        }
        let mut resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                self.timed_out()
            } else if e.is_redirect() {
                self.io(format!(
                    "redirect refused: {}",
                    error_chain(&e.without_url())
                ))
            } else if e.is_connect() {
                self.io(format!("cannot connect: {}", error_chain(&e.without_url())))
            } else {
                self.io(format!("request failed: {}", error_chain(&e.without_url())))
            }
        })?;

        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            // ≥ 400 is an error by contract; a 1xx/3xx that reached us (a redirect without a
            // usable Location) is not a document either. The body is not quoted: it may echo
            // the request.
            return Err(RetrieverError::Status {
                source_name: self.source.clone(),
                status: status.as_u16(),
                reason: status.canonical_reason().unwrap_or_default().to_owned(),
            });
        }

        let declared = resp.content_length();
        if declared.is_none() && close_delimited(&resp) && !self.allow_unverified_length {
            // Its end is wherever the connection happened to close: a body cut short by a
            // failing server or proxy looks exactly like a whole one.
            return Err(self.io(
                "the body has neither Content-Length nor chunked framing, so a truncated \
                 document cannot be told from a whole one; fix the server, or set \
                 allowUnverifiedLength: true on this retriever to accept it"
                    .into(),
            ));
        }
        if let Some(len) = declared
            && len > self.max_bytes
        {
            return Err(self.too_large());
        }
        let validators = Validators {
            etag: header_string(resp.headers(), &ETAG),
            last_modified: header_string(resp.headers(), &LAST_MODIFIED),
        };

        // The declared length at once (within maxBytes, checked above), not a dozen copies as
        // the buffer doubles. A length the server then does not send costs address space, not
        // memory: a page is only made resident when the body is written to it.
        let mut buf = BytesMut::with_capacity(usize::try_from(declared.unwrap_or(0)).unwrap_or(0));
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if (buf.len() + chunk.len()) as u64 > self.max_bytes {
                        // Dropping the response closes the connection: nothing more is read.
                        return Err(self.too_large());
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(self.timed_out()),
                Err(e) => {
                    let expected = declared.map(|n| format!(" of {n}")).unwrap_or_default();
                    return Err(self.io(format!(
                        "body truncated: connection failed after {}{expected} bytes ({})",
                        buf.len(),
                        error_chain(&e.without_url())
                    )));
                }
            }
        }
        if let Some(len) = declared
            && (buf.len() as u64) < len
        {
            return Err(self.io(format!(
                "body truncated: {} of {len} bytes received",
                buf.len()
            )));
        }
        super::changed(&self.source, buf.freeze(), self.format, validators)
    }

    fn too_large(&self) -> RetrieverError {
        RetrieverError::TooLarge {
            source_name: self.source.clone(),
            limit: self.max_bytes,
        }
    }
}

/// An HTTP/1 body delimited only by the connection closing (HTTP/2 and later frame every body).
fn close_delimited(resp: &reqwest::Response) -> bool {
    let http1 = matches!(
        resp.version(),
        reqwest::Version::HTTP_09 | reqwest::Version::HTTP_10 | reqwest::Version::HTTP_11
    );
    let chunked = resp
        .headers()
        .get_all(reqwest::header::TRANSFER_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
    http1 && !chunked
}

fn header_value(v: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(v).ok()
}

fn header_string(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|s| !s.is_empty())
}

/// Follow up to [`MAX_REDIRECTS`] redirects, never from https to http, and never to another
/// origin when headers are configured: reqwest drops `Authorization` and cookies on a
/// cross-origin hop, but not a custom header such as `X-API-Key` or `PRIVATE-TOKEN`.
fn redirect_policy(has_headers: bool) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let Some(prev) = attempt.previous().last() else {
            return attempt.follow();
        };
        if attempt.previous().len() > MAX_REDIRECTS {
            let msg = format!("more than {MAX_REDIRECTS} redirects");
            return attempt.error(msg);
        }
        let next = attempt.url();
        if prev.scheme() == "https" && next.scheme() != "https" {
            return attempt.error("a redirect from https to http");
        }
        if has_headers && prev.origin() != next.origin() {
            let msg = format!(
                "a redirect to another origin ({}) with configured headers",
                next.origin().ascii_serialization()
            );
            return attempt.error(msg);
        }
        attempt.follow()
    })
}

/// Configured headers, all marked sensitive (never printed by the HTTP stack): their values
/// are secrets as far as we know, so an error says which header, never what it holds.
pub(crate) fn sensitive_headers(
    configured: &std::collections::BTreeMap<String, crate::config::Secret>,
) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in configured {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header name {name:?} is not valid"))?;
        let mut value = HeaderValue::from_str(value.expose())
            .map_err(|_| format!("header {name} has a value that is not valid"))?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    Ok(headers)
}

/// A client for the relay's other outbound HTTP(S) (notifiers): the TLS setup of an http
/// source (the installed aws-lc-rs provider, the platform's roots plus `ca_cert_path`), and no
/// redirects (a receiver that moved is a configuration error to see, not to follow).
pub(crate) fn outbound_client(
    url: &Url,
    ca_cert_path: Option<&std::path::Path>,
) -> Result<reqwest::Client, String> {
    let cfg = RetrieverConfig {
        ca_cert_path: ca_cert_path.map(Into::into),
        ..RetrieverConfig::file("")
    };
    let tls = tls_config(&cfg, url)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("flagrelay/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))
}

/// The rustls client configuration: the installed provider (aws-lc-rs, FIPS in a FIPS build),
/// the platform's roots plus `caCertPath`, and the client certificate for mTLS.
pub(super) fn tls_config(cfg: &RetrieverConfig, url: &Url) -> Result<ClientConfig, String> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let extra_roots = match &cfg.ca_cert_path {
        Some(path) => read_certs(path, "caCertPath")?,
        None => Vec::new(),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder =
        match rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider) {
            Ok(verifier) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier)),
            // No roots at all (no system bundle, no caCertPath): a plain-http source still
            // works, and an https redirect from it fails verification.
            Err(_) if url.scheme() == "http" => {
                builder.with_root_certificates(rustls::RootCertStore::empty())
            }
            Err(e) => {
                return Err(format!(
                    "no trusted CA certificates ({e}): install the system CA bundle \
                     (/etc/ssl/certs) or set caCertPath"
                ));
            }
        };
    let mut tls = match (&cfg.client_cert_path, &cfg.client_key_path) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "clientCertPath")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                format!(
                    "clientKeyPath {}: cannot read a PEM private key ({e})",
                    key.display()
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("clientCertPath/clientKeyPath: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

fn read_certs(path: &std::path::Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{key} {}: no PEM certificate found",
            path.display()
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Millis, RetrieverKind, Secret};

    fn cfg(url: &str) -> RetrieverConfig {
        let mut c = RetrieverConfig::file("unused");
        c.kind = RetrieverKind::Http;
        c.path = None;
        c.url = Some(url.into());
        c.timeout = Millis(1000);
        c
    }

    #[test]
    fn source_has_no_credentials_or_query() {
        let r = HttpRetriever::new(&cfg(
            "https://user:hunter2@flags.example.com:8443/v1/flags.json?token=abc#frag",
        ))
        .unwrap();
        assert_eq!(r.source(), "https://flags.example.com:8443/v1/flags.json");
        assert_eq!(r.format, Some(Format::Json));
    }

    #[test]
    fn format_comes_from_the_path_not_the_query() {
        let r = HttpRetriever::new(&cfg("http://h/flags.yaml?format=.json")).unwrap();
        assert_eq!(r.format, Some(Format::Yaml));
        let r = HttpRetriever::new(&cfg("http://h/flags")).unwrap();
        assert_eq!(r.format, None);
        let mut c = cfg("http://h/flags.yaml");
        c.format = Some(Format::Json);
        assert_eq!(HttpRetriever::new(&c).unwrap().format, Some(Format::Json));
    }

    #[test]
    fn setup_errors_never_show_secrets() {
        let e = HttpRetriever::new(&cfg("not a url with s3cr3t")).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");

        let e = HttpRetriever::new(&cfg("ftp://u:s3cr3t@h/flags.yaml")).unwrap_err();
        assert!(e.to_string().contains("ftp://h/flags.yaml"), "{e}");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");

        let mut c = cfg("http://u:s3cr3t@h/flags.yaml");
        c.headers
            .insert("Authorization".into(), Secret("Bearer s3cr3t\n".into()));
        let e = HttpRetriever::new(&c).unwrap_err();
        assert!(e.to_string().contains("Authorization") || e.to_string().contains("authorization"));
        assert!(!e.to_string().contains("s3cr3t"), "{e}");

        let mut c = cfg("http://h/flags.yaml");
        c.method = Some("GE T".into());
        assert!(HttpRetriever::new(&c).is_err());
        c.method = Some("post".into());
        assert_eq!(HttpRetriever::new(&c).unwrap().method, Method::POST);
    }

    #[test]
    fn headers_are_sensitive() {
        let mut c = cfg("http://h/flags.yaml");
        c.headers
            .insert("X-Api-Key".into(), Secret("s3cr3t".into()));
        let r = HttpRetriever::new(&c).unwrap();
        assert!(r.headers["x-api-key"].is_sensitive());
        assert!(!format!("{r:?}").contains("s3cr3t"));
    }

    #[test]
    fn bad_tls_files_are_setup_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let mut c = cfg("https://h/flags.yaml");
        c.ca_cert_path = Some(empty.clone());
        let e = HttpRetriever::new(&c).unwrap_err();
        assert!(e.to_string().contains("caCertPath"), "{e}");

        let mut c = cfg("https://h/flags.yaml");
        c.ca_cert_path = Some(dir.path().join("missing.pem"));
        let e = HttpRetriever::new(&c).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
