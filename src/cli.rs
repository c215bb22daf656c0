//! The command line: `flagrelay [serve]`, `flagrelay validate FILE...`,
//! `flagrelay export --out PATH`, `flagrelay --version`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Override};
use crate::parse::{self, Format};
use crate::{app, crypto, logging, persist};

#[derive(Debug, Parser)]
#[command(
    name = "flagrelay",
    version,
    about = "Feature-flag relay proxy (OFREP, sync API, SSE)"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve flags over HTTP (the default).
    Serve,
    /// Parse and check flag files; print every error with its location. `--source ENTRY`
    /// fetches one source once and checks it without serving it (ENTRY: a retriever entry in
    /// YAML flow style, e.g. `{kind: sql, url: "sqlite:///var/lib/app.db"}`).
    Validate {
        #[arg(required_unless_present = "sources")]
        files: Vec<PathBuf>,
        #[arg(long = "source", value_name = "ENTRY")]
        sources: Vec<String>,
    },
    /// Fetch every configured source once and write the merged flag set as one document
    /// (for air-gapped installs: serve it with a `file` retriever).
    Export {
        #[arg(long)]
        out: PathBuf,
    },
}

/// Settings that override the config file and the environment.
#[derive(Debug, Args)]
pub(crate) struct Settings {
    /// YAML or JSON config file.
    #[arg(long, short, global = true, env = "FLAGRELAY_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, global = true)]
    pub host: Option<String>,
    #[arg(long, global = true)]
    pub port: Option<u16>,
    #[arg(long, global = true)]
    pub monitoring_port: Option<u16>,
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// json or text.
    #[arg(long, global = true)]
    pub log_format: Option<String>,
    /// Milliseconds, or "30s"; 0 turns polling off.
    #[arg(long, global = true)]
    pub polling_interval: Option<String>,
    #[arg(long, global = true)]
    pub environment: Option<String>,
    /// Serve flags from this file instead of the configured retrievers.
    #[arg(long, global = true)]
    pub flags: Option<PathBuf>,
    #[arg(long, global = true)]
    pub start_with_retriever_error: bool,
    /// Refuse to start unless FIPS 140-3 mode is active.
    #[arg(long, global = true)]
    pub fips_strict: bool,
    /// Set any configuration key: `--set server.maxSseClients=500`,
    /// `--set retrievers[0].url=https://…` (repeatable; the same keys and value syntax as the
    /// FLAGRELAY_ environment variables; applied after the named flags).
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    pub set: Vec<String>,
    /// Serve without recording metrics (benchmarks compare the two).
    #[arg(long, global = true, hide = true)]
    pub no_metrics: bool,
}

impl Settings {
    fn overrides(&self) -> Result<Vec<Override>, crate::config::ConfigError> {
        let mut o = self.named_overrides();
        for assignment in &self.set {
            o.push(Override::from_assignment(assignment)?);
        }
        Ok(o)
    }

    fn named_overrides(&self) -> Vec<Override> {
        let mut o = Vec::new();
        let mut put = |path: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                o.push(Override::new(path, v));
            }
        };
        put("server.host", self.host.clone().map(Into::into));
        put("server.port", self.port.map(Into::into));
        put(
            "server.monitoringPort",
            self.monitoring_port.map(Into::into),
        );
        put("logLevel", self.log_level.clone().map(Into::into));
        put("logFormat", self.log_format.clone().map(Into::into));
        put(
            "pollingInterval",
            self.polling_interval.clone().map(Into::into),
        );
        put("environment", self.environment.clone().map(Into::into));
        put(
            "retrievers",
            self.flags
                .as_ref()
                .map(|p| serde_json::json!([{"kind": "file", "path": p.to_string_lossy()}])),
        );
        put(
            "startWithRetrieverError",
            self.start_with_retriever_error.then_some(true.into()),
        );
        put("fips.strict", self.fips_strict.then_some(true.into()));
        o
    }
}

/// Parse the command line and run. Exit codes: 0 fine, 1 failure, 2 bad configuration.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crypto::install_default_provider();
    match cli.command {
        Some(Command::Validate {
            ref files,
            ref sources,
        }) if !sources.is_empty() => {
            let files = validate_files(files);
            let sources = validate_sources(sources);
            if files != ExitCode::SUCCESS {
                files
            } else {
                sources
            }
        }
        Some(Command::Validate { ref files, .. }) => validate(files),
        Some(Command::Export { ref out }) => with_config(&cli.settings, |config, logs| {
            logs.install(None);
            export(config, out)
        }),
        Some(Command::Serve) | None => {
            let metrics = !cli.settings.no_metrics;
            with_config(&cli.settings, |config, logs| serve(config, logs, metrics))
        }
    }
}

fn with_config(settings: &Settings, run: impl FnOnce(Config, Logs) -> ExitCode) -> ExitCode {
    let loaded = match settings
        .overrides()
        .and_then(|o| Config::load(settings.config.as_deref(), std::env::vars(), &o))
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("flagrelay: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let config = loaded.config;
    logging::crypto_mode_line(config.log_format, crypto::fips_active());
    let logs = Logs {
        level: config.log_level.clone(),
        format: config.log_format,
        warnings: loaded.warnings,
    };
    run(config, logs)
}

/// Logging, installed by the command once it knows whether spans are exported too (the trace
/// exporter needs the runtime, which only `serve` starts).
struct Logs {
    level: String,
    format: crate::config::LogFormat,
    warnings: Vec<String>,
}

impl Logs {
    fn install(self, tracer: Option<opentelemetry_sdk::trace::Tracer>) {
        logging::init(&self.level, self.format, tracer);
        for w in self.warnings {
            tracing::warn!("{w}");
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

fn serve(config: Config, logs: Logs, metrics: bool) -> ExitCode {
    let fips = crypto::fips_active();
    let runtime = runtime();
    let telemetry = {
        let _in_runtime = runtime.enter();
        crate::telemetry::start(&config.tracing.otlp)
    };
    let telemetry = match telemetry {
        Ok(t) => t,
        Err(e) => {
            logs.install(None);
            eprintln!("flagrelay: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let (telemetry, tracer) = telemetry.map_or((None, None), |(t, tr)| (Some(t), Some(tr)));
    logs.install(tracer);
    if telemetry.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    let result = runtime.block_on(app::serve(config, fips, metrics));
    if let Some(t) = telemetry {
        let _in_runtime = runtime.enter();
        t.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "flagrelay cannot run");
            eprintln!("flagrelay: {e}");
            // A retriever that cannot be built is a bad setting too (certificate files).
            let code = if matches!(
                e,
                app::StartError::Config(_) | app::StartError::Retriever(_)
            ) {
                2
            } else {
                1
            };
            ExitCode::from(code)
        }
    }
}

fn export(config: Config, out: &std::path::Path) -> ExitCode {
    let result = runtime().block_on(async {
        let relay = app::Relay::build(config)?;
        let report = relay.refresher.refresh().await;
        if !report.ok {
            let reasons: Vec<&str> = report.errors().collect();
            return Err(app::StartError::FirstRefresh(reasons.join("; ")));
        }
        let snap = relay
            .store
            .load()
            .expect("a successful refresh stores a snapshot");
        Ok(snap)
    });
    let snap = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("flagrelay export: {e}; nothing written");
            return ExitCode::FAILURE;
        }
    };
    let mut body = match serde_json::to_vec_pretty(&snap.defs()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("flagrelay export: {e}");
            return ExitCode::FAILURE;
        }
    };
    body.push(b'\n');
    match persist::write_atomically(out, &body) {
        Ok(()) => {
            println!(
                "wrote {} flags (etag {}) to {}",
                snap.len(),
                snap.etag,
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flagrelay export: cannot write {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn validate_files(files: &[PathBuf]) -> ExitCode {
    if files.is_empty() {
        ExitCode::SUCCESS
    } else {
        validate(files)
    }
}

/// `validate --source`: exit 2 for a bad entry, 1 for a source that failed, else 0.
fn validate_sources(entries: &[String]) -> ExitCode {
    use crate::retriever::check::{CheckError, check, parse_entry};
    let mut code = 0u8;
    let rt = runtime();
    for entry in entries {
        let result = match parse_entry(entry) {
            Ok(cfg) => rt.block_on(check(&cfg)),
            Err(e) => Err(e),
        };
        match result {
            Ok((source, flags)) => println!("{source}: ok ({flags} flags)"),
            Err(CheckError::Settings(e)) => {
                eprintln!("--source: {e}");
                code = 2;
            }
            Err(CheckError::Source(errors)) => {
                for e in errors {
                    eprintln!("{e}");
                }
                code = code.max(1);
            }
        }
    }
    ExitCode::from(code)
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut bad = 0usize;
    let mut flags = 0usize;
    for path in files {
        let name = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{name}: cannot read: {e}");
                bad += 1;
                continue;
            }
        };
        match parse::parse_document(&name, &bytes, Format::from_name(&name)) {
            Ok(doc) => {
                flags += doc.flags.len();
                println!("{name}: ok ({} flags)", doc.flags.len());
            }
            Err(e) => {
                for err in &e.errors {
                    eprintln!("{err}");
                }
                bad += 1;
            }
        }
    }
    if bad == 0 {
        println!("{} files valid, {flags} flags", files.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("{bad} of {} files invalid", files.len());
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;
    use crate::config::schema::{self, MapKeys};

    /// Flags that are not configuration keys.
    const NOT_KEYS: &[&str] = &["config", "set", "no-metrics", "help", "version"];

    #[test]
    fn every_named_flag_sets_a_key_of_the_schema() {
        let command = Cli::command();
        let named: Vec<String> = command
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| !NOT_KEYS.contains(l))
            .map(String::from)
            .collect();
        let mut argv = vec!["flagrelay".to_string()];
        for long in &named {
            argv.push(format!("--{long}"));
            let takes_value = command
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .is_some_and(|a| a.get_action().takes_values());
            if takes_value {
                argv.push(
                    match long.as_str() {
                        "log-format" => "text",
                        "log-level" => "debug",
                        "polling-interval" => "5s",
                        "port" | "monitoring-port" => "1234",
                        _ => "value",
                    }
                    .into(),
                );
            }
        }
        let cli = Cli::try_parse_from(&argv).unwrap();
        let overrides = cli.settings.overrides().unwrap();
        assert_eq!(
            overrides.len(),
            named.len(),
            "each named flag maps to one key: {named:?}"
        );
        for o in &overrides {
            let key = o.key();
            let segments: Vec<&str> = key
                .split(['.', '[', ']'])
                .filter(|s| !s.is_empty())
                .collect();
            let (path, _) = schema::resolve(&segments, MapKeys::Flag)
                .unwrap_or_else(|e| panic!("flag path {key} is not a key: {e:?}"));
            assert_eq!(schema::display(&path), key, "canonical spelling");
        }
        let loaded = crate::config::Config::load(None, Vec::new(), &overrides).unwrap();
        assert_eq!(loaded.config.server.port, 1234);
        assert_eq!(loaded.config.log_level, "debug");
    }
}
