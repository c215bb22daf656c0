//! Checks of a retriever entry that the retriever would otherwise only make when it is built,
//! failing the start with exit 1 and no key: here they fail at load, name the key, and exit 2.
//! Values are not repeated (a URL may hold credentials, a header value is a secret).

use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};

use super::{ConfigError, RetrieverConfig, RetrieverKind, invalid};

pub(super) fn retriever(i: usize, r: &RetrieverConfig) -> Result<(), ConfigError> {
    let at = |field: &str| format!("retrievers[{i}].{field}");
    match r.kind {
        RetrieverKind::Http => {
            if let Some(url) = &r.url {
                http_url(url, &["http", "https"]).map_err(|m| invalid(at("url"), m))?;
            }
            if let Some(method) = r.method.as_deref().map(str::trim)
                && !method.is_empty()
                && reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).is_err()
            {
                return Err(invalid(at("method"), "is not a valid HTTP method"));
            }
            for (name, value) in &r.headers {
                let key = at(&format!("headers.{name}"));
                if HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(invalid(key, "is not a valid HTTP header name"));
                }
                if HeaderValue::from_str(value.expose()).is_err() {
                    return Err(invalid(
                        key,
                        "the value is not a valid HTTP header value (control characters such \
                         as a newline are not allowed; the value is not shown)",
                    ));
                }
            }
        }
        RetrieverKind::Relay => {
            if let Some(url) = &r.url {
                http_url(url, &["http", "https"]).map_err(|m| invalid(at("url"), m))?;
            }
        }
        RetrieverKind::S3 | RetrieverKind::Azblob | RetrieverKind::Gcs => {
            if let Some(endpoint) = &r.endpoint {
                http_url(endpoint, &["http", "https"]).map_err(|m| invalid(at("endpoint"), m))?;
            }
        }
        // File paths are checked when read; SQL URLs by the sql retriever's own setup.
        RetrieverKind::File | RetrieverKind::Sql => {}
    }
    Ok(())
}

fn http_url(text: &str, schemes: &[&str]) -> Result<(), String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "must be an http:// or https:// URL, not {}://",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(yaml: &str) -> Result<Config, ConfigError> {
        crate::config::parse_text("c.yaml", yaml)
    }

    #[test]
    fn non_http_url_names_the_key() {
        let e = load("retrievers: [{kind: http, url: 'ftp://user:pw@example.test/f.yaml'}]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("retrievers[0].url"), "{e}");
        assert!(!e.contains("pw@"), "credentials in the URL leaked: {e}");
        let e = load("retrievers: [{kind: http, url: 'not a url'}]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("retrievers[0].url"), "{e}");
        assert!(load("retrievers: [{kind: http, url: 'https://example.test/f.yaml'}]").is_ok());
    }

    #[test]
    fn header_value_with_a_newline_names_the_header() {
        let e = load(
            "retrievers: [{kind: http, url: 'https://x.test/', headers: {X-Token: \"ab\\ncd\"}}]",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("retrievers[0].headers.X-Token"), "{e}");
        assert!(!e.contains("ab\ncd") && !e.contains("cd"), "{e}");
        let e = load("retrievers: [{kind: http, url: 'https://x.test/', headers: {'a b': v}}]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("headers.a b"), "{e}");
        let e = load("retrievers: [{kind: http, url: 'https://x.test/', method: 'GE T'}]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("retrievers[0].method"), "{e}");
    }

    #[test]
    fn s3_endpoint_must_be_a_url() {
        let e = load("retrievers: [{kind: s3, bucket: b, item: i, endpoint: 'localhost:9000'}]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("retrievers[0].endpoint"), "{e}");
    }
}
