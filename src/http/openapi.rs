//! `GET /openapi.json`: the OpenAPI 3.1 document of this API, and [`ROUTES`], the list of every
//! route the relay serves.
//!
//! The document is written by hand below, from the handlers' code. It cannot drift silently:
//! the tests check that the router's `.route(...)` calls in `http/mod.rs`, [`ROUTES`] and the
//! document's paths and methods are the same three sets, that every route in [`ROUTES`] is
//! really routed, and that the document has OpenAPI 3.1's structure (every `$ref` resolves,
//! every path parameter is declared, every operation has an id and answers). The full
//! meta-schema check (`openapi-spec-validator`) and the live check of the answers against the
//! schemas (`schemathesis`) run in `scripts/schemathesis.sh`.

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
pub const DOCUMENT: &str = r##"{
  "openapi": "3.1.0",
  "info": {
    "title": "flagrelay",
    "version": "0.0.0",
    "summary": "Feature-flag relay proxy: OFREP evaluation, sync API and change streams over a polled flag set.",
    "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
  },
  "tags": [
    {"name": "ofrep", "description": "OpenFeature Remote Evaluation Protocol"},
    {"name": "sync", "description": "Flag definitions for SDKs that evaluate in-process"},
    {"name": "auth", "description": "Token exchange"},
    {"name": "admin", "description": "Operations (admin key)"},
    {"name": "monitoring", "description": "Never authenticated; on server.monitoringPort when one is set"}
  ],
  "paths": {
    "/ofrep/v1/evaluate/flags/{key}": {
      "post": {
        "tags": ["ofrep"],
        "operationId": "ofrepEvaluateFlag",
        "summary": "Evaluate one flag",
        "description": "The key may arrive percent-encoded or raw, and may contain `/`. Never answers 413, 422 or 503: the OFREP clients treat those as unexpected (an over-long body is 400 INVALID_CONTEXT; before the first flag set is loaded every key is 404 FLAG_NOT_FOUND).",
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "parameters": [
          {"name": "key", "in": "path", "required": true, "description": "The flag key.", "schema": {"type": "string", "minLength": 1}, "examples": {"exampleFlag": {"summary": "A flag of the example flag set (config/flags.yaml)", "value": "new-checkout"}}}
        ],
        "requestBody": {"$ref": "#/components/requestBodies/Evaluation"},
        "responses": {
          "200": {
            "description": "The flag's value for this context.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EvaluationSuccess"}}}
          },
          "400": {
            "description": "PARSE_ERROR (the body is not JSON), INVALID_CONTEXT (context is not an object, a subject attribute is not a string, or the body is over the size limit) or GENERAL (the key in the path cannot be decoded; `key` is then absent).",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EvaluationFailure"}}}
          },
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "404": {
            "description": "FLAG_NOT_FOUND: the key is not in the flag set.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EvaluationFailure"}}}
          }
        }
      }
    },
    "/ofrep/v1/evaluate/flags": {
      "post": {
        "tags": ["ofrep"],
        "operationId": "ofrepEvaluateFlags",
        "summary": "Evaluate every flag",
        "description": "Flags are sorted by key. `ETag` is a strong hash of the exact body; `If-None-Match` listing it (RFC 9110, weak comparison) answers 304 with no body, unless `flagConfigEtag` names a flag set this relay does not serve. `If-None-Match: *` answers 412 (RFC 9110 13.1.2: never true for this POST). With a credential, `eventStreams` names the stream as a URL with a short-lived stream ticket.",
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "parameters": [
          {"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string"}},
          {"name": "flagConfigEtag", "in": "query", "required": false, "description": "The flag-set etag of the change event that caused this fetch: when it is not the served set's, the answer is never 304.", "schema": {"type": "string"}},
          {"name": "flagConfigLastModified", "in": "query", "required": false, "description": "Accepted and ignored.", "schema": {"type": "string"}}
        ],
        "requestBody": {"$ref": "#/components/requestBodies/Evaluation"},
        "responses": {
          "200": {
            "description": "Every flag evaluated for this context.",
            "headers": {
              "ETag": {"$ref": "#/components/headers/ETag"},
              "X-Request-Id": {"$ref": "#/components/headers/RequestId"}
            },
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BulkEvaluationSuccess"}}}
          },
          "304": {
            "description": "The answer would be the one the client has (`If-None-Match`).",
            "headers": {
              "ETag": {"$ref": "#/components/headers/ETag"},
              "X-Request-Id": {"$ref": "#/components/headers/RequestId"}
            }
          },
          "400": {
            "description": "The whole request is bad: PARSE_ERROR or INVALID_CONTEXT.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BulkEvaluationFailure"}}}
          },
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "412": {
            "description": "`If-None-Match: *`: a failed precondition on this POST (GENERAL).",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BulkEvaluationFailure"}}}
          }
        }
      }
    },
    "/ofrep/v1/sse": {
      "get": {
        "tags": ["ofrep"],
        "operationId": "ofrepEventStream",
        "summary": "Flag-set change stream (Server-Sent Events)",
        "description": "First a `retry:` hint; then on every change of the flag set: `event: message`, an `id:` that only grows, and `data:` a `RefetchEvaluationEvent`. A reconnect whose `Last-Event-ID` is not the current id gets one such event at once. A comment line every 30 s keeps proxies from closing the stream; it ends when the relay shuts down. Browsers (whose EventSource cannot send headers) use the `ticket` from a bulk answer's `eventStreams` URL; `?apiKey=` also works.",
        "security": [{"ApiKey": []}, {"Bearer": []}, {"ApiKeyQuery": []}, {"StreamTicket": []}],
        "parameters": [
          {"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "string"}}
        ],
        "responses": {
          "200": {
            "description": "The event stream; each event's data is a RefetchEvaluationEvent.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"text/event-stream": {"schema": {"type": "string"}, "x-event-data": {"$ref": "#/components/schemas/RefetchEvaluationEvent"}}}
          },
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "503": {"$ref": "#/components/responses/StreamUnavailable"}
        }
      }
    },
    "/v1/flags": {
      "get": {
        "tags": ["sync"],
        "operationId": "syncFlags",
        "summary": "The flag definitions",
        "description": "The flag definitions exactly as the evaluation spec defines them, with `ETag` (the quoted flag-set etag) and 304 on a matching `If-None-Match`.",
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "parameters": [
          {"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string"}}
        ],
        "responses": {
          "200": {
            "description": "The flag set.",
            "headers": {
              "ETag": {"$ref": "#/components/headers/ETag"},
              "X-Request-Id": {"$ref": "#/components/headers/RequestId"}
            },
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SyncFlags"}}}
          },
          "304": {
            "description": "The client has this flag set (`If-None-Match`).",
            "headers": {
              "ETag": {"$ref": "#/components/headers/ETag"},
              "X-Request-Id": {"$ref": "#/components/headers/RequestId"}
            }
          },
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "503": {
            "description": "No flag set is loaded yet.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
          }
        }
      }
    },
    "/v1/flags/stream": {
      "get": {
        "tags": ["sync"],
        "operationId": "syncStream",
        "summary": "Flag definitions and their changes (Server-Sent Events)",
        "description": "First an event `snapshot` whose data is a `SyncFlags`, then one event `change` per change whose data is a `SyncChange`. A client whose last etag is not `previousEtag` fetches `/v1/flags` again. A client that fell behind (it missed a change while not reading) gets an event `resync` (`{\"etag\", \"previousEtag\", \"reason\"}`) instead, and fetches `/v1/flags` again. The credential may also come as `?apiKey=`.",
        "security": [{"ApiKey": []}, {"Bearer": []}, {"ApiKeyQuery": []}],
        "responses": {
          "200": {
            "description": "The event stream.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"text/event-stream": {"schema": {"type": "string"}, "x-event-data": {"oneOf": [{"$ref": "#/components/schemas/SyncFlags"}, {"$ref": "#/components/schemas/SyncChange"}]}}}
          },
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "503": {"$ref": "#/components/responses/StreamUnavailable"}
        }
      }
    },
    "/client/auth": {
      "post": {
        "tags": ["auth"],
        "operationId": "clientAuth",
        "summary": "Exchange an evaluation key for a token",
        "description": "The token (HS256 JWT) carries the key's environment and an expiry, and may be used wherever the key may.",
        "security": [],
        "requestBody": {
          "required": true,
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenRequest"}}}
        },
        "responses": {
          "200": {
            "description": "A token.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}}}
          },
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "404": {
            "description": "Token exchange is not configured (`auth.jwtSecret`).",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
          },
          "413": {
            "description": "The body is larger than `maxRequestBodyBytes`.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
          }
        }
      }
    },
    "/admin/v1/retriever/refresh": {
      "post": {
        "tags": ["admin"],
        "operationId": "adminRefresh",
        "summary": "Run every retriever now",
        "description": "Synchronous; swaps the flag set in when every retriever succeeded. Concurrent calls share one refresh. 502 when a retriever failed (the last good flag set keeps serving), so `curl --fail` fails.",
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "parameters": [
          {"name": "force", "in": "query", "required": false, "schema": {"type": "boolean", "default": false}, "description": "Let this refresh remove more than maxFlagRemovalPercent of the flags."}
        ],
        "responses": {
          "200": {
            "description": "Every retriever succeeded.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RefreshReport"}}}
          },
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "502": {
            "description": "A retriever failed, or the new set was refused by the mass-removal guard (`error`); `refreshed` is false.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RefreshReport"}}}
          },
          "504": {
            "description": "Fleet mode: the refresh succeeded but a live replica did not confirm serving it within `fleet.convergenceTimeout`; `fleet.laggards` names them.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RefreshReport"}}}
          }
        }
      }
    },
    "/health": {
      "get": {
        "tags": ["monitoring"],
        "operationId": "health",
        "summary": "Liveness",
        "security": [],
        "responses": {
          "200": {
            "description": "The process serves.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {
              "type": "object", "required": ["status"], "additionalProperties": false,
              "properties": {"status": {"const": "ok"}}
            }}}
          }
        }
      }
    },
    "/ready": {
      "get": {
        "tags": ["monitoring"],
        "operationId": "ready",
        "summary": "Readiness",
        "description": "200 once a flag set is loaded (from the retrievers, the persisted snapshot, or empty under startWithRetrieverError); 503 before, and while shutting down.",
        "security": [],
        "responses": {
          "200": {
            "description": "Ready.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {
              "type": "object", "required": ["status", "flags", "etag"],
              "properties": {
                "status": {"const": "ready"},
                "flags": {"type": "integer", "minimum": 0},
                "etag": {"type": "string"}
              }
            }}}
          },
          "503": {
            "description": "Not ready.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {
              "type": "object", "required": ["status"],
              "properties": {
                "status": {"const": "not ready"},
                "reason": {"type": "string"}
              }
            }}}
          }
        }
      }
    },
    "/info": {
      "get": {
        "tags": ["monitoring"],
        "operationId": "info",
        "summary": "What this relay serves and where from",
        "security": [],
        "responses": {
          "200": {
            "description": "Version, FIPS mode, the flag set, and each retriever's state (sources never carry credentials).",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Info"}}}
          }
        }
      }
    },
    "/metrics": {
      "get": {
        "tags": ["monitoring"],
        "operationId": "metrics",
        "summary": "Prometheus metrics",
        "description": "Text exposition format 0.0.4. Every metric is named `flagrelay_…`.",
        "security": [],
        "responses": {
          "200": {
            "description": "The metrics.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"text/plain": {"schema": {"type": "string"}}}
          }
        }
      }
    },
    "/openapi.json": {
      "get": {
        "tags": ["monitoring"],
        "operationId": "openapi",
        "summary": "This document",
        "security": [],
        "responses": {
          "200": {
            "description": "The OpenAPI 3.1 document of this API.",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": {"type": "object", "required": ["openapi", "info", "paths"]}}}
          }
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An evaluation key (OFREP, sync, streams) or an admin key (`/admin/*`, and what an unbound evaluation key may). With no evaluation key configured, evaluation is open."},
      "Bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer` with a key, or with a token from `POST /client/auth`."},
      "ApiKeyQuery": {"type": "apiKey", "in": "query", "name": "apiKey", "description": "On the event streams only."},
      "StreamTicket": {"type": "apiKey", "in": "query", "name": "ticket", "description": "A short-lived stream ticket from a bulk answer's `eventStreams` URL: accepted by `/ofrep/v1/sse` only, never a credential elsewhere."}
    },
    "headers": {
      "RequestId": {"description": "The request's `X-Request-Id` when it was sane (1–128 characters of letters, digits and `-_.:@+=/~`), else a generated one.", "schema": {"type": "string", "minLength": 1, "maxLength": 128}},
      "ETag": {"description": "A strong entity tag.", "schema": {"type": "string", "pattern": "^\"[^\"]*\"$"}}
    },
    "requestBodies": {
      "Evaluation": {
        "required": false,
        "description": "A missing body, a missing `context` and a missing `targetingKey` are all accepted.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EvaluationRequest"}}}
      }
    },
    "responses": {
      "BadRequest": {
        "description": "The request is malformed.",
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
      },
      "Unauthorized": {
        "description": "Missing, unknown or expired credential.",
        "headers": {
          "WWW-Authenticate": {"schema": {"type": "string"}},
          "X-Request-Id": {"$ref": "#/components/headers/RequestId"}
        },
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
      },
      "Forbidden": {
        "description": "A valid credential of a kind that may not call this endpoint.",
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
      },
      "StreamUnavailable": {
        "description": "Too many open streams (`server.maxSseClients`), or the relay is shutting down.",
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
      }
    },
    "schemas": {
      "Error": {
        "type": "object",
        "required": ["error", "message"],
        "additionalProperties": false,
        "properties": {
          "error": {"type": "string", "description": "A machine-readable code, e.g. `unauthorized`."},
          "message": {"type": "string"}
        }
      },
      "EvaluationRequest": {
        "type": ["object", "null"],
        "properties": {
          "context": {"$ref": "#/components/schemas/EvaluationContext"}
        }
      },
      "EvaluationContext": {
        "type": ["object", "null"],
        "description": "`targetingKey` (else `userId`), `tenantId` (else `tenant`) and `env` (else `environment`) make the subject; a key bound to an environment overrides `env`. Other attributes are accepted and ignored.",
        "properties": {
          "targetingKey": {"type": ["string", "null"]},
          "userId": {"type": ["string", "null"]},
          "tenantId": {"type": ["string", "null"]},
          "tenant": {"type": ["string", "null"]},
          "env": {"type": ["string", "null"]},
          "environment": {"type": ["string", "null"]}
        }
      },
      "Metadata": {
        "type": "object",
        "description": "The flag's `description` and `metadata`: strings, numbers and booleans only.",
        "additionalProperties": {"type": ["string", "number", "boolean"]}
      },
      "EvaluationSuccess": {
        "type": "object",
        "required": ["key", "value", "reason", "variant", "metadata"],
        "additionalProperties": false,
        "properties": {
          "key": {"type": "string"},
          "value": {"description": "The flag's `value.on` or `value.off`: any JSON value."},
          "reason": {"type": "string", "enum": ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT"]},
          "variant": {"type": "string", "enum": ["on", "off"]},
          "metadata": {"$ref": "#/components/schemas/Metadata"}
        }
      },
      "EvaluationFailure": {
        "type": "object",
        "required": ["errorCode", "errorDetails"],
        "additionalProperties": false,
        "properties": {
          "key": {"type": "string"},
          "errorCode": {"type": "string", "enum": ["PARSE_ERROR", "INVALID_CONTEXT", "FLAG_NOT_FOUND", "GENERAL"]},
          "errorDetails": {"type": "string"}
        }
      },
      "BulkEvaluationFailure": {
        "type": "object",
        "required": ["errorCode", "errorDetails"],
        "additionalProperties": false,
        "properties": {
          "errorCode": {"type": "string", "enum": ["PARSE_ERROR", "INVALID_CONTEXT", "GENERAL"]},
          "errorDetails": {"type": "string"}
        }
      },
      "BulkEvaluationSuccess": {
        "type": "object",
        "required": ["flags", "metadata"],
        "additionalProperties": false,
        "properties": {
          "flags": {"type": "array", "items": {"$ref": "#/components/schemas/EvaluationSuccess"}},
          "metadata": {
            "type": "object",
            "additionalProperties": false,
            "description": "Empty before the first flag set is loaded.",
            "properties": {
              "flagSetEtag": {"type": "string"},
              "lastModified": {"type": "integer", "minimum": 0, "description": "Unix seconds: the sources' (or the fleet's published set's) last modification."},
              "flagSetVersion": {"type": "integer", "minimum": 1, "description": "Fleet mode: the fleet-wide version of the flag set."}
            }
          },
          "eventStreams": {
            "type": "array",
            "description": "Present when change streaming is on (the default).",
            "items": {
              "type": "object",
              "required": ["type", "inactivityDelaySec"],
              "additionalProperties": false,
              "description": "`endpoint` (a path) for unauthenticated requests; `url` with a stream ticket in its query when the request carried a credential.",
              "properties": {
                "type": {"const": "sse"},
                "endpoint": {
                  "type": "object",
                  "required": ["requestUri"],
                  "additionalProperties": false,
                  "properties": {"requestUri": {"type": "string"}}
                },
                "url": {"type": "string"},
                "inactivityDelaySec": {"type": "integer", "minimum": 0}
              }
            }
          }
        }
      },
      "RefetchEvaluationEvent": {
        "type": "object",
        "required": ["type", "etag", "lastModified"],
        "additionalProperties": false,
        "properties": {
          "type": {"const": "refetchEvaluation"},
          "etag": {"type": "string"},
          "lastModified": {"type": "integer", "minimum": 0}
        }
      },
      "FlagDefinition": {
        "type": "object",
        "required": ["enabled", "rollout", "users", "tenants", "envs", "value"],
        "additionalProperties": false,
        "properties": {
          "enabled": {"type": "boolean"},
          "rollout": {"type": "integer", "minimum": 0, "maximum": 100},
          "users": {"type": "array", "items": {"type": "string"}},
          "tenants": {"type": "array", "items": {"type": "string"}},
          "envs": {"type": "array", "items": {"type": "string"}},
          "value": {
            "type": "object",
            "required": ["on", "off"],
            "additionalProperties": false,
            "properties": {"on": {}, "off": {}}
          },
          "description": {"type": "string"},
          "metadata": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
        }
      },
      "SyncFlags": {
        "type": "object",
        "required": ["etag", "flags"],
        "additionalProperties": false,
        "properties": {
          "etag": {"type": "string"},
          "salt": {"type": "string", "description": "The relay's rollout salt, when one is set."},
          "flags": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/FlagDefinition"}}
        }
      },
      "SyncChange": {
        "type": "object",
        "required": ["etag", "previousEtag", "added", "updated", "deleted"],
        "additionalProperties": false,
        "properties": {
          "etag": {"type": "string"},
          "previousEtag": {"type": "string"},
          "added": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/FlagDefinition"}},
          "updated": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/FlagDefinition"}},
          "deleted": {"type": "array", "items": {"type": "string"}}
        }
      },
      "TokenRequest": {
        "type": "object",
        "required": ["apiKey"],
        "properties": {"apiKey": {"type": "string"}}
      },
      "TokenResponse": {
        "type": "object",
        "required": ["authToken", "expiresIn"],
        "additionalProperties": false,
        "properties": {
          "authToken": {"type": "string"},
          "expiresIn": {"type": "integer", "minimum": 0, "description": "Seconds."}
        }
      },
      "RefreshReport": {
        "type": "object",
        "required": ["refreshed", "changed", "flags", "etag", "retrievers"],
        "additionalProperties": false,
        "properties": {
          "refreshed": {"type": "boolean"},
          "changed": {"type": "boolean"},
          "fleet": {
            "type": "object",
            "description": "Fleet mode: whether every live replica serves the version this refresh left.",
            "required": ["version", "replicas", "converged", "tookMs"],
            "additionalProperties": false,
            "properties": {
              "version": {"type": "integer", "minimum": 0},
              "replicas": {"type": "integer", "minimum": 0, "description": "Live replicas."},
              "converged": {"type": "boolean"},
              "tookMs": {"type": "number", "minimum": 0, "description": "From this replica serving the version to the last live replica confirming it."},
              "laggards": {"type": "array", "items": {"type": "string"}},
              "error": {"type": "string"}
            }
          },
          "flags": {"type": "integer", "minimum": 0, "description": "Flags served after the refresh."},
          "etag": {"type": ["string", "null"], "description": "The flag-set etag served after the refresh."},
          "error": {"type": "string", "description": "Every retriever succeeded but the new set was refused: it would remove more than maxFlagRemovalPercent of the flags (retry with force=true if intended)."},
          "retrievers": {
            "type": "array",
            "items": {
              "type": "object",
              "required": ["kind", "source", "status"],
              "additionalProperties": false,
              "properties": {
                "kind": {"type": "string", "enum": ["file", "http", "s3", "relay", "sql", "azblob", "gcs"]},
                "source": {"type": "string"},
                "status": {"type": "string", "enum": ["ok", "error"]},
                "error": {"type": "string"}
              }
            }
          }
        }
      },
      "Info": {
        "type": "object",
        "required": ["version", "fips140", "flags", "etag", "lastRefresh", "retrievers"],
        "properties": {
          "version": {"type": "string"},
          "fips140": {"type": "boolean"},
          "flags": {"type": "integer", "minimum": 0},
          "etag": {"type": ["string", "null"]},
          "lastModified": {"type": ["string", "null"], "description": "RFC 3339: the sources' last modification of the flag set served (its load time when no source says)."},
          "fleet": {"type": ["object", "null"], "description": "Fleet mode: name, replica id, role, served version, Redis reachability, live replicas."},
          "lastRefresh": {"type": ["string", "null"], "description": "RFC 3339: the last refresh in which every retriever succeeded."},
          "retrievers": {
            "type": "array",
            "items": {
              "type": "object",
              "required": ["kind", "source", "lastSuccess", "lastError"],
              "properties": {
                "kind": {"type": "string", "enum": ["file", "http", "s3", "relay", "sql", "azblob", "gcs"]},
                "source": {"type": "string"},
                "lastSuccess": {"type": ["string", "null"]},
                "lastError": {"type": ["string", "null"]}
              }
            }
          }
        }
      }
    }
  }
}"##;

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
        let metrics = Arc::new(crate::metrics::Metrics::new(
            ROUTES.iter().map(|r| r.template),
        ));
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
