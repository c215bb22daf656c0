//! Run the real `flagrelay` binary on a loopback port for a test, and talk to it over HTTP.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A relay process with its own temp directory, killed on drop.
pub struct Relay {
    child: Option<Child>,
    pub addr: Option<SocketAddr>,
    logs: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
}

pub struct Options<'a> {
    pub config: &'a str,
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    /// Wait until the API port is known (false for relays expected to exit at start).
    pub wait_listening: bool,
    /// A command the relay runs under, e.g. `["prlimit", "--fsize=4096", "--"]` for a resource
    /// limit from its first instruction; it must `exec` the relay, so that the child's process
    /// id is the relay's.
    pub wrapper: &'a [&'a str],
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            config: "{}",
            args: &[],
            env: &[],
            wait_listening: true,
            wrapper: &[],
        }
    }
}

impl<'a> Options<'a> {
    /// The defaults with `config`.
    pub fn with_config(config: &'a str) -> Self {
        Options {
            config,
            ..Options::default()
        }
    }
}

impl Relay {
    /// Start with a config (YAML text; `{{dir}}` is replaced by the temp dir) and wait until
    /// it listens.
    pub fn start(config: &str) -> Relay {
        Self::start_with(Options {
            config,
            ..Options::default()
        })
    }

    pub fn start_with(o: Options<'_>) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, o)
    }

    /// Start with `flags` in `flags.yaml` of the temp dir (the config reads it as
    /// `{{dir}}/flags.yaml`).
    pub fn start_over(flags: &str, o: Options<'_>) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("flags.yaml"), flags).unwrap();
        Self::start_in(dir, o)
    }

    /// Start in an existing directory (to restart a relay over the same files).
    pub fn start_in(dir: tempfile::TempDir, o: Options<'_>) -> Relay {
        let config_path = dir.path().join("flagrelay.yaml");
        let config = o
            .config
            .replace("{{dir}}", &dir.path().display().to_string());
        std::fs::write(&config_path, config).unwrap();
        let bin = env!("CARGO_BIN_EXE_flagrelay");
        let mut cmd = match o.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("--config")
            .arg(&config_path)
            .args(["--host", "127.0.0.1"]);
        // A test that restarts a relay on the port it had passes `--port` itself.
        if !o.args.contains(&"--port") {
            cmd.args(["--port", "0"]);
        }
        cmd.args(o.args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The test process may carry FLAGRELAY_ variables of its own; the relay must not.
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FLAGRELAY_")) {
            cmd.env_remove(k);
        }
        for (k, v) in o.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the flagrelay binary starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        pump(child.stdout.take().unwrap(), logs.clone());
        pump(child.stderr.take().unwrap(), stderr.clone());
        let mut relay = Relay {
            child: Some(child),
            addr: None,
            logs,
            stderr,
            dir,
        };
        if o.wait_listening {
            let line = relay
                .wait_for_log(
                    |l| l.contains("\"msg\":\"listening\"") && l.contains("\"server\":\"api\""),
                    Duration::from_secs(20),
                )
                .unwrap_or_else(|| panic!("relay did not listen; logs:\n{}", relay.all_output()));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            relay.addr = Some(v["addr"].as_str().unwrap().parse().unwrap());
        }
        relay
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr.expect("relay is listening"), path)
    }

    /// Every stdout line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub fn all_output(&self) -> String {
        let mut s = self.logs().join("\n");
        s.push_str("\n--- stderr ---\n");
        s.push_str(&self.stderr.lock().unwrap().join("\n"));
        s
    }

    pub fn wait_for_log(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(l) = self.logs.lock().unwrap().iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Wait for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < end {
            if let Some(status) = child.try_wait().unwrap() {
                // Let the pump threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The exit status, if the process has exited (does not wait).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().unwrap()
    }

    /// Send a signal (e.g. "TERM") to the relay.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }

    /// The relay's process id (e.g. to change its limits with `prlimit`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Take the temp dir back (killing the relay if it still runs), to start another relay
    /// over the same files.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn pump(stream: impl std::io::Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(l) => into.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    });
}

/// [`Relay::start_over`] with the default options and `config`.
pub fn start_over(flags: &str, config: &str) -> Relay {
    Relay::start_over(flags, Options::with_config(config))
}

/// Write a file atomically (temp + rename), as editors and deploy tools do, so a poll never
/// reads a half-written file.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An HTTP client for tests.
pub fn client() -> reqwest::Client {
    flagrelay::crypto::install_default_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Poll `f` until it returns `Some`, or panic after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// [`Relay::wait_exit`] from a test on a multi-threaded runtime: it sleeps on the thread, so
/// the runtime's other workers are kept free meanwhile.
pub fn wait_exit(relay: &mut Relay, timeout: Duration) -> Option<ExitStatus> {
    tokio::task::block_in_place(|| relay.wait_exit(timeout))
}

/// Wait until `/ready` answers 200.
pub async fn wait_ready(relay: &Relay) {
    let c = client();
    eventually(Duration::from_secs(15), "/ready to answer 200", || {
        let (c, url) = (c.clone(), relay.url("/ready"));
        async move { (c.get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
}

/// GET `path` on the relay.
pub async fn get(relay: &Relay, path: &str) -> reqwest::Response {
    client().get(relay.url(path)).send().await.unwrap()
}

/// GET `path` on the relay and parse the JSON answer.
pub async fn get_json(relay: &Relay, path: &str) -> serde_json::Value {
    get(relay, path).await.json().await.unwrap()
}

/// GET `path` on the relay as text (e.g. `/metrics`).
pub async fn get_text(relay: &Relay, path: &str) -> String {
    get(relay, path).await.text().await.unwrap()
}

/// GET `path` on the relay: the status code.
pub async fn get_status(relay: &Relay, path: &str) -> u16 {
    get(relay, path).await.status().as_u16()
}

/// POST `body` to `path` on the relay and parse the JSON answer.
pub async fn post_json(relay: &Relay, path: &str, body: &str) -> serde_json::Value {
    client()
        .post(relay.url(path))
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// One OFREP evaluation of `key` for `targetingKey: user-1`: the HTTP status and the `value`
/// (or the `errorCode` when there is none).
pub async fn eval(relay: &Relay, key: &str) -> (u16, serde_json::Value) {
    let r = client()
        .post(relay.url(&format!("/ofrep/v1/evaluate/flags/{key}")))
        .json(&serde_json::json!({"context": {"targetingKey": "user-1"}}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    (
        status,
        v.get("value").cloned().unwrap_or(v["errorCode"].clone()),
    )
}

/// `POST /admin/v1/retriever/refresh` with `key` (and `query`, e.g. "?force=true"): status and
/// JSON answer.
pub async fn admin_refresh(relay: &Relay, key: &str, query: &str) -> (u16, serde_json::Value) {
    let r = client()
        .post(relay.url(&format!("/admin/v1/retriever/refresh{query}")))
        .header("X-API-Key", key)
        // A refresh parses the whole document at low priority: slow on a loaded debug build.
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}
