//! The PostgreSQL side of `kind: sql`: one connection kept between fetches (and made again
//! when it broke), TLS through rustls with the process's aws-lc-rs provider, and optionally a
//! second connection that `LISTEN`s on `notifyChannel`.
//!
//! The password comes from the URL, else the entry's `password`, else `PGPASSWORD`; it never
//! reaches an error or a log line (sources are named by host, port and database only).

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::sync::{Mutex, Notify};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{AsyncMessage, Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Cell, Rows};
use crate::config::RetrieverConfig;
use crate::retriever::{error_chain, redact_url};

pub(crate) struct Postgres {
    config: Config,
    tls: MakeRustlsConnect,
    location: String,
    timeout: Duration,
    client: Mutex<Option<Client>>,
    listen: Option<Listen>,
}

struct Listen {
    channel: String,
    changed: Arc<Notify>,
    started: std::sync::Once,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Config's own Debug redacts the password; say only where, to be sure.
        f.debug_struct("Postgres")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// `Err((location, message))`: the location is safe to show.
    pub(crate) fn new(cfg: &RetrieverConfig, timeout: Duration) -> Result<Self, (String, String)> {
        let raw = cfg.url.as_deref().unwrap_or_default();
        // A URL that does not parse cannot be redacted reliably, so it is not repeated.
        let url = reqwest::Url::parse(raw).map_err(|e| {
            (
                "postgres".to_owned(),
                format!("url is not a valid URL ({e})"),
            )
        })?;
        let location = redact_url(&url).trim_end_matches('/').to_owned();
        let mut config: Config = raw
            .parse()
            .map_err(|e| (location.clone(), format!("url: {}", error_chain(&e))))?;
        if config.get_password().is_none() {
            let password = cfg
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .or_else(|| std::env::var("PGPASSWORD").ok());
            if let Some(p) = password {
                config.password(p);
            }
        }
        if config.get_user().is_none() {
            config.user(std::env::var("PGUSER").as_deref().unwrap_or("postgres"));
        }
        config.connect_timeout(timeout);
        config.application_name("flagrelay");
        let tls = tls(cfg, &url, config.get_ssl_mode()).map_err(|m| (location.clone(), m))?;
        Ok(Postgres {
            config,
            tls: MakeRustlsConnect::new(tls),
            location,
            timeout,
            client: Mutex::new(None),
            listen: cfg.notify_channel.clone().map(|channel| Listen {
                channel,
                changed: Arc::new(Notify::new()),
                started: std::sync::Once::new(),
            }),
        })
    }

    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    pub(crate) fn changes(&self) -> Option<Arc<Notify>> {
        self.listen.as_ref().map(|l| l.changed.clone())
    }

    pub(crate) async fn query(&self, sql: &str) -> Result<Rows, String> {
        if let Some(l) = &self.listen {
            l.started.call_once(|| self.start_listening(l));
        }
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(self.connect().await?);
        }
        let client = slot.as_ref().expect("connected above");
        match read(client, sql).await {
            Ok(rows) => Ok(rows),
            Err(e) => {
                // Start afresh next time: the connection may be what failed.
                *slot = None;
                Err(e)
            }
        }
    }

    async fn connect(&self) -> Result<Client, String> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| format!("cannot connect: {}", pg_error(&e)))?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away; the next fetch notices.
            let _ = connection.await;
        });
        // Bound a query and a wait for a lock held by a writer by the source's timeout, on the
        // server too (the fetch's own timeout only stops waiting).
        let ms = self.timeout.as_millis();
        client
            .batch_execute(&format!(
                "SET statement_timeout = {ms}; SET lock_timeout = {ms}; \
                 SET default_transaction_read_only = on"
            ))
            .await
            .map_err(|e| format!("cannot set up the session: {}", pg_error(&e)))?;
        Ok(client)
    }

    /// Follow `LISTEN channel` on a connection of its own, reconnecting with a backoff; every
    /// notification wakes the refresher.
    fn start_listening(&self, l: &Listen) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (config, tls, changed) = (self.config.clone(), self.tls.clone(), l.changed.clone());
        let (channel, location) = (l.channel.clone(), self.location.clone());
        let weak = Arc::downgrade(&changed);
        drop(changed);
        runtime.spawn(async move {
            let mut backoff = Duration::from_millis(250);
            // Warn once per outage, not on every retry.
            let mut failing = false;
            while weak.strong_count() > 0 {
                match listen_once(&config, &tls, &channel, &location, &weak).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(250);
                        failing = false;
                    }
                    Err(e) if failing => {
                        tracing::debug!(source = %location, error = %e, "LISTEN still failing")
                    }
                    Err(e) => {
                        failing = true;
                        tracing::warn!(
                            source = %location,
                            error = %e,
                            "LISTEN connection failed; polling until it is back"
                        );
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
    }
}

async fn listen_once(
    config: &Config,
    tls: &MakeRustlsConnect,
    channel: &str,
    location: &str,
    changed: &std::sync::Weak<Notify>,
) -> Result<(), String> {
    let (client, mut connection) = config
        .connect(tls.clone())
        .await
        .map_err(|e| format!("cannot connect: {}", pg_error(&e)))?;
    // The connection must be polled for LISTEN to complete; notifications arrive through it.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    if tx.send(()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(pg_error(&e)),
                None => return Ok(()),
            }
        }
    });
    // `channel` is a checked plain identifier (config validation).
    let listening = client.batch_execute(&format!("LISTEN {channel}")).await;
    if let Err(e) = listening {
        pump.abort();
        return Err(format!("LISTEN failed: {}", pg_error(&e)));
    }
    // A change made while we were not listening would otherwise wait for the next poll.
    let wake = |changed: &std::sync::Weak<Notify>| match changed.upgrade() {
        Some(n) => {
            n.notify_one();
            true
        }
        None => false,
    };
    tracing::info!(source = location, channel, "LISTEN: listening for changes");
    if !wake(changed) {
        return Ok(());
    }
    while rx.recv().await.is_some() {
        if !wake(changed) {
            return Ok(());
        }
    }
    drop(client);
    match pump.await {
        Ok(result) => result,
        Err(e) => Err(e.to_string()),
    }
}

/// Run the query; every cell as a [`Cell`] by its column's type.
async fn read(client: &Client, sql: &str) -> Result<Rows, String> {
    let stmt = client
        .prepare(sql)
        .await
        .map_err(|e| format!("query failed: {}", pg_error(&e)))?;
    let columns: Vec<String> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
    let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
    let rows = client
        .query(&stmt, &[])
        .await
        .map_err(|e| format!("query failed: {}", pg_error(&e)))?;
    let mut out = Rows {
        columns,
        rows: Vec::with_capacity(rows.len()),
    };
    for row in &rows {
        let mut cells = Vec::with_capacity(types.len());
        for (i, ty) in types.iter().enumerate() {
            let get_err = |e: tokio_postgres::Error| format!("reading a row: {}", pg_error(&e));
            let cell = match *ty {
                Type::INT2 => row
                    .try_get::<_, Option<i16>>(i)
                    .map_err(get_err)?
                    .map(|v| Cell::Int(v.into())),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(i)
                    .map_err(get_err)?
                    .map(|v| Cell::Int(v.into())),
                Type::INT8 => row
                    .try_get::<_, Option<i64>>(i)
                    .map_err(get_err)?
                    .map(Cell::Int),
                Type::BOOL => row
                    .try_get::<_, Option<bool>>(i)
                    .map_err(get_err)?
                    .map(Cell::Bool),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
                    .try_get::<_, Option<String>>(i)
                    .map_err(get_err)?
                    .map(Cell::Text),
                _ => row
                    .try_get::<_, Option<AnyValue>>(i)
                    .map_err(get_err)?
                    .map(|_| Cell::Other(ty.name().to_owned())),
            };
            cells.push(cell.unwrap_or(Cell::Null));
        }
        out.rows.push(cells);
    }
    Ok(out)
}

/// A value of any type, read only to tell NULL from not NULL.
struct AnyValue;

impl<'a> FromSql<'a> for AnyValue {
    fn from_sql(_: &Type, _: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(AnyValue)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The server's own message where there is one (`ERROR: relation "x" does not exist`), else the
/// error's chain. Neither holds the password: PostgreSQL never echoes it.
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error_chain(e),
    }
}

/// rustls with the installed provider, the platform's roots plus `caCertPath`, and the client
/// certificate if configured. PostgreSQL takes no HTTP ALPN. Without any roots, TLS is only an
/// error when it is required (`sslmode=require`), so a plain connection still works.
fn tls(cfg: &RetrieverConfig, url: &reqwest::Url, mode: SslMode) -> Result<ClientConfig, String> {
    let mut tls = match crate::retriever::http::tls_config(cfg, url) {
        Ok(tls) => tls,
        Err(e) if cfg.ca_cert_path.is_some() || cfg.client_cert_path.is_some() => return Err(e),
        Err(e) if matches!(mode, SslMode::Require) => return Err(e),
        Err(_) => {
            let provider = rustls::crypto::CryptoProvider::get_default()
                .cloned()
                .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }
    };
    tls.alpn_protocols.clear();
    Ok(tls)
}
