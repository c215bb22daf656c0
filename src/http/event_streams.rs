//! The `eventStreams` member of a bulk OFREP answer (ADR-0008): where a client follows changes.
//!
//! Unauthenticated relays name the stream by path (`endpoint.requestUri`), and the provider
//! adds the origin it already talks to. When the bulk request carried a credential, the stream
//! needs one too, and a browser's `EventSource` cannot send headers: the stream is then a `url`
//! whose query holds a short-lived stream ticket (see [`super::ticket`]) — never the key.

use axum::http::{HeaderMap, Uri, header};

/// Path of the OFREP change stream.
pub(crate) const SSE_PATH: &str = "/ofrep/v1/sse";

/// The JSON array for `eventStreams`.
pub(crate) fn render(
    ticket: Option<&str>,
    origin: Option<&str>,
    inactivity_delay_sec: u64,
) -> String {
    match (ticket, origin) {
        (None, _) => format!(
            r#"[{{"type":"sse","endpoint":{{"requestUri":"{SSE_PATH}"}},"inactivityDelaySec":{inactivity_delay_sec}}}]"#
        ),
        (Some(t), Some(origin)) => {
            let url = serde_json::Value::String(format!("{origin}{SSE_PATH}?ticket={t}"));
            format!(r#"[{{"type":"sse","url":{url},"inactivityDelaySec":{inactivity_delay_sec}}}]"#)
        }
        // No origin to build a URL from (an HTTP/1.0 request without Host): the path with the
        // ticket, which the provider resolves against its own base URL.
        (Some(t), None) => format!(
            r#"[{{"type":"sse","endpoint":{{"requestUri":"{SSE_PATH}?ticket={t}"}},"inactivityDelaySec":{inactivity_delay_sec}}}]"#
        ),
    }
}

/// `scheme://host[:port]` the client used to reach the relay: `Host` (or HTTP/2's
/// `:authority`), and `X-Forwarded-Proto` when a TLS-terminating proxy sets it. `None` when
/// the host is missing or not a plain `host[:port]`.
pub(crate) fn request_origin(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))?
        .trim();
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    if !plain {
        return None;
    }
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    let scheme = match proto {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => uri.scheme_str().filter(|s| *s == "https").unwrap_or("http"),
    };
    Some(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn forms() {
        let open: serde_json::Value = serde_json::from_str(&render(None, None, 120)).unwrap();
        assert_eq!(open[0]["endpoint"]["requestUri"], "/ofrep/v1/sse");
        assert_eq!(open[0]["inactivityDelaySec"], 120);
        let t: serde_json::Value =
            serde_json::from_str(&render(Some("1.k.AA.x"), Some("http://h:1"), 30)).unwrap();
        assert_eq!(t[0]["url"], "http://h:1/ofrep/v1/sse?ticket=1.k.AA.x");
        assert!(t[0].get("endpoint").is_none());
        let nohost: serde_json::Value =
            serde_json::from_str(&render(Some("1.k.AA.x"), None, 30)).unwrap();
        assert_eq!(
            nohost[0]["endpoint"]["requestUri"],
            "/ofrep/v1/sse?ticket=1.k.AA.x"
        );
    }

    #[test]
    fn origin_from_host_and_proxy() {
        let mut h = HeaderMap::new();
        let uri: Uri = "/ofrep/v1/evaluate/flags".parse().unwrap();
        assert_eq!(request_origin(&h, &uri), None);
        h.insert(header::HOST, HeaderValue::from_static("relay.example:8443"));
        assert_eq!(
            request_origin(&h, &uri).unwrap(),
            "http://relay.example:8443"
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(
            request_origin(&h, &uri).unwrap(),
            "https://relay.example:8443"
        );
        h.insert(header::HOST, HeaderValue::from_static("evil\"host"));
        assert_eq!(request_origin(&h, &uri), None);
    }
}
