//! Azurite, Microsoft's Azure Storage emulator (npm `azurite`), for the azblob retriever tests:
//! its blob service on a free 127.0.0.1 port in a temporary directory, checking Shared Key
//! signatures against the well-known development account, killed on drop.
//! `bash scripts/install-deps.sh azure` installs it; without it the tests fail and say so.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// The emulator's well-known development account and key (public, documented by Microsoft).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT/devstoreaccount1`, the account's service URL.
    pub endpoint: String,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Azurite {
    pub async fn start() -> Azurite {
        flagrelay::crypto::install_default_provider();
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("azurite.log")).unwrap();
        let child = Command::new("azurite-blob")
            .arg("--location")
            .arg(dir.path())
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--skipApiVersionCheck")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("azurite-blob: {e}; run `bash scripts/install-deps.sh azure`")
            });
        let az = Azurite {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
        };
        let end = Instant::now() + Duration::from_secs(60);
        while !az.log().contains("successfully listens") {
            assert!(Instant::now() < end, "azurite did not start:\n{}", az.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        az
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("azurite.log")).unwrap_or_default()
    }

    /// Create a container (`object_store` has no call for it): a Shared Key signed PUT.
    pub async fn create_container(&self, name: &str) {
        let date = http_date(SystemTime::now());
        let version = "2021-08-06";
        let resource = format!("/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container");
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n{resource}"
        );
        let key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &B64.decode(KEY).unwrap());
        let signature = B64.encode(aws_lc_rs::hmac::sign(&key, to_sign.as_bytes()).as_ref());
        let res = reqwest::Client::new()
            .put(format!("{}/{name}?restype=container", self.endpoint))
            .header("x-ms-date", date)
            .header("x-ms-version", version)
            .header("content-length", "0")
            .header("authorization", format!("SharedKey {ACCOUNT}:{signature}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }
}

/// `Wed, 02 Dec 2026 06:11:35 GMT`.
fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo - 1) as usize];
    format!(
        "{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}
