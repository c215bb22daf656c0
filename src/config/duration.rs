//! Durations in milliseconds, written as a number (`60000`) or a string (`"30s"`, `"500ms"`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Milliseconds. Signed, because `pollingInterval: 0` or `-1` means "polling off".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(pub i64);

impl Millis {
    /// `None` when zero or negative.
    pub fn duration(self) -> Option<Duration> {
        (self.0 > 0).then(|| Duration::from_millis(self.0 as u64))
    }
}

/// Parse `"250ms"`, `"30s"`, `"5m"`, `"1h"`, `"1500"`.
pub(super) fn parse_millis(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '-' || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("{text:?} is not a duration (e.g. 60000, \"500ms\", \"30s\", \"5m\")")
    })?;
    let scale = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?} (ms, s, m, h)"
            ));
        }
    };
    Ok((n * scale).round() as i64)
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f.round() as i64))
                .map(Millis)
                .ok_or_else(|| serde::de::Error::custom("duration out of range")),
            Value::String(s) => parse_millis(&s)
                .map(Millis)
                .map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "expected milliseconds or a string like \"30s\", found {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_millis("1500"), Ok(1500));
        assert_eq!(parse_millis("250ms"), Ok(250));
        assert_eq!(parse_millis("30s"), Ok(30_000));
        assert_eq!(parse_millis("1.5s"), Ok(1500));
        assert_eq!(parse_millis("5m"), Ok(300_000));
        assert_eq!(parse_millis("-1"), Ok(-1));
        assert!(parse_millis("soon").is_err());
        assert!(parse_millis("5 days").unwrap_err().contains("unit"));
    }
}
