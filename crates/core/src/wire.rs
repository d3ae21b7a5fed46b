//! Types that cross HTTP between the server and its clients in this workspace (the checklist,
//! the supervisor, the panel): the server serialises them, the others read them back typed.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Gatehouse's own routes, the same on its ONNX server and in front of a guarded one: under a
/// prefix no inference server uses, so a guard can pass every other path on. The ONNX server
/// also answers the short forms (`/info`, `/readiness`, `/healthz`, `/metrics`).
pub mod routes {
    pub const HEALTHZ: &str = "/_gatehouse/healthz";
    pub const READINESS: &str = "/_gatehouse/readiness";
    pub const INFO: &str = "/_gatehouse/info";
    pub const METRICS: &str = "/_gatehouse/metrics";
}

/// What `/info` tells: to anyone, what a client needs to connect; to clients on this computer, also
/// the posture the checklist judges. Never a secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    pub onnxruntime: String,
    /// The address the server listens on.
    pub address: String,
    /// True when only this computer can connect.
    pub loopback_only: bool,
    pub tls: bool,
    pub mtls: bool,
    /// Whether protected endpoints need an API key. Told to clients on this computer only, like
    /// the fields below: beyond it they would tell an attacker where to start.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "bindings", ts(optional))]
    pub auth: Option<bool>,
    /// Whether workflows may run `python` steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "bindings", ts(optional))]
    pub custom_python: Option<bool>,
    /// With custom Python on: the sandbox layers in force and the ones this system lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "bindings", ts(optional))]
    pub python_sandbox: Option<PythonSandbox>,
    /// Valid keys sent in a URL (`?api_key=`) in the last 24 hours, most recent first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "bindings", ts(optional))]
    pub keys_in_url: Option<Vec<KeyInUrl>>,
    pub models_ready: usize,
    /// Where the Open Inference Protocol's gRPC service listens, when it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "bindings", ts(optional))]
    pub grpc_address: Option<String>,
    /// In guard mode: what Gatehouse stands in front of.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "bindings", ts(optional))]
    pub guarding: Option<Guarding>,
}

/// The server a guard stands in front of.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default)]
pub struct Guarding {
    /// The route table in force (`ollama`, `openai`, `oip`, `tfserving`, `generic`).
    pub preset: String,
    /// Its loopback address; told to clients on this computer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "bindings", ts(optional))]
    pub upstream: Option<String>,
    /// starting, ready, restarting, crash-looping, failed, or external (not launched by Gatehouse).
    pub state: String,
    /// Whether Gatehouse launched it and restarts it.
    pub launched: bool,
    /// What the launched server's own output showed of the requests it received; told to
    /// clients on this computer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "bindings", ts(optional))]
    pub output: Option<UpstreamOutput>,
}

/// A launched server's output, watched for Gatehouse keys: a key there is a key the server
/// received, which the guard must never let happen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default)]
pub struct UpstreamOutput {
    /// Lines of its output that held something shaped like a Gatehouse key (before Gatehouse's
    /// log redacted it).
    pub keys_seen: u64,
    /// The checklist's canary requests the server logged, most recent last.
    pub canaries: Vec<CanarySeen>,
}

/// One canary request in a launched server's output: the checklist sends a request carrying a
/// made-up Gatehouse key and a nonce (`gatehouse_canary=`) and looks for the nonce here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default)]
pub struct CanarySeen {
    pub nonce: String,
    /// The line that logged it also held a Gatehouse key.
    pub key_seen: bool,
}

/// The query parameter carrying a canary's nonce.
pub const CANARY_PARAMETER: &str = "gatehouse_canary";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default)]
pub struct PythonSandbox {
    pub layers: Vec<String>,
    pub missing: Vec<String>,
    /// Python steps run although a layer is missing (`workflows.allow_weaker_sandbox`).
    pub weaker_accepted: bool,
}

/// One key seen in a URL: where from last, when, and how often in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct KeyInUrl {
    pub key_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    #[cfg_attr(feature = "bindings", ts(type = "string"))]
    pub address: IpAddr,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    #[cfg_attr(feature = "bindings", ts(type = "string"))]
    pub last_seen: OffsetDateTime,
    pub count: u64,
}

/// A row of the repository index, as Triton's `POST /v2/repository/index` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct IndexEntry {
    pub name: String,
    pub version: String,
    pub state: ModelState,
    /// Why the version cannot be served; empty when ready.
    pub reason: String,
}

/// Whether a model version can be served, in the words of Triton's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "UPPERCASE")]
pub enum ModelState {
    Ready,
    Unavailable,
}

impl ModelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Ready => "READY",
            ModelState::Unavailable => "UNAVAILABLE",
        }
    }
}
