//! The fixed label sets: every series is a slot known up front, so recording is an index.

use crate::evaluator::Reason;

/// Methods with their own label; anything else counts as `other`.
pub(super) const METHODS: [&str; 8] = [
    "GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "other",
];

/// Index of a method in [`METHODS`].
pub(crate) fn method_index(m: &axum::http::Method) -> usize {
    use axum::http::Method;
    match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::HEAD => 2,
        Method::OPTIONS => 3,
        Method::PUT => 4,
        Method::DELETE => 5,
        Method::PATCH => 6,
        _ => 7,
    }
}

/// Status codes with their own label. Any other code counts under its class (`1xx`…`5xx`):
/// this server does not answer them, and a fixed set keeps recording to an index.
pub(super) const STATUSES: [u16; 30] = [
    100, 101, 200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408,
    409, 411, 413, 414, 415, 422, 429, 431, 500, 502, 503,
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
pub(super) const STATUS_SLOTS: usize = STATUSES.len() + 1 + STATUS_CLASSES.len(); // + 504

/// Slot of a status code: the known codes, then 504, then the classes.
pub(super) fn status_slot(code: u16) -> usize {
    if code == 504 {
        return STATUSES.len();
    }
    match STATUSES.binary_search(&code) {
        Ok(i) => i,
        Err(_) => {
            let class = usize::from(code / 100).clamp(1, 5) - 1;
            STATUSES.len() + 1 + class
        }
    }
}

pub(super) fn status_label(slot: usize) -> std::borrow::Cow<'static, str> {
    if slot < STATUSES.len() {
        STATUSES[slot].to_string().into()
    } else if slot == STATUSES.len() {
        "504".into()
    } else {
        STATUS_CLASSES[slot - STATUSES.len() - 1].into()
    }
}

/// The reasons an evaluation can have, in label order.
pub(super) const REASONS: [Reason; 5] = [
    Reason::Disabled,
    Reason::TargetingMatch,
    Reason::Static,
    Reason::Default,
    Reason::Split,
];

pub(super) fn reason_index(r: Reason) -> usize {
    match r {
        Reason::Disabled => 0,
        Reason::TargetingMatch => 1,
        Reason::Static => 2,
        Reason::Default => 3,
        Reason::Split => 4,
    }
}

/// Request latency buckets, in seconds (the relay answers in well under a millisecond).
pub(crate) const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Refresh duration buckets, in seconds.
pub(super) const REFRESH_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
