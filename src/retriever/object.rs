//! One object in a cloud object store, read through `object_store` (the `s3`, `azblob` and
//! `gcs` kinds): a conditional GET on the last ETag (the store's 304 becomes
//! [`Fetched::NotModified`], costing neither a transfer nor a parse), the body streamed and
//! bounded by `maxBytes`, the whole within `timeout`. Errors name the source (`s3://…`,
//! `azblob://…`, `gs://…`) and the store's own error code and message, never a credential:
//! `object_store` signs in headers and redacts the URLs of its token requests.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, GetOptions, ObjectStore, RetryConfig};

use super::s3::{is_timeout, status_in, xml_field};
use super::{Fetched, RetrieverError, Validators, error_chain, format_for};
use crate::config::RetrieverConfig;
use crate::parse::Format;

/// The retriever of one object in the store whose client `B` (`object_store`'s builder for it)
/// builds: [`super::S3Retriever`], [`super::AzblobRetriever`], [`super::GcsRetriever`]. The
/// conditional, bounded GET and its error mapping are the same for every store; only the
/// setup (`new`, `with_builder`, beside each builder) is the store's own.
#[derive(Debug)]
pub struct ObjectRetriever<B> {
    pub(super) object: ObjectSource,
    builder: PhantomData<fn() -> B>,
}

impl<B> ObjectRetriever<B> {
    /// The retriever over a store its kind's builder has just built (`client` names the client
    /// in a setup error).
    pub(super) fn build<S: ObjectStore>(
        store: object_store::Result<S>,
        client: &str,
        cfg: &RetrieverConfig,
        item: &str,
        location: ObjectPath,
        source: String,
        timeout: Duration,
    ) -> Result<Self, RetrieverError> {
        let store = store.map_err(|e| RetrieverError::Setup {
            message: format!("cannot set up the {client} client: {}", error_chain(&e)),
            source_name: source.clone(),
        })?;
        let object = ObjectSource {
            store: Box::new(store),
            location,
            format: format_for(cfg, item),
            source,
            max_bytes: cfg.max_bytes,
            timeout,
        };
        Ok(ObjectRetriever {
            object,
            builder: PhantomData,
        })
    }

    /// Where documents come from, safe to log and show in `/info`.
    pub fn source(&self) -> &str {
        &self.object.source
    }

    pub async fn fetch(&self, since: &Validators) -> Result<Fetched, RetrieverError> {
        self.object.fetch(since).await
    }
}

#[derive(Debug)]
pub(super) struct ObjectSource {
    pub store: Box<dyn ObjectStore>,
    pub location: ObjectPath,
    pub source: String,
    pub format: Option<Format>,
    pub max_bytes: u64,
    pub timeout: Duration,
}

impl ObjectSource {
    async fn fetch(&self, since: &Validators) -> Result<Fetched, RetrieverError> {
        super::within(&self.source, self.timeout, self.get(since)).await
    }

    async fn get(&self, since: &Validators) -> Result<Fetched, RetrieverError> {
        let options = GetOptions {
            if_none_match: since.etag.clone(),
            ..Default::default()
        };
        let result = match self.store.get_opts(&self.location, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotModified { .. }) => return Ok(Fetched::NotModified),
            Err(e) => return Err(self.error(e)),
        };
        if result.meta.size > self.max_bytes {
            return Err(self.too_large());
        }
        let validators = Validators {
            etag: result.meta.e_tag.clone(),
            last_modified: Some(
                result
                    .meta
                    .last_modified
                    .format("%a, %d %b %Y %H:%M:%S GMT")
                    .to_string(),
            ),
        };
        let declared = result.meta.size;
        let mut stream = result.into_stream();
        let mut buf = BytesMut::with_capacity(declared.min(1 << 20) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RetrieverError::Io {
                source_name: self.source.clone(),
                message: format!(
                    "body truncated after {} of {declared} bytes ({})",
                    buf.len(),
                    error_chain(&e)
                ),
            })?;
            if (buf.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(self.too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        // The stream ending early without an error (a proxy that closes cleanly) is still a
        // document cut short: the object's size says how long it is.
        if buf.len() as u64 != declared {
            return Err(RetrieverError::Io {
                source_name: self.source.clone(),
                message: format!("body truncated: {} of {declared} bytes received", buf.len()),
            });
        }
        super::changed(&self.source, buf.freeze(), self.format, validators)
    }

    fn too_large(&self) -> RetrieverError {
        RetrieverError::TooLarge {
            source_name: self.source.clone(),
            limit: self.max_bytes,
        }
    }

    /// A status the store answered becomes [`RetrieverError::Status`] with its error code and
    /// message (Azure's XML `<Code>`/`<Message>`, Google's JSON `"message"`).
    fn error(&self, e: object_store::Error) -> RetrieverError {
        if is_timeout(&e) {
            return RetrieverError::timeout(&self.source, self.timeout);
        }
        let text = error_chain(&e);
        let status = match &e {
            object_store::Error::PermissionDenied { .. } => Some(403),
            object_store::Error::Unauthenticated { .. } => Some(401),
            object_store::Error::NotFound { .. } => Some(404),
            object_store::Error::Precondition { .. } => Some(412),
            _ => status_in(&text),
        };
        let Some(status) = status else {
            return RetrieverError::Io {
                source_name: self.source.clone(),
                message: text,
            };
        };
        let what = match status {
            403 => "access denied".to_owned(),
            401 => "not authenticated".to_owned(),
            404 => "not found".to_owned(),
            s => reqwest::StatusCode::from_u16(s)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
                .to_ascii_lowercase(),
        };
        let message = xml_field(&text, "Message")
            .map(|m| m.lines().next().unwrap_or_default().trim().to_owned())
            .or_else(|| json_message(&text));
        let detail = match (xml_field(&text, "Code"), message) {
            (Some(code), Some(msg)) => format!(": {code}: {msg}"),
            (Some(code), None) => format!(": {code}"),
            (None, Some(msg)) => format!(": {msg}"),
            (None, None) => String::new(),
        };
        RetrieverError::Status {
            source_name: self.source.clone(),
            status,
            reason: format!("{what}{detail}"),
        }
    }
}

/// The first `"message": "…"` of a JSON error body quoted in `text` (Google's format).
fn json_message(text: &str) -> Option<String> {
    let start = text.find("\"message\"")? + "\"message\"".len();
    let rest = text[start..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    let value = rest[..end].trim();
    (!value.is_empty() && value.len() <= 300).then(|| value.to_owned())
}

/// The source's name with its `endpoint` (for emulators and private clouds) added, credentials
/// and query removed, and the endpoint parsed.
pub(crate) fn with_endpoint(
    source: String,
    endpoint: Option<&str>,
) -> Result<(String, Option<reqwest::Url>), RetrieverError> {
    let Some(e) = endpoint else {
        return Ok((source, None));
    };
    let url = reqwest::Url::parse(e).map_err(|err| RetrieverError::Setup {
        source_name: source.clone(),
        message: format!("endpoint is not a valid URL ({err})"),
    })?;
    let named = format!(
        "{source} (endpoint {})",
        super::redact_url(&url).trim_end_matches('/')
    );
    Ok((named, Some(url)))
}

/// Each request's timeout (as `object_store`'s client settings spell it) and the retry policy
/// of every object-store client: a failed fetch is retried by the next poll, so each one is
/// kept within `timeout`.
pub(crate) fn client_limits(timeout: Duration) -> (String, RetryConfig) {
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 2,
        retry_timeout: timeout,
    };
    (timeout.as_millis().to_string() + "ms", retry)
}

/// An `endpoint` must be http or https (for the Azure and Google clients, which take any URL).
pub(crate) fn check_scheme(url: &reqwest::Url) -> Result<(), String> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(format!(
            "endpoint scheme must be http or https, not {other:?}"
        )),
    }
}

/// The object key from `item`: no leading slash, a valid object path.
pub(crate) fn object_path(item: &str) -> Result<(String, ObjectPath), String> {
    let item = item.trim_start_matches('/').to_owned();
    if item.is_empty() {
        return Err("item is required".into());
    }
    let path =
        ObjectPath::parse(&item).map_err(|e| format!("item is not a valid object key ({e})"))?;
    Ok((item, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_messages() {
        let text = r#"Server returned non-2xx status code: 403 Forbidden: {"error": {"code": 403, "message": "no access to gs://b"}}"#;
        assert_eq!(json_message(text).as_deref(), Some("no access to gs://b"));
        assert_eq!(json_message("nothing"), None);
        assert!(object_path("/").is_err());
        assert_eq!(object_path("/a/b.yaml").unwrap().0, "a/b.yaml");
    }
}
