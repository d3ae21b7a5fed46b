//! Gatehouse's settings: one typed struct whose `Default` is the secure configuration.
//!
//! Sources, strongest first: command-line flags > environment > `settings.toml` > defaults. Every
//! source goes through the same dotted-key mechanism ([`Settings::set`]), so a value from `PORT`, from
//! `gatehouse settings set server.port` or from the file is parsed and checked the same way.
//! Validation reports every problem at once, each naming the field, what is wrong and the fix.
//! A broken file is reported, never replaced.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil;

mod table;
mod validate;

pub use table::panel_fix;
use table::{Kind, ROWS, row_of};

/// All of Gatehouse's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    /// The Open Inference Protocol over gRPC, beside the HTTP port and behind the same perimeter.
    pub grpc: GrpcSettings,
    pub tls: TlsSettings,
    pub cors: CorsSettings,
    pub auth: AuthSettings,
    pub inference: InferenceSettings,
    pub limits: LimitSettings,
    pub audit: AuditSettings,
    pub log: LogSettings,
    pub workflows: WorkflowSettings,
    /// Guard mode: the server Gatehouse stands in front of, when it is not its own.
    pub guard: crate::guard::GuardSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on. Loopback by default: only this computer can connect.
    pub host: String,
    /// TCP port; 0 asks the OS for a free one.
    pub port: u16,
    /// The model repository (`<name>/<version>/model.onnx`); empty means the one setup installs.
    pub models: Option<PathBuf>,
    /// Who may read `/metrics`.
    pub metrics_access: MetricsAccess,
    /// Further names clients may address the server by (the `Host` they send), beyond
    /// `localhost`, the host name, its addresses and the names in its certificate. Requests to
    /// any other name get 421: the defence against DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// When set (RFC 3339), the address above holds until then and loopback after: a
    /// time-limited exposure (`gatehouse expose --for 1h`). Unset, the address is deliberate.
    pub exposed_until: Option<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "127.0.0.1".into(),
            port: 9001,
            models: None,
            metrics_access: MetricsAccess::Auto,
            allowed_hosts: Vec::new(),
            exposed_until: None,
        }
    }
}

/// Who may read `/metrics` and the API documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    /// Anyone while the server is bound to loopback; a `metrics` key beyond it.
    #[default]
    Auto,
    Public,
    Key,
}

impl MetricsAccess {
    /// Whether a `metrics` key is needed on a server listening on `loopback` or not.
    pub fn needs_key(self, loopback: bool) -> bool {
        match self {
            MetricsAccess::Public => false,
            MetricsAccess::Key => true,
            MetricsAccess::Auto => !loopback,
        }
    }
}

/// The gRPC port. It listens on `server.host` like the HTTP port, with the same TLS, keys and
/// limits; a guard has none (what it guards speaks HTTP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct GrpcSettings {
    /// Serve gRPC at all.
    pub enabled: bool,
    /// TCP port; 0 asks the OS for a free one. The HTTP port's neighbour, as Triton's 8000 and
    /// 8001 are.
    pub port: u16,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        GrpcSettings {
            enabled: true,
            port: 9002,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// Speak HTTPS (TLS 1.2 and 1.3 only).
    pub enabled: bool,
    /// The server's certificate chain (PEM); empty means the one `gatehouse certs init` made.
    pub cert: Option<PathBuf>,
    /// The server's private key (PEM); empty means the one `gatehouse certs init` made.
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to; set, it turns on mutual TLS:
    /// a client without a valid certificate is refused during the handshake.
    pub client_ca: Option<PathBuf>,
    /// Listen beyond this computer without TLS anyway. Off, such a start is refused: keys and
    /// data would cross the network in plain text.
    pub allow_plaintext_network: bool,
}

/// Which web pages may call the server from a browser. Empty: none (browsers block every
/// cross-origin call), the secure default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins such as `http://localhost:5173`; `*` alone allows any page, never with credentials.
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
}

impl Default for CorsSettings {
    fn default() -> Self {
        CorsSettings {
            allowed_origins: Vec::new(),
            allowed_methods: vec!["GET".into(), "POST".into()],
            allowed_headers: vec!["authorization".into(), "content-type".into(), "x-api-key".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Every non-public endpoint needs an API key. Turning this off shows red on the checklist.
    pub enabled: bool,
    /// Allow listening beyond this computer with authentication off. Refused otherwise: anyone on
    /// the network could then use the server.
    pub allow_open_network: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            enabled: true,
            allow_open_network: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowSettings {
    /// Let workflows run `python` steps. Off: anyone who can submit a workflow could otherwise run
    /// code on this computer, so it stays off unless someone turns it on deliberately.
    pub allow_custom_python: bool,
    /// The interpreter python steps run in (the system's; a virtualenv under your home directory
    /// would be hidden by the sandbox).
    pub python: PathBuf,
    /// Wall-clock limit of one python step.
    pub python_timeout_seconds: u32,
    /// CPU-time limit of one python step.
    pub python_cpu_seconds: u32,
    /// Address-space limit of one python step.
    pub python_memory_mb: u32,
    /// Largest JSON a python step may return.
    pub python_output_bytes: u32,
    /// Run python steps even when a layer of the sandbox (namespaces, Landlock, seccomp) cannot
    /// be had on this kernel. Off: such steps are refused with the missing layer named.
    pub allow_weaker_sandbox: bool,
}

impl Default for WorkflowSettings {
    fn default() -> Self {
        WorkflowSettings {
            allow_custom_python: false,
            python: PathBuf::from("/usr/bin/python3"),
            python_timeout_seconds: 10,
            python_cpu_seconds: 5,
            python_memory_mb: 512,
            python_output_bytes: 1 << 20,
            allow_weaker_sandbox: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// One JSON line per authenticated or refused request and per key change.
    pub enabled: bool,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings { enabled: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct InferenceSettings {
    /// Threads ONNX Runtime may use inside one inference.
    pub intra_threads: usize,
    /// Sessions per model version at most, i.e. how many requests to one model run at the same
    /// time; 0 means one per CPU core. One is made at load and the others when that many requests
    /// first arrive together, so an idle server holds a single copy of each model.
    pub sessions_per_model: usize,
    /// The ONNX Runtime library; empty means the one setup installs.
    pub onnxruntime: Option<PathBuf>,
    /// Open a `model.onnx` that is a symbolic link, or lies outside the model repository through
    /// one. Off: a link placed in the repository cannot make the server open any file it names.
    pub allow_model_symlinks: bool,
}

impl Default for InferenceSettings {
    fn default() -> Self {
        InferenceSettings {
            intra_threads: 1,
            sessions_per_model: 0,
            onnxruntime: None,
            allow_model_symlinks: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Sustained requests per second one API key may make (bursts of twice this pass).
    pub key_requests_per_second: u32,
    /// Sustained requests per second from one client address.
    pub address_requests_per_second: u32,
    /// Failed authentications from one address within a minute before each further one is slowed.
    pub auth_failures_before_slowdown: u32,
    /// Failed authentications from one address within a minute before it is refused outright.
    pub auth_failures_before_lockout: u32,
    /// How long a locked-out address is refused.
    pub auth_lockout_seconds: u32,
    /// Requests handled at once; more get 503 with `Retry-After`.
    pub max_concurrent_requests: u32,
    /// A request that takes longer gets 504.
    pub request_timeout_seconds: u32,
    /// Longest request target (path and query) accepted; longer gets 414.
    pub max_uri_bytes: u32,
    /// Largest total size of request headers accepted; larger gets 431.
    pub max_header_bytes: u32,
    /// Connections open at once; past it a new one is closed at once (counted in `/metrics`).
    pub max_connections: u32,
    /// TLS handshakes in progress at once; past it a new connection is closed at once.
    pub max_tls_handshakes: u32,
    /// Seconds a connection has, from being ready for a request, to send that request's
    /// headers; bounds slow senders and idle keep-alive connections alike.
    pub header_read_timeout_seconds: u32,
    /// Megabytes one workflow's step results may hold at once; past it the request gets 413.
    pub workflow_memory_mb: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_body_bytes: 8 * 1024 * 1024,
            key_requests_per_second: 1000,
            address_requests_per_second: 2000,
            auth_failures_before_slowdown: 10,
            auth_failures_before_lockout: 30,
            auth_lockout_seconds: 300,
            max_concurrent_requests: 256,
            request_timeout_seconds: 60,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_connections: 4096,
            max_tls_handshakes: 256,
            header_read_timeout_seconds: 10,
            workflow_memory_mb: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter such as `info` or `gatehouse_server=debug,info`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { level: "info".into() }
    }
}

/// One thing wrong with the settings, said so a person can fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted settings key, e.g. `server.port`.
    pub field: String,
    /// Where the bad value came from, e.g. `environment variable PORT`.
    pub source: Option<String>,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.field)?;
        if let Some(source) = &self.source {
            write!(f, " (from {source})")?;
        }
        write!(f, ": {}; fix: {}", self.message, self.fix)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the settings file {path}: {source}; fix: check that the file is readable by you")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error(
        "the settings file {path} is not valid: {message}; fix: correct it, or move it aside to start \
         from the defaults (a previous version, if any, is at {backup})"
    )]
    Malformed {
        path: PathBuf,
        backup: PathBuf,
        message: String,
    },
    #[error("invalid settings:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    #[error(
        "cannot write the settings file {path}: {source}; fix: check free disk space and that the directory is writable; the previous file is unchanged"
    )]
    Write { path: PathBuf, source: std::io::Error },
}

impl Settings {
    /// Reads `path`; a missing file means the defaults.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(source) => {
                return Err(SettingsError::Unreadable {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Self::parse(&text).map_err(|message| SettingsError::Malformed {
            path: path.to_path_buf(),
            backup: fsutil::backup_path(path),
            message,
        })
    }

    /// The text of a settings file read as [`Settings::load`] reads it; the message names the line.
    pub fn parse(text: &str) -> Result<Settings, String> {
        toml::from_str(text).map_err(|error| fsutil::toml_error(text, &error))
    }

    /// The settings a server started now would run with: `settings.toml`, then the process
    /// environment over it. Every front end reads them this one way.
    pub fn effective(path: &Path) -> Result<Settings, SettingsError> {
        let mut settings = Settings::load(path)?;
        settings.apply_environment(|name| std::env::var(name).ok())?;
        // An exposure whose time is up is loopback, whoever reads the settings and whenever.
        crate::exposure::apply(&mut settings, time::OffsetDateTime::now_utc());
        Ok(settings)
    }

    /// Applies environment overrides from `var` (the process environment in production).
    pub fn apply_environment(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        for row in ROWS {
            for name in row.environment {
                let Some(value) = var(name).filter(|v| !v.is_empty()) else {
                    continue;
                };
                if let Err(mut problem) = self.set(row.key, &value) {
                    problem.source = Some(format!("environment variable {name}"));
                    problems.push(problem);
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::Invalid(problems))
        }
    }

    /// Sets one dotted key (`server.port`) from text, parsed as that key's type.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Problem> {
        let problem = |message: String, fix: String| Problem {
            field: key.to_string(),
            source: None,
            message,
            fix,
        };
        let mut tree =
            toml::Table::try_from(&*self).map_err(|e| problem(e.to_string(), "report this".into()))?;
        let (section, field) = key.split_once('.').ok_or_else(|| {
            problem(
                "not a settings key".into(),
                format!("use one of: {}", Self::keys().join(", ")),
            )
        })?;
        let Some(toml::Value::Table(table)) = tree.get_mut(section) else {
            return Err(problem(
                "no such settings section".into(),
                format!("use one of: {}", Self::keys().join(", ")),
            ));
        };
        let Some(kind) = row_of(key).map(|row| row.kind) else {
            return Err(problem(
                "no such setting".into(),
                format!("use one of: {}", Self::keys().join(", ")),
            ));
        };
        let parsed = match kind {
            Kind::Integer => value
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| {
                    problem(
                        format!("`{value}` is not a whole number"),
                        "give a whole number such as 9001".into(),
                    )
                })?,
            // Any case: Roboflow's documentation and its users' environments spell it `True`.
            Kind::Bool => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "on" | "yes" | "1" => toml::Value::Boolean(true),
                "false" | "off" | "no" | "0" => toml::Value::Boolean(false),
                _ => {
                    return Err(problem(
                        format!("`{value}` is not true or false"),
                        "give true or false".into(),
                    ));
                }
            },
            // An empty value clears the setting: back to its default (none, for a path).
            Kind::Text if value.trim().is_empty() => {
                table.remove(field);
                return self
                    .replace_with(tree)
                    .map_err(|e| problem(e, "give a value in the setting's range".into()));
            }
            Kind::Text => toml::Value::String(value.to_string()),
            Kind::List => toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| toml::Value::String(v.to_string()))
                    .collect(),
            ),
        };
        table.insert(field.to_string(), parsed);
        self.replace_with(tree)
            .map_err(|e| problem(e, "give a value in the setting's range".into()))
    }

    fn replace_with(&mut self, tree: toml::Table) -> Result<(), String> {
        *self = toml::Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        Ok(())
    }

    /// Every settable dotted key.
    pub fn keys() -> Vec<&'static str> {
        ROWS.iter().map(|row| row.key).collect()
    }

    /// The settings as they would be written to `settings.toml`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|error| format!("# cannot render settings: {error}\n"))
    }

    /// Validates and writes the settings to `path` atomically (0600, previous version as `.bak`).
    pub fn save(&self, path: &Path) -> Result<(), SettingsError> {
        self.validate()?;
        fsutil::write_atomic(path, self.to_toml().as_bytes()).map_err(|source| SettingsError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// What [`change`] did: the settings now in the file, and whether the audit line could not be written.
pub struct Changed {
    pub settings: Settings,
    /// The change is made; only its audit line is missing.
    pub unaudited: Option<std::io::Error>,
}

/// One edit of the settings file, made the same way by `gatehouse settings set`, a checklist fix
/// and the panel: every value parsed and the result validated before anything is written
/// (atomically, the previous version kept as `.bak`), then each change audited with its previous
/// value. Settings hold no secrets; switches such as `workflows.allow_custom_python` are security
/// decisions worth a trail.
pub fn change(
    file: &Path,
    audit: &crate::audit::AuditLog,
    changes: &[(&str, &str)],
    actor: crate::audit::Actor,
) -> Result<Changed, SettingsError> {
    let mut settings = Settings::load(file)?;
    let before = toml::Table::try_from(&settings).ok();
    for (key, value) in changes {
        settings
            .set(key, value)
            .map_err(|problem| SettingsError::Invalid(vec![problem]))?;
    }
    settings.save(file)?;
    let mut unaudited = None;
    for (key, value) in changes {
        let previous = before.as_ref().and_then(|tree| {
            let (section, field) = key.split_once('.')?;
            tree.get(section)?.get(field).map(ToString::to_string)
        });
        let mut event = serde_json::Map::new();
        event.insert("event".into(), "setting_changed".into());
        event.insert("key".into(), (*key).into());
        event.insert("value".into(), (*value).into());
        event.insert("previous".into(), previous.unwrap_or_default().into());
        event.insert("actor".into(), actor.name().into());
        if let Err(error) = audit.record(event) {
            unaudited = Some(error);
        }
    }
    Ok(Changed { settings, unaudited })
}

#[cfg(test)]
mod tests;
