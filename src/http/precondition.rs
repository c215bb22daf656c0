//! `If-None-Match` (RFC 9110 §13.1.2), shared by the bulk OFREP POST and `GET /v1/flags`.
//!
//! The field is `*` or a comma-separated list of entity-tags (`"x"`, `W/"x"`), possibly over
//! several header lines; commas may appear inside a quoted tag. Comparison is weak (a `W/`
//! prefix does not matter). Members that are not entity-tags are ignored, so a malformed field
//! never produces a 304 by accident.

use axum::http::{HeaderMap, header};

/// What the request's `If-None-Match` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IfNoneMatch {
    /// No such header.
    Absent,
    /// `*`: "any current representation".
    Any,
    /// The opaque tags listed (with their quotes, without `W/`).
    Tags(Vec<String>),
}

impl IfNoneMatch {
    pub(crate) fn from_headers(headers: &HeaderMap) -> IfNoneMatch {
        let mut tags = Vec::new();
        let mut present = false;
        for value in headers.get_all(header::IF_NONE_MATCH) {
            present = true;
            let Ok(text) = value.to_str() else { continue };
            if text.trim() == "*" {
                return IfNoneMatch::Any;
            }
            parse_list(text, &mut tags);
        }
        if present {
            IfNoneMatch::Tags(tags)
        } else {
            IfNoneMatch::Absent
        }
    }

    /// Whether one of the listed tags is `etag` (quoted), by weak comparison.
    pub(crate) fn lists(&self, etag: &str) -> bool {
        let etag = etag.strip_prefix("W/").unwrap_or(etag);
        match self {
            IfNoneMatch::Tags(tags) => tags.iter().any(|t| t == etag),
            _ => false,
        }
    }
}

/// For GET and HEAD: whether a 304 is the answer (`*` matches any current representation).
pub(crate) fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    match IfNoneMatch::from_headers(headers) {
        IfNoneMatch::Any => true,
        other => other.lists(etag),
    }
}

/// Append the entity-tags of one field line to `out`; skip anything malformed up to the next
/// comma outside quotes.
fn parse_list(text: &str, out: &mut Vec<String>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t' || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        if text[i..].starts_with("W/") {
            i += 2;
        }
        if i < bytes.len() && bytes[i] == b'"' {
            // etagc = %x21 / %x23-7E / obs-text: anything but DQUOTE, space and controls.
            let open = i;
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' && bytes[i] > 0x20 && bytes[i] != 0x7f {
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'"' {
                i += 1;
                let end_ok = bytes[i..]
                    .iter()
                    .find(|&&b| b != b' ' && b != b'\t')
                    .is_none_or(|&b| b == b',');
                if end_ok {
                    out.push(text[open..i].to_owned());
                }
            }
        }
        // Skip to the next separator (past whatever was malformed).
        while i < bytes.len() && bytes[i] != b',' {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn inm(values: &[&str]) -> IfNoneMatch {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        IfNoneMatch::from_headers(&h)
    }

    #[test]
    fn lists_weak_and_several_lines() {
        assert_eq!(inm(&[]), IfNoneMatch::Absent);
        assert_eq!(inm(&["*"]), IfNoneMatch::Any);
        let m = inm(&[r#""a", W/"b""#, r#" "c,d" "#]);
        assert!(m.lists(r#""a""#));
        assert!(m.lists(r#""b""#), "weak comparison");
        assert!(m.lists(r#"W/"a""#));
        assert!(
            m.lists(r#""c,d""#),
            "a comma inside quotes belongs to the tag"
        );
        assert!(!m.lists(r#""c""#));
        assert!(!m.lists(r#""d""#));
    }

    #[test]
    fn malformed_members_never_match() {
        for bad in [
            r#"a"#,
            r#""a"#,
            r#"W/a"#,
            r#""a"b"#,
            r#""a" "b""#,
            r#"w/"a""#,
        ] {
            assert!(!inm(&[bad]).lists(r#""a""#), "{bad}");
        }
        // A malformed member does not hide a good one after it.
        assert!(inm(&[r#"junk, "a""#]).lists(r#""a""#));
    }
}
