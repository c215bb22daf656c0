//! One evaluation, independent of the wire: the context `Struct` to the subject, the rule
//! chain from the served snapshot, the value checked against the type the caller asked for,
//! and errors as flagd's own server reports them.

use std::borrow::Cow;

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value as PValue};
use serde_json::Value;

use crate::evaluator::Reason;
use crate::http::auth::Caller;
use crate::http::ofrep::{Context, EvalSettings};
use crate::snapshot::{Entry, Snapshot};

/// The type a `Resolve*` call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Bool,
    String,
    Int,
    Float,
    Object,
}

impl Want {
    fn name(self) -> &'static str {
        match self {
            Want::Bool => "boolean",
            Want::String => "string",
            Want::Int => "integer",
            Want::Float => "float",
            Want::Object => "object",
        }
    }

    /// Does `v` answer this call? Integers answer `ResolveFloat` too: the Node provider asks
    /// for every number through it.
    pub(crate) fn accepts(self, v: &Value) -> bool {
        match self {
            Want::Bool => v.is_boolean(),
            Want::String => v.is_string(),
            Want::Int => v.is_i64(),
            Want::Float => v.is_number(),
            Want::Object => v.is_object(),
        }
    }
}

/// flagd's error codes (`core/pkg/model/error.go`) that this relay can answer. flagd's
/// PARSE_ERROR (→ DataLoss) and GENERAL (→ Unknown) have no cause here: flag sets are
/// validated before they are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    FlagNotFound,
    TypeMismatch,
    InvalidContext,
}

/// An evaluation error, with the detail that names what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlagdError {
    pub code: ErrorCode,
    pub detail: String,
}

impl FlagdError {
    pub(crate) fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        FlagdError {
            code,
            detail: detail.into(),
        }
    }

    /// The gRPC status code flagd answers with (`errFormat` in flagd's
    /// `flagd/pkg/service/flag-evaluation/flag_evaluator.go`): FLAG_NOT_FOUND → NotFound,
    /// TYPE_MISMATCH → InvalidArgument, PARSE_ERROR → DataLoss, GENERAL → Unknown. It has no
    /// case for INVALID_CONTEXT, so connect-go reports that one as Unknown.
    pub(crate) fn grpc_code(&self) -> tonic::Code {
        match self.code {
            ErrorCode::FlagNotFound => tonic::Code::NotFound,
            ErrorCode::TypeMismatch => tonic::Code::InvalidArgument,
            ErrorCode::InvalidContext => tonic::Code::Unknown,
        }
    }

    /// flagd's readable message (`model.ReadableErrorMessage`), then the detail.
    pub(crate) fn message(&self) -> String {
        let readable = match self.code {
            ErrorCode::FlagNotFound => "Flag not found",
            ErrorCode::TypeMismatch => "Type mismatch error",
            ErrorCode::InvalidContext => "Invalid context provided",
        };
        format!("{readable}: {}", self.detail)
    }

    pub(crate) fn status(&self) -> tonic::Status {
        tonic::Status::new(self.grpc_code(), self.message())
    }
}

/// A successful evaluation: borrowed from the snapshot it came from.
#[derive(Debug)]
pub(crate) struct Answer<'a> {
    pub entry: &'a Entry,
    /// Parsed from the entry's pre-serialized JSON (a snapshot keeps values as text).
    pub value: Value,
    pub variant: &'static str,
    pub reason: Reason,
}

/// The subject attributes of a context `Struct`: the same attributes, precedence and errors
/// as an OFREP context (`http::ofrep::Context`, shared/spec/evaluation.md "The subject").
pub(crate) fn context_of(s: Option<&Struct>) -> Result<Context<'_>, FlagdError> {
    let mut ctx = Context::default();
    let Some(s) = s else { return Ok(ctx) };
    for (k, v) in &s.fields {
        let Some(slot) = ctx.slot(k) else { continue };
        match &v.kind {
            Some(Kind::StringValue(s)) => *slot = Some(Cow::Borrowed(s.as_str())),
            None | Some(Kind::NullValue(_)) => {}
            Some(other) => {
                let found = match other {
                    Kind::BoolValue(_) => "a boolean",
                    Kind::NumberValue(_) => "a number",
                    Kind::StructValue(_) => "an object",
                    _ => "an array",
                };
                return Err(FlagdError::new(
                    ErrorCode::InvalidContext,
                    format!("context.{k} must be a string, found {found}"),
                ));
            }
        }
    }
    Ok(ctx)
}

/// Evaluate `key` for `ctx` as the caller's type `want`, recording the evaluation metric as
/// OFREP does.
pub(crate) fn resolve<'a>(
    metrics: &crate::metrics::Metrics,
    snapshot: Option<&'a Snapshot>,
    key: &str,
    want: Want,
    ctx: &Context<'_>,
    caller: &Caller,
    settings: &EvalSettings,
) -> Result<Answer<'a>, FlagdError> {
    let Some(snapshot) = snapshot else {
        return Err(FlagdError::new(
            ErrorCode::FlagNotFound,
            "no flag set is loaded yet",
        ));
    };
    let Some(entry) = snapshot.get(key) else {
        metrics.evaluation_unknown();
        return Err(FlagdError::new(
            ErrorCode::FlagNotFound,
            format!("flag {key:?} is not in the current flag set"),
        ));
    };
    let subject = ctx.subject(caller, settings);
    let outcome = entry.evaluate(&subject);
    metrics.evaluation(snapshot, entry, outcome.reason);
    let (value, variant) = value_of(entry, outcome.on);
    if !want.accepts(&value) {
        return Err(FlagdError::new(
            ErrorCode::TypeMismatch,
            format!(
                "flag {key:?} has a {} value, not {}",
                describe(&value),
                want.name()
            ),
        ));
    }
    Ok(Answer {
        entry,
        value,
        variant,
        reason: outcome.reason,
    })
}

/// Evaluate every flag (v1 `ResolveAll`), in key order, recording the metrics as the OFREP
/// bulk answer does. Flags whose value no `AnyFlag` can carry (arrays, null) are left out.
pub(crate) fn resolve_all<'a>(
    metrics: &crate::metrics::Metrics,
    snapshot: Option<&'a Snapshot>,
    ctx: &Context<'_>,
    caller: &Caller,
    settings: &EvalSettings,
    mut each: impl FnMut(Answer<'a>),
) {
    let subject = ctx.subject(caller, settings);
    let entries = snapshot.map_or(&[][..], |s| s.entries());
    metrics.bulk(snapshot, |recorder| {
        for (i, entry) in entries.iter().enumerate() {
            let outcome = entry.evaluate(&subject);
            recorder.record(i, outcome.reason);
            let (value, variant) = value_of(entry, outcome.on);
            if matches!(value, Value::Array(_) | Value::Null) {
                continue;
            }
            each(Answer {
                entry,
                value,
                variant,
                reason: outcome.reason,
            });
        }
    });
}

/// The value and variant of an outcome.
fn value_of(entry: &Entry, on: bool) -> (Value, &'static str) {
    let (json, variant) = if on {
        (entry.on_json(), "on")
    } else {
        (entry.off_json(), "off")
    };
    (serde_json::from_str(json).unwrap_or(Value::Null), variant)
}

/// A value's type in the words of the `Resolve*` calls.
fn describe(v: &Value) -> &'static str {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "float",
        other => crate::parse::model::json_type(other),
    }
}

/// The OFREP metadata of a flag (`description` plus its `metadata`), as a `Struct`.
pub(crate) fn metadata(entry: &Entry) -> Struct {
    // `metadata_json` is `description` plus the flag's metadata, as OFREP answers it.
    let meta: serde_json::Map<String, Value> =
        serde_json::from_str(entry.metadata_json()).unwrap_or_default();
    let fields = meta.iter().map(|(k, v)| (k.clone(), to_value(v))).collect();
    Struct { fields }
}

/// A JSON value as a protobuf `Value`.
pub(crate) fn to_value(v: &Value) -> PValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(to_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(to_struct(m)),
    };
    PValue { kind: Some(kind) }
}

pub(crate) fn to_struct(m: &serde_json::Map<String, Value>) -> Struct {
    Struct {
        fields: m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strct(pairs: &[(&str, Kind)]) -> Struct {
        Struct {
            fields: pairs
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        PValue {
                            kind: Some(v.clone()),
                        },
                    )
                })
                .collect(),
        }
    }

    fn s(v: &str) -> Kind {
        Kind::StringValue(v.into())
    }

    #[test]
    fn context_struct_maps_like_an_ofrep_context() {
        let settings = EvalSettings {
            default_env: Some("dflt".into()),
            max_body_bytes: 1024,
            change_stream: true,
        };
        let st = strct(&[
            ("targetingKey", s("")),
            ("userId", s("u2")),
            ("tenant", s("t2")),
            ("environment", s("e2")),
            ("age", Kind::NumberValue(3.0)),
            ("nested", Kind::StructValue(Struct::default())),
        ]);
        let ctx = context_of(Some(&st)).unwrap();
        let subject = ctx.subject(&Caller::Anonymous, &settings);
        assert_eq!(
            (subject.user, subject.tenant, subject.env),
            ("u2", "t2", "e2")
        );
        let none = context_of(None).unwrap();
        assert_eq!(none.subject(&Caller::Anonymous, &settings).env, "dflt");
        // A bound credential wins over the context.
        let bound = Caller::Evaluation {
            env: Some("staging".into()),
        };
        let st = strct(&[("env", s("production"))]);
        let ctx = context_of(Some(&st)).unwrap();
        assert_eq!(ctx.subject(&bound, &settings).env, "staging");
        // Null is absent; other kinds are INVALID_CONTEXT naming the attribute.
        let st = strct(&[("targetingKey", Kind::NullValue(0))]);
        assert_eq!(context_of(Some(&st)).unwrap(), Context::default());
        let st = strct(&[("tenantId", Kind::BoolValue(true))]);
        let e = context_of(Some(&st)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidContext);
        assert!(e.detail.contains("context.tenantId"), "{}", e.detail);
    }

    #[test]
    fn types_and_error_codes() {
        use serde_json::json;
        assert!(Want::Float.accepts(&json!(3)));
        assert!(Want::Float.accepts(&json!(3.5)));
        assert!(Want::Int.accepts(&json!(3)));
        assert!(!Want::Int.accepts(&json!(3.5)));
        assert!(!Want::Bool.accepts(&json!("true")));
        assert!(!Want::Object.accepts(&json!([1])));
        let code = |c| FlagdError::new(c, "x").grpc_code();
        assert_eq!(code(ErrorCode::FlagNotFound), tonic::Code::NotFound);
        assert_eq!(code(ErrorCode::TypeMismatch), tonic::Code::InvalidArgument);
        assert_eq!(code(ErrorCode::InvalidContext), tonic::Code::Unknown);
        assert!(
            FlagdError::new(ErrorCode::FlagNotFound, "flag \"x\"")
                .message()
                .starts_with("Flag not found: ")
        );
    }
}
