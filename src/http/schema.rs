//! Schemas of the bodies that hand-tuned writers produce: OFREP answers (`ofrep::write_success`,
//! `bulk_answer_with`, `event_streams::render`), the sync API's flag set
//! (`Snapshot::sync_json`) and the stream events.
//!
//! Why the writers are separate from these types: the OFREP answers are the hot path and are
//! assembled from pieces serialized once per flag set (key, value and metadata JSON), which
//! is several times cheaper than serializing a struct per request; the sync body is cached
//! per flag set. These types are what the OpenAPI document says of those bytes, and they are
//! checked against the writers' real output twice: the tests below parse each writer's output
//! into these types (`deny_unknown_fields`), and schemathesis (`make test-schemathesis`)
//! validates live answers against the served document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ofrep::ErrorCode;

/// An OFREP request body. A missing body, a missing `context` and a missing `targetingKey`
/// are all accepted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct EvaluationRequest {
    context: Option<EvaluationContext>,
}

/// `targetingKey` (else `userId`), `tenantId` (else `tenant`) and `env` (else `environment`)
/// make the subject; a key bound to an environment overrides `env`. Other attributes are
/// accepted and ignored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EvaluationContext {
    targeting_key: Option<String>,
    user_id: Option<String>,
    tenant_id: Option<String>,
    tenant: Option<String>,
    env: Option<String>,
    environment: Option<String>,
}

/// Why a flag evaluated as it did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Reason {
    Static,
    TargetingMatch,
    Split,
    Disabled,
    Default,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Variant {
    On,
    Off,
}

/// A `description` or `metadata` value: strings, numbers and booleans only.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum MetadataValue {
    Bool(bool),
    Number(f64),
    String(String),
}

/// One flag's value for the request's context.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvaluationSuccess {
    key: String,
    /// The flag's `value.on` or `value.off`: any JSON value.
    value: serde_json::Value,
    reason: Reason,
    variant: Variant,
    /// The flag's `description` and `metadata`.
    metadata: BTreeMap<String, MetadataValue>,
}

/// An OFREP error; `key` is absent when the key in the path could not be decoded.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct EvaluationFailure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    key: Option<String>,
    error_code: ErrorCode,
    error_details: String,
}

/// Every flag evaluated for the request's context, sorted by key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BulkEvaluationSuccess {
    flags: Vec<EvaluationSuccess>,
    metadata: BulkMetadata,
    /// Present when change streaming is on (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    event_streams: Option<Vec<EventStream>>,
}

/// Empty before the first flag set is loaded.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BulkMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    flag_set_etag: Option<String>,
    /// Unix seconds: the sources' (or the fleet's published set's) last modification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    last_modified: Option<u64>,
    /// Fleet mode: the fleet-wide version of the flag set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1)]
    flag_set_version: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StreamType {
    Sse,
}

/// Where to follow changes: `endpoint` (a path) for unauthenticated requests; `url` with a
/// stream ticket in its query when the request carried a credential.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct EventStream {
    r#type: StreamType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    endpoint: Option<StreamEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    url: Option<String>,
    inactivity_delay_sec: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct StreamEndpoint {
    request_uri: String,
}

/// The whole request is bad.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BulkEvaluationFailure {
    error_code: ErrorCode,
    error_details: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) enum RefetchType {
    #[serde(rename = "refetchEvaluation")]
    RefetchEvaluation,
}

/// The data of each `/ofrep/v1/sse` message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RefetchEvaluationEvent {
    pub(crate) r#type: RefetchType,
    pub(crate) etag: String,
    pub(crate) last_modified: u64,
}

/// One flag's definition, exactly as the evaluation spec defines it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlagDefinition {
    enabled: bool,
    #[schema(minimum = 0, maximum = 100)]
    rollout: u8,
    users: Vec<String>,
    tenants: Vec<String>,
    envs: Vec<String>,
    value: FlagValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    metadata: Option<BTreeMap<String, MetadataValue>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlagValue {
    on: serde_json::Value,
    off: serde_json::Value,
}

/// `GET /v1/flags`, and the `snapshot` event of `/v1/flags/stream`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncFlags {
    etag: String,
    /// The relay's rollout salt, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    salt: Option<String>,
    flags: BTreeMap<String, FlagDefinition>,
}

/// The `change` event of `/v1/flags/stream`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SyncChange {
    etag: String,
    previous_etag: String,
    added: BTreeMap<String, FlagDefinition>,
    updated: BTreeMap<String, FlagDefinition>,
    deleted: Vec<String>,
}

/// The `resync` event of `/v1/flags/stream`: the client missed a change and fetches
/// `/v1/flags` again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SyncResync {
    pub(crate) etag: String,
    pub(crate) previous_etag: String,
    pub(crate) reason: String,
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
