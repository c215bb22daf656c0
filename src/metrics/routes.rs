//! Route templates: per-route counters, and matching a request path to its template the way
//! axum's router does (a few comparisons against immutable tables, no lock, no allocation).

use super::labels::{LATENCY_BUCKETS, METHODS, STATUS_SLOTS};

/// Per route, in the per-thread counter arrays: requests by method × status,
pub(super) const REQUEST_SLOTS: usize = METHODS.len() * STATUS_SLOTS;
/// then the latency histogram's buckets (and `+Inf`),
pub(super) const LATENCY_SLOTS: usize = LATENCY_BUCKETS.len() + 1;
/// then the latency sum in nanoseconds.
pub(super) const ROUTE_STRIDE: usize = REQUEST_SLOTS + LATENCY_SLOTS + 1;

/// A route template (its counters are at `index × ROUTE_STRIDE` in `Metrics::route_counts`).
#[derive(Debug)]
pub(super) struct RouteStats {
    pub(super) template: Box<str>,
}

impl RouteStats {
    pub(super) fn new(template: &str) -> RouteStats {
        RouteStats {
            template: template.into(),
        }
    }
}

/// A route template with parameters, for matching request paths.
#[derive(Debug)]
pub(super) struct Pattern {
    /// The literal text before the first parameter (ends with `/`).
    prefix: Box<str>,
    /// `/prefix/{*rest}`: matches when the path extends the prefix.
    catch_all_only: bool,
    /// The segments after the first one, for the general case.
    segments: Vec<Segment>,
}

#[derive(Debug)]
enum Segment {
    Literal(Box<str>),
    /// `{name}`: one non-empty segment.
    Param,
    /// `{*name}`: the non-empty rest of the path, slashes included.
    CatchAll,
}

impl Pattern {
    pub(super) fn parse(template: &str) -> Pattern {
        let brace = template.find('{').unwrap_or(template.len());
        let prefix = &template[..brace];
        let rest = &template[brace..];
        let catch_all_only = prefix.ends_with('/')
            && rest.starts_with("{*")
            && rest.ends_with('}')
            && rest.matches('{').count() == 1;
        let segments = template
            .split('/')
            .map(|s| {
                if s.starts_with("{*") && s.ends_with('}') {
                    Segment::CatchAll
                } else if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Literal(s.into())
                }
            })
            .collect();
        Pattern {
            prefix: prefix.into(),
            catch_all_only,
            segments,
        }
    }

    #[inline]
    pub(super) fn matches(&self, path: &str) -> bool {
        if !path.starts_with(&*self.prefix) {
            return false;
        }
        if self.catch_all_only {
            return path.len() > self.prefix.len();
        }
        let mut rest = Some(path);
        for seg in &self.segments {
            let Some(r) = rest else { return false };
            if let Segment::CatchAll = seg {
                return !r.is_empty();
            }
            let (head, tail) = match r.split_once('/') {
                Some((h, t)) => (h, Some(t)),
                None => (r, None),
            };
            let ok = match seg {
                Segment::Literal(l) => head == &**l,
                Segment::Param => !head.is_empty(),
                Segment::CatchAll => unreachable!(),
            };
            if !ok {
                return false;
            }
            rest = tail;
        }
        rest.is_none()
    }
}

/// A route resolved once per request, so recording is an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteId(pub(super) usize);
