//! The routes of the relay and its OpenAPI 3.1 document, from one declaration.
//!
//! Each handler declares its method, path, parameters, request body and answers once, in its
//! `#[utoipa::path]`; `api` and `monitoring` list the handlers (`routes!`), and from those
//! two lists come the axum routers (`http::api_router`, `http::monitoring_router`), the
//! document served at `GET /openapi.json` (`document`, built and serialized once) and the
//! route templates the request metrics count under (`route_templates`).
//!
//! Paths are declared as axum routes them (`{*key}` for a key that may contain `/`); the
//! document writes them as OpenAPI does (`{key}`).

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::Unauthorized;
use super::schema::{RefetchEvaluationEvent, SyncChange, SyncResync};
use super::{AppState, admin, monitoring, observe, ofrep, stream, sync};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flagrelay",
        description = "Feature-flag relay proxy: OFREP evaluation, sync API and change streams \
            over a polled flag set.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "ofrep", description = "OpenFeature Remote Evaluation Protocol"),
        (name = "sync", description = "Flag definitions for SDKs that evaluate in-process"),
        (name = "auth", description = "Token exchange"),
        (name = "admin", description = "Operations (admin key)"),
        (name = "monitoring",
            description = "Never authenticated; on server.monitoringPort when one is set"),
    ),
    // Event data of the two streams: named by the streams' descriptions, carried as text.
    components(
        schemas(RefetchEvaluationEvent, SyncChange, SyncResync),
        responses(Unauthorized)
    ),
    modifiers(&SecuritySchemes),
)]
struct Base;

/// The API routes (OFREP, sync, streams, token exchange, admin, this document). CORS covers
/// them (`http::api_service`).
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Base::openapi())
        .routes(routes!(ofrep::evaluate_all))
        .routes(routes!(ofrep::evaluate_flag))
        .routes(routes!(stream::ofrep_sse))
        .routes(routes!(sync::flags))
        .routes(routes!(stream::sync_stream))
        .routes(routes!(sync::client_auth))
        .routes(routes!(admin::refresh))
        .routes(routes!(openapi))
}

/// The monitoring routes, on the main port or on `server.monitoringPort`.
pub(crate) fn monitoring() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(monitoring::health))
        .routes(routes!(monitoring::ready))
        .routes(routes!(monitoring::info))
        .routes(routes!(observe::metrics))
}

/// Every route template the relay serves, API and monitoring, as axum's router writes it
/// (`/ofrep/v1/evaluate/flags/{*key}`): what the request metrics count under.
pub(crate) fn route_templates() -> Vec<String> {
    let mut out: Vec<String> = api().into_openapi().paths.paths.into_keys().collect();
    out.extend(monitoring_templates());
    out
}

/// The monitoring routes' templates (exact paths).
pub(crate) fn monitoring_templates() -> Vec<String> {
    monitoring()
        .into_openapi()
        .paths
        .paths
        .into_keys()
        .collect()
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "monitoring", operation_id = "openapi",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.",
        body = serde_json::Value)))]
pub(crate) async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document().clone(),
    )
        .into_response()
}

/// The document served, serialized once (the routers call this when they are built, so it is
/// ready before the first request).
pub(crate) fn document() -> &'static Bytes {
    static DOC: OnceLock<Bytes> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = api().into_openapi();
        doc.merge(monitoring().into_openapi());
        let mut v = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
        finish(&mut v);
        Bytes::from(v.to_string())
    })
}

/// What the declarations leave to the whole document: OpenAPI path templating for axum's
/// wildcard segments, and the `X-Request-Id` header every answer carries (set by
/// `observe`, around every router).
fn finish(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        *paths = std::mem::take(paths)
            .into_iter()
            .map(|(k, v)| (k.replace("{*", "{"), v))
            .collect();
    }
    let request_id = json!({
        "description": "The request's `X-Request-Id` when it was sane (1–128 characters of \
            letters, digits and `-_.:@+=/~`), else a generated one.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128}
    });
    let add = |answer: &mut Value| {
        if let Some(a) = answer.as_object_mut()
            && !a.contains_key("$ref")
        {
            let headers = a.entry("headers").or_insert_with(|| json!({}));
            headers["X-Request-Id"] = request_id.clone();
        }
    };
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut() {
                if let Some(rs) = op.get_mut("responses").and_then(Value::as_object_mut) {
                    rs.values_mut().for_each(add);
                }
            }
        }
    }
    if let Some(rs) = doc
        .pointer_mut("/components/responses")
        .and_then(Value::as_object_mut)
    {
        rs.values_mut().for_each(add);
    }
}

/// The credentials the operations name in their `security`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "ApiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An evaluation key (OFREP, sync, streams) or an admin key (`/admin/*`, and what \
                 an unbound evaluation key may). With no evaluation key configured, evaluation \
                 is open.",
            ))),
        );
        c.add_security_scheme(
            "Bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer` with a key, or with a token from \
                     `POST /client/auth`.",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "ApiKeyQuery",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "apiKey",
                "On the event streams only.",
            ))),
        );
        c.add_security_scheme(
            "StreamTicket",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "ticket",
                "A short-lived stream ticket from a bulk answer's `eventStreams` URL: accepted \
                 by `/ofrep/v1/sse` only, never a credential elsewhere.",
            ))),
        );
    }
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
