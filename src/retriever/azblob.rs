//! `kind: azblob`: one blob in an Azure Blob Storage container.
//!
//! Built on `object_store`'s `azure` client (Shared Key and token signing through aws-lc-rs,
//! requests through reqwest/rustls). Credentials come from the standard Azure variables, read
//! by `object_store`: `AZURE_STORAGE_ACCOUNT_KEY` (Shared Key), `AZURE_STORAGE_SAS_KEY`,
//! `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET` + `AZURE_TENANT_ID` (a service principal),
//! `AZURE_FEDERATED_TOKEN_FILE` with the client and tenant ids (AKS workload identity), else the
//! VM's managed identity. `account` may also come from `AZURE_STORAGE_ACCOUNT_NAME`.
//!
//! `endpoint` points at another service URL, such as Azurite's
//! `http://127.0.0.1:10000/devstoreaccount1` (the account in the path, emulator style).

use std::time::Duration;

use object_store::ClientConfigKey;
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};

use super::RetrieverError;
use super::object::{ObjectRetriever, check_scheme, client_limits, object_path, with_endpoint};
use crate::config::RetrieverConfig;

/// `kind: azblob` (see the module docs); what it shares with the other stores is in
/// [`ObjectRetriever`].
pub type AzblobRetriever = ObjectRetriever<MicrosoftAzureBuilder>;

impl ObjectRetriever<MicrosoftAzureBuilder> {
    /// Credentials and settings from the process environment, the config entry on top.
    pub(crate) fn new(cfg: &RetrieverConfig) -> Result<Self, RetrieverError> {
        Self::with_builder(cfg, MicrosoftAzureBuilder::from_env())
    }

    /// Build from a caller's builder (credentials already on it); tests pass keys this way.
    pub fn with_builder(
        cfg: &RetrieverConfig,
        builder: MicrosoftAzureBuilder,
    ) -> Result<Self, RetrieverError> {
        let container = cfg.container.clone().unwrap_or_default();
        let account = cfg
            .account
            .clone()
            .or_else(|| builder.get_config_value(&AzureConfigKey::AccountName))
            .unwrap_or_default();
        let item = cfg.item.as_deref().unwrap_or_default();
        let timeout = cfg.timeout.duration().unwrap_or(Duration::from_secs(10));
        let source = format!(
            "azblob://{account}/{container}/{}",
            item.trim_start_matches('/')
        );
        let (source, endpoint) = with_endpoint(source, cfg.endpoint.as_deref())?;
        let setup = |message: String| RetrieverError::Setup {
            source_name: source.clone(),
            message,
        };
        if account.is_empty() {
            return Err(setup(
                "account is required (or AZURE_STORAGE_ACCOUNT_NAME)".into(),
            ));
        }
        if container.is_empty() {
            return Err(setup("container is required".into()));
        }
        let (item, location) = object_path(item).map_err(setup)?;

        let (ms, retry) = client_limits(timeout);
        let mut builder = builder
            .with_account(&account)
            .with_container_name(&container)
            .with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), &ms)
            .with_config(AzureConfigKey::Client(ClientConfigKey::ConnectTimeout), &ms)
            .with_retry(retry);
        if let Some(url) = &endpoint {
            check_scheme(url).map_err(setup)?;
            builder = builder
                .with_endpoint(url.as_str().trim_end_matches('/').to_owned())
                .with_allow_http(url.scheme() == "http");
        }
        ObjectRetriever::build(
            builder.build(),
            "Azure",
            cfg,
            &item,
            location,
            source,
            timeout,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetrieverKind;

    #[test]
    fn source_names_the_blob_without_credentials() {
        let mut c = RetrieverConfig::file("unused");
        c.kind = RetrieverKind::Azblob;
        c.path = None;
        c.account = Some("acct".into());
        c.container = Some("flags".into());
        c.item = Some("/prod/flags.yaml".into());
        c.endpoint = Some("http://u:pw@127.0.0.1:10000/acct?sig=x".into());
        let key = "c2VjcmV0LWtleS1ub3QtcmVhbA==";
        let r =
            AzblobRetriever::with_builder(&c, MicrosoftAzureBuilder::new().with_access_key(key))
                .unwrap();
        assert_eq!(
            r.source(),
            "azblob://acct/flags/prod/flags.yaml (endpoint http://127.0.0.1:10000/acct)"
        );
        assert!(!format!("{r:?}").contains(key));
        c.account = None;
        let e = AzblobRetriever::with_builder(&c, MicrosoftAzureBuilder::new()).unwrap_err();
        assert!(e.to_string().contains("account is required"), "{e}");
    }
}
