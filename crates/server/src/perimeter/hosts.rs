//! The DNS-rebinding defence: a request is served only when the name it was sent to is one of the
//! server's own.
//!
//! A web page on `evil.example` can make its own name resolve to 127.0.0.1; the browser then
//! treats the local server as part of that page's origin and lets the page read its answers. What
//! the browser cannot change is the `Host` header (and, over TLS, the server name it asks for),
//! which keep saying `evil.example`. So every request whose `Host`, absolute-form authority or SNI
//! is not one of the server's names gets 421 `unknown_host` before any other layer runs, public
//! routes included.
//!
//! The server's names are `localhost`, the host name (and `<host name>.local`), the names in its
//! certificate and `server.allowed_hosts`. An address written as an address cannot be rebound, so
//! it is allowed when it is loopback, the address the server is bound to, or the address the
//! request's connection actually arrived on (which covers every interface of a server bound to
//! 0.0.0.0 without enumerating them).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::connections::Connection;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;

/// The names and addresses a request may be addressed to.
pub struct AllowedHosts {
    names: HashSet<String>,
    addresses: Vec<IpAddr>,
    metrics: Arc<Metrics>,
}

impl AllowedHosts {
    /// `names` are host names and addresses (the defaults, the certificate's, the settings');
    /// `bound` the addresses the server listens on.
    pub fn new(
        names: impl IntoIterator<Item = String>,
        bound: &[SocketAddr],
        metrics: Arc<Metrics>,
    ) -> AllowedHosts {
        let mut set = HashSet::new();
        let mut addresses: Vec<IpAddr> = bound
            .iter()
            .map(SocketAddr::ip)
            .filter(|ip| !ip.is_unspecified())
            .collect();
        for name in names {
            let name = normalise(&name);
            if name.is_empty() {
                continue;
            }
            match name.parse::<IpAddr>() {
                Ok(ip) => addresses.push(ip),
                Err(_) => {
                    // A host name also answers as `<name>.local` on networks with mDNS.
                    if !name.contains('.') && name != "localhost" {
                        set.insert(format!("{name}.local"));
                    }
                    set.insert(name);
                }
            }
        }
        set.insert("localhost".into());
        AllowedHosts {
            names: set,
            addresses,
            metrics,
        }
    }

    /// Whether `host` (a `Host` header's value: a name or address, perhaps with a port) names this
    /// server for a request that arrived on `connection`.
    pub fn allows(&self, host: &str, connection: Option<&Connection>) -> bool {
        let name = normalise(strip_port(host));
        if name.is_empty() {
            return false;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => {
                ip.is_loopback()
                    || self.addresses.contains(&ip)
                    || connection.is_some_and(|c| same_address(c.local.ip(), ip))
            }
            Err(_) => self.names.contains(&name),
        }
    }

    /// Whether a browser `Origin` (`scheme://host[:port]`) is this server itself.
    pub fn is_own_origin(&self, origin: &str, connection: Option<&Connection>) -> bool {
        origin.split_once("://").is_some_and(|(scheme, authority)| {
            matches!(scheme, "http" | "https") && self.allows(authority, connection)
        })
    }

    /// The names in the order a person reads them, for the refusal's message.
    fn listed(&self) -> String {
        let mut names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.join(", ")
    }
}

/// `[::1]:9001` → `::1`, `Example.LAN.:443` → `example.lan`.
fn normalise(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// The host part of `host[:port]`, for names, IPv4 and bracketed IPv6 alike.
fn strip_port(authority: &str) -> &str {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, rest)| rest);
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(inside, _)| &authority[..=inside.len()]);
    }
    match authority.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address, no port.
        Some((host, _)) if !host.contains(':') => host,
        _ => authority,
    }
}

/// IPv4 clients of a socket bound to `::` arrive with IPv4-mapped local addresses.
fn same_address(local: IpAddr, asked: IpAddr) -> bool {
    let plain = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    plain(local) == plain(asked)
}

/// Refuses, with 421, a request addressed to a name that is not the server's.
pub async fn enforce(State(hosts): State<Arc<AllowedHosts>>, request: Request, next: Next) -> Response {
    let connection = request.extensions().get::<Connection>();
    let host = request
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| request.headers().get(header::HOST).and_then(|v| v.to_str().ok()));
    let sni_ok = connection
        .and_then(|c| c.server_name.as_deref())
        .is_none_or(|name| hosts.allows(name, connection));
    let host_ok = host.is_some_and(|h| hosts.allows(h, connection));
    if host_ok && sni_ok {
        return next.run(request).await;
    }
    hosts.metrics.rate_limited("unknown_host");
    let shown = host.map_or_else(
        || "no Host header".to_string(),
        |h| format!("`{}`", h.chars().take(64).collect::<String>()),
    );
    let mut response = ApiError::new(ErrorCode::UnknownHost,
        format!(
            "this server does not answer to {shown}{}: it answers only to its own names ({}, its addresses and the names in its certificate); \
             if you reach it by another name, add it with `gatehouse settings set server.allowed_hosts NAME`",
            if sni_ok { "" } else { " (or to the TLS server name sent)" },
            hosts.listed(),
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> AllowedHosts {
        AllowedHosts::new(
            [
                "laptop".to_string(),
                "Gatehouse.Example.LAN".to_string(),
                "192.168.1.20".to_string(),
            ],
            &["127.0.0.1:9001".parse().unwrap()],
            Arc::new(Metrics::new("test")),
        )
    }

    fn arrived_on(local: &str) -> Connection {
        Connection {
            peer: "192.168.1.30:50000".parse().unwrap(),
            local: local.parse().unwrap(),
            server_name: None,
        }
    }

    #[test]
    fn own_names_and_addresses_are_allowed_with_or_without_ports() {
        let hosts = hosts();
        for host in [
            "localhost",
            "LOCALHOST:9001",
            "localhost.",
            "127.0.0.1:9001",
            "127.0.0.2",
            "[::1]:9001",
            "::1",
            "laptop:9001",
            "laptop.local",
            "gatehouse.example.lan",
            "192.168.1.20:9001",
        ] {
            assert!(hosts.allows(host, None), "{host} refused");
        }
    }

    #[test]
    fn foreign_names_and_addresses_are_refused() {
        let hosts = hosts();
        for host in [
            "evil.example",
            "evil.example:9001",
            "localhost.evil.example",
            "laptop.evil.example",
            "10.0.0.8",
            "[2001:db8::1]:9001",
            "",
            ":9001",
            "user@evil.example",
        ] {
            assert!(!hosts.allows(host, None), "{host} allowed");
        }
    }

    #[test]
    fn the_address_a_connection_arrived_on_is_allowed_for_it_alone() {
        let hosts = hosts();
        assert!(hosts.allows("10.0.0.8:9001", Some(&arrived_on("10.0.0.8:9001"))));
        assert!(hosts.allows("10.0.0.8", Some(&arrived_on("[::ffff:10.0.0.8]:9001"))));
        assert!(!hosts.allows("10.0.0.9", Some(&arrived_on("10.0.0.8:9001"))));
    }

    #[test]
    fn origins_are_judged_by_their_host() {
        let hosts = hosts();
        assert!(hosts.is_own_origin("http://127.0.0.1:9001", None));
        assert!(hosts.is_own_origin("https://localhost", None));
        assert!(!hosts.is_own_origin("https://evil.example", None));
        assert!(!hosts.is_own_origin("null", None));
        assert!(!hosts.is_own_origin("file://localhost", None));
    }
}
