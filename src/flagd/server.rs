//! The flagd listener: one port for gRPC (HTTP/2 cleartext; TLS is terminated elsewhere) and
//! the Connect protocol, told apart by content type as flagd's connect-go server does;
//! authentication for both; the accept loop with graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::http::serve::{ConnLimits, Observe, run_server};
use tower::ServiceExt;

use super::FlagdState;
use super::grpc::{V1, V2};
use super::metrics::{Protocol, Rpc, Version};
use super::proto::{v1, v2};
use crate::config::Config;
use crate::http::AppState;
use crate::http::auth::{Auth, Caller, Denied};

/// Who may call: the relay's evaluation keys (with their environment binding, as OFREP), and
/// with `flagd.allowUnauthenticated` also callers that present no credential.
#[derive(Clone)]
pub(crate) struct Gate {
    auth: Arc<Auth>,
    /// `Some` when unauthenticated callers are allowed: the caller they become.
    open: Option<Caller>,
}

impl Gate {
    pub(crate) fn caller(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        let presented = headers.contains_key("x-api-key") || headers.contains_key("authorization");
        match (self.auth.evaluation_caller(headers, None), &self.open) {
            // A wrong credential is refused even where none would be let in.
            (Err(_), Some(open)) if !presented => Ok(open.clone()),
            (Ok(Caller::Anonymous), Some(open)) => Ok(open.clone()),
            (r, _) => r,
        }
    }
}

/// The flagd port could not be bound (start-up fails with this).
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub(crate) struct BindError {
    addr: String,
    source: std::io::Error,
}

/// Bind the flagd listener when `flagd.port` is set, and return what `/info` says of it with
/// the server to run (it ends after shutdown starts and its connections finish).
pub(crate) async fn listen(
    config: &Config,
    app: &AppState,
) -> Result<
    Option<(
        serde_json::Value,
        impl Future<Output = std::io::Result<()>> + Send + 'static,
    )>,
    BindError,
> {
    let Some(port) = config.flagd.port else {
        return Ok(None);
    };
    let host = config.flagd.host.as_deref().unwrap_or(&config.server.host);
    let addr = format!("{host}:{port}");
    let listener = crate::http::conn::listen(&addr)
        .await
        .map_err(|source| BindError {
            addr: addr.clone(),
            source,
        })?;
    let local = listener.local_addr().map_or(addr, |a| a.to_string());
    let open =
        config
            .flagd
            .allow_unauthenticated
            .then(|| match config.flagd.environment.as_deref() {
                Some(env) => Caller::Evaluation {
                    env: Some(Arc::from(env)),
                },
                None => Caller::Anonymous,
            });
    if config.flagd.allow_unauthenticated {
        tracing::warn!(
            environment = config.flagd.environment.as_deref().unwrap_or(""),
            "flagd.allowUnauthenticated: the flagd listener serves callers without a credential"
        );
    }
    let gate = Gate {
        auth: app.auth.clone(),
        open,
    };
    let state = FlagdState::new(app);
    state.rpcs.register(&app.metrics);
    let limit = config.max_request_body_bytes;
    let router = router(state, gate, limit, &config.cors.allowed_origins);
    tracing::info!(addr = %local, server = "flagd", "listening");
    let info = serde_json::json!({
        "addr": local,
        "protocols": ["grpc", "connect"],
        "services": ["flagd.evaluation.v1.Service", "flagd.evaluation.v2.Service"],
        "allowUnauthenticated": config.flagd.allow_unauthenticated,
        "environment": config.flagd.environment,
    });
    // The API port's guards (first-request and body deadlines, the connection cap, accept
    // errors without a flood); requests are counted per RPC by the flagd service itself.
    let limits = ConnLimits::from_config(&config.server);
    let server = run_server(
        listener,
        router,
        limits,
        Observe::Own,
        app.lifecycle.stopping(),
    );
    Ok(Some((info, server)))
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// gRPC requests go to tonic's services, the rest to the Connect handlers.
pub(crate) fn router(
    state: FlagdState,
    gate: Gate,
    max_message_bytes: usize,
    cors_origins: &[String],
) -> axum::Router {
    let grpc = tonic::service::Routes::new(
        v1::service_server::ServiceServer::new(V1(state.clone()))
            .max_decoding_message_size(max_message_bytes),
    )
    .add_service(
        v2::service_server::ServiceServer::new(V2(state.clone()))
            .max_decoding_message_size(max_message_bytes),
    )
    .prepare()
    .into_axum_router();
    let rpcs = state.rpcs.clone();
    let connect = super::connect::router(state, gate.clone(), max_message_bytes, cors_origins);
    let dispatch = tower::service_fn(move |mut req: Request| {
        let (grpc, connect, gate, rpcs) =
            (grpc.clone(), connect.clone(), gate.clone(), rpcs.clone());
        async move {
            if !is_grpc(req.headers()) {
                return connect.oneshot(req).await;
            }
            match gate.caller(req.headers()) {
                Ok(caller) => {
                    req.extensions_mut().insert(caller);
                    grpc.oneshot(req).await
                }
                Err(_) => {
                    if let Some((v, rpc)) = call_of(req.uri().path()) {
                        let code = tonic::Code::Unauthenticated;
                        rpcs.record(v, rpc, Protocol::Grpc, code, None);
                    }
                    let status = tonic::Status::unauthenticated(
                        "a valid evaluation key is required in the x-api-key or authorization metadata",
                    );
                    Ok::<Response, std::convert::Infallible>(status.into_http())
                }
            }
        }
    });
    axum::Router::new().fallback_service(dispatch)
}

/// `/flagd.evaluation.v1.Service/ResolveBoolean` → (v1, ResolveBoolean).
pub(crate) fn call_of(path: &str) -> Option<(Version, Rpc)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    Some((Version::from_service(service)?, Rpc::from_name(method)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthorizedKeys;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn gate_requires_a_key_unless_opted_out() {
        let keys: AuthorizedKeys = serde_json::from_value(
            serde_json::json!({"evaluation": ["k1", {"key": "k2", "env": "staging"}]}),
        )
        .unwrap();
        let auth = Arc::new(Auth::new(&keys, None, 60).unwrap());
        let closed = Gate {
            auth: auth.clone(),
            open: None,
        };
        assert_eq!(closed.caller(&headers(&[])), Err(Denied::Unauthenticated));
        assert_eq!(
            closed.caller(&headers(&[("authorization", "Bearer k2")])),
            Ok(Caller::Evaluation {
                env: Some("staging".into())
            })
        );
        let open = Gate {
            auth,
            open: Some(Caller::Evaluation {
                env: Some("prod".into()),
            }),
        };
        assert_eq!(
            open.caller(&headers(&[])),
            Ok(Caller::Evaluation {
                env: Some("prod".into())
            })
        );
        assert_eq!(
            open.caller(&headers(&[("x-api-key", "wrong")])),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            open.caller(&headers(&[("x-api-key", "k1")])),
            Ok(Caller::Evaluation { env: None })
        );
    }

    #[test]
    fn paths_name_the_call() {
        assert_eq!(
            call_of("/flagd.evaluation.v2.Service/ResolveFloat"),
            Some((Version::V2, Rpc::ResolveFloat))
        );
        assert_eq!(call_of("/flagd.evaluation.v3.Service/ResolveFloat"), None);
        assert_eq!(call_of("/"), None);
    }
}
