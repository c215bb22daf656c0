//! The gRPC services `flagd.evaluation.v1.Service` and `flagd.evaluation.v2.Service`: thin
//! adapters from the generated messages to [`FlagdState`]'s evaluation and event stream.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::FlagdState;
use super::metrics::{Protocol, Rpc, Version};
use super::proto::{v1, v2};
use super::resolve::{Answer, Want, context_of, metadata, to_struct};
use crate::http::auth::Caller;

/// The caller the listener's authentication put on the request (see `server::dispatch`).
fn caller_of<T>(r: &Request<T>) -> Result<Caller, Status> {
    r.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no credential"))
}

type Events<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[derive(Clone)]
pub(crate) struct V1(pub FlagdState);

#[derive(Clone)]
pub(crate) struct V2(pub FlagdState);

/// The parts of a `Resolve*Request` (all ten have the same two fields).
trait EvalRequest {
    fn parts(&self) -> (&str, Option<&prost_types::Struct>);
}

macro_rules! eval_request {
    ($($t:ty),*) => {$(
        impl EvalRequest for $t {
            fn parts(&self) -> (&str, Option<&prost_types::Struct>) {
                (&self.flag_key, self.context.as_ref())
            }
        }
    )*};
}

eval_request!(
    v1::ResolveBooleanRequest,
    v1::ResolveStringRequest,
    v1::ResolveFloatRequest,
    v1::ResolveIntRequest,
    v1::ResolveObjectRequest,
    v2::ResolveBooleanRequest,
    v2::ResolveStringRequest,
    v2::ResolveFloatRequest,
    v2::ResolveIntRequest,
    v2::ResolveObjectRequest
);

/// One unary `Resolve*` call: evaluate, then build the response from the answer.
fn unary<Q: EvalRequest, T>(
    state: &FlagdState,
    request: Request<Q>,
    (v, rpc, want): (Version, Rpc, Want),
    build: impl FnOnce(&Answer<'_>) -> T,
) -> Result<Response<T>, Status> {
    let caller = caller_of(&request)?;
    let (key, ctx) = request.get_ref().parts();
    state
        .unary(
            v,
            rpc,
            Protocol::Grpc,
            &caller,
            key,
            context_of(ctx),
            want,
            build,
        )
        .map(Response::new)
        .map_err(|e| e.status())
}

#[tonic::async_trait]
impl v1::service_server::Service for V1 {
    async fn resolve_boolean(
        &self,
        r: Request<v1::ResolveBooleanRequest>,
    ) -> Result<Response<v1::ResolveBooleanResponse>, Status> {
        let call = (Version::V1, Rpc::ResolveBoolean, Want::Bool);
        unary(&self.0, r, call, |a| v1::ResolveBooleanResponse {
            value: a.value.as_bool().unwrap_or_default(),
            reason: a.reason.as_str().into(),
            variant: a.variant.into(),
            metadata: Some(metadata(a.entry)),
        })
    }
    async fn resolve_string(
        &self,
        r: Request<v1::ResolveStringRequest>,
    ) -> Result<Response<v1::ResolveStringResponse>, Status> {
        let call = (Version::V1, Rpc::ResolveString, Want::String);
        unary(&self.0, r, call, |a| v1::ResolveStringResponse {
            value: a.value.as_str().unwrap_or_default().into(),
            reason: a.reason.as_str().into(),
            variant: a.variant.into(),
            metadata: Some(metadata(a.entry)),
        })
    }
    async fn resolve_float(
        &self,
        r: Request<v1::ResolveFloatRequest>,
    ) -> Result<Response<v1::ResolveFloatResponse>, Status> {
        let call = (Version::V1, Rpc::ResolveFloat, Want::Float);
        unary(&self.0, r, call, |a| v1::ResolveFloatResponse {
            value: a.value.as_f64().unwrap_or_default(),
            reason: a.reason.as_str().into(),
            variant: a.variant.into(),
            metadata: Some(metadata(a.entry)),
        })
    }
    async fn resolve_int(
        &self,
        r: Request<v1::ResolveIntRequest>,
    ) -> Result<Response<v1::ResolveIntResponse>, Status> {
        let call = (Version::V1, Rpc::ResolveInt, Want::Int);
        unary(&self.0, r, call, |a| v1::ResolveIntResponse {
            value: a.value.as_i64().unwrap_or_default(),
            reason: a.reason.as_str().into(),
            variant: a.variant.into(),
            metadata: Some(metadata(a.entry)),
        })
    }
    async fn resolve_object(
        &self,
        r: Request<v1::ResolveObjectRequest>,
    ) -> Result<Response<v1::ResolveObjectResponse>, Status> {
        let call = (Version::V1, Rpc::ResolveObject, Want::Object);
        unary(&self.0, r, call, |a| v1::ResolveObjectResponse {
            value: a.value.as_object().map(to_struct),
            reason: a.reason.as_str().into(),
            variant: a.variant.into(),
            metadata: Some(metadata(a.entry)),
        })
    }

    async fn resolve_all(
        &self,
        request: Request<v1::ResolveAllRequest>,
    ) -> Result<Response<v1::ResolveAllResponse>, Status> {
        let caller = caller_of(&request)?;
        let msg = request.get_ref();
        self.0
            .all(
                Protocol::Grpc,
                &caller,
                context_of(msg.context.as_ref()),
                |answers| {
                    let mut flags = std::collections::HashMap::new();
                    for a in answers {
                        use v1::any_flag::Value as V;
                        let value = match &a.value {
                            serde_json::Value::Bool(b) => V::BoolValue(*b),
                            serde_json::Value::String(s) => V::StringValue(s.clone()),
                            serde_json::Value::Number(n) => {
                                V::DoubleValue(n.as_f64().unwrap_or_default())
                            }
                            serde_json::Value::Object(m) => V::ObjectValue(to_struct(m)),
                            _ => continue,
                        };
                        let flag = v1::AnyFlag {
                            reason: a.reason.as_str().into(),
                            variant: a.variant.into(),
                            value: Some(value),
                            metadata: Some(metadata(a.entry)),
                        };
                        flags.insert(a.entry.key().to_string(), flag);
                    }
                    v1::ResolveAllResponse {
                        flags,
                        metadata: Some(Default::default()),
                    }
                },
            )
            .map(Response::new)
            .map_err(|e| e.status())
    }

    type EventStreamStream = Events<v1::EventStreamResponse>;

    async fn event_stream(
        &self,
        request: Request<v1::EventStreamRequest>,
    ) -> Result<Response<Self::EventStreamStream>, Status> {
        caller_of(&request)?;
        let events = self.0.open_stream(Version::V1, Protocol::Grpc)?;
        let events = events.map(|e| {
            Ok(v1::EventStreamResponse {
                r#type: e.kind.into(),
                data: e.data.as_ref().map(to_struct),
            })
        });
        Ok(Response::new(Box::pin(events)))
    }
}

#[tonic::async_trait]
impl v2::service_server::Service for V2 {
    async fn resolve_boolean(
        &self,
        r: Request<v2::ResolveBooleanRequest>,
    ) -> Result<Response<v2::ResolveBooleanResponse>, Status> {
        let call = (Version::V2, Rpc::ResolveBoolean, Want::Bool);
        unary(&self.0, r, call, |a| v2::ResolveBooleanResponse {
            value: a.value.as_bool(),
            reason: a.reason.as_str().into(),
            variant: Some(a.variant.into()),
            metadata: Some(metadata(a.entry)),
        })
    }
    async fn resolve_string(
        &self,
        r: Request<v2::ResolveStringRequest>,
    ) -> Result<Response<v2::ResolveStringResponse>, Status> {
        let call = (Version::V2, Rpc::ResolveString, Want::String);
        unary(&self.0, r, call, |a| v2::ResolveStringResponse {
            value: a.value.as_str().map(String::from),
            reason: a.reason.as_str().into(),
            variant: Some(a.variant.into()),
            metadata: Some(metadata(a.entry)),
        })
    }
    async fn resolve_float(
        &self,
        r: Request<v2::ResolveFloatRequest>,
    ) -> Result<Response<v2::ResolveFloatResponse>, Status> {
        let call = (Version::V2, Rpc::ResolveFloat, Want::Float);
        unary(&self.0, r, call, |a| v2::ResolveFloatResponse {
            value: a.value.as_f64(),
            reason: a.reason.as_str().into(),
            variant: Some(a.variant.into()),
            metadata: Some(metadata(a.entry)),
        })
    }
    async fn resolve_int(
        &self,
        r: Request<v2::ResolveIntRequest>,
    ) -> Result<Response<v2::ResolveIntResponse>, Status> {
        let call = (Version::V2, Rpc::ResolveInt, Want::Int);
        unary(&self.0, r, call, |a| v2::ResolveIntResponse {
            value: a.value.as_i64(),
            reason: a.reason.as_str().into(),
            variant: Some(a.variant.into()),
            metadata: Some(metadata(a.entry)),
        })
    }
    async fn resolve_object(
        &self,
        r: Request<v2::ResolveObjectRequest>,
    ) -> Result<Response<v2::ResolveObjectResponse>, Status> {
        let call = (Version::V2, Rpc::ResolveObject, Want::Object);
        unary(&self.0, r, call, |a| v2::ResolveObjectResponse {
            value: a.value.as_object().map(to_struct),
            reason: a.reason.as_str().into(),
            variant: Some(a.variant.into()),
            metadata: Some(metadata(a.entry)),
        })
    }

    type EventStreamStream = Events<v2::EventStreamResponse>;

    async fn event_stream(
        &self,
        request: Request<v2::EventStreamRequest>,
    ) -> Result<Response<Self::EventStreamStream>, Status> {
        caller_of(&request)?;
        let events = self.0.open_stream(Version::V2, Protocol::Grpc)?;
        let events = events.map(|e| {
            Ok(v2::EventStreamResponse {
                r#type: e.kind.into(),
                data: e.data.as_ref().map(to_struct),
            })
        });
        Ok(Response::new(Box::pin(events)))
    }
}
