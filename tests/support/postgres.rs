//! A real PostgreSQL for the sql retriever tests: a cluster `initdb`'d in a temporary
//! directory, `postgres` on a free 127.0.0.1 port with password (SCRAM) authentication and
//! optionally TLS, killed on drop. Binaries from Debian's `postgresql` package
//! (`bash scripts/install-deps.sh postgres`); without them the tests fail and say so.
//!
//! PostgreSQL refuses to run as root: when the tests do, the server runs as the `postgres`
//! user through `setpriv` (which execs, so the child we hold is the server itself).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "pg-test-pa55word-9d2";

pub struct Postgres {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The CA certificate (PEM) the server's certificate is signed with, when TLS is on.
    pub ca_cert: Option<PathBuf>,
    /// With TLS: a client certificate and key (PEM) for [`CERT_USER`], whom the server
    /// authenticates by certificate alone.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// The role that logs in with a client certificate (TLS only; created by the tests).
pub const CERT_USER: &str = "certuser";

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("initdb").is_file());
    dirs.sort();
    dirs.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed: run `bash scripts/install-deps.sh postgres`")
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A command run as the `postgres` user when we are root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--reset-env",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn give_to_owner(path: &Path) {
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown {}", path.display());
    }
}

impl Postgres {
    /// initdb and start a server; `tls` turns on SSL with a certificate for 127.0.0.1.
    pub async fn start(tls: bool) -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        let mut ca_cert = None;
        let mut client_cert = None;
        let mut ssl_args: Vec<String> = Vec::new();
        if tls {
            let (ca, cert, key, client, client_key) = certificates();
            let (client_path, client_key_path) =
                (dir.path().join("client.pem"), dir.path().join("client.key"));
            std::fs::write(&client_path, client).unwrap();
            std::fs::write(&client_key_path, client_key).unwrap();
            client_cert = Some((client_path, client_key_path));
            let (ca_path, cert_path, key_path) = (
                dir.path().join("ca.pem"),
                dir.path().join("server.pem"),
                dir.path().join("server.key"),
            );
            std::fs::write(&ca_path, ca).unwrap();
            std::fs::write(&cert_path, cert).unwrap();
            std::fs::write(&key_path, key).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
            ssl_args = vec![
                "-c".into(),
                "ssl=on".into(),
                "-c".into(),
                format!("ssl_cert_file={}", cert_path.display()),
                "-c".into(),
                format!("ssl_key_file={}", key_path.display()),
                "-c".into(),
                format!("ssl_ca_file={}", ca_path.display()),
            ];
            ca_cert = Some(ca_path);
        }
        give_to_owner(dir.path());
        let out = as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if tls {
            // Certificate-only login for CERT_USER, ahead of the password rules.
            let hba = data.join("pg_hba.conf");
            let rules = std::fs::read_to_string(&hba).unwrap();
            let first = format!("hostssl all {CERT_USER} 127.0.0.1/32 cert\n");
            std::fs::write(&hba, first + &rules).unwrap();
        }
        let port = super::redis::free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        give_to_owner(&dir.path().join("postgres.log"));
        let child = as_owner(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(&ssl_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        let pg = Postgres {
            child,
            dir,
            port,
            ca_cert,
            client_cert,
        };
        // Generous: the machine may be busy.
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if pg.try_client("postgres").await.is_ok() {
                return pg;
            }
            assert!(
                Instant::now() < end,
                "postgres did not come up:\n{}",
                pg.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB` (no password: tests pass it separately).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    async fn try_client(&self, db: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .password(PASSWORD)
            .dbname(db)
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// A plain (non-TLS) superuser client, for setting tables up.
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        self.try_client(db).await.unwrap()
    }
}

/// A CA; a server certificate for 127.0.0.1 and localhost and a client certificate for
/// CERT_USER, both signed by it (PEM: ca, cert, key, client cert, client key).
fn certificates() -> (String, String, String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, CERT_USER);
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    (
        ca.pem(),
        cert.pem(),
        key.serialize_pem(),
        client.pem(),
        client_key.serialize_pem(),
    )
}
