//! The s3 retriever against a real S3-compatible server that checks signatures: SeaweedFS,
//! started by each test on loopback (`bash scripts/install-deps.sh s3` installs it).

mod support;
use std::time::{Duration, Instant};
use support::seaweedfs;

use flagrelay::config::{Millis, RetrieverConfig, RetrieverKind};
use flagrelay::parse::Format;
use flagrelay::retriever::{Fetched, Retriever, RetrieverError, S3Retriever, Validators};
use seaweedfs::{ACCESS_KEY, SECRET_KEY, SeaweedFs};
use support::retrieving::{changed, entry};

const DOC_V1: &[u8] = b"flag-a: {enabled: true}\n";
const DOC_V2: &[u8] = b"flag-a: {enabled: false}\nflag-b: {enabled: true}\n";

fn cfg(endpoint: &str, bucket: &str, item: &str) -> RetrieverConfig {
    let mut c = entry(RetrieverKind::S3);
    c.bucket = Some(bucket.into());
    c.item = Some(item.into());
    c.endpoint = Some(endpoint.into());
    c.region = Some(seaweedfs::REGION.into());
    c.force_path_style = true;
    c.timeout = Millis(5_000);
    c.max_bytes = 1_000;
    c
}

fn retriever(s: &SeaweedFs, item: &str, secret: &str) -> S3Retriever {
    S3Retriever::with_builder(&cfg(&s.endpoint, &s.bucket, item), s.builder(secret)).unwrap()
}

/// The error names the object and the endpoint, and no key.
fn assert_names_object_without_keys(e: &RetrieverError, s: &SeaweedFs, item: &str) {
    let text = e.to_string();
    let object = format!("s3://{}/{item}", s.bucket);
    assert!(
        text.contains(&object),
        "error does not name {object}: {text}"
    );
    assert!(
        text.contains(&s.endpoint),
        "error does not name the endpoint: {text}"
    );
    for key in [ACCESS_KEY, SECRET_KEY, "wr0ng-secret"] {
        assert!(!text.contains(key), "error shows a key: {text}");
        assert!(
            !format!("{e:?}").contains(key),
            "error debug shows a key: {e:?}"
        );
    }
}

#[tokio::test]
async fn fetch_then_not_modified_then_a_changed_object() {
    let s = SeaweedFs::start("flags").await;
    let etag_v1 = s.put("env/flags.yaml", DOC_V1).await;
    assert!(etag_v1.is_some());
    let r = retriever(&s, "env/flags.yaml", SECRET_KEY);
    assert_eq!(
        r.source(),
        format!("s3://flags/env/flags.yaml (endpoint {})", s.endpoint)
    );

    let first = changed(r.fetch(&Validators::default()).await.unwrap());
    assert_eq!(&first.bytes[..], DOC_V1);
    assert_eq!(first.format, Some(Format::Yaml));
    assert_eq!(first.validators.etag, etag_v1);
    assert!(first.validators.last_modified.is_some());

    // Unchanged: If-None-Match with the ETag, and SeaweedFS answers 304.
    let again = r.fetch(&first.validators).await.unwrap();
    assert!(matches!(again, Fetched::NotModified), "{again:?}");

    // Changed object: the same conditional request now returns it.
    let etag_v2 = s.put("env/flags.yaml", DOC_V2).await;
    assert_ne!(etag_v1, etag_v2);
    let second = changed(r.fetch(&first.validators).await.unwrap());
    assert_eq!(&second.bytes[..], DOC_V2);
    assert_eq!(second.validators.etag, etag_v2);
    assert!(matches!(
        r.fetch(&second.validators).await.unwrap(),
        Fetched::NotModified
    ));

    // forcePathStyle off still reaches an IP endpoint (path style is the only way there).
    let mut c = cfg(&s.endpoint, &s.bucket, "env/flags.yaml");
    c.force_path_style = false;
    let r = S3Retriever::with_builder(&c, s.builder(SECRET_KEY)).unwrap();
    assert_eq!(
        &changed(r.fetch(&Validators::default()).await.unwrap()).bytes[..],
        DOC_V2
    );

    // The relay's own constructor (credentials from the environment) builds the same source.
    let r = Retriever::from_config(&cfg(&s.endpoint, &s.bucket, "env/flags.yaml")).unwrap();
    assert_eq!(r.kind(), RetrieverKind::S3);
    assert!(
        r.source()
            .starts_with("s3://flags/env/flags.yaml (endpoint http://127.0.0.1:")
    );
}

#[tokio::test]
async fn a_wrong_secret_fails_with_the_servers_403() {
    let s = SeaweedFs::start("flags").await;
    s.put("flags.yaml", DOC_V1).await;
    let r = retriever(&s, "flags.yaml", "wr0ng-secret");
    let e = r.fetch(&Validators::default()).await.unwrap_err();
    assert!(
        matches!(e, RetrieverError::Status { status: 403, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("HTTP 403"), "{text}");
    assert!(text.contains("access denied"), "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert_names_object_without_keys(&e, &s, "flags.yaml");
    eprintln!("wrong secret: {text}");
}

#[tokio::test]
async fn missing_empty_and_oversized_objects_are_errors() {
    let s = SeaweedFs::start("flags").await;

    let e = retriever(&s, "missing.yaml", SECRET_KEY)
        .fetch(&Validators::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, RetrieverError::Status { status: 404, .. }),
        "{e:?}"
    );
    assert_names_object_without_keys(&e, &s, "missing.yaml");
    eprintln!("missing: {e}");

    s.put("empty.yaml", b"").await;
    let e = retriever(&s, "empty.yaml", SECRET_KEY)
        .fetch(&Validators::default())
        .await
        .unwrap_err();
    assert!(matches!(e, RetrieverError::Empty { .. }), "{e:?}");
    assert_names_object_without_keys(&e, &s, "empty.yaml");

    s.put("big.json", &[b' '; 1_001]).await;
    let e = retriever(&s, "big.json", SECRET_KEY)
        .fetch(&Validators::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, RetrieverError::TooLarge { limit: 1_000, .. }),
        "{e:?}"
    );
    assert_names_object_without_keys(&e, &s, "big.json");

    s.put("exact.json", &[b' '; 1_000]).await;
    let doc = changed(
        retriever(&s, "exact.json", SECRET_KEY)
            .fetch(&Validators::default())
            .await
            .unwrap(),
    );
    assert_eq!(doc.bytes.len(), 1_000);
    assert_eq!(doc.format, Some(Format::Json));

    // A bucket that does not exist.
    let r = S3Retriever::with_builder(
        &cfg(&s.endpoint, "no-such-bucket", "flags.yaml"),
        s.builder(SECRET_KEY),
    )
    .unwrap();
    let e = r.fetch(&Validators::default()).await.unwrap_err();
    assert!(
        e.to_string().contains("s3://no-such-bucket/flags.yaml"),
        "{e}"
    );
    eprintln!("no bucket: {e}");
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out() {
    // Accepts connections, never answers: no SeaweedFS needed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            open.push(sock);
        }
    });
    let mut c = cfg(&endpoint, "flags", "flags.yaml");
    c.timeout = Millis(300);
    let r = S3Retriever::with_builder(
        &c,
        object_store::aws::AmazonS3Builder::new()
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY),
    )
    .unwrap();
    let started = Instant::now();
    let e = r.fetch(&Validators::default()).await.unwrap_err();
    assert!(matches!(e, RetrieverError::Timeout { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(e.to_string().contains("s3://flags/flags.yaml"), "{e}");
    hold.abort();
}
