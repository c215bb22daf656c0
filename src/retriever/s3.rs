//! `kind: s3`: one object in an S3 bucket (AWS or an S3-compatible store).
//!
//! Built on `object_store`: requests are signed with AWS Signature Version 4 through aws-lc-rs,
//! go out through reqwest/rustls with the installed crypto provider, and credentials come from
//! the standard AWS chain, refreshed before they expire:
//!
//! 1. `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`;
//! 2. static keys of the profile `AWS_PROFILE` (else `default`) in the shared credentials file
//!    (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`) or config file
//!    (`AWS_CONFIG_FILE`, else `~/.aws/config`), read here because `object_store` does not;
//! 3. web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` → STS, as EKS IRSA sets up);
//! 4. container credentials (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, or `_FULL_URI` with
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`);
//! 5. EC2 instance metadata (IMDSv2).
//!
//! Addressing: without `endpoint`, AWS's virtual-hosted URLs. With `endpoint`, path style when
//! `forcePathStyle` is set or the endpoint's host is an IP address or `localhost` (no bucket
//! subdomain can resolve there); otherwise virtual-hosted, `https://BUCKET.<endpoint host>/`.
//!
//! Conditional GET: the last ETag goes out as `If-None-Match`; the store's 304 becomes
//! [`Fetched::NotModified`]. Errors name `s3://bucket/item` and the endpoint, never a key.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use object_store::ClientConfigKey;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use reqwest::Url;

use super::RetrieverError;
use super::object::{ObjectRetriever, client_limits, with_endpoint};
use crate::config::RetrieverConfig;

/// `kind: s3` (see the module docs); what it shares with the other stores is in
/// [`ObjectRetriever`].
pub type S3Retriever = ObjectRetriever<AmazonS3Builder>;

impl ObjectRetriever<AmazonS3Builder> {
    /// The retriever the relay builds: settings and credentials from the process environment
    /// (the standard AWS chain, see the module docs), then the config entry on top.
    pub(crate) fn new(cfg: &RetrieverConfig) -> Result<Self, RetrieverError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let mut builder = AmazonS3Builder::from_env();
        let profile = profile_settings(&|k| env.get(k).cloned());
        if let Some((key_id, secret, token)) = profile.credentials {
            builder = builder
                .with_access_key_id(key_id)
                .with_secret_access_key(secret);
            if let Some(token) = token {
                builder = builder.with_token(token);
            }
        }
        if let Some(region) = profile.region
            && builder
                .get_config_value(&AmazonS3ConfigKey::Region)
                .is_none()
        {
            builder = builder.with_region(region);
        }
        Self::with_builder(cfg, builder)
    }

    /// Build from a caller's `AmazonS3Builder` (credentials and any other settings already on
    /// it) with the config entry applied on top: bucket, region, endpoint, addressing style,
    /// timeout. Tests use this to pass keys without touching the process environment.
    pub fn with_builder(
        cfg: &RetrieverConfig,
        builder: AmazonS3Builder,
    ) -> Result<Self, RetrieverError> {
        let bucket = cfg.bucket.clone().unwrap_or_default();
        let item = cfg
            .item
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned();
        let timeout = cfg.timeout.duration().unwrap_or(Duration::from_secs(10));

        // An endpoint from the config, else from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT.
        let endpoint = cfg.endpoint.clone().or_else(|| {
            builder
                .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
                .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint))
        });
        let (source, endpoint_url) =
            with_endpoint(format!("s3://{bucket}/{item}"), endpoint.as_deref())?;
        let setup = |message: String| RetrieverError::Setup {
            source_name: source.clone(),
            message,
        };
        if bucket.is_empty() || item.is_empty() {
            return Err(setup("bucket and item are required".into()));
        }
        let location = ObjectPath::parse(&item)
            .map_err(|e| setup(format!("item is not a valid object key ({e})")))?;

        let (ms, retry) = client_limits(timeout);
        let mut builder = builder
            .with_bucket_name(&bucket)
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), &ms)
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                &ms,
            )
            .with_retry(retry);
        if let Some(region) = &cfg.region {
            builder = builder.with_region(region);
        }
        match &endpoint_url {
            Some(url) => {
                let (endpoint, virtual_hosted) =
                    bucket_endpoint(url, &bucket, cfg.force_path_style).map_err(setup)?;
                builder = builder
                    .with_endpoint(&endpoint)
                    .with_config(AmazonS3ConfigKey::S3Endpoint, &endpoint)
                    .with_virtual_hosted_style_request(virtual_hosted)
                    .with_allow_http(url.scheme() == "http");
            }
            None => {
                builder = builder.with_virtual_hosted_style_request(!cfg.force_path_style);
            }
        }
        ObjectRetriever::build(builder.build(), "S3", cfg, &item, location, source, timeout)
    }
}

/// The endpoint `object_store` should use and whether it is virtual-hosted. `object_store`
/// takes a virtual-hosted endpoint as the bucket's own URL, so the bucket goes in front of the
/// host here (unless it is there already).
fn bucket_endpoint(
    url: &Url,
    bucket: &str,
    force_path_style: bool,
) -> Result<(String, bool), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "endpoint scheme must be http or https, not {:?}",
            url.scheme()
        ));
    }
    let plain = url.as_str().trim_end_matches('/').to_owned();
    let Some(host) = url.host_str() else {
        return Err("endpoint has no host".into());
    };
    let is_ip = host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok();
    if force_path_style || is_ip || host.eq_ignore_ascii_case("localhost") {
        return Ok((plain, false));
    }
    if host
        .to_ascii_lowercase()
        .starts_with(&format!("{}.", bucket.to_ascii_lowercase()))
    {
        return Ok((plain, true));
    }
    let mut virtual_url = url.clone();
    virtual_url
        .set_host(Some(&format!("{bucket}.{host}")))
        .map_err(|e| format!("bucket {bucket:?} cannot be a host name ({e})"))?;
    Ok((virtual_url.as_str().trim_end_matches('/').to_owned(), true))
}

/// Whether an `object_store` error is, at bottom, a request that timed out.
pub(super) fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(http) = err.downcast_ref::<object_store::client::HttpError>()
            && matches!(http.kind(), object_store::client::HttpErrorKind::Timeout)
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// The HTTP status in `object_store`'s text for a status it has no variant for
/// ("Server returned non-2xx status code: 500 Internal Server Error: …").
pub(super) fn status_in(text: &str) -> Option<u16> {
    let rest = &text[text.find("status code: ")? + "status code: ".len()..];
    rest.get(..3)?.parse().ok()
}

/// The text of `<name>…</name>` in an S3 XML error body quoted in `text`.
pub(super) fn xml_field(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{name}>"))?;
    let value = text[start..start + len].trim();
    (!value.is_empty() && value.len() <= 300).then(|| value.to_owned())
}

/// What the shared AWS files say for the active profile, when the environment has no keys.
#[derive(Debug, Default, PartialEq)]
struct ProfileSettings {
    /// (key id, secret, session token)
    credentials: Option<(String, String, Option<String>)>,
    region: Option<String>,
}

/// Static keys and region of the active profile, following the AWS SDKs: the credentials file
/// wins over the config file; environment keys (checked here) win over both, and web identity,
/// container and instance credentials (handled by `object_store`) come after.
fn profile_settings(env: &dyn Fn(&str) -> Option<String>) -> ProfileSettings {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    let home = env("HOME").map(PathBuf::from);
    let file = |var: &str, default: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let profile = env("AWS_PROFILE")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".into());
    let read = |path: Option<PathBuf>, section: &str| {
        path.and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| ini_section(&text, section))
            .unwrap_or_default()
    };
    let creds = read(file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), &profile);
    let config_section = if profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile}")
    };
    let config = read(file("AWS_CONFIG_FILE", "config"), &config_section);

    let keys = |s: &HashMap<String, String>| {
        Some((
            s.get("aws_access_key_id")?.clone(),
            s.get("aws_secret_access_key")?.clone(),
            s.get("aws_session_token").cloned(),
        ))
    };
    let env_has_keys = set("AWS_ACCESS_KEY_ID") || set("AWS_SECRET_ACCESS_KEY");
    ProfileSettings {
        credentials: if env_has_keys {
            None
        } else {
            keys(&creds).or_else(|| keys(&config))
        },
        region: if set("AWS_REGION") || set("AWS_DEFAULT_REGION") {
            None
        } else {
            config.get("region").cloned()
        },
    }
}

/// The `key = value` pairs of one `[section]` of an INI file as the AWS CLI writes them.
fn ini_section(text: &str, section: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetrieverKind;

    fn cfg(bucket: &str, item: &str, endpoint: Option<&str>) -> RetrieverConfig {
        let mut c = RetrieverConfig::file("unused");
        c.kind = RetrieverKind::S3;
        c.path = None;
        c.bucket = Some(bucket.into());
        c.item = Some(item.into());
        c.endpoint = endpoint.map(Into::into);
        c
    }

    fn keys() -> AmazonS3Builder {
        AmazonS3Builder::new()
            .with_access_key_id("AKIDEXAMPLE")
            .with_secret_access_key("s3cr3t-key")
    }

    #[test]
    fn endpoints_and_addressing() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            bucket_endpoint(&u("https://minio.example.com"), "flags", false).unwrap(),
            ("https://flags.minio.example.com".into(), true)
        );
        assert_eq!(
            bucket_endpoint(&u("https://minio.example.com/"), "flags", true).unwrap(),
            ("https://minio.example.com".into(), false)
        );
        assert_eq!(
            bucket_endpoint(&u("https://flags.minio.example.com"), "flags", false).unwrap(),
            ("https://flags.minio.example.com".into(), true)
        );
        assert_eq!(
            bucket_endpoint(&u("http://127.0.0.1:9000"), "flags", false).unwrap(),
            ("http://127.0.0.1:9000".into(), false)
        );
        assert_eq!(
            bucket_endpoint(&u("http://localhost:9000"), "flags", false).unwrap(),
            ("http://localhost:9000".into(), false)
        );
        assert_eq!(
            bucket_endpoint(&u("http://[::1]:9000"), "flags", false).unwrap(),
            ("http://[::1]:9000".into(), false)
        );
        assert!(bucket_endpoint(&u("ftp://h"), "flags", false).is_err());
    }

    #[test]
    fn source_names_bucket_item_and_endpoint_without_credentials() {
        let r = S3Retriever::with_builder(
            &cfg(
                "flags",
                "env/prod.yaml",
                Some("https://user:pw@s3.example.com/?x=1"),
            ),
            keys(),
        )
        .unwrap();
        assert_eq!(
            r.source(),
            "s3://flags/env/prod.yaml (endpoint https://s3.example.com)"
        );
        assert_eq!(r.object.format, Some(crate::parse::Format::Yaml));
        let r = S3Retriever::with_builder(&cfg("flags", "/flags.json", None), keys()).unwrap();
        assert_eq!(r.source(), "s3://flags/flags.json");
        assert_eq!(r.object.location.as_ref(), "flags.json");
        assert!(!format!("{r:?}").contains("s3cr3t-key"));
    }

    #[test]
    fn status_and_xml_details() {
        let text = "Error performing GET http://h/b/k in 3ms - Server returned non-2xx status \
                    code: 500 Internal Server Error: <?xml version=\"1.0\"?><Error><Code>\
                    InternalError</Code><Message>boom</Message></Error>";
        assert_eq!(status_in(text), Some(500));
        assert_eq!(xml_field(text, "Code").as_deref(), Some("InternalError"));
        assert_eq!(xml_field(text, "Message").as_deref(), Some("boom"));
        assert_eq!(xml_field(text, "RequestId"), None);
        assert_eq!(status_in("connection refused"), None);
    }

    #[test]
    fn shared_profile_files() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = secretdef\n\n\
             [ci]\naws_access_key_id=AKIDCI\naws_secret_access_key=secretci\naws_session_token=tok\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-1\n[profile ci]\nregion = us-west-2\n\
             [profile cfgonly]\naws_access_key_id = AKIDCFG\naws_secret_access_key = secretcfg\n",
        )
        .unwrap();
        let vars = |pairs: Vec<(&'static str, String)>| {
            let map: HashMap<String, String> =
                pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            move |k: &str| map.get(k).cloned()
        };
        let files = vec![
            ("AWS_SHARED_CREDENTIALS_FILE", creds.display().to_string()),
            ("AWS_CONFIG_FILE", config.display().to_string()),
        ];

        let s = profile_settings(&vars(files.clone()));
        assert_eq!(
            s.credentials,
            Some(("AKIDDEF".into(), "secretdef".into(), None))
        );
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));

        let mut with_profile = files.clone();
        with_profile.push(("AWS_PROFILE", "ci".into()));
        let s = profile_settings(&vars(with_profile));
        assert_eq!(
            s.credentials,
            Some(("AKIDCI".into(), "secretci".into(), Some("tok".into())))
        );
        assert_eq!(s.region.as_deref(), Some("us-west-2"));

        let mut cfg_only = files.clone();
        cfg_only.push(("AWS_PROFILE", "cfgonly".into()));
        let s = profile_settings(&vars(cfg_only));
        assert_eq!(s.credentials.unwrap().0, "AKIDCFG");

        // Environment keys and region win; a missing profile yields nothing.
        let mut env_keys = files.clone();
        env_keys.push(("AWS_ACCESS_KEY_ID", "AKIDENV".into()));
        env_keys.push(("AWS_REGION", "ap-south-1".into()));
        assert_eq!(
            profile_settings(&vars(env_keys)),
            ProfileSettings::default()
        );
        let mut missing = files;
        missing.push(("AWS_PROFILE", "nope".into()));
        assert_eq!(profile_settings(&vars(missing)), ProfileSettings::default());
        // No files at all.
        assert_eq!(
            profile_settings(&vars(vec![(
                "HOME",
                dir.path().join("none").display().to_string()
            )])),
            ProfileSettings::default()
        );
    }
}
