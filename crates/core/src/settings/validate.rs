//! What makes settings usable: every field in range, and the combinations refused because they
//! would be insecure (the network without TLS or keys) unless the person said they mean it.

use super::*;

impl Settings {
    /// Checks the whole struct and returns every problem found.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        let mut add = |field: &str, message: String, fix: &str| {
            problems.push(Problem {
                field: field.into(),
                source: None,
                message,
                fix: fix.into(),
            })
        };
        if self.server.host != "localhost" && self.server.host.parse::<IpAddr>().is_err() {
            add(
                "server.host",
                format!("`{}` is not an IP address", self.server.host),
                "use 127.0.0.1 (this computer only), 0.0.0.0 (every network interface) or one interface's address",
            );
        }
        if self.grpc.enabled && self.grpc.port != 0 && self.grpc.port == self.server.port {
            add(
                "grpc.port",
                format!(
                    "{} is server.port too; gRPC needs a port of its own",
                    self.grpc.port
                ),
                "pick another port, e.g. `gatehouse settings set grpc.port 9002`, or 0 for a free one",
            );
        }
        for name in &self.server.allowed_hosts {
            let valid = !name.is_empty()
                && name.len() <= 253
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if !valid || name == "*" {
                add(
                    "server.allowed_hosts",
                    format!("`{name}` is not a host name or address"),
                    "list names as clients type them, without scheme, port or wildcard: e.g. gatehouse.lan, 192.168.1.20",
                );
            }
        }
        if !(1..=256).contains(&self.inference.intra_threads) {
            add(
                "inference.intra_threads",
                format!("{} is outside 1–256", self.inference.intra_threads),
                "use 1 for many small concurrent requests, or the number of cores for one big model",
            );
        }
        if self.inference.sessions_per_model > 256 {
            add(
                "inference.sessions_per_model",
                format!("{} is more than 256", self.inference.sessions_per_model),
                "use 0 (one per CPU core) or a small number",
            );
        }
        if self.limits.max_body_bytes < 1024 {
            add(
                "limits.max_body_bytes",
                format!(
                    "{} bytes is too small for any inference request",
                    self.limits.max_body_bytes
                ),
                "use at least 1024; the default is 8388608 (8 MiB)",
            );
        }
        let python_limits = [
            (
                "workflows.python_timeout_seconds",
                self.workflows.python_timeout_seconds,
                1,
                3600,
            ),
            (
                "workflows.python_cpu_seconds",
                self.workflows.python_cpu_seconds,
                1,
                3600,
            ),
            (
                "workflows.python_memory_mb",
                self.workflows.python_memory_mb,
                64,
                65536,
            ),
            (
                "workflows.python_output_bytes",
                self.workflows.python_output_bytes,
                1024,
                1 << 30,
            ),
        ];
        for (field, value, low, high) in python_limits {
            if !(low..=high).contains(&value) {
                add(
                    field,
                    format!("{value} is outside {low}–{high}"),
                    "use a value inside that range; the defaults are 10 s, 5 s, 512 MiB and 1 MiB",
                );
            }
        }
        if !self.workflows.python.is_absolute() {
            add(
                "workflows.python",
                "the path must be absolute".into(),
                "give the full path of a python3 outside your home directory, e.g. /usr/bin/python3",
            );
        }
        let paths = [
            ("server.models", &self.server.models),
            ("inference.onnxruntime", &self.inference.onnxruntime),
            ("tls.cert", &self.tls.cert),
            ("tls.key", &self.tls.key),
            ("tls.client_ca", &self.tls.client_ca),
        ];
        for (field, path) in paths {
            if path
                .as_ref()
                .is_some_and(|p| p.as_os_str().is_empty() || p.is_relative())
            {
                add(
                    field,
                    "the path must be absolute".into(),
                    "give the full path, starting with /",
                );
            }
        }
        let loopback = self.server.host == "localhost"
            || self
                .server
                .host
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback && !self.auth.enabled && !self.auth.allow_open_network {
            add(
                "auth.enabled",
                format!(
                    "authentication is off while listening on {}, beyond this computer: anyone on the network could use the server",
                    self.server.host
                ),
                "turn authentication on, listen on 127.0.0.1, or, if you really mean it, set auth.allow_open_network = true",
            );
        }
        let beyond = self
            .server
            .host
            .parse::<IpAddr>()
            .is_ok_and(|ip| !ip.is_loopback());
        if beyond && !self.tls.enabled && !self.tls.allow_plaintext_network {
            add(
                "tls.enabled",
                format!(
                    "TLS is off while listening on {}, beyond this computer: keys and data would cross the network in plain text",
                    self.server.host
                ),
                "run `gatehouse certs init` and set tls.enabled = true, listen on 127.0.0.1, or, if you really mean it, set tls.allow_plaintext_network = true",
            );
        }
        if self.tls.client_ca.is_some() && !self.tls.enabled {
            add(
                "tls.client_ca",
                "client certificates need TLS, which is off".into(),
                "set tls.enabled = true as well",
            );
        }
        for origin in &self.cors.allowed_origins {
            let valid = origin == "*"
                || (origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && origin
                        .split("://")
                        .nth(1)
                        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
            if !valid {
                add(
                    "cors.allowed_origins",
                    format!("`{origin}` is not an origin"),
                    "write scheme://host[:port] with no path, e.g. http://localhost:5173",
                );
            }
        }
        if self.cors.allowed_origins.len() > 1 && self.cors.allowed_origins.iter().any(|o| o == "*") {
            add(
                "cors.allowed_origins",
                "`*` mixed with named origins".into(),
                "use either `*` alone or a list of origins",
            );
        }
        let limits = &self.limits;
        if limits.max_concurrent_requests == 0
            || limits.request_timeout_seconds == 0
            || limits.max_uri_bytes < 256
            || limits.max_header_bytes < 1024
        {
            add(
                "limits.max_concurrent_requests",
                "request limits are too small to serve anything".into(),
                "use at least 1 concurrent request, 1 second, 256 URI bytes and 1024 header bytes",
            );
        }
        if !["auto", "public", "key"].contains(&self.server.metrics_access.as_str()) {
            add(
                "server.metrics_access",
                format!("`{}` is not auto, public or key", self.server.metrics_access),
                "use auto (public on loopback, key elsewhere), public, or key",
            );
        }
        let limits = &self.limits;
        if limits.key_requests_per_second == 0 || limits.address_requests_per_second == 0 {
            add(
                "limits.key_requests_per_second",
                "request rates must be at least 1 per second".into(),
                "use a positive number; the defaults are 1000 per key and 2000 per address",
            );
        }
        if limits.auth_failures_before_slowdown == 0
            || limits.auth_failures_before_lockout <= limits.auth_failures_before_slowdown
        {
            add(
                "limits.auth_failures_before_lockout",
                format!(
                    "slow down after {} failures and lock out after {}: the lockout must come later",
                    limits.auth_failures_before_slowdown, limits.auth_failures_before_lockout
                ),
                "use e.g. 10 before slowdown and 30 before lockout",
            );
        }
        if !(1..=86_400).contains(&limits.auth_lockout_seconds) {
            add(
                "limits.auth_lockout_seconds",
                format!("{} is outside 1–86400", limits.auth_lockout_seconds),
                "use e.g. 300",
            );
        }
        let connection_limits = [
            (
                "limits.max_connections",
                limits.max_connections,
                16,
                1_000_000,
                "4096",
            ),
            (
                "limits.max_tls_handshakes",
                limits.max_tls_handshakes,
                1,
                100_000,
                "256",
            ),
            (
                "limits.header_read_timeout_seconds",
                limits.header_read_timeout_seconds,
                1,
                3600,
                "10",
            ),
            (
                "limits.workflow_memory_mb",
                limits.workflow_memory_mb,
                1,
                1_048_576,
                "256",
            ),
        ];
        for (field, value, low, high, default) in connection_limits {
            if !(low..=high).contains(&value) {
                add(
                    field,
                    format!("{value} is outside {low}–{high}"),
                    &format!("use a value inside that range; the default is {default}"),
                );
            }
        }
        if self.log.level.trim().is_empty() {
            add(
                "log.level",
                "the log filter is empty".into(),
                "use info, debug or warn",
            );
        }
        if let Some(text) = &self.server.exposed_until
            && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_err()
        {
            add(
                "server.exposed_until",
                format!("`{text}` is not a date and time"),
                "write it as RFC 3339, e.g. 2026-12-02T18:00:00Z, or remove it; `gatehouse expose --for 1h` writes it for you",
            );
        }
        for (field, message, fix) in self.guard.problems() {
            add(field, message, &fix);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::Invalid(problems))
        }
    }
}
