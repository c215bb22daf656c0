//! The azblob and gcs retrievers against real emulators started per test: Azurite (which
//! checks Shared Key signatures) and fake-gcs-server (`bash scripts/install-deps.sh azure gcs`).

mod support;
use azurite::Azurite;
use fake_gcs::FakeGcs;
use flagrelay::config::{Millis, RetrieverConfig, RetrieverKind};
use flagrelay::parse::Format;
use flagrelay::retriever::{AzblobRetriever, Fetched, GcsRetriever, RetrieverError, Validators};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use support::retrieving::{changed, entry};
use support::{azurite, fake_gcs, relay};

const DOC_V1: &[u8] = b"flag-a: {enabled: true}\n";
const DOC_V2: &[u8] = b"flag-a: {enabled: false}\nflag-b: {enabled: true}\n";

fn az_cfg(az: &Azurite, item: &str) -> RetrieverConfig {
    let mut c = entry(RetrieverKind::Azblob);
    c.account = Some(azurite::ACCOUNT.into());
    c.container = Some("flags".into());
    c.item = Some(item.into());
    c.endpoint = Some(az.endpoint.clone());
    c.timeout = Millis(5_000);
    c.max_bytes = 1_000;
    c
}

fn az_keys() -> MicrosoftAzureBuilder {
    MicrosoftAzureBuilder::new().with_access_key(azurite::KEY)
}

async fn az_put(az: &Azurite, item: &str, bytes: &'static [u8]) {
    let store = az_keys()
        .with_account(azurite::ACCOUNT)
        .with_container_name("flags")
        .with_endpoint(az.endpoint.clone())
        .with_allow_http(true)
        .build()
        .unwrap();
    store
        .put(&ObjectPath::from(item), PutPayload::from_static(bytes))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azblob_conditional_fetches_and_signature_errors() {
    let az = Azurite::start().await;
    az.create_container("flags").await;
    az_put(&az, "env/flags.yaml", DOC_V1).await;

    let r = AzblobRetriever::with_builder(&az_cfg(&az, "env/flags.yaml"), az_keys()).unwrap();
    let doc = changed(r.fetch(&Validators::default()).await.unwrap());
    assert_eq!(&doc.bytes[..], DOC_V1);
    assert_eq!(doc.format, Some(Format::Yaml));
    assert!(doc.validators.etag.is_some());
    // Unchanged: the store's 304.
    assert!(matches!(
        r.fetch(&doc.validators).await.unwrap(),
        Fetched::NotModified
    ));
    az_put(&az, "env/flags.yaml", DOC_V2).await;
    let doc2 = changed(r.fetch(&doc.validators).await.unwrap());
    assert_eq!(&doc2.bytes[..], DOC_V2);

    // A wrong key: the server's 403, the key nowhere.
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let bad = AzblobRetriever::with_builder(
        &az_cfg(&az, "env/flags.yaml"),
        MicrosoftAzureBuilder::new().with_access_key(wrong),
    )
    .unwrap();
    let e = bad.fetch(&Validators::default()).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, RetrieverError::Status { status: 403, .. }),
        "{text}"
    );
    assert!(text.contains("AuthorizationFailure"), "{text}");
    assert!(
        text.starts_with("azblob://devstoreaccount1/flags/env/flags.yaml"),
        "{text}"
    );
    assert!(
        !text.contains(wrong) && !text.contains(azurite::KEY),
        "{text}"
    );

    // Missing blob; too large.
    let e = AzblobRetriever::with_builder(&az_cfg(&az, "nope.yaml"), az_keys())
        .unwrap()
        .fetch(&Validators::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, RetrieverError::Status { status: 404, .. }),
        "{e}"
    );
    let mut small = az_cfg(&az, "env/flags.yaml");
    small.max_bytes = 10;
    let e = AzblobRetriever::with_builder(&small, az_keys())
        .unwrap()
        .fetch(&Validators::default())
        .await
        .unwrap_err();
    assert!(matches!(e, RetrieverError::TooLarge { .. }), "{e}");

    // Through the binary, the key from the standard variable.
    let relay = relay::Relay::start_with(relay::Options {
        config: &format!(
            "retrievers: [{{kind: azblob, account: {}, container: flags, item: env/flags.yaml, \
             endpoint: '{}'}}]\n",
            azurite::ACCOUNT,
            az.endpoint
        ),
        env: &[("AZURE_STORAGE_ACCOUNT_KEY", azurite::KEY)],
        ..relay::Options::default()
    });
    relay::wait_ready(&relay).await;
    let info = relay::get_json(&relay, "/info").await;
    assert_eq!(info["flags"], 2);
    assert_eq!(info["retrievers"][0]["kind"], "azblob");
    assert!(!relay.all_output().contains(azurite::KEY));
}

fn gcs_cfg(gcs: &FakeGcs, item: &str) -> RetrieverConfig {
    let mut c = entry(RetrieverKind::Gcs);
    c.bucket = Some("flag-bucket".into());
    c.item = Some(item.into());
    c.endpoint = Some(gcs.endpoint.clone());
    c.timeout = Millis(5_000);
    c.max_bytes = 1_000;
    c
}

fn gcs_creds() -> GoogleCloudStorageBuilder {
    GoogleCloudStorageBuilder::new().with_service_account_key(fake_gcs::SERVICE_ACCOUNT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_fetches_follow_changes_and_name_the_object() {
    let gcs = FakeGcs::start(&[("flag-bucket", "flags.yaml", DOC_V1)]).await;
    let r = GcsRetriever::with_builder(&gcs_cfg(&gcs, "flags.yaml"), gcs_creds()).unwrap();
    let doc = changed(r.fetch(&Validators::default()).await.unwrap());
    assert_eq!(&doc.bytes[..], DOC_V1);
    assert!(doc.validators.etag.is_some());
    // Unchanged: a 304 where the emulator honours If-None-Match, else the same bytes (which the
    // refresher's hash then skips).
    match r.fetch(&doc.validators).await.unwrap() {
        Fetched::NotModified => {}
        Fetched::Changed(again) => assert_eq!(again.bytes, doc.bytes),
    }
    gcs.put("flag-bucket", "flags.yaml", DOC_V2).await;
    let doc2 = changed(r.fetch(&doc.validators).await.unwrap());
    assert_eq!(&doc2.bytes[..], DOC_V2);

    let e = GcsRetriever::with_builder(&gcs_cfg(&gcs, "nope.yaml"), gcs_creds())
        .unwrap()
        .fetch(&Validators::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, RetrieverError::Status { status: 404, .. }),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("gs://flag-bucket/nope.yaml"),
        "{e}"
    );
    let mut small = gcs_cfg(&gcs, "flags.yaml");
    small.max_bytes = 10;
    let e = GcsRetriever::with_builder(&small, gcs_creds())
        .unwrap()
        .fetch(&Validators::default())
        .await
        .unwrap_err();
    assert!(matches!(e, RetrieverError::TooLarge { .. }), "{e}");

    // A real service-account key: requests carry a JWT signed RS256 through aws-lc-rs.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let account = serde_json::json!({
        "type": "service_account",
        "client_email": "flagrelay@test-project.iam.gserviceaccount.com",
        "private_key_id": "test-key-1",
        "private_key": key.serialize_pem(),
    })
    .to_string();
    let signed = GcsRetriever::with_builder(
        &gcs_cfg(&gcs, "flags.yaml"),
        GoogleCloudStorageBuilder::new().with_service_account_key(account),
    )
    .unwrap();
    let doc3 = changed(signed.fetch(&Validators::default()).await.unwrap());
    assert_eq!(&doc3.bytes[..], DOC_V2);

    // A service-account key that is not JSON: a setup error that does not quote it.
    let e = GcsRetriever::with_builder(
        &gcs_cfg(&gcs, "flags.yaml"),
        GoogleCloudStorageBuilder::new().with_service_account_key("s3cr3t-not-json"),
    )
    .unwrap_err();
    assert!(!e.to_string().contains("s3cr3t"), "{e}");

    // Through the binary, the service account from the standard variable.
    let relay = relay::Relay::start_with(relay::Options {
        config: &format!(
            "retrievers: [{{kind: gcs, bucket: flag-bucket, item: flags.yaml, endpoint: '{}'}}]\n",
            gcs.endpoint
        ),
        env: &[("GOOGLE_SERVICE_ACCOUNT_KEY", fake_gcs::SERVICE_ACCOUNT)],
        ..relay::Options::default()
    });
    relay::wait_ready(&relay).await;
    let info = relay::get_json(&relay, "/info").await;
    assert_eq!(info["flags"], 2);
    assert_eq!(
        info["retrievers"][0]["source"],
        format!("gs://flag-bucket/flags.yaml (endpoint {})", gcs.endpoint)
    );
}
