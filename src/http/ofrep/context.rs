//! The OFREP request body: the subject attributes of `context`, read in one pass without
//! building a JSON tree (every other attribute is skipped unread).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{ErrorCode, EvalSettings, OfrepError, error};
use crate::evaluator::Subject;
use crate::http::auth::Caller;

/// The subject attributes of an evaluation context; every other attribute is skipped unread.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Context<'a> {
    pub targeting_key: Option<Cow<'a, str>>,
    pub user_id: Option<Cow<'a, str>>,
    pub tenant_id: Option<Cow<'a, str>>,
    pub tenant: Option<Cow<'a, str>>,
    pub env: Option<Cow<'a, str>>,
    pub environment: Option<Cow<'a, str>>,
}

impl<'a> Context<'a> {
    /// Where a context attribute of this name is kept; `None` for every attribute the subject
    /// does not read (OFREP's JSON and flagd's protobuf `Struct` read the same names).
    #[inline]
    pub(crate) fn slot(&mut self, name: &str) -> Option<&mut Option<Cow<'a, str>>> {
        Some(match name {
            "targetingKey" => &mut self.targeting_key,
            "userId" => &mut self.user_id,
            "tenantId" => &mut self.tenant_id,
            "tenant" => &mut self.tenant,
            "env" => &mut self.env,
            "environment" => &mut self.environment,
            _ => return None,
        })
    }

    /// Map to the subject (evaluation.md, "The subject"). A non-empty `targetingKey` wins over
    /// `userId`; an environment bound to the credential wins over anything the context says.
    pub fn subject<'s>(&'s self, caller: &'s Caller, settings: &'s EvalSettings) -> Subject<'s> {
        let first = |a: &'s Option<Cow<'_, str>>, b: &'s Option<Cow<'_, str>>| {
            a.as_deref()
                .filter(|s| !s.is_empty())
                .or(b.as_deref())
                .unwrap_or("")
        };
        let env = match caller.bound_env() {
            Some(bound) => bound,
            None => self
                .env
                .as_deref()
                .or(self.environment.as_deref())
                .or(settings.default_env.as_deref())
                .unwrap_or(""),
        };
        Subject {
            user: first(&self.targeting_key, &self.user_id),
            tenant: first(&self.tenant_id, &self.tenant),
            env,
        }
    }
}

/// Parse an OFREP request body. Empty body, missing `context` and `"context": null` are all
/// an empty context. Not JSON → PARSE_ERROR; `context` not an object or a subject attribute
/// not a string → INVALID_CONTEXT.
pub fn parse_context(bytes: &[u8]) -> Result<Context<'_>, OfrepError> {
    // The reader takes no empty body (it wants `{`), so serde's path answers those.
    match super::common_body::read(bytes) {
        Some(ctx) => Ok(ctx),
        None => parse_context_by_serde(bytes),
    }
}

/// [`parse_context`] by serde alone, without the common-shape reader. Not API: the fuzz target
/// `ofrep_request` holds the reader to it (every body it takes must come out the same).
#[doc(hidden)]
pub fn parse_context_by_serde(bytes: &[u8]) -> Result<Context<'_>, OfrepError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Context::default());
    }
    with_serde(bytes)
}

/// [`parse_context`] of a body that is not empty, by serde: every body the common-shape reader
/// leaves, and the error answers.
pub(super) fn with_serde(bytes: &[u8]) -> Result<Context<'_>, OfrepError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = BodySeed
        .deserialize(&mut de)
        .and_then(|r| de.end().map(|()| r))
        .map_err(|e| {
            error(
                None,
                ErrorCode::ParseError,
                format!("request body is not valid JSON: {e}"),
            )
        })?;
    parsed.map_err(|details| error(None, ErrorCode::InvalidContext, details))
}

/// Context problems are returned as values, so that serde errors mean "not JSON" only.
type ContextResult<'a> = Result<Context<'a>, String>;

struct BodySeed;

impl<'de> DeserializeSeed<'de> for BodySeed {
    type Value = ContextResult<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BodySeed {
    type Value = ContextResult<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object like {\"context\": {...}}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut ctx = Ok(Context::default());
        while let Some(k) = map.next_key::<Str<'de>>()? {
            if k.0 == "context" {
                ctx = map.next_value_seed(ContextSeed)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(ctx)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(Context::default()))
    }
}

struct ContextSeed;

impl<'de> DeserializeSeed<'de> for ContextSeed {
    type Value = ContextResult<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ContextSeed {
    type Value = ContextResult<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an evaluation context object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut ctx = Context::default();
        let mut problem = None;
        while let Some(k) = map.next_key::<Str<'de>>()? {
            let Some(slot) = ctx.slot(&k.0) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            match map.next_value::<Attr<'de>>()? {
                Attr::Str(s) => *slot = Some(s),
                Attr::Null => {}
                Attr::Other(kind) => {
                    problem.get_or_insert_with(|| {
                        format!("context.{} must be a string, found {kind}", k.0)
                    });
                }
            }
        }
        Ok(match problem {
            Some(p) => Err(p),
            None => Ok(ctx),
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(Context::default()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(not_an_object("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(not_an_object("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(not_an_object("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(not_an_object("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(not_an_object("a string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(not_an_object("an array"))
    }
}

fn not_an_object<'a>(found: &str) -> ContextResult<'a> {
    Err(format!("context must be an object, found {found}"))
}

/// A string that borrows from the body when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A subject attribute's value: a string, null (treated as absent), or anything else (an error).
enum Attr<'a> {
    Str(Cow<'a, str>),
    Null,
    Other(&'static str),
}

impl<'de> serde::Deserialize<'de> for Attr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Attr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Attr<'de>, E> {
                Ok(Attr::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Attr<'de>, E> {
                Ok(Attr::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Attr<'de>, E> {
                Ok(Attr::Null)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Attr<'de>, E> {
                Ok(Attr::Other("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Attr<'de>, E> {
                Ok(Attr::Other("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Attr<'de>, E> {
                Ok(Attr::Other("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Attr<'de>, E> {
                Ok(Attr::Other("a number"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Attr<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Attr::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attr<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Attr::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Context<'_> {
        parse_context(body.as_bytes()).unwrap()
    }

    fn code(body: &str) -> ErrorCode {
        parse_context(body.as_bytes()).unwrap_err().code
    }

    #[test]
    fn accepts_missing_body_context_and_key() {
        assert_eq!(ok(""), Context::default());
        assert_eq!(ok(" \r\n\t"), Context::default());
        assert_eq!(ok("{}"), Context::default());
        assert_eq!(ok(r#"{"context": {}}"#), Context::default());
        assert_eq!(ok(r#"{"context": null}"#), Context::default());
        assert_eq!(ok("null"), Context::default());
    }

    #[test]
    fn reads_subject_attributes_and_skips_others() {
        let c = ok(
            r#"{"context": {"targetingKey": "u1", "tenantId": "t\u00e9", "env": "prod",
            "nested": {"a": [1, {"b": null}]}, "age": 3}, "other": [1]}"#,
        );
        assert_eq!(c.targeting_key.as_deref(), Some("u1"));
        assert_eq!(c.tenant_id.as_deref(), Some("té"));
        assert_eq!(c.env.as_deref(), Some("prod"));
    }

    #[test]
    fn error_codes() {
        assert_eq!(code("{not json"), ErrorCode::ParseError);
        assert_eq!(code("{\"context\": {}} trailing"), ErrorCode::ParseError);
        assert_eq!(code(r#"{"context": "x"}"#), ErrorCode::InvalidContext);
        assert_eq!(code(r#"{"context": [1]}"#), ErrorCode::InvalidContext);
        assert_eq!(
            code(r#"{"context": {"targetingKey": 5}}"#),
            ErrorCode::InvalidContext
        );
        assert_eq!(
            code(r#"{"context": {"env": {"a": 1}}}"#),
            ErrorCode::InvalidContext
        );
        assert_eq!(code("[]"), ErrorCode::ParseError);
    }

    #[test]
    fn subject_mapping_and_precedence() {
        let settings = EvalSettings {
            default_env: Some("dflt".into()),
            max_body_bytes: 1024,
            change_stream: true,
        };
        let open = Caller::Anonymous;
        let c = ok(r#"{"context": {"userId": "u2", "tenant": "t2", "environment": "e2"}}"#);
        assert_eq!(
            c.subject(&open, &settings),
            Subject {
                user: "u2",
                tenant: "t2",
                env: "e2"
            }
        );
        let c = ok(
            r#"{"context": {"targetingKey": "", "userId": "u2", "env": "e1", "environment": "e2"}}"#,
        );
        assert_eq!(
            c.subject(&open, &settings),
            Subject {
                user: "u2",
                tenant: "",
                env: "e1"
            }
        );
        let c = ok("{}");
        assert_eq!(c.subject(&open, &settings).env, "dflt");
        // A bound credential fixes the environment whatever the context claims.
        let bound = Caller::Evaluation {
            env: Some("staging".into()),
        };
        let c = ok(r#"{"context": {"env": "production"}}"#);
        assert_eq!(c.subject(&bound, &settings).env, "staging");
    }
}
