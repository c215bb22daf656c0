//! Real Redis and Sentinel processes for the fleet tests (Debian's `redis-server` and
//! `redis-sentinel`, installed by `scripts/deps/redis.sh`), each on a free loopback port in a
//! temp dir of its own, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released; the server binds it right after), never one
/// handed out before in this test binary: the kernel may give a port just released to the next
/// bind, and a Sentinel setup asks for several in a row (the Node client harness started one
/// relay on one port twice that way).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

fn wait_port(port: u16, what: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn require(binary: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{binary} is not installed: run `bash scripts/install-deps.sh redis`"
    );
}

/// One `redis-server`, without persistence: killed and started again, it has lost its data
/// (the harshest case for the fleet's versions).
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    password: Option<String>,
    replica_of: Option<u16>,
    tls: Option<Tls>,
    dir: tempfile::TempDir,
}

/// TLS only (no plain port): the server's certificate and key, the CA clients are checked
/// against, and whether a client certificate is required.
#[derive(Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub require_client_cert: bool,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(None, None)
    }

    /// With `requirepass`, and/or as a replica of the server on `replica_of`.
    pub fn start_with(password: Option<&str>, replica_of: Option<u16>) -> RedisServer {
        require("redis-server");
        let mut s = RedisServer {
            child: None,
            port: free_port(),
            password: password.map(String::from),
            replica_of,
            tls: None,
            dir: tempfile::tempdir().unwrap(),
        };
        s.spawn();
        s
    }

    /// Speaking TLS only, on `port`.
    pub fn start_tls(tls: Tls) -> RedisServer {
        require("redis-server");
        let mut s = RedisServer {
            child: None,
            port: free_port(),
            password: None,
            replica_of: None,
            tls: Some(tls),
            dir: tempfile::tempdir().unwrap(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            None => cmd.args(["--port", &self.port.to_string()]),
            Some(t) => cmd
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&t.cert)
                .arg("--tls-key-file")
                .arg(&t.key)
                .arg("--tls-ca-cert-file")
                .arg(&t.ca)
                .args([
                    "--tls-auth-clients",
                    if t.require_client_cert { "yes" } else { "no" },
                ]),
        };
        cmd.args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        if let Some(primary) = self.replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        self.child = Some(cmd.spawn().expect("redis-server starts"));
        wait_port(self.port, "redis-server");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye to clients.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same port (empty: nothing was persisted).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// `redis-cli` against this server; stdout trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, self.password.as_deref(), args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn cli(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(p) = password {
        cmd.env("REDISCLI_AUTH", p);
    }
    let out = cmd.args(args).output().expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A `redis-sentinel` watching the primary on `primary_port` as `master_name` (quorum 2).
pub struct Sentinel {
    child: Option<Child>,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    pub fn start(master_name: &str, primary_port: u16) -> Sentinel {
        require("redis-sentinel");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n\
                 sentinel monitor {master_name} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {master_name} 1000\n\
                 sentinel failover-timeout {master_name} 5000\n\
                 sentinel parallel-syncs {master_name} 1\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-sentinel starts");
        wait_port(port, "redis-sentinel");
        Sentinel {
            child: Some(child),
            port,
            _dir: dir,
        }
    }

    /// The port of the primary this sentinel currently names.
    pub fn primary_port(&self, master_name: &str) -> Option<u16> {
        let out = cli(
            self.port,
            None,
            &["SENTINEL", "get-master-addr-by-name", master_name],
        );
        out.lines().nth(1)?.trim().parse().ok()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
