//! `gatehouse serve`: load ONNX Runtime, bind, announce, load the models, serve, shut down.
//!
//! The listening socket is opened before the models load, so a supervisor learns the address at
//! once from the `listening` line and polls `/readiness` (503 until the models are in).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use gatehouse_core::Settings;
use gatehouse_core::paths::Paths;

use arc_swap::ArcSwap;
use gatehouse_core::audit::AuditLog;
use gatehouse_core::certs::CertFiles;
use gatehouse_core::keys::KeyStore;

use crate::connections::{self, ConnectionLimits, Protocol};
use crate::listen::Listeners;
use crate::models::{LoadOptions, Repository, Runtime};
use crate::perimeter::Perimeter;
use crate::perimeter::audit::AuditSink;
use crate::perimeter::hosts::AllowedHosts;
use crate::perimeter::requests::RequestLimits;
use crate::tls::TlsFiles;
use crate::workflows::sandbox::SandboxConfig;
use crate::{AppState, ServerInfo, Shared, metrics::Metrics, router};

/// Why the server could not start; each message says what and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Runtime(String),
    #[error(
        "{what} port {port} on {host} is already in use{holder}; stop the program using it, or pick another port with {flag} (0 picks a free one)"
    )]
    PortInUse {
        what: &'static str,
        host: String,
        port: u16,
        holder: String,
        flag: &'static str,
    },
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Guard(String),
    #[error("cannot listen on {host}:{port}: {source}; fix: use an address of this computer, e.g. 127.0.0.1")]
    Bind {
        host: String,
        port: u16,
        source: std::io::Error,
    },
}

/// What every kind of Gatehouse server opens before it has anything to serve: the listening
/// sockets, TLS, metrics, the audit sink, the Host allowlist and the perimeter. `serve` puts the
/// ONNX routes behind it, `guard` a proxy.
pub struct Frontend {
    pub settings: Settings,
    pub paths: Paths,
    /// The address the primary socket listens on (port 0 resolved).
    pub address: SocketAddr,
    /// The URL a client on this computer uses.
    pub url: String,
    listeners: Listeners,
    v6_problem: Option<std::io::Error>,
    tls_files: Option<TlsFiles>,
    tls_config: Option<Arc<ArcSwap<rustls::ServerConfig>>>,
    /// The gRPC port's sockets and its TLS configuration (which offers `h2`), when gRPC is on.
    grpc: Option<(Listeners, Option<Arc<ArcSwap<rustls::ServerConfig>>>)>,
    /// Where the gRPC port listens (port 0 resolved).
    pub grpc_address: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    pub audit: Option<AuditSink>,
    pub hosts: Arc<AllowedHosts>,
    pub perimeter: Arc<Perimeter>,
    /// When a time-limited exposure ends (`server.exposed_until`, beyond loopback only).
    deadline: Option<time::OffsetDateTime>,
}

impl Frontend {
    /// Loads TLS, binds (the gRPC port too with `grpc`, when the settings have it on) and builds
    /// the perimeter; nothing is announced or served yet.
    pub async fn open(
        settings: Settings,
        paths: Paths,
        onnxruntime_version: &str,
        grpc: bool,
    ) -> Result<Frontend, StartError> {
        let tls_files = settings.tls.enabled.then(|| TlsFiles {
            cert: settings
                .tls
                .cert
                .clone()
                .unwrap_or_else(|| CertFiles::new(paths.certs_dir()).server_cert()),
            key: settings
                .tls
                .key
                .clone()
                .unwrap_or_else(|| CertFiles::new(paths.certs_dir()).server_key()),
            client_ca: settings.tls.client_ca.clone(),
        });
        let tls_config = match &tls_files {
            Some(files) => Some(Arc::new(ArcSwap::new(files.load().map_err(StartError::Tls)?))),
            None => None,
        };
        let (listeners, v6_problem) = bind(&settings.server.host, settings.server.port, Port::Http).await?;
        let grpc = if grpc && settings.grpc.enabled {
            let (grpc_listeners, _) = bind(&settings.server.host, settings.grpc.port, Port::Grpc).await?;
            let grpc_tls = match &tls_files {
                Some(files) => Some(Arc::new(ArcSwap::new(
                    files.load_for(Protocol::Http2).map_err(StartError::Tls)?,
                ))),
                None => None,
            };
            Some((grpc_listeners, grpc_tls))
        } else {
            None
        };
        let grpc_address = grpc
            .as_ref()
            .and_then(|(listeners, _)| listeners.primary.local_addr().ok());
        let address = listeners
            .primary
            .local_addr()
            .map_err(|source| StartError::Bind {
                host: settings.server.host.clone(),
                port: settings.server.port,
                source,
            })?;
        let metrics = Arc::new(Metrics::new(onnxruntime_version));
        let audit = settings
            .audit
            .enabled
            .then(|| AuditSink::start(AuditLog::new(paths.audit_log()), metrics.clone()));
        let hosts = Arc::new(AllowedHosts::new(
            own_names(&settings, tls_files.as_ref()),
            &listeners.addresses(),
            metrics.clone(),
        ));
        let perimeter = Arc::new(Perimeter::new(
            &settings,
            paths.keys_file(),
            hosts.clone(),
            audit.clone(),
            metrics.clone(),
        ));
        perimeter.spawn_watchers();
        {
            // Keys sent in a URL before this start still count for the checklist's 24 hours.
            let perimeter = perimeter.clone();
            let log = paths.audit_log();
            tokio::task::spawn_blocking(move || {
                perimeter
                    .url_keys
                    .seed_from_audit(&log, time::OffsetDateTime::now_utc())
            });
        }
        let scheme = if tls_files.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", reachable(address));
        let deadline = gatehouse_core::exposure::deadline(&settings).filter(|_| !address.ip().is_loopback());
        Ok(Frontend {
            deadline,
            grpc,
            grpc_address,
            settings,
            paths,
            address,
            url,
            listeners,
            v6_problem,
            tls_files,
            tls_config,
            metrics,
            audit,
            hosts,
            perimeter,
        })
    }

    pub fn tls(&self) -> bool {
        self.tls_files.is_some()
    }

    pub fn mtls(&self) -> bool {
        self.tls_files.as_ref().is_some_and(|f| f.client_ca.is_some())
    }

    /// Whether `/metrics` and the documents need a `metrics` key.
    pub fn metrics_protected(&self) -> bool {
        self.settings
            .server
            .metrics_access
            .needs_key(self.address.ip().is_loopback())
    }

    /// The `listening` line and the warnings about the posture. Supervisors and scripts learn
    /// the address from that line, so it is logged under its own target, which every log level
    /// lets through (see telemetry).
    pub fn announce(&self) {
        let settings = &self.settings;
        let also: Vec<String> = self
            .listeners
            .addresses()
            .iter()
            .skip(1)
            .map(ToString::to_string)
            .collect();
        let url = &self.url;
        let grpc_addr = self.grpc_address.map(|a| a.to_string()).unwrap_or_default();
        let grpc_note = if grpc_addr.is_empty() {
            String::new()
        } else {
            format!(", gRPC on {grpc_addr}")
        };
        tracing::info!(target: crate::telemetry::ANNOUNCE, event = "listening", addr = %self.address, url = %url,
            grpc_addr = %grpc_addr, tls = self.tls(), mtls = self.mtls(), auth = settings.auth.enabled,
            also = %also.join(","), "Gatehouse is listening on {url}{grpc_note}");
        if let Some(error) = &self.v6_problem {
            tracing::warn!(event = "loopback_v6_unavailable", %error, "listening on 127.0.0.1 only; clients that resolve localhost to ::1 will not connect");
        }
        if !settings.auth.enabled {
            tracing::warn!(
                event = "auth_disabled",
                "authentication is off: anyone who can reach the port can call every endpoint"
            );
        } else if perimeter_is_empty(&self.paths) {
            tracing::warn!(
                event = "no_keys",
                "no API keys exist yet, so every protected endpoint answers 401; create one with `gatehouse keys create`"
            );
        }
        if let Some(deadline) = self.deadline {
            tracing::warn!(event = "exposed_until", addr = %self.address, until = %deadline,
                "open beyond this computer until {deadline}; then back to this computer only");
        }
        if !self.address.ip().is_loopback() && !self.tls() {
            tracing::warn!(event = "exposed", addr = %self.address,
                "listening beyond this computer without TLS; keys and data cross the network in plain text");
        }
    }

    /// Serves `app` (and `grpc_app` on the gRPC port) until SIGINT or SIGTERM, then lets requests
    /// in flight finish and flushes the keys' last use and the audit log.
    pub async fn serve(self, app: axum::Router, grpc_app: Option<axum::Router>) {
        let limits = Arc::new(ConnectionLimits::new(&self.settings.limits, self.metrics.clone()));
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let shutdown = stop_at(self.deadline, self.paths.clone());
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let stopped = |mut stopping: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let mut configs = Vec::new();
        if let Some(config) = &self.tls_config {
            configs.push((Protocol::Http1, config.clone()));
        }
        let grpc = match (self.grpc, grpc_app) {
            (Some((listeners, tls)), Some(grpc_app)) => {
                configs.extend(tls.clone().map(|config| (Protocol::Http2, config)));
                Some(tokio::spawn(serve_port(
                    listeners.into_vec(),
                    grpc_app,
                    Protocol::Http2,
                    tls,
                    limits.clone(),
                    stopped(stopping.clone()),
                )))
            }
            _ => None,
        };
        if let Some(files) = self.tls_files {
            crate::tls::watch(files, configs);
        }
        serve_port(
            self.listeners.into_vec(),
            app,
            Protocol::Http1,
            self.tls_config,
            limits,
            stopped(stopping),
        )
        .await;
        if let Some(grpc) = grpc {
            let _ = grpc.await;
        }
        self.perimeter.flush_usage();
        if let Some(audit) = &self.audit
            && !audit.flush(std::time::Duration::from_secs(2))
        {
            tracing::warn!(
                event = "audit_flush_timeout",
                "the audit log could not be flushed before exit"
            );
        }
        tracing::info!(event = "stopped", "Gatehouse stopped");
    }
}

/// One port until `shutdown`: TLS when `tls` is set, else plain TCP.
async fn serve_port(
    listeners: Vec<tokio::net::TcpListener>,
    app: axum::Router,
    protocol: Protocol,
    tls: Option<Arc<ArcSwap<rustls::ServerConfig>>>,
    limits: Arc<ConnectionLimits>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    match tls {
        Some(config) => {
            let (sender, incoming) = tokio::sync::mpsc::channel(256);
            crate::tls::accept(listeners, config, limits.clone(), sender);
            connections::serve(incoming, app, protocol, limits, shutdown).await;
        }
        None => {
            let (sender, incoming) = tokio::sync::mpsc::channel(256);
            for listener in listeners {
                connections::accept_plain(listener, limits.clone(), sender.clone());
            }
            drop(sender);
            connections::serve(incoming, app, protocol, limits, shutdown).await;
        }
    }
}

/// Which of Gatehouse's ports a socket is for, to say so when it cannot be had.
#[derive(Clone, Copy)]
enum Port {
    Http,
    Grpc,
}

/// Binds `host:port`, and `[::1]` beside `127.0.0.1`; a port in use names its holder.
async fn bind(host: &str, port: u16, which: Port) -> Result<(Listeners, Option<std::io::Error>), StartError> {
    let ip: IpAddr = if host == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().map_err(|_| StartError::Bind {
            host: host.to_string(),
            port,
            source: std::io::Error::other("not an IP address"),
        })?
    };
    let listener = crate::listen::bind(SocketAddr::new(ip, port)).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            let (what, flag) = match which {
                Port::Http => ("the HTTP", "--port"),
                Port::Grpc => (
                    "the gRPC",
                    "--grpc-port (or turn gRPC off: `gatehouse settings set grpc.enabled false`)",
                ),
            };
            StartError::PortInUse {
                what,
                flag,
                host: host.to_string(),
                port,
                holder: gatehouse_core::ports::listening_process(port)
                    .map(|p| format!(" by {} (pid {})", p.name, p.pid))
                    .unwrap_or_default(),
            }
        } else {
            StartError::Bind {
                host: host.to_string(),
                port,
                source,
            }
        }
    })?;
    Ok(Listeners::with_loopback_v6(listener).await)
}

/// The address a client on this computer connects to: a server on every interface is reached
/// on loopback (a `0.0.0.0` Host is not one of its names).
fn reachable(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), address.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), address.port())
        }
        _ => address,
    }
}

/// Runs the ONNX server until SIGINT or SIGTERM.
pub async fn run(settings: Settings, paths: Paths) -> Result<(), StartError> {
    let (runtime, models_dir) = load_runtime(&settings, &paths)?;
    let frontend = Frontend::open(settings, paths, &runtime.version(), true).await?;
    let state = app_state(&frontend, runtime.version());
    if frontend.settings.workflows.allow_custom_python {
        tracing::warn!(
            event = "custom_python_enabled",
            "custom Python in workflows is on: anyone with a workflows key can run code here, inside the sandbox"
        );
        let sandbox = state.sandbox.clone();
        tokio::spawn(async move { crate::workflows::sandbox::probe(&sandbox).await });
    }
    frontend.announce();
    load_models(runtime, models_dir, &frontend.settings, &state);
    let grpc = frontend
        .grpc_address
        .is_some()
        .then(|| crate::grpc::router(&state));
    frontend.serve(router(state), grpc).await;
    Ok(())
}

/// ONNX Runtime from the configured library (or the one setup installs), and the model
/// repository it will serve.
fn load_runtime(settings: &Settings, paths: &Paths) -> Result<(Runtime, PathBuf), StartError> {
    let library = settings
        .inference
        .onnxruntime
        .clone()
        .unwrap_or_else(|| paths.default_onnxruntime_library());
    let runtime = Runtime::load(&library).map_err(StartError::Runtime)?;
    let models_dir: PathBuf = settings
        .server
        .models
        .clone()
        .unwrap_or_else(|| paths.default_models_dir());
    let version = runtime.version();
    tracing::info!(event = "runtime_loaded", library = %library.display(), version = %version,
        models = %models_dir.display(), "ONNX Runtime {version} loaded from {}", library.display());
    Ok((runtime, models_dir))
}

/// What every handler shares, from the opened front end: its limits, perimeter and metrics, and
/// the `/info` it tells.
fn app_state(frontend: &Frontend, onnxruntime_version: String) -> AppState {
    let settings = &frontend.settings;
    let paths = &frontend.paths;
    let metrics = frontend.metrics.clone();
    AppState::from(Shared {
        hosts: frontend.hosts.clone(),
        request_limits: RequestLimits::new(&settings.limits, metrics.clone()),
        cors: settings.cors.clone(),
        perimeter: frontend.perimeter.clone(),
        metrics_protected: frontend.metrics_protected(),
        metrics,
        repository: Arc::new(OnceLock::new()),
        info: Arc::new(ServerInfo {
            name: "gatehouse".into(),
            version: gatehouse_core::VERSION.into(),
            onnxruntime: onnxruntime_version,
            address: frontend.address.to_string(),
            loopback_only: frontend.address.ip().is_loopback(),
            tls: frontend.tls(),
            mtls: frontend.mtls(),
            auth: Some(settings.auth.enabled),
            custom_python: Some(settings.workflows.allow_custom_python),
            python_sandbox: None,
            keys_in_url: None,
            models_ready: 0,
            grpc_address: frontend.grpc_address.map(|a| a.to_string()),
            guarding: None,
        }),
        max_body_bytes: settings.limits.max_body_bytes,
        workflow_memory_bytes: settings.limits.workflow_memory_mb as usize * 1024 * 1024,
        allow_custom_python: settings.workflows.allow_custom_python,
        // Python steps must not see Gatehouse's own files: keys, settings, certificates, models.
        sandbox: SandboxConfig::new(
            &settings.workflows,
            vec![paths.config_dir.clone(), paths.data_dir.clone()],
        ),
    })
}

/// Loads the models on the blocking pool while the server already answers (readiness says when
/// they are in).
fn load_models(runtime: Runtime, models_dir: PathBuf, settings: &Settings, state: &AppState) {
    let options = LoadOptions {
        intra_threads: settings.inference.intra_threads,
        sessions_per_model: settings.inference.sessions_per_model,
        allow_symlinks: settings.inference.allow_model_symlinks,
    };
    let repository_slot = state.repository.clone();
    let metrics = state.metrics.clone();
    tokio::task::spawn_blocking(move || {
        let repository = Repository::load(&runtime, &models_dir, &options);
        let ready = repository.ready_count();
        metrics.set_models_loaded(ready);
        tracing::info!(
            event = "ready",
            models_ready = ready,
            models = repository.models.len(),
            "models loaded"
        );
        let _ = repository_slot.set(repository);
    });
}

/// Completes at SIGINT or SIGTERM, or when a time-limited exposure ends: then the settings go
/// back to loopback (audited) and the server stops, so that whoever starts it next — a
/// supervisor at once, on the settings change — starts it on this computer only.
async fn stop_at(deadline: Option<time::OffsetDateTime>, paths: Paths) {
    let Some(deadline) = deadline else {
        return shutdown_signal().await;
    };
    let left = (deadline - time::OffsetDateTime::now_utc()).max(time::Duration::ZERO);
    let wait = std::time::Duration::try_from(left).unwrap_or_default();
    tokio::select! {
        () = shutdown_signal() => {}
        () = tokio::time::sleep(wait) => {
            let file = paths.settings_file();
            let audit = AuditLog::new(paths.audit_log());
            let ended = tokio::task::spawn_blocking(move || gatehouse_core::exposure::stop(&file, &audit, gatehouse_core::audit::Actor::Deadline)).await;
            match ended {
                Ok(Ok(_)) => tracing::warn!(event = "exposure_ended", until = %deadline,
                    "the exposure ended: settings.toml is back on 127.0.0.1 and the server stops; it listens on this computer only from its next start"),
                Ok(Err(error)) => tracing::error!(event = "exposure_end_failed", %error,
                    "the exposure ended but settings.toml could not be changed; the server stops, and starts on loopback anyway because the deadline has passed"),
                Err(_) => {}
            }
            bounded_grace();
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    bounded_grace();
}

/// Past the grace period after a stop, the process exits even if a client holds a request open.
fn bounded_grace() {
    tracing::info!(
        event = "shutting_down",
        grace_seconds = crate::SHUTDOWN_GRACE.as_secs(),
        "finishing in-flight requests"
    );
    tokio::spawn(async {
        tokio::time::sleep(crate::SHUTDOWN_GRACE).await;
        tracing::warn!(
            event = "shutdown_forced",
            "in-flight requests did not finish in time; exiting"
        );
        std::process::exit(0);
    });
}

fn perimeter_is_empty(paths: &Paths) -> bool {
    KeyStore::new(paths.keys_file())
        .load()
        .map(|file| file.keys.iter().all(|k| k.revoked.is_some()))
        .unwrap_or(true)
}

/// The names the server answers to: this computer's, the certificate's and the settings'.
fn own_names(settings: &Settings, tls: Option<&TlsFiles>) -> Vec<String> {
    let mut names = gatehouse_core::certs::default_server_names(&settings.server.allowed_hosts);
    if let Some(files) = tls
        && let Ok(info) = gatehouse_core::certs::inspect(gatehouse_core::certs::CertRole::Server, &files.cert)
    {
        names.extend(info.names);
    }
    names
}
