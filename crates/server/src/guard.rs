//! `gatehouse guard`: Gatehouse's perimeter — Host check, CORS, limits, keys with scopes, the
//! guessing guard, TLS, the audit log, metrics — in front of an inference server Gatehouse did
//! not write, which listens on loopback only. The route table of the server's preset says which
//! scope each route needs; the proxy passes what is admitted on and streams the answer back.
//!
//! Gatehouse's own routes live under `/_gatehouse/`, where no inference server has any.

pub mod launch;
pub mod proxy;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_core::Settings;
use gatehouse_core::guard::{Access, RouteTable, Upstream};
use gatehouse_core::keys::Scope;
use gatehouse_core::paths::Paths;
use gatehouse_core::wire::{Guarding, ServerInfo, routes};

use crate::connections::Connection;
use crate::error::{ApiError, ErrorCode};
use crate::perimeter::requests::RequestLimits;
use crate::perimeter::{Gate, Perimeter};
use crate::serve::{Frontend, StartError};
use launch::Launch;
use proxy::Proxy;

/// Where the launched (or watched) upstream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Ready = 1,
    Restarting = 2,
    CrashLooping = 3,
    Failed = 4,
    /// Not launched by Gatehouse: whatever its health route says.
    External = 5,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Restarting => "restarting",
            Phase::CrashLooping => "crash-looping",
            Phase::Failed => "failed",
            Phase::External => "external",
        }
    }

    fn from_u8(value: u8) -> Phase {
        [
            Phase::Starting,
            Phase::Ready,
            Phase::Restarting,
            Phase::CrashLooping,
            Phase::Failed,
            Phase::External,
        ]
        .get(usize::from(value))
        .copied()
        .unwrap_or(Phase::Failed)
    }
}

/// The upstream's state as the guard knows it, shared with the launcher.
#[derive(Debug)]
pub struct UpstreamState {
    phase: AtomicU8,
    pid: AtomicU32,
    stop: tokio::sync::watch::Sender<bool>,
    /// What a launched upstream's output showed; `None` for one Gatehouse does not launch.
    output: std::sync::Mutex<Option<gatehouse_core::wire::UpstreamOutput>>,
}

impl UpstreamState {
    fn new(phase: Phase) -> UpstreamState {
        UpstreamState {
            phase: AtomicU8::new(phase as u8),
            pid: AtomicU32::new(0),
            stop: tokio::sync::watch::Sender::new(false),
            output: std::sync::Mutex::new(None),
        }
    }

    /// Looks at one line of a launched upstream's output, before it is redacted: a Gatehouse key
    /// there is one the upstream received, and a canary's nonce is the checklist's proof that a
    /// request reached it.
    pub fn watch_output(&self, line: &str) {
        let key_seen = gatehouse_core::keys::format::holds_key(line);
        let marker = gatehouse_core::wire::CANARY_PARAMETER;
        let nonce = line
            .find(marker)
            .and_then(|at| line[at + marker.len()..].strip_prefix('='))
            .map(|value| {
                value
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .take(64)
                    .collect::<String>()
            });
        let mut output = self
            .output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let output = output.get_or_insert_with(Default::default);
        if key_seen {
            output.keys_seen += 1;
            tracing::warn!(
                event = "upstream_received_key",
                "the guarded server's output holds a Gatehouse key: it received one, which the guard must never forward; the key is redacted here"
            );
        }
        if let Some(nonce) = nonce.filter(|n| !n.is_empty()) {
            if output.canaries.len() >= CANARIES_KEPT {
                output.canaries.remove(0);
            }
            output
                .canaries
                .push(gatehouse_core::wire::CanarySeen { nonce, key_seen });
        }
    }

    /// What a launched upstream's output has shown so far.
    pub fn output(&self) -> Option<gatehouse_core::wire::UpstreamOutput> {
        self.output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The upstream is launched: its output is watched from now on.
    pub fn watch(&self) {
        self.output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert_with(Default::default);
    }

    /// Asks the launcher to stop the upstream.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Completes once [`UpstreamState::stop`] was called.
    pub async fn stopping(&self) {
        let mut receiver = self.stop.subscribe();
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|pid| *pid != 0)
    }

    pub fn set_pid(&self, pid: Option<u32>) {
        self.pid.store(pid.unwrap_or(0), Ordering::Relaxed);
    }
}

/// Canary sightings kept: a checklist run sends one.
const CANARIES_KEPT: usize = 16;

/// What the guard's routes and middleware share.
pub struct Guard {
    pub perimeter: Arc<Perimeter>,
    pub table: RouteTable,
    pub proxy: Proxy,
    pub upstream: Arc<UpstreamState>,
    pub info: ServerInfo,
    pub metrics: Arc<crate::metrics::Metrics>,
    metrics_protected: bool,
    /// `workflows.allow_custom_python`: while false, requests carrying code for the upstream to
    /// run are refused here, whatever the upstream's own flag says.
    allow_custom_python: bool,
    max_body_bytes: usize,
    /// Where a refusal to guard an exposed upstream is recorded (and becomes a security event).
    audit: gatehouse_core::audit::AuditLog,
}

impl Guard {
    /// Whether the upstream answers its preset's health route (2xx), or, for a preset without
    /// one, accepts a connection.
    async fn upstream_healthy(&self) -> bool {
        match self.table.preset.health {
            Some(path) => self.proxy.status_of(path).await.is_ok_and(|s| s.is_success()),
            None => tokio::net::TcpStream::connect(self.proxy.upstream).await.is_ok(),
        }
    }
}

/// Runs the guard until SIGINT or SIGTERM.
pub async fn run(settings: Settings, paths: Paths) -> Result<(), StartError> {
    let guard_settings = settings.guard.clone();
    let table = RouteTable::new(&guard_settings).map_err(StartError::Guard)?;
    let preset = table.preset;
    let launching = !guard_settings.launch.is_empty();
    let command = if launching {
        gatehouse_core::guard::resolve_launch(preset, &guard_settings.launch).map_err(StartError::Guard)?
    } else {
        Vec::new()
    };
    let upstream = match &guard_settings.upstream {
        Some(text) => Upstream::parse(text).map_err(StartError::Guard)?,
        None if launching => Upstream {
            address: std::net::SocketAddr::from((
                [127, 0, 0, 1],
                launch::free_port().map_err(|e| {
                    StartError::Guard(format!("no free loopback port for the guarded server: {e}"))
                })?,
            )),
        },
        None => {
            return Err(StartError::Guard(
                "nothing to guard: give --upstream http://127.0.0.1:PORT, or --launch -- COMMAND to have Gatehouse start the server".into(),
            ));
        }
    };
    let port = upstream.address.port();
    if launching {
        if let Some(holder) = gatehouse_core::ports::listening_process(port) {
            return Err(StartError::Guard(format!(
                "port {port} is already held by {} (pid {}); stop it, or leave out --upstream so Gatehouse picks a free port for the server it launches",
                holder.name, holder.pid
            )));
        }
    } else {
        refuse_if_exposed(port, &gatehouse_core::audit::AuditLog::new(paths.audit_log()))?;
    }

    let audit = gatehouse_core::audit::AuditLog::new(paths.audit_log());
    // No gRPC port: what a guard stands in front of is reached over HTTP.
    let frontend = Frontend::open(settings, paths, "none", false).await?;
    let settings = &frontend.settings;
    let timeout = Duration::from_secs(u64::from(settings.limits.request_timeout_seconds));
    // Just inside the request limit, so a slow upstream is answered as one (504
    // `upstream_timeout`) rather than by the general request timeout.
    let upstream_timeout = timeout
        .saturating_sub(Duration::from_millis(250))
        .max(Duration::from_secs(1));
    let proxy = Proxy::new(
        upstream.address,
        upstream_timeout,
        settings.limits.max_body_bytes,
        frontend.tls(),
        frontend.metrics.clone(),
    );
    let state = Arc::new(UpstreamState::new(if launching {
        Phase::Starting
    } else {
        Phase::External
    }));
    let info = ServerInfo {
        name: "gatehouse".into(),
        version: gatehouse_core::VERSION.into(),
        onnxruntime: "none".into(),
        address: frontend.address.to_string(),
        loopback_only: frontend.address.ip().is_loopback(),
        tls: frontend.tls(),
        mtls: frontend.mtls(),
        auth: Some(settings.auth.enabled),
        custom_python: preset
            .custom_python
            .as_ref()
            .map(|_| settings.workflows.allow_custom_python),
        python_sandbox: None,
        keys_in_url: None,
        models_ready: 0,
        grpc_address: None,
        guarding: Some(Guarding {
            preset: preset.name.into(),
            upstream: Some(upstream.address.to_string()),
            state: state.phase().name().into(),
            launched: launching,
            output: None,
        }),
    };
    let guard = Arc::new(Guard {
        perimeter: frontend.perimeter.clone(),
        table,
        proxy,
        upstream: state.clone(),
        info,
        metrics: frontend.metrics.clone(),
        metrics_protected: frontend.metrics_protected(),
        allow_custom_python: settings.workflows.allow_custom_python,
        max_body_bytes: settings.limits.max_body_bytes,
        audit,
    });
    let launcher = if launching {
        let mut env: Vec<(String, String)> = preset
            .launch_env
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        env.extend(guard_settings.launch_env.clone());
        let switch = if settings.workflows.allow_custom_python {
            "True"
        } else {
            "False"
        };
        let launch = Launch::new(
            &command,
            env,
            port,
            &[("{custom_python}", switch), ("{public_url}", &frontend.url)],
        );
        Some(tokio::spawn(launch::supervise(launch, state.clone())))
    } else {
        None
    };
    tokio::spawn(watch(guard.clone()));
    tracing::info!(event = "guarding", preset = preset.name, upstream = %upstream.address, launched = launching,
        "guarding {} on {}", preset.servers, upstream.address);
    frontend.announce();
    let app = router(&frontend, guard.clone());
    frontend.serve(app, None).await;
    if let Some(launcher) = launcher {
        state.stop();
        let _ = launcher.await;
    }
    Ok(())
}

/// A server listening beyond loopback on the upstream's port can be called around the guard.
/// The refusal is audited, so it reaches the security events.
fn refuse_if_exposed(port: u16, audit: &gatehouse_core::audit::AuditLog) -> Result<(), StartError> {
    let exposed: Vec<String> = gatehouse_core::ports::listening_addresses(port)
        .into_iter()
        .filter(|ip| !ip.is_loopback())
        .map(|ip| ip.to_string())
        .collect();
    if exposed.is_empty() {
        return Ok(());
    }
    let mut line = serde_json::Map::new();
    line.insert("event".into(), "upstream_exposed".into());
    line.insert("port".into(), port.into());
    line.insert("addresses".into(), exposed.clone().into());
    if let Err(error) = audit.record(line) {
        tracing::warn!(event = "audit_write_failed", %error, "the exposed upstream could not be audited");
    }
    Err(StartError::Guard(format!(
        "the server to guard listens on {} port {port}, beyond this computer, so clients could reach it without going through Gatehouse; restart it bound to 127.0.0.1 (for Ollama: OLLAMA_HOST=127.0.0.1:{port}), or let Gatehouse launch it with --launch",
        exposed.join(", ")
    )))
}

/// Follows the upstream's health: marks a launched one ready when its health route first
/// answers, and stops the guard if it turns out to listen beyond loopback.
async fn watch(guard: Arc<Guard>) {
    let started = Instant::now();
    let port = guard.proxy.upstream.port();
    let mut checked_exposure = false;
    loop {
        let phase = guard.upstream.phase();
        if matches!(phase, Phase::CrashLooping | Phase::Failed) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let healthy = guard.upstream_healthy().await;
        if healthy && !checked_exposure {
            checked_exposure = true;
            if let Err(error) = refuse_if_exposed(port, &guard.audit) {
                tracing::error!(event = "upstream_exposed", error = %error, "stopping: the guarded server is reachable around Gatehouse");
                guard.upstream.stop();
                // Long enough for the launcher's SIGTERM to reach the upstream.
                tokio::time::sleep(Duration::from_millis(500)).await;
                std::process::exit(1);
            }
        }
        if phase != Phase::External {
            let next = if healthy {
                Phase::Ready
            } else if phase == Phase::Ready {
                Phase::Restarting
            } else {
                phase
            };
            if next == Phase::Ready && phase != Phase::Ready {
                tracing::info!(
                    event = "upstream_ready",
                    seconds = started.elapsed().as_secs_f64(),
                    "the guarded server is ready"
                );
            }
            guard.upstream.set_phase(next);
        }
        let pause = if healthy {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(100)
        };
        tokio::time::sleep(pause).await;
    }
}

/// The guard's whole HTTP surface: Gatehouse's own routes, then everything else to the proxy.
fn router(frontend: &Frontend, guard: Arc<Guard>) -> Router {
    let own = Router::new()
        .route(routes::HEALTHZ, get(healthz))
        .route(routes::READINESS, get(readiness))
        .route(routes::INFO, get(info));
    let metrics = Router::new().route(routes::METRICS, get(metrics));
    let metrics = if guard.metrics_protected {
        metrics.route_layer(axum::middleware::from_fn_with_state(
            Gate::headers_only(guard.perimeter.clone(), Scope::Metrics),
            crate::perimeter::authenticate,
        ))
    } else {
        metrics
    };
    let proxied = Router::new()
        .fallback(forward)
        .layer(axum::middleware::from_fn_with_state(guard.clone(), admit));
    let routes = own.merge(metrics).merge(proxied).with_state(guard);
    let settings = &frontend.settings;
    crate::with_common_layers(
        routes,
        &crate::Common {
            hosts: frontend.hosts.clone(),
            request_limits: RequestLimits::new(&settings.limits, frontend.metrics.clone()),
            cors: settings.cors.clone(),
            metrics: frontend.metrics.clone(),
            unmatched: "upstream",
        },
    )
}

/// Chooses the gate for the route the request asks for, from the preset's table.
async fn admit(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if let Some(problem) = ambiguous(path) {
        return ApiError::new(ErrorCode::AmbiguousPath,
            format!("the path {problem}; a server behind Gatehouse could read it as a different route than Gatehouse checked. Send the path in its plain form"),
        )
        .into_response();
    }
    // A small request without a credential is read before the key check, so the checklist can
    // prove the refusal from outside; it tells nothing but the switch's position. Anything else
    // is read only once its key passed (in `forward`), so no one without a key can make
    // Gatehouse hold a large body.
    let unauthenticated_and_small = !request.headers().contains_key(axum::http::header::AUTHORIZATION)
        && !request.headers().contains_key("x-api-key")
        && declared_length(&request).is_some_and(|length| length <= UNAUTHENTICATED_INSPECTION);
    let request = if unauthenticated_and_small {
        match refuse_custom_python(&guard, request, UNAUTHENTICATED_INSPECTION).await {
            Ok(request) => request,
            Err(refusal) => return refusal,
        }
    } else {
        request
    };
    let path = request.uri().path();
    match guard.table.access(request.method().as_str(), path) {
        Access::Public => next.run(request).await,
        Access::Observe if !guard.metrics_protected => next.run(request).await,
        Access::Observe => {
            let gate = Gate::headers_only(guard.perimeter.clone(), Scope::Metrics);
            crate::perimeter::authenticate_as(&gate, request, next).await
        }
        Access::Key(scope) => {
            let gate = Gate::headers_only(guard.perimeter.clone(), scope);
            let mut response = crate::perimeter::authenticate_as(&gate, request, next).await;
            if guard.table.preset.browser_login && response.status() == axum::http::StatusCode::UNAUTHORIZED {
                response.headers_mut().append(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Basic realm=\"gatehouse\", charset=\"UTF-8\""),
                );
            }
            response
        }
    }
}

/// The largest body read for custom Python before its key is checked: a workflow of a few
/// blocks, and the checklist's probe.
const UNAUTHENTICATED_INSPECTION: usize = 64 * 1024;

fn declared_length(request: &Request) -> Option<usize> {
    request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// While custom Python is off, a request to one of the preset's code-carrying routes is read
/// whole (within `limit`) and refused with 403 `custom_python_disabled` when it carries code;
/// otherwise it goes on with the same bytes.
async fn refuse_custom_python(guard: &Guard, request: Request, limit: usize) -> Result<Request, Response> {
    let Some(python) = guard.table.preset.custom_python.as_ref() else {
        return Ok(request);
    };
    let path = request.uri().path();
    if guard.allow_custom_python
        || request.method() != axum::http::Method::POST
        || !python
            .routes
            .iter()
            .any(|pattern| gatehouse_core::guard::matches(pattern, path))
    {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {limit} bytes (limits.max_body_bytes) or was cut off"),
        )
        .into_response()
    })?;
    let refuse = |message: String| ApiError::new(ErrorCode::CustomPythonDisabled, message).into_response();
    match gatehouse_core::guard::carries_custom_python(&bytes) {
        Ok(false) => Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
        Ok(true) => Err(refuse(format!(
            "this workflow carries custom Python, and custom Python is off, so Gatehouse did not pass it to {}; turn it on with `gatehouse settings set workflows.allow_custom_python true` (or the panel's switch) only if you trust everyone who holds a workflows key",
            guard.table.preset.servers
        ))),
        Err(problem) => Err(refuse(format!(
            "{problem}; while custom Python is off, Gatehouse reads every workflow to {} to be sure it carries no code, so send the workflow as JSON",
            guard.table.preset.servers
        ))),
    }
}

/// Why a path may mean something else to the upstream than to the route table: dot segments,
/// empty segments, encoded slashes, dots or backslashes. Servers normalise these differently,
/// so a key allowed `/v1/**` could otherwise reach `/v1/../api/pull`.
fn ambiguous(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("does not start with /");
    }
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%2e", "%5c", "%00"]
        .iter()
        .any(|encoded| lower.contains(encoded))
        || path.contains('\\')
    {
        return Some("contains an encoded slash, dot, backslash or NUL");
    }
    if path.len() > 1
        && path[1..]
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    {
        return Some("contains a . or .. segment");
    }
    if path.contains("//") {
        return Some("contains an empty segment (//)");
    }
    None
}

async fn forward(State(guard): State<Arc<Guard>>, request: Request) -> Response {
    match refuse_custom_python(&guard, request, guard.max_body_bytes).await {
        Ok(request) => guard.proxy.forward(request).await,
        Err(refusal) => refusal,
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// 200 once the upstream answers its health route; 503 with its state until then.
async fn readiness(State(guard): State<Arc<Guard>>) -> Response {
    let phase = guard.upstream.phase();
    let ready = match phase {
        Phase::Ready => true,
        Phase::External => guard.upstream_healthy().await,
        _ => false,
    };
    if ready {
        return Json(serde_json::json!({"status": "ready", "upstream": phase.name()})).into_response();
    }
    ApiError::new(
        ErrorCode::UpstreamNotReady,
        format!(
            "the guarded server is {}; retry shortly",
            match phase {
                Phase::External => "not answering its health route",
                other => other.name(),
            }
        ),
    )
    .into_response()
}

async fn info(
    State(guard): State<Arc<Guard>>,
    connection: Option<axum::Extension<Connection>>,
) -> Json<ServerInfo> {
    let mut info = guard.info.clone();
    if let Some(guarding) = info.guarding.as_mut() {
        guarding.state = guard.upstream.phase().name().into();
    }
    if !crate::api::is_local(connection.as_ref().map(|c| &c.0)) {
        info.auth = None;
        if let Some(guarding) = info.guarding.as_mut() {
            guarding.upstream = None;
        }
        return Json(info);
    }
    info.keys_in_url = Some(guard.perimeter.url_keys.recent(time::OffsetDateTime::now_utc()));
    if let Some(guarding) = info.guarding.as_mut() {
        guarding.output = guard.upstream.output();
    }
    Json(info)
}

async fn metrics(State(guard): State<Arc<Guard>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        guard.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_another_server_could_read_differently_are_refused() {
        for path in [
            "/v1/../api/pull",
            "/v1/./x",
            "/v1//x",
            "/v1/%2e%2e/api/pull",
            "/v1%2Fapi",
            "/v1/x\\..\\y",
            "/api/%00",
        ] {
            assert!(ambiguous(path).is_some(), "{path}");
        }
        for path in [
            "/",
            "/v1/chat/completions",
            "/v1/models/a.b:predict",
            "/api/blobs/sha256:1",
        ] {
            assert_eq!(ambiguous(path), None, "{path}");
        }
    }

    #[test]
    fn phases_survive_the_atomic_round_trip() {
        let state = UpstreamState::new(Phase::Starting);
        for phase in [
            Phase::Ready,
            Phase::CrashLooping,
            Phase::External,
            Phase::Restarting,
        ] {
            state.set_phase(phase);
            assert_eq!(state.phase(), phase);
        }
    }
}
