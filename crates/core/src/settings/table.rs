//! Every setting in one table: its dotted key, the environment variables that set it, how its
//! text is parsed and what its value must satisfy. `set`, the environment and `validate` all
//! read this table, so a new setting is one row, and a row cannot be half there.

use super::*;

/// How a key's text is parsed.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Integer,
    Bool,
    Text,
    /// Comma-separated text.
    List,
}

/// What one value must satisfy on its own; rules that weigh several settings together are the
/// named functions in [`RULES`].
#[derive(Clone, Copy)]
pub(super) enum Check {
    /// Whatever the type holds (a port's range is the type's).
    Any,
    /// A whole number in `low..=high`.
    Range { low: i64, high: i64, fix: &'static str },
    /// A path, when set, that starts with `/`.
    Absolute { fix: &'static str },
    /// A check of its own, returning each (what is wrong, the fix).
    Rule(fn(&Settings) -> Vec<(String, String)>),
}

pub(super) struct Row {
    pub key: &'static str,
    /// Weakest first: Roboflow Inference's names come before Gatehouse's where they overlap, so
    /// an existing deployment's environment keeps working and `GATEHOUSE_*` wins over it.
    pub environment: &'static [&'static str],
    pub kind: Kind,
    pub check: Check,
}

const fn row(key: &'static str, environment: &'static [&'static str], kind: Kind, check: Check) -> Row {
    Row {
        key,
        environment,
        kind,
        check,
    }
}

const fn at_least(low: i64, fix: &'static str) -> Check {
    Check::Range {
        low,
        high: u32::MAX as i64,
        fix,
    }
}

const fn between(low: i64, high: i64, fix: &'static str) -> Check {
    Check::Range { low, high, fix }
}

const PATH: Check = Check::Absolute {
    fix: "give the full path, starting with /",
};

use Check::Any;
use Kind::{Bool, Integer, List, Text};

pub(super) const ROWS: &[Row] = &[
    row(
        "server.host",
        &["HOST", "GATEHOUSE_HOST"],
        Text,
        Check::Rule(host_is_an_address),
    ),
    row("server.port", &["PORT", "GATEHOUSE_PORT"], Integer, Any),
    row("grpc.enabled", &["GATEHOUSE_GRPC"], Bool, Any),
    row("grpc.port", &["GATEHOUSE_GRPC_PORT"], Integer, Any),
    row("server.models", &["GATEHOUSE_MODELS"], Text, PATH),
    // Its type holds only auto, public and key.
    row("server.metrics_access", &["GATEHOUSE_METRICS_ACCESS"], Text, Any),
    row(
        "server.allowed_hosts",
        &["GATEHOUSE_ALLOWED_HOSTS"],
        List,
        Check::Rule(allowed_hosts_are_names),
    ),
    row(
        "server.exposed_until",
        &[],
        Text,
        Check::Rule(exposure_end_is_a_time),
    ),
    row("tls.enabled", &["ENABLE_HTTPS", "GATEHOUSE_TLS"], Bool, Any),
    row("tls.cert", &["SSL_CERTFILE"], Text, PATH),
    row("tls.key", &["SSL_KEYFILE"], Text, PATH),
    row("tls.client_ca", &["SSL_CA_CERTS"], Text, PATH),
    row("tls.allow_plaintext_network", &[], Bool, Any),
    row(
        "cors.allowed_origins",
        &["GATEHOUSE_CORS_ORIGINS"],
        List,
        Check::Rule(origins_are_origins),
    ),
    row("cors.allowed_methods", &[], List, Any),
    row("cors.allowed_headers", &[], List, Any),
    row("auth.enabled", &["GATEHOUSE_AUTH"], Bool, Any),
    row(
        "auth.allow_open_network",
        &["GATEHOUSE_ALLOW_OPEN_NETWORK"],
        Bool,
        Any,
    ),
    row(
        "inference.intra_threads",
        &["GATEHOUSE_INTRA_THREADS"],
        Integer,
        between(
            1,
            256,
            "use 1 for many small concurrent requests, or the number of cores for one big model",
        ),
    ),
    row(
        "inference.sessions_per_model",
        &["GATEHOUSE_SESSIONS_PER_MODEL"],
        Integer,
        between(0, 256, "use 0 (one per CPU core) or a small number"),
    ),
    row("inference.onnxruntime", &["ORT_DYLIB_PATH"], Text, PATH),
    row("inference.allow_model_symlinks", &[], Bool, Any),
    row(
        "limits.max_body_bytes",
        &["GATEHOUSE_MAX_BODY_BYTES"],
        Integer,
        Check::Range {
            low: 1024,
            high: i64::MAX,
            fix: "a smaller body cannot hold any inference request; the default is 8388608 (8 MiB)",
        },
    ),
    row(
        "limits.key_requests_per_second",
        &["GATEHOUSE_KEY_RPS"],
        Integer,
        at_least(1, "the default is 1000"),
    ),
    row(
        "limits.address_requests_per_second",
        &["GATEHOUSE_ADDRESS_RPS"],
        Integer,
        at_least(1, "the default is 2000"),
    ),
    row(
        "limits.auth_failures_before_slowdown",
        &["GATEHOUSE_AUTH_FAILURES_BEFORE_SLOWDOWN"],
        Integer,
        at_least(1, "the default is 10"),
    ),
    row(
        "limits.auth_failures_before_lockout",
        &["GATEHOUSE_AUTH_FAILURES_BEFORE_LOCKOUT"],
        Integer,
        at_least(1, "the default is 30"),
    ),
    row(
        "limits.auth_lockout_seconds",
        &["GATEHOUSE_AUTH_LOCKOUT_SECONDS"],
        Integer,
        between(1, 86_400, "the default is 300"),
    ),
    row(
        "limits.max_concurrent_requests",
        &["GATEHOUSE_MAX_CONCURRENT"],
        Integer,
        at_least(1, "the default is 256"),
    ),
    row(
        "limits.request_timeout_seconds",
        &["GATEHOUSE_REQUEST_TIMEOUT"],
        Integer,
        at_least(1, "the default is 60"),
    ),
    row(
        "limits.max_uri_bytes",
        &["GATEHOUSE_MAX_URI_BYTES"],
        Integer,
        at_least(256, "the default is 8192"),
    ),
    row(
        "limits.max_header_bytes",
        &["GATEHOUSE_MAX_HEADER_BYTES"],
        Integer,
        at_least(1024, "the default is 16384"),
    ),
    row(
        "limits.max_connections",
        &["GATEHOUSE_MAX_CONNECTIONS"],
        Integer,
        between(16, 1_000_000, "the default is 4096"),
    ),
    row(
        "limits.max_tls_handshakes",
        &["GATEHOUSE_MAX_TLS_HANDSHAKES"],
        Integer,
        between(1, 100_000, "the default is 256"),
    ),
    row(
        "limits.header_read_timeout_seconds",
        &["GATEHOUSE_HEADER_READ_TIMEOUT"],
        Integer,
        between(1, 3600, "the default is 10"),
    ),
    row(
        "limits.workflow_memory_mb",
        &["GATEHOUSE_WORKFLOW_MEMORY_MB"],
        Integer,
        between(1, 1_048_576, "the default is 256"),
    ),
    row("audit.enabled", &["GATEHOUSE_AUDIT"], Bool, Any),
    row(
        "log.level",
        &["GATEHOUSE_LOG"],
        Text,
        Check::Rule(log_filter_is_set),
    ),
    row(
        "workflows.allow_custom_python",
        &[
            "ALLOW_CUSTOM_PYTHON_EXECUTION_IN_WORKFLOWS",
            "GATEHOUSE_ALLOW_CUSTOM_PYTHON",
        ],
        Bool,
        Any,
    ),
    row(
        "workflows.python",
        &["GATEHOUSE_PYTHON"],
        Text,
        Check::Absolute {
            fix: "give the full path of a python3 outside your home directory, e.g. /usr/bin/python3",
        },
    ),
    row(
        "workflows.python_timeout_seconds",
        &["GATEHOUSE_PYTHON_TIMEOUT"],
        Integer,
        between(1, 3600, "the default is 10"),
    ),
    row(
        "workflows.python_cpu_seconds",
        &["GATEHOUSE_PYTHON_CPU_SECONDS"],
        Integer,
        between(1, 3600, "the default is 5"),
    ),
    row(
        "workflows.python_memory_mb",
        &["GATEHOUSE_PYTHON_MEMORY_MB"],
        Integer,
        between(64, 65_536, "the default is 512"),
    ),
    row(
        "workflows.python_output_bytes",
        &["GATEHOUSE_PYTHON_OUTPUT_BYTES"],
        Integer,
        between(1024, 1 << 30, "the default is 1048576 (1 MiB)"),
    ),
    row(
        "workflows.allow_weaker_sandbox",
        &["GATEHOUSE_ALLOW_WEAKER_SANDBOX"],
        Bool,
        Any,
    ),
    row("guard.upstream", &[], Text, Any),
    row("guard.preset", &[], Text, Any),
    row("guard.launch", &[], List, Any),
];

/// The rules that weigh settings together, each refusing a combination that would be insecure
/// or could not run, unless the person said they mean it.
pub(super) const RULES: &[fn(&Settings) -> Vec<Problem>] = &[
    grpc_has_a_port_of_its_own,
    the_network_needs_keys,
    the_network_needs_tls,
    client_certificates_need_tls,
    a_wildcard_origin_stands_alone,
    lockout_comes_after_slowdown,
    guard_is_complete,
];

/// A problem's fix in the panel's words, for the fields whose fix is a CLI command.
pub fn panel_fix(field: &str) -> Option<&'static str> {
    Some(match field {
        "grpc.port" => "pick another gRPC port on the Network page, or 0 for a free one",
        "tls.enabled" => {
            "turn TLS on on the Certificates page, choose “This computer only” on the Network page, or, if you \
             really mean it, allow plain text beyond this computer"
        }
        "server.exposed_until" => "close the exposure on the Network page and open it again",
        "guard.preset" | "guard.route_scopes" => {
            "pick one of the presets (ollama, openai, oip, tfserving, generic) and the scopes infer, workflows, \
             metrics or admin"
        }
        _ => return None,
    })
}

pub(super) fn row_of(key: &str) -> Option<&'static Row> {
    ROWS.iter().find(|row| row.key == key)
}

fn problem(field: &str, message: String, fix: impl Into<String>) -> Problem {
    Problem {
        field: field.into(),
        source: None,
        message,
        fix: fix.into(),
    }
}

impl Row {
    /// What is wrong with this row's value in `settings`, read from `tree` (the settings as TOML).
    pub(super) fn problems(&self, settings: &Settings, tree: &toml::Table) -> Vec<Problem> {
        let value = self
            .key
            .split_once('.')
            .and_then(|(section, field)| tree.get(section)?.get(field));
        match self.check {
            Check::Any => Vec::new(),
            Check::Range { low, high, fix } => match value.and_then(toml::Value::as_integer) {
                Some(number) if !(low..=high).contains(&number) => {
                    let message = if high >= u32::MAX as i64 {
                        format!("{number} is less than {low}")
                    } else {
                        format!("{number} is outside {low}–{high}")
                    };
                    vec![problem(
                        self.key,
                        message,
                        format!("use a value in that range; {fix}"),
                    )]
                }
                _ => Vec::new(),
            },
            Check::Absolute { fix } => match value.and_then(toml::Value::as_str) {
                Some(path) if !path.starts_with('/') => {
                    vec![problem(self.key, "the path must be absolute".into(), fix)]
                }
                _ => Vec::new(),
            },
            Check::Rule(rule) => rule(settings)
                .into_iter()
                .map(|(message, fix)| problem(self.key, message, fix))
                .collect(),
        }
    }
}

fn loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn host_is_an_address(settings: &Settings) -> Vec<(String, String)> {
    let host = &settings.server.host;
    if host == "localhost" || host.parse::<IpAddr>().is_ok() {
        return Vec::new();
    }
    vec![(
        format!("`{host}` is not an IP address"),
        "use 127.0.0.1 (this computer only), 0.0.0.0 (every network interface) or one interface's address"
            .into(),
    )]
}

fn allowed_hosts_are_names(settings: &Settings) -> Vec<(String, String)> {
    settings
        .server
        .allowed_hosts
        .iter()
        .filter(|name| {
            let valid = !name.is_empty()
                && name.len() <= 253
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            !valid || *name == "*"
        })
        .map(|name| {
            (
                format!("`{name}` is not a host name or address"),
                "list names as clients type them, without scheme, port or wildcard: e.g. gatehouse.lan, 192.168.1.20"
                    .into(),
            )
        })
        .collect()
}

fn exposure_end_is_a_time(settings: &Settings) -> Vec<(String, String)> {
    match &settings.server.exposed_until {
        Some(text)
            if time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_err() =>
        {
            vec![(
                format!("`{text}` is not a date and time"),
                "write it as RFC 3339, e.g. 2026-12-02T18:00:00Z, or remove it; `gatehouse expose --for 1h` writes it for you"
                    .into(),
            )]
        }
        _ => Vec::new(),
    }
}

fn origins_are_origins(settings: &Settings) -> Vec<(String, String)> {
    settings
        .cors
        .allowed_origins
        .iter()
        .filter(|origin| {
            let valid = *origin == "*"
                || (origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && origin
                        .split("://")
                        .nth(1)
                        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
            !valid
        })
        .map(|origin| {
            (
                format!("`{origin}` is not an origin"),
                "write scheme://host[:port] with no path, e.g. http://localhost:5173".into(),
            )
        })
        .collect()
}

fn log_filter_is_set(settings: &Settings) -> Vec<(String, String)> {
    if !settings.log.level.trim().is_empty() {
        return Vec::new();
    }
    vec![("the log filter is empty".into(), "use info, debug or warn".into())]
}

fn grpc_has_a_port_of_its_own(settings: &Settings) -> Vec<Problem> {
    let grpc = &settings.grpc;
    if !grpc.enabled || grpc.port == 0 || grpc.port != settings.server.port {
        return Vec::new();
    }
    vec![problem(
        "grpc.port",
        format!("{} is server.port too; gRPC needs a port of its own", grpc.port),
        "pick another port, e.g. `gatehouse settings set grpc.port 9002`, or 0 for a free one",
    )]
}

fn the_network_needs_keys(settings: &Settings) -> Vec<Problem> {
    if loopback(&settings.server.host) || settings.auth.enabled || settings.auth.allow_open_network {
        return Vec::new();
    }
    vec![problem(
        "auth.enabled",
        format!(
            "authentication is off while listening on {}, beyond this computer: anyone on the network could use the server",
            settings.server.host
        ),
        "turn authentication on, listen on 127.0.0.1, or, if you really mean it, set auth.allow_open_network = true",
    )]
}

fn the_network_needs_tls(settings: &Settings) -> Vec<Problem> {
    // `localhost` is loopback, and anything else that is not an address is refused by its row.
    let beyond = settings
        .server
        .host
        .parse::<IpAddr>()
        .is_ok_and(|ip| !ip.is_loopback());
    if !beyond || settings.tls.enabled || settings.tls.allow_plaintext_network {
        return Vec::new();
    }
    vec![problem(
        "tls.enabled",
        format!(
            "TLS is off while listening on {}, beyond this computer: keys and data would cross the network in plain text",
            settings.server.host
        ),
        "run `gatehouse certs init` and set tls.enabled = true, listen on 127.0.0.1, or, if you really mean it, set tls.allow_plaintext_network = true",
    )]
}

fn client_certificates_need_tls(settings: &Settings) -> Vec<Problem> {
    if settings.tls.client_ca.is_none() || settings.tls.enabled {
        return Vec::new();
    }
    vec![problem(
        "tls.client_ca",
        "client certificates need TLS, which is off".into(),
        "set tls.enabled = true as well",
    )]
}

fn a_wildcard_origin_stands_alone(settings: &Settings) -> Vec<Problem> {
    let origins = &settings.cors.allowed_origins;
    if origins.len() <= 1 || !origins.iter().any(|o| o == "*") {
        return Vec::new();
    }
    vec![problem(
        "cors.allowed_origins",
        "`*` mixed with named origins".into(),
        "use either `*` alone or a list of origins",
    )]
}

fn lockout_comes_after_slowdown(settings: &Settings) -> Vec<Problem> {
    let limits = &settings.limits;
    if limits.auth_failures_before_lockout > limits.auth_failures_before_slowdown {
        return Vec::new();
    }
    vec![problem(
        "limits.auth_failures_before_lockout",
        format!(
            "slow down after {} failures and lock out after {}: the lockout must come later",
            limits.auth_failures_before_slowdown, limits.auth_failures_before_lockout
        ),
        "use e.g. 10 before slowdown and 30 before lockout",
    )]
}

fn guard_is_complete(settings: &Settings) -> Vec<Problem> {
    settings
        .guard
        .problems()
        .into_iter()
        .map(|(field, message, fix)| problem(field, message, fix))
        .collect()
}
