//! Starting and stopping the relay: wire config → retrievers → refresher → snapshot → HTTP,
//! load the first flag set, serve, and drain on SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::{Config, ConfigError};
use crate::http::serve::{ConnLimits, Observe, run_server};
use crate::http::{self, AppState, Auth, EvalSettings, Lifecycle};
use crate::persist;
use crate::refresh::{RefreshOptions, Refresher};
use crate::retriever::{Retriever, RetrieverError};
use crate::snapshot::{Snapshot, SnapshotStore};

/// Why the relay could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("retriever setup: {0}")]
    Retriever(#[from] RetrieverError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    FlagdBind(#[from] crate::flagd::BindError),
    #[error("the first refresh failed and startWithRetrieverError is false: {0}")]
    FirstRefresh(String),
    #[error(
        "fips.strict is set but FIPS 140-3 mode is not active (this build does not use the AWS-LC FIPS module; build with --features fips)"
    )]
    FipsRequired,
    #[error(transparent)]
    Notifier(#[from] crate::notify::NotifierError),
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// The pieces of a relay, built from a config; the CLI's `serve` and `export` both use them.
pub(crate) struct Relay {
    pub config: Config,
    pub store: Arc<SnapshotStore>,
    pub refresher: Arc<Refresher>,
    /// Fleet mode, once `serve` attached it (`crate::fleet`).
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
}

impl Relay {
    pub(crate) fn build(config: Config) -> Result<Relay, StartError> {
        let retrievers = config
            .retrievers
            .iter()
            .map(Retriever::from_config)
            .collect::<Result<Vec<_>, _>>()?;
        let store = Arc::new(SnapshotStore::new());
        // The relay's one registry, handed to every part that records.
        let routes = http::route_templates();
        let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
        let metrics = Arc::new(crate::metrics::Metrics::new(&routes));
        let refresher = Refresher::new(
            retrievers,
            store.clone(),
            RefreshOptions {
                salt: config.rollout_salt.clone().filter(|s| !s.is_empty()),
                persist_to: config.persistent_flag_configuration_file.clone(),
                max_removal_percent: Some(config.max_flag_removal_percent),
                metrics,
            },
        );
        Ok(Relay {
            config,
            store,
            refresher,
            fleet: None,
        })
    }

    /// Load the first flag set: from the retrievers, else from the persisted snapshot, else
    /// empty when `startWithRetrieverError` allows it.
    pub(crate) async fn first_load(&self) -> Result<(), StartError> {
        let report = self.refresher.refresh().await;
        if report.ok {
            return Ok(());
        }
        let reasons: Vec<&str> = report.errors().collect();
        let reasons = reasons.join("; ");
        // Fleet mode: the set the fleet published needs no volume.
        if let Some(fleet) = &self.fleet
            && fleet.load_published().await
        {
            return Ok(());
        }
        if let Some(path) = &self.config.persistent_flag_configuration_file {
            match persist::load(path) {
                Ok(flags) => {
                    let snap = Snapshot::build(flags, self.config.rollout_salt.as_deref());
                    tracing::warn!(
                        path = %path.display(),
                        flags = snap.len(),
                        etag = %snap.etag,
                        "retrievers failed at start; serving the persisted flag set"
                    );
                    self.refresher.metrics().flag_set_loaded(&snap);
                    self.store.swap(Arc::new(snap));
                    return Ok(());
                }
                Err(e) => tracing::error!(error = %e, "persisted flag set not usable"),
            }
        }
        if self.config.start_with_retriever_error {
            tracing::warn!(errors = %reasons, "retrievers failed at start; serving an empty flag set");
            self.store.swap(Arc::new(Snapshot::empty()));
            return Ok(());
        }
        Err(StartError::FirstRefresh(reasons))
    }
}

/// Run the relay until SIGTERM/SIGINT.
/// `metrics`: record metrics, request logs and ids (`--no-metrics` turns them off).
pub(crate) async fn serve(config: Config, fips140: bool, metrics: bool) -> Result<(), StartError> {
    if config.fips.strict && !fips140 {
        return Err(StartError::FipsRequired);
    }
    let auth = Arc::new(
        Auth::new(
            &config.authorized_keys,
            config.auth.jwt_secret.as_ref(),
            config.auth.token_ttl,
        )?
        .with_ticket_ttl(
            config
                .streams
                .ticket_ttl
                .duration()
                .unwrap_or(Duration::from_secs(600)),
        ),
    );
    crate::config::log_access(&config.authorized_keys);
    ignore_file_size_signal();
    // Installed before anything slow, so a SIGTERM during the first load drains too.
    let mut signals = Signals::install();
    let mut relay = Relay::build(config)?;
    relay.refresher.metrics().set_enabled(metrics);
    let observe = Observe::Requests(http::observe::layer(relay.refresher.metrics()));
    relay.fleet = crate::fleet::attach(&relay.config, &relay.refresher)?;
    crate::signals::handle_others(relay.refresher.clone());
    let config = &relay.config;
    let state = AppState::new(
        relay.refresher.clone(),
        auth,
        EvalSettings {
            default_env: config.environment.as_deref().map(Arc::from),
            max_body_bytes: config.max_request_body_bytes,
            change_stream: true,
        },
        config.server.max_sse_clients,
        fips140,
    );
    let state = state.for_relay(config.streams.inactivity_delay_sec, relay.fleet.clone());
    let lifecycle = state.lifecycle.clone();

    let origins = &config.cors.allowed_origins;
    let main_listener = bind(&config.server.host, config.server.port).await?;
    let (main_app, monitor) = match config.server.monitoring_port {
        Some(port) => (
            http::api_service(state.clone(), origins, false),
            Some((
                bind(&config.server.host, port).await?,
                http::monitoring_service(state.clone()),
            )),
        ),
        None => (http::api_service(state.clone(), origins, true), None),
    };
    log_listening("api", &main_listener);

    let grace = config
        .server
        .shutdown_grace_period
        .duration()
        .unwrap_or(Duration::ZERO);
    let mut servers = tokio::task::JoinSet::new();
    let limits = ConnLimits::from_config(&config.server);
    tracing::info!(max_connections = limits.max_connections, "connection limit");
    servers.spawn(run_server(
        main_listener,
        main_app,
        limits,
        observe.clone(),
        lifecycle.stopping(),
    ));
    if let Some((listener, app)) = monitor {
        log_listening("monitoring", &listener);
        // Its own, small budget: a flood of the API port leaves /health and /ready answerable.
        let limits = ConnLimits {
            max_connections: http::conn::MONITORING_CONNECTIONS,
            ..limits
        };
        servers.spawn(run_server(
            listener,
            app,
            limits,
            observe,
            lifecycle.stopping(),
        ));
    }
    if let Some((info, flagd)) = crate::flagd::listen(config, &state).await? {
        state.lifecycle.set_flagd_info(info);
        servers.spawn(flagd);
    }

    // Serve /health and /ready (503) while the first load runs.
    let first = tokio::select! {
        loaded = relay.first_load() => Some(loaded),
        () = signals.recv() => None,
    };
    match first {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            lifecycle.begin_shutdown();
            return Err(e);
        }
        None => {
            // Never ready: nothing routes here, so no delay.
            drain(&lifecycle, None, servers, Duration::ZERO, grace).await;
            return Ok(());
        }
    }
    if let Some(fleet) = &relay.fleet {
        fleet.spawn();
    }
    // After the first load, so the set loaded at start is not announced as a change.
    if !config.notifiers.is_empty() {
        let notifiers =
            crate::notify::Notifiers::start(&config.notifiers, relay.refresher.metrics())?;
        match &relay.fleet {
            // Once per version for the fleet, by the replica that published it.
            Some(fleet) => tokio::spawn(fleet.clone().notify(notifiers)),
            None => tokio::spawn(notifiers.follow(relay.store.subscribe())),
        };
    }
    let poller = config.polling_interval.duration().map(|every| {
        tokio::spawn(
            relay
                .refresher
                .clone()
                .poll(every, config.enable_polling_jitter),
        )
    });

    tokio::select! {
        () = signals.recv() => {}
        Some(done) = servers.join_next() => {
            // A server stopped on its own: that is an error (e.g. the socket failed).
            if let Ok(Err(e)) = done {
                return Err(StartError::Serve(e));
            }
        }
    }
    let delay = config
        .server
        .shutdown_delay
        .duration()
        .unwrap_or(Duration::ZERO);
    drain(&lifecycle, poller, servers, delay, grace).await;
    if let Some(fleet) = &relay.fleet {
        fleet.leave().await;
    }
    Ok(())
}

/// Fail readiness and keep serving for `delay` (load balancers notice), then stop accepting,
/// end streams, and give in-flight requests up to `grace`.
async fn drain(
    lifecycle: &Lifecycle,
    poller: Option<tokio::task::JoinHandle<()>>,
    mut servers: tokio::task::JoinSet<std::io::Result<()>>,
    delay: Duration,
    grace: Duration,
) {
    if !delay.is_zero() {
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "shutting down: /ready answers 503; still serving until the delay is over"
        );
        lifecycle.begin_draining();
        tokio::time::sleep(delay).await;
    }
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: draining in-flight requests"
    );
    lifecycle.begin_shutdown();
    if let Some(p) = poller {
        p.abort();
    }
    let drained = tokio::time::timeout(grace, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("stopped"),
        Err(_) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

async fn bind(host: &str, port: u16) -> Result<TcpListener, StartError> {
    let addr = format!("{host}:{port}");
    let addr_for_err = addr.clone();
    let bind_err = |source| StartError::Bind {
        addr: addr_for_err.clone(),
        source,
    };
    http::conn::listen(&addr).await.map_err(bind_err)
}

fn log_listening(what: &str, l: &TcpListener) {
    if let Ok(addr) = l.local_addr() {
        tracing::info!(addr = %addr, server = what, "listening");
    }
}

/// A write past RLIMIT_FSIZE raises SIGXFSZ, whose default action kills the process. Saving
/// the persisted snapshot must fail with EFBIG instead (logged; serving goes on), so install a
/// handler: tokio keeps it for the life of the process, and the signal then only interrupts
/// the write.
fn ignore_file_size_signal() {
    #[cfg(target_os = "linux")]
    {
        const SIGXFSZ: i32 = 25;
        let kind = tokio::signal::unix::SignalKind::from_raw(SIGXFSZ);
        if let Err(e) = tokio::signal::unix::signal(kind) {
            tracing::warn!(error = %e, "cannot handle SIGXFSZ; a save past the file-size limit would stop the relay");
        }
    }
}

/// SIGTERM and SIGINT, registered at once (not on first poll) so no signal is missed.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(&mut self.int) => tracing::info!(signal = "SIGINT", "signal received"),
                () = next(&mut self.term) => tracing::info!(signal = "SIGTERM", "signal received"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!(signal = "SIGINT", "signal received");
        }
    }
}
