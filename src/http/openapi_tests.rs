//! Properties of the served document and of the routers built from the same declaration.
use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use super::*;
use crate::http::observe::ObserveLayer;
use crate::http::{self, AppState, Auth, EvalSettings};
use crate::metrics::{Metrics, Scrape};
use crate::refresh::{RefreshOptions, Refresher};
use crate::snapshot::SnapshotStore;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    serde_json::from_slice(document()).unwrap()
}

fn operations(d: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
            out.push((method.to_ascii_uppercase(), path.clone(), op));
        }
    }
    out
}

#[test]
fn document_is_openapi_3_1_with_its_security_schemes() {
    let d = doc();
    assert!(d["openapi"].as_str().unwrap().starts_with("3.1."));
    assert_eq!(d["info"]["title"], "flagrelay");
    assert_eq!(d["info"]["version"], env!("CARGO_PKG_VERSION"));
    // (The full OpenAPI 3.1 meta-schema check is openapi-spec-validator's, in
    // scripts/schemathesis.sh.)

    let schemes = d["components"]["securitySchemes"].as_object().unwrap();
    let names: BTreeSet<&str> = schemes.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["ApiKey", "ApiKeyQuery", "Bearer", "StreamTicket"])
    );
    assert_eq!(schemes["ApiKey"]["in"], "header");
    assert_eq!(schemes["ApiKey"]["name"], "X-API-Key");
    assert_eq!(schemes["Bearer"]["scheme"], "bearer");

    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&d) {
        let id = op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
        assert!(op["summary"].is_string(), "{id}: summary");
        // Path parameters: exactly the templated ones (axum's `{*key}` is written `{key}`).
        assert!(!path.contains('*'), "{path}: wildcard left in the document");
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{id}: path parameters are required");
                p["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(declared, templated, "{method} {path}: path parameters");
        let responses = op["responses"].as_object().expect("responses");
        assert!(responses.keys().any(|s| s.starts_with('2')), "{id}: 2xx");
        let security = op["security"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for req in security {
            for (name, scopes) in req.as_object().unwrap() {
                assert!(schemes.contains_key(name), "{id}: unknown scheme {name}");
                assert_eq!(scopes, &Value::Array(vec![]));
            }
        }
        if !security.is_empty() {
            assert!(responses.contains_key("401"), "{id}: authenticated, no 401");
        }
        if path.starts_with("/health") || path == "/ready" || path == "/info" || path == "/metrics"
        {
            assert!(
                security.is_empty(),
                "{id}: monitoring is never authenticated"
            );
        }
    }
}

/// Every `$ref` in `v`, with where it was found.
fn refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push((at.clone(), x.as_str().expect("$ref is a string")));
                } else {
                    refs(x, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_reference_resolves_and_every_schema_is_used() {
    let d = doc();
    let mut all = Vec::new();
    refs(&d, String::new(), &mut all);
    assert!(all.len() > 20);
    for (at, r) in &all {
        let target = r.strip_prefix('#').unwrap_or_else(|| panic!("{at}: {r}"));
        assert!(d.pointer(target).is_some(), "{at}: unresolved {r}");
    }
    // Event data of the two streams, which the streams' descriptions name.
    let event_data = ["RefetchEvaluationEvent", "SyncChange", "SyncResync"];
    for (section, items) in d["components"].as_object().unwrap() {
        if section == "securitySchemes" {
            continue;
        }
        for name in items.as_object().unwrap().keys() {
            if event_data.contains(&name.as_str()) {
                continue;
            }
            let target = format!("#/components/{section}/{name}");
            assert!(all.iter().any(|(_, r)| *r == target), "unused {target}");
        }
    }
}

/// The document served by the real routers lists operations that each reach a handler
/// (neither the JSON 404 fallback nor a 405), and the request metrics count each under its
/// own route, not `__unmatched__`.
#[tokio::test]
async fn every_documented_operation_is_served_and_counted() {
    let store = Arc::new(SnapshotStore::new());
    let refresher = Refresher::new(Vec::new(), store, RefreshOptions::default());
    let state = AppState::new(
        refresher,
        Arc::new(Auth::open()),
        EvalSettings {
            default_env: None,
            max_body_bytes: 1024,
            change_stream: true,
        },
        10,
        false,
    );
    let templates = route_templates();
    let metrics = Arc::new(Metrics::new(
        &templates.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let app = tower::Layer::layer(
        &ObserveLayer::new(metrics.clone()),
        http::api_service(state, &[], true),
    );
    let fallback = {
        let res = app
            .clone()
            .oneshot(Request::get("/no/such/path").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        axum::body::to_bytes(res.into_body(), 4096).await.unwrap()
    };

    let res = app
        .clone()
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let served: Value = serde_json::from_slice(
        &axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    let ops = operations(&served);
    assert!(ops.len() >= 12, "{}", ops.len());
    for (method, path, _) in ops {
        let uri = path.replace("{key}", "some/key");
        let req = Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        assert_ne!(status, 405, "{method} {uri}: method not routed");
        if status == 404 {
            let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
            assert_ne!(body, fallback, "{method} {uri}: answered by the fallback");
        }
        let template = templates
            .iter()
            .find(|t| t.replace("{*", "{") == path)
            .unwrap_or_else(|| panic!("{path}: no route template"));
        let text = metrics.render(&Scrape::default());
        let label = format!("route=\"{template}\",method=\"{method}\"");
        assert!(
            text.contains(&label),
            "{method} {uri} not counted as {template}"
        );
    }
}
