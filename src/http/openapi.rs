//! `GET /openapi.json`: the OpenAPI 3.1 document of this API, and [`ROUTES`], the list of every
//! route the relay serves.
//!
//! The document is written by hand in `openapi.json` beside this file (embedded at build time,
//! parsed once), from the handlers' code. It cannot drift silently: the tests check that the
//! router's `.route(...)` calls in `http/mod.rs`, [`ROUTES`] and the document's paths and
//! methods are the same three sets, that every route in [`ROUTES`] is really routed, and that
//! the document has OpenAPI 3.1's structure (every `$ref` resolves, every path parameter is
//! declared, every operation has an id and answers). The full meta-schema check
//! (`openapi-spec-validator`) and the live check of the answers against the schemas
//! (`schemathesis`) run in `scripts/schemathesis.sh`.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// One route: its method and its path as axum's router and `MatchedPath` write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub template: &'static str,
}

impl Route {
    /// The path as OpenAPI writes it (`{*key}` → `{key}`).
    pub fn openapi_path(&self) -> String {
        self.template.replace("{*", "{")
    }
}

const fn r(method: &'static str, template: &'static str) -> Route {
    Route { method, template }
}

/// Every route the relay serves (API and monitoring). The metrics registry pre-registers these
/// templates; the tests keep this list, the router and the document in step.
pub const ROUTES: &[Route] = &[
    r("POST", "/ofrep/v1/evaluate/flags"),
    r("POST", "/ofrep/v1/evaluate/flags/{*key}"),
    r("GET", "/ofrep/v1/sse"),
    r("GET", "/v1/flags"),
    r("GET", "/v1/flags/stream"),
    r("POST", "/client/auth"),
    r("POST", "/admin/v1/retriever/refresh"),
    r("GET", "/health"),
    r("GET", "/ready"),
    r("GET", "/info"),
    r("GET", "/metrics"),
    r("GET", "/openapi.json"),
];

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document(),
    )
        .into_response()
}

/// The document served: [`DOCUMENT`] with this build's version.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut v: serde_json::Value =
            serde_json::from_str(DOCUMENT).expect("the OpenAPI document is valid JSON");
        v["info"]["version"] = env!("CARGO_PKG_VERSION").into();
        v.to_string()
    })
}

/// The OpenAPI 3.1 document (`info.version` is filled in when served).
pub const DOCUMENT: &str = include_str!("openapi.json");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn doc() -> Value {
        serde_json::from_str(document()).unwrap()
    }

    fn routes() -> BTreeSet<(String, String)> {
        ROUTES
            .iter()
            .map(|r| (r.method.to_owned(), r.openapi_path()))
            .collect()
    }

    /// `(METHOD, path)` of every operation in the document.
    fn documented() -> BTreeSet<(String, String)> {
        let d = doc();
        let mut out = BTreeSet::new();
        for (path, item) in d["paths"].as_object().unwrap() {
            for (k, _) in item.as_object().unwrap() {
                if METHODS.contains(&k.as_str()) {
                    out.insert((k.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// Every `.route("path", get(..).post(..))` in the router's source, as `(METHOD, path)`.
    fn router_source_routes(src: &str) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let mut rest = src;
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + ".route(".len()..];
            let body = rest.trim_start();
            let Some(body) = body.strip_prefix('"') else {
                continue;
            };
            let end = body.find('"').unwrap();
            let path = body[..end].to_owned();
            // The second argument: up to the parenthesis closing `.route(`.
            let mut depth = 1;
            let mut arg_end = 0;
            for (j, c) in body[end + 1..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            arg_end = end + 1 + j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let arg = &body[end + 1..arg_end];
            let mut found = false;
            for m in ["get", "post", "put", "delete", "patch", "head", "options"] {
                let pat = format!("{m}(");
                let mut from = 0;
                while let Some(k) = arg[from..].find(&pat) {
                    let at = from + k;
                    let before = arg[..at].chars().last();
                    if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        out.insert((m.to_ascii_uppercase(), path.replace("{*", "{")));
                        found = true;
                    }
                    from = at + pat.len();
                }
            }
            assert!(found, "no method router found in .route(\"{path}\", {arg})");
        }
        out
    }

    #[test]
    fn routes_and_document_list_the_same_operations() {
        let (r, d) = (routes(), documented());
        assert_eq!(
            r.difference(&d).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "in ROUTES but not in the OpenAPI document"
        );
        assert_eq!(
            d.difference(&r).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "in the OpenAPI document but not in ROUTES"
        );
        assert_eq!(r.len(), ROUTES.len(), "ROUTES has duplicates");
    }

    #[test]
    fn router_and_routes_list_the_same_operations() {
        let src = router_source_routes(include_str!("mod.rs"));
        let r = routes();
        assert_eq!(
            src.difference(&r).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "routed in http/mod.rs but missing from openapi::ROUTES (and the document)"
        );
        assert_eq!(
            r.difference(&src).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "in openapi::ROUTES but not routed in http/mod.rs"
        );
    }

    #[test]
    fn source_parser_reads_route_calls() {
        let src = r#"
            Router::new()
                .route("/a", get(h))
                .route(
                    "/b/{*key}",
                    post(ofrep::evaluate_flag).get(x::y),
                )
                .route("/c", axum::routing::get(f(1)))
        "#;
        let got: Vec<_> = router_source_routes(src).into_iter().collect();
        let want: Vec<(String, String)> = [
            ("GET", "/a"),
            ("GET", "/b/{key}"),
            ("GET", "/c"),
            ("POST", "/b/{key}"),
        ]
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
        assert_eq!(got, want);
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

    fn resolve<'a>(d: &'a Value, r: &str) -> Option<&'a Value> {
        d.pointer(r.strip_prefix('#')?)
    }

    #[test]
    fn document_has_the_openapi_3_1_structure() {
        let d = doc();
        assert!(d["openapi"].as_str().unwrap().starts_with("3.1."));
        assert_eq!(d["info"]["title"], "flagrelay");
        assert_eq!(d["info"]["version"], env!("CARGO_PKG_VERSION"));
        let top: BTreeSet<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        let allowed: BTreeSet<&str> = [
            "openapi",
            "info",
            "jsonSchemaDialect",
            "servers",
            "paths",
            "webhooks",
            "components",
            "security",
            "tags",
            "externalDocs",
        ]
        .into();
        assert!(top.is_subset(&allowed), "{top:?}");

        // Every $ref points into this document and resolves.
        let mut all = Vec::new();
        refs(&d, String::new(), &mut all);
        assert!(all.len() > 20);
        for (at, r) in &all {
            assert!(r.starts_with("#/components/"), "{at}: {r}");
            assert!(resolve(&d, r).is_some(), "{at}: unresolved {r}");
        }
        // Every component is used.
        for (section, items) in d["components"].as_object().unwrap() {
            if section == "securitySchemes" {
                continue;
            }
            for name in items.as_object().unwrap().keys() {
                let target = format!("#/components/{section}/{name}");
                assert!(all.iter().any(|(_, r)| *r == target), "unused {target}");
            }
        }

        let schemes = d["components"]["securitySchemes"].as_object().unwrap();
        let mut ids = BTreeSet::new();
        for (path, item) in d["paths"].as_object().unwrap() {
            assert!(path.starts_with('/'), "{path}");
            let templated: BTreeSet<String> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(String::from)
                .collect();
            for (method, op) in item.as_object().unwrap() {
                assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
                assert!(op["summary"].is_string(), "{id}: summary");
                // Security: declared (possibly empty), naming known schemes with no scopes.
                for req in op["security"]
                    .as_array()
                    .expect("security on every operation")
                {
                    for (name, scopes) in req.as_object().unwrap() {
                        assert!(schemes.contains_key(name), "{id}: unknown scheme {name}");
                        assert_eq!(scopes, &Value::Array(vec![]));
                    }
                }
                // Path parameters: exactly the templated ones, required.
                let params: Vec<&Value> = op["parameters"]
                    .as_array()
                    .map(|a| a.iter().collect())
                    .unwrap_or_default();
                let in_path: BTreeSet<String> = params
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| {
                        assert_eq!(p["required"], true, "{id}: path parameters are required");
                        p["name"].as_str().unwrap().to_owned()
                    })
                    .collect();
                assert_eq!(in_path, templated, "{id}: path parameters");
                for p in params {
                    assert!(
                        ["path", "query", "header", "cookie"].contains(&p["in"].as_str().unwrap())
                    );
                    assert!(p["schema"].is_object(), "{id}: parameter schema");
                }
                // Answers: status codes, each with a description (after $ref) and typed content.
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses.keys().any(|s| s.starts_with('2')),
                    "{id}: a 2xx answer"
                );
                for (status, res) in responses {
                    let code: u16 = status.parse().expect("numeric status");
                    assert!((100..600).contains(&code));
                    let res = match res.get("$ref") {
                        Some(r) => resolve(&d, r.as_str().unwrap()).unwrap(),
                        None => res,
                    };
                    assert!(res["description"].is_string(), "{id} {status}: description");
                    if let Some(content) = res.get("content") {
                        for (ty, media) in content.as_object().unwrap() {
                            assert!(ty.contains('/'), "{id} {status}: media type {ty}");
                            assert!(media["schema"].is_object(), "{id} {status}: schema");
                        }
                    }
                    if code == 304 {
                        assert!(res.get("content").is_none(), "{id}: 304 has no body");
                    }
                }
                if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                    assert!(
                        responses.contains_key("401"),
                        "{id}: authenticated but no 401"
                    );
                }
            }
        }
    }

    /// Every JSON answer documented as an `object` schema with `additionalProperties: false`
    /// lists its required properties among its properties.
    #[test]
    fn schemas_are_self_consistent() {
        let d = doc();
        for (name, s) in d["components"]["schemas"].as_object().unwrap() {
            check_schema(name, s);
        }
        fn check_schema(at: &str, s: &Value) {
            let Some(obj) = s.as_object() else { return };
            if let Some(req) = obj.get("required") {
                let props = obj.get("properties").and_then(Value::as_object);
                for r in req.as_array().unwrap() {
                    let r = r.as_str().unwrap();
                    assert!(
                        props.is_some_and(|p| p.contains_key(r)),
                        "{at}: required {r} is not a property"
                    );
                }
            }
            for (k, v) in obj {
                match v {
                    Value::Object(_) => check_schema(&format!("{at}/{k}"), v),
                    Value::Array(a) => a
                        .iter()
                        .enumerate()
                        .for_each(|(i, x)| check_schema(&format!("{at}/{k}/{i}"), x)),
                    _ => {}
                }
            }
        }
    }

    /// Each route in [`ROUTES`] reaches a handler through the real routers: the observe layer
    /// sees its template, and the method is allowed.
    #[tokio::test]
    async fn every_route_is_routed() {
        use axum::body::Body;
        use axum::http::Request;
        use std::sync::Arc;
        use tower::ServiceExt;

        use crate::http::{self, AppState, Auth, EvalSettings};
        use crate::refresh::{RefreshOptions, Refresher};
        use crate::snapshot::SnapshotStore;

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
        let templates: Vec<&str> = ROUTES.iter().map(|r| r.template).collect();
        let metrics = Arc::new(crate::metrics::Metrics::new(&templates));
        let app = tower::Layer::layer(
            &super::super::observe::ObserveLayer::new(metrics.clone()),
            http::api_router(state.clone(), &[]).merge(http::monitoring_router(state)),
        );
        for r in ROUTES {
            let uri = r.template.replace("{*key}", "some/key");
            let req = Request::builder()
                .method(r.method)
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let res = app.clone().oneshot(req).await.unwrap();
            assert_ne!(res.status(), 405, "{} {uri}: method not routed", r.method);
            let text = metrics.render(&crate::metrics::Scrape::default());
            let label = format!("route=\"{}\",method=\"{}\"", r.template, r.method);
            assert!(
                text.contains(&label),
                "{} {uri} did not reach route {}",
                r.method,
                r.template
            );
        }
    }
}
