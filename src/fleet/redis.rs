//! The connection to the fleet's Redis: a URL, or a master found through Sentinel; TLS through
//! rustls with the process's provider (aws-lc-rs, or its FIPS module); ACL user and password.
//!
//! One multiplexed connection is kept and shared. Any error drops it, and the next command
//! connects again (through Sentinel, which then names the new master after a failover): that
//! is all the failover handling the fleet needs, since every write is a retried, idempotent
//! step of a loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, TlsCertificates, TlsMode};
use tokio::sync::Mutex;

use crate::config::{RedisConfig, host_port, parse_url};

/// Connecting and each command give up after this long: a hung Redis must not hold a refresh.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(3);

/// Why the fleet could not be set up (a bad file named in the settings).
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub(super) struct SetupError {
    pub key: &'static str,
    pub message: String,
}

enum Target {
    Direct(Client),
    Sentinel(Mutex<SentinelClient>),
}

pub(crate) struct Redis {
    target: Target,
    /// Where it points, without credentials, for logs.
    pub(crate) display: String,
    conn: Mutex<Option<MultiplexedConnection>>,
    reachable: AtomicBool,
}

impl Redis {
    pub(crate) fn new(cfg: &RedisConfig) -> Result<Redis, SetupError> {
        let err = |key: &'static str, message: String| SetupError { key, message };
        let url = match &cfg.url {
            Some(u) => Some(
                parse_url(u, cfg.sentinel.is_some())
                    .map_err(|e| err("fleet.redis.url", format!("is not a valid URL ({e})")))?,
            ),
            None => None,
        };
        let tls = url.as_ref().is_some_and(|u| u.scheme() == "rediss");
        let read = |key: &'static str, path: &Option<std::path::PathBuf>| {
            path.as_ref()
                .map(|p| {
                    std::fs::read(p)
                        .map_err(|e| err(key, format!("cannot read {}: {e}", p.display())))
                })
                .transpose()
        };
        let root_cert = read("fleet.redis.caCertPath", &cfg.ca_cert_path)?;
        let client_cert = read("fleet.redis.clientCertPath", &cfg.client_cert_path)?;
        let client_key = read("fleet.redis.clientKeyPath", &cfg.client_key_path)?;
        let certs = || TlsCertificates {
            client_tls: match (&client_cert, &client_key) {
                (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
                    client_cert: c.clone(),
                    client_key: k.clone(),
                }),
                _ => None,
            },
            root_cert: root_cert.clone(),
        };
        let user = url
            .as_ref()
            .map(|u| percent_decode(u.username()))
            .filter(|u| !u.is_empty());
        // The password field (or its environment variable) wins over one in the URL.
        let password = cfg
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .or_else(|| url.as_ref().and_then(|u| u.password().map(percent_decode)));
        let db: i64 = url
            .as_ref()
            .and_then(|u| u.path().trim_start_matches('/').parse().ok())
            .unwrap_or(0);
        let (target, display) = match &cfg.sentinel {
            Some(s) => {
                let nodes = s
                    .nodes
                    .iter()
                    .filter_map(|n| host_port(n))
                    .map(|(host, port)| {
                        if tls {
                            ConnectionAddr::TcpTls {
                                host,
                                port,
                                insecure: false,
                                tls_params: None,
                            }
                        } else {
                            ConnectionAddr::Tcp(host, port)
                        }
                    });
                let mut b =
                    SentinelClientBuilder::new(nodes, &s.master_name, SentinelServerType::Master)
                        .map_err(|e| err("fleet.redis.sentinel", e.to_string()))?
                        .set_client_to_redis_db(db);
                if let Some(u) = &user {
                    b = b.set_client_to_redis_username(u);
                }
                if let Some(p) = &password {
                    b = b.set_client_to_redis_password(p);
                }
                if tls {
                    b = b
                        .set_client_to_redis_tls_mode(TlsMode::Secure)
                        .set_client_to_redis_certificates(certs())
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure)
                        .set_client_to_sentinel_certificates(certs());
                }
                let client = b
                    .build()
                    .map_err(|e| err("fleet.redis.sentinel", e.to_string()))?;
                let display = format!("sentinel {} via {}", s.master_name, s.nodes.join(","));
                (Target::Sentinel(Mutex::new(client)), display)
            }
            None => {
                let u = url.as_ref().ok_or_else(|| {
                    err(
                        "fleet.redis.url",
                        "is required (or fleet.redis.sentinel)".into(),
                    )
                })?;
                let host = u.host_str().unwrap_or_default().to_owned();
                let port = u.port().unwrap_or(6379);
                let addr = if tls {
                    ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host.clone(), port)
                };
                let mut settings = redis::RedisConnectionInfo::default().set_db(db);
                if let Some(u) = &user {
                    settings = settings.set_username(u);
                }
                if let Some(p) = &password {
                    settings = settings.set_password(p);
                }
                let info = redis::IntoConnectionInfo::into_connection_info(addr)
                    .map_err(|e| err("fleet.redis.url", e.to_string()))?
                    .set_redis_settings(settings);
                let client = if tls && (root_cert.is_some() || client_cert.is_some()) {
                    Client::build_with_tls(info, certs())
                } else {
                    Client::open(info)
                }
                .map_err(|e| err("fleet.redis.url", e.to_string()))?;
                let scheme = if tls { "rediss" } else { "redis" };
                (
                    Target::Direct(client),
                    format!("{scheme}://{host}:{port}/{db}"),
                )
            }
        };
        Ok(Redis {
            target,
            display,
            conn: Mutex::new(None),
            reachable: AtomicBool::new(false),
        })
    }

    pub(crate) fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// A client for the current master (asking Sentinel when there is one).
    pub(crate) async fn client(&self) -> Result<Client, String> {
        match &self.target {
            Target::Direct(c) => Ok(c.clone()),
            Target::Sentinel(s) => {
                let mut s = s.lock().await;
                tokio::time::timeout(TIMEOUT, s.async_get_client())
                    .await
                    .map_err(|_| "sentinel: timed out finding the master".to_owned())?
                    .map_err(|e| format!("sentinel: {e}"))
            }
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, String> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let client = self.client().await?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Run `f` on the shared connection. An error (or a timeout) drops the connection, so the
    /// next call connects afresh, and marks Redis unreachable until a call succeeds.
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let outcome = async {
            let conn = self.connection().await?;
            match tokio::time::timeout(TIMEOUT, f(conn)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("timed out after {}s", TIMEOUT.as_secs())),
            }
        }
        .await;
        match &outcome {
            Ok(_) => self.reachable.store(true, Ordering::Relaxed),
            Err(_) => {
                self.reachable.store(false, Ordering::Relaxed);
                *self.conn.lock().await = None;
            }
        }
        outcome
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(Ok(b)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16))
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
