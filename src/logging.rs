//! Logs: JSON lines by default (`{"level":"info","msg":"…",fields…,"ts":"…"}`), or text for
//! people (`logFormat: text`). Secrets never reach a log line: config secrets are wrapped in
//! [`crate::config::Secret`], and credentials are identified only by a hash prefix.

use std::fmt;
use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Install the global subscriber. `level` is the configured `logLevel`; `RUST_LOG`, when set,
/// refines it for debugging the relay's dependencies. With `tracer`, the relay's own spans are
/// exported too (whatever the log level: the two are filtered separately).
pub(crate) fn init(
    level: &str,
    format: LogFormat,
    tracer: Option<opentelemetry_sdk::trace::Tracer>,
) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,flagrelay={level}")));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stdout);
    let lines = match format {
        LogFormat::Json => lines.event_format(JsonLines).boxed(),
        LogFormat::Text => lines.with_target(false).boxed(),
    };
    let spans = tracer.map(|t| {
        tracing_opentelemetry::layer().with_tracer(t).with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("flagrelay", tracing::Level::INFO),
        )
    });
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(spans)
        .try_init();
}

/// The first line of every run, written whatever the log level is.
pub(crate) fn crypto_mode_line(format: LogFormat, fips140: bool) {
    let line = match format {
        LogFormat::Json => format!(
            "{{\"level\":\"info\",\"msg\":\"crypto mode\",\"fips140\":{fips140},\"ts\":\"{}\"}}",
            now_rfc3339()
        ),
        LogFormat::Text => format!("{}  INFO crypto mode fips140={fips140}", now_rfc3339()),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now();
    let millis = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    let base = crate::shared::rfc3339(now);
    format!("{}.{millis:03}Z", base.trim_end_matches('Z'))
}

/// One JSON object per event: level, msg, the event's fields, ts.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut obj = Map::new();
        obj.insert(
            "level".into(),
            event
                .metadata()
                .level()
                .as_str()
                .to_ascii_lowercase()
                .into(),
        );
        obj.insert(
            "msg".into(),
            fields.message.take().unwrap_or_default().into(),
        );
        for (k, v) in fields.map {
            obj.insert(k, v);
        }
        obj.insert("ts".into(), now_rfc3339().into());
        let text = serde_json::to_string(&obj).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    map: Map<String, Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let v = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(v);
        } else {
            self.map.insert(field.name().into(), v.into());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.map.insert(field.name().into(), value.into());
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.map.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.map.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.map.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.map.insert(field.name().into(), value.into());
    }
}
