//! `kind: gcs`: one object in a Google Cloud Storage bucket.
//!
//! Built on `object_store`'s `gcp` client (token signing through aws-lc-rs, requests through
//! reqwest/rustls). Credentials, read by `object_store`: a service-account JSON key
//! (`GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_SERVICE_ACCOUNT_PATH` / `GOOGLE_SERVICE_ACCOUNT_KEY`), or
//! application default credentials (`GOOGLE_APPLICATION_CREDENTIALS`, or the gcloud file; GKE
//! workload identity federation writes one), else the instance's metadata server.
//!
//! `endpoint` points at another base URL, such as an emulator's (`http://127.0.0.1:4443`).

use std::time::Duration;

use object_store::ClientConfigKey;
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

use super::RetrieverError;
use super::object::{ObjectRetriever, check_scheme, client_limits, object_path, with_endpoint};
use crate::config::RetrieverConfig;

/// `kind: gcs` (see the module docs); what it shares with the other stores is in
/// [`ObjectRetriever`].
pub type GcsRetriever = ObjectRetriever<GoogleCloudStorageBuilder>;

impl ObjectRetriever<GoogleCloudStorageBuilder> {
    /// Credentials and settings from the process environment, the config entry on top.
    pub(crate) fn new(cfg: &RetrieverConfig) -> Result<Self, RetrieverError> {
        Self::with_builder(cfg, GoogleCloudStorageBuilder::from_env())
    }

    /// Build from a caller's builder (credentials already on it); tests pass keys this way.
    pub fn with_builder(
        cfg: &RetrieverConfig,
        builder: GoogleCloudStorageBuilder,
    ) -> Result<Self, RetrieverError> {
        let bucket = cfg.bucket.clone().unwrap_or_default();
        let item = cfg.item.as_deref().unwrap_or_default();
        let timeout = cfg.timeout.duration().unwrap_or(Duration::from_secs(10));
        let source = format!("gs://{bucket}/{}", item.trim_start_matches('/'));
        let (source, endpoint) = with_endpoint(source, cfg.endpoint.as_deref())?;
        let setup = |message: String| RetrieverError::Setup {
            source_name: source.clone(),
            message,
        };
        if bucket.is_empty() {
            return Err(setup("bucket is required".into()));
        }
        let (item, location) = object_path(item).map_err(setup)?;

        let (ms, retry) = client_limits(timeout);
        let mut builder = builder
            .with_bucket_name(&bucket)
            .with_config(GoogleConfigKey::Client(ClientConfigKey::Timeout), &ms)
            .with_config(
                GoogleConfigKey::Client(ClientConfigKey::ConnectTimeout),
                &ms,
            )
            .with_retry(retry);
        if let Some(url) = &endpoint {
            check_scheme(url).map_err(setup)?;
            builder = builder
                .with_base_url(url.as_str().trim_end_matches('/'))
                .with_config(
                    GoogleConfigKey::Client(ClientConfigKey::AllowHttp),
                    (url.scheme() == "http").to_string(),
                );
        }
        ObjectRetriever::build(
            builder.build(),
            "Google Cloud Storage",
            cfg,
            &item,
            location,
            source,
            timeout,
        )
    }
}
