//! The items themselves: what each one probes or reads, and how it is judged.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use futures_util::future::join_all;
use time::OffsetDateTime;

use super::{Evidence, Fix, Item, Options, Status, describe};
use crate::Settings;
use crate::certs::CertFiles;
use crate::keys::{KeyFile, KeyState, Scope, Storage};
use crate::paths::Paths;
use crate::probe::{Endpoint, HttpResponse, LegacyAnswer, ProbeError, Prober, TlsIdentity};
use crate::wire::{KeyInUrl, PythonSandbox, ServerInfo};

mod access;
mod config;
mod grpc;
mod network;
mod python;
mod transport;

pub(super) use access::*;
pub(super) use config::*;
pub(super) use grpc::*;
pub(super) use network::*;
pub(super) use python::*;
pub(super) use transport::*;
pub use transport::{local_identity, local_identity_reader};

/// Keys older than this should be rotated.
pub const ROTATION_DAYS: i64 = 90;
/// A certificate that expires within this many days is flagged.
pub const CERTIFICATE_WARN_DAYS: i64 = 30;

/// Id, title, why, standards: the text of every item, in the order the checklist shows them.
const CATALOG: &[(&str, &str, &str, &[&str])] = &[
    (
        "server.reachable",
        "The server answers",
        "Every other check probes the running server; without an answer they cannot prove anything.",
        &["NIST CSF DE.CM-1"],
    ),
    (
        "network.exposure",
        "Reachable only where intended",
        "A server bound to every interface can be reached by any device on the same network, café Wi-Fi included. Loopback-only binding is the first perimeter.",
        &["OWASP API8:2023", "NIST SP 800-207 (tenet 2)", "NIST CSF PR.AC-5"],
    ),
    (
        "network.host_check",
        "Only requests addressed to this server are answered",
        "A web page you open can point its own domain name at 127.0.0.1 (DNS rebinding) and then read whatever the server answers; refusing every Host that is not the server's own name stops it, key or no key.",
        &["OWASP API8:2023", "NIST CSF PR.AC-5"],
    ),
    (
        "guard.upstream_loopback",
        "The guarded server is reached only through Gatehouse",
        "A guarded server that also listens beyond loopback can be called around Gatehouse, without a key, TLS or the audit log: the proxy then protects nothing.",
        &["OWASP API8:2023", "NIST SP 800-207 (tenet 2)", "NIST CSF PR.AC-5"],
    ),
    (
        "guard.admin_routes",
        "Routes that change the guarded server need an admin key",
        "Pulling, pushing, creating or unloading models changes the server and can reach the internet; an inference key that leaks must not reach them.",
        &["OWASP API5:2023", "NIST CSF PR.AC-4"],
    ),
    (
        "guard.custom_python",
        "Workflows cannot bring code to the guarded server",
        "A workflow with a custom Python block runs that code inside the server's own process: anyone who can submit one runs code on this computer. Roboflow's guide says to turn it off; Gatehouse turns it off and refuses such workflows at the gate as well.",
        &["OWASP API8:2023", "OWASP NHI Top 10 (NHI5)", "NIST CSF PR.PS-1"],
    ),
    (
        "guard.guide",
        "The guarded server's own security guide is applied",
        "The guarded server's makers publish the controls a self-hosted server needs and leave applying them to each reader; Gatehouse applies them in front of it and proves each one with the items it names.",
        &["NIST CSF GV.PO-1", "NIST CSF PR.PS-1"],
    ),
    (
        "auth.required",
        "Protected endpoints demand a valid key",
        "Without authentication anyone who can reach the port can run models, read metadata and exhaust the machine.",
        &["OWASP API2:2023", "NIST SP 800-207 (tenet 6)", "NIST CSF PR.AC-1"],
    ),
    (
        "grpc.perimeter",
        "The gRPC port is behind the same perimeter",
        "A second port is a second way in: if it answered without a key, in plain text or on more addresses than the HTTP port, every control on the HTTP port could be walked around.",
        &["OWASP API8:2023", "OWASP API2:2023", "NIST CSF PR.AC-5"],
    ),
    (
        "public.no_secrets",
        "Public endpoints leak nothing secret",
        "Health and info endpoints answer anyone; they must not carry keys, private keys or tokens.",
        &["OWASP API3:2023", "NIST CSF PR.DS-5"],
    ),
    (
        "transport.tls",
        "Traffic is encrypted when it leaves this computer",
        "Without TLS, keys and data cross the network in plain text for anyone on it to read.",
        &["OWASP API8:2023", "NIST SP 800-207 (tenet 2)", "NIST CSF PR.DS-2"],
    ),
    (
        "transport.certificate",
        "The certificate is trusted and current",
        "Clients must be able to verify the server; an expired or untrusted certificate teaches people to click through warnings.",
        &["OWASP API8:2023", "NIST CSF PR.DS-2"],
    ),
    (
        "transport.versions",
        "Only TLS 1.2 and 1.3 are accepted",
        "TLS 1.0 and 1.1 have known weaknesses and were deprecated by RFC 8996.",
        &["OWASP API8:2023", "NIST SP 800-52r2"],
    ),
    (
        "transport.plaintext",
        "Plain HTTP is refused on the TLS port",
        "A port that also answers plain HTTP invites clients to send keys unencrypted.",
        &["OWASP API8:2023", "NIST CSF PR.DS-2"],
    ),
    (
        "transport.mtls",
        "Client certificates where the network is shared",
        "Mutual TLS turns away devices without a certificate before they can even try a key.",
        &["NIST SP 800-207 (tenet 6)", "NIST CSF PR.AC-7"],
    ),
    (
        "workflows.custom_python",
        "Custom Python in workflows is off",
        "Anyone who can submit a workflow with a python step could run code on this computer. Roboflow Inference's guide for self-hosted servers advises turning its switch off too, although its default is on.",
        &["OWASP API8:2023", "OWASP API5:2023", "NIST CSF PR.PT-3"],
    ),
    (
        "workflows.sandbox",
        "Python steps run in the whole sandbox",
        "With a layer of the sandbox missing, a python step can reach more of this computer: without namespaces UDP, local sockets and the session bus (and through it the keychain), without Landlock the files, without seccomp sockets and signals.",
        &["OWASP API8:2023", "NIST CSF PR.PT-3"],
    ),
    (
        "auth.key_in_url",
        "No key was sent in a URL",
        "A key in a URL (`?api_key=`) lands in shell history, proxy and server logs and browser history, where anyone who reads them finds it.",
        &["OWASP ASVS 5.0 V14.2.1", "OWASP API2:2023"],
    ),
    (
        "cors.policy",
        "Browsers on other sites cannot call the server",
        "A wildcard or reflected CORS policy lets any web page you open talk to your local server.",
        &["OWASP API8:2023"],
    ),
    (
        "metrics.protected",
        "Metrics and docs are not open to the network",
        "Metrics and API docs map the attack surface; beyond this computer they need a key.",
        &["OWASP API9:2023", "OWASP API8:2023"],
    ),
    (
        "keys.exist",
        "There is a key to use",
        "With authentication on and no active key, every request is refused; people then turn authentication off.",
        &["OWASP API2:2023", "NIST CSF PR.AC-1"],
    ),
    (
        "keys.expiry",
        "Every key expires",
        "A key that never expires stays valid long after the laptop, script or colleague that had it is gone.",
        &["OWASP API2:2023", "NIST CSF PR.AC-1"],
    ),
    (
        "keys.age",
        "No key is older than the rotation age",
        "Old keys have had the most chances to leak; rotate them every 90 days.",
        &["OWASP API2:2023", "NIST CSF PR.AC-1"],
    ),
    (
        "keys.separation",
        "Admin and inference keys are separate",
        "A key that can both run models and administer the server turns any leaked client key into full control.",
        &["OWASP API5:2023", "NIST CSF PR.AC-4"],
    ),
    (
        "keys.storage",
        "Key secrets live only in the keychain",
        "keys.toml must hold hashes, never key text; the text lives in the OS keychain or nowhere.",
        &["OWASP API2:2023", "NIST CSF PR.DS-1"],
    ),
    (
        "files.permissions",
        "Private files are readable by you alone",
        "Settings, keys and certificate keys readable by other users let them take over the server.",
        &["NIST CSF PR.AC-4", "NIST CSF PR.DS-1"],
    ),
    (
        "audit.enabled",
        "Requests and key changes are audited",
        "Without an audit log nobody can tell afterwards who used which key, from where.",
        &["NIST SP 800-207 (tenet 7)", "NIST CSF PR.PT-1"],
    ),
];

pub(super) fn item(
    id: &str,
    status: Status,
    summary: impl Into<String>,
    evidence: Vec<Evidence>,
    fix: Option<Fix>,
) -> Item {
    let (title, why, standards) = CATALOG
        .iter()
        .find(|(known, ..)| *known == id)
        .map(|(_, title, why, standards)| (*title, *why, *standards))
        .unwrap_or((id, "", &[]));
    Item {
        id: id.to_string(),
        title: title.to_string(),
        why: why.to_string(),
        standards: standards.iter().map(|s| s.to_string()).collect(),
        status,
        summary: summary.into(),
        evidence,
        fix,
    }
}

pub(super) fn evidence(probe: impl Into<String>, observed: impl Into<String>) -> Evidence {
    Evidence {
        probe: probe.into(),
        observed: observed.into(),
        at: OffsetDateTime::now_utc(),
    }
}

pub(super) fn set(key: &str, value: &str) -> Option<Fix> {
    Some(Fix::SetSetting {
        key: key.into(),
        value: value.into(),
    })
}

pub fn unreachable(url: &str, error: &ProbeError) -> Item {
    let text = describe(error);
    if text.contains("CertificateRequired") {
        // Mutual TLS doing its job: the probes have no client certificate to show.
        return item(
            "server.reachable",
            Status::Unknown,
            "the server demands a client certificate and certs/clients has none; issue one with `gatehouse certs issue-client NAME`",
            vec![evidence(format!("GET {url}/"), text)],
            None,
        );
    }
    item(
        "server.reachable",
        Status::Fail,
        format!("no answer from {url}"),
        vec![evidence(format!("GET {url}/"), text)],
        None,
    )
}

/// How a response is shown in evidence: the status and the error code when there is one.
pub(super) fn observed(result: &Result<HttpResponse, ProbeError>) -> String {
    match result {
        Ok(response) => match response.error_code() {
            Some(code) => format!("{} {code}", response.status),
            None => format!("{}", response.status),
        },
        Err(error) => describe(error),
    }
}

pub async fn gatehouse(
    endpoint: Endpoint,
    paths: &Paths,
    settings: &Settings,
    options: Options,
) -> Vec<Item> {
    let prober = Prober::new(endpoint, local_identity(paths), options.timeout);
    // A guard answers for itself under /_gatehouse/; everything else is the guarded server's.
    if let Ok(response) = prober.request("GET", crate::wire::routes::INFO, &[], &[]).await
        && response.status == 200
        && let Ok(info) = serde_json::from_slice::<ServerInfo>(&response.body)
        && let Some(guarding) = info.guarding.clone()
    {
        // Boxed, as `check_gatehouse` boxes this function: the joined probes are a large future.
        return Box::pin(super::guard::items(&prober, &info, &guarding, paths, settings)).await;
    }
    let info_response = prober.request("GET", "/info", &[], &[]).await;
    let info = match &info_response {
        Ok(response) if response.status == 200 => {
            // A body that is not the server's info says nothing; the transport is what was used.
            serde_json::from_slice::<ServerInfo>(&response.body).unwrap_or_else(|_| ServerInfo {
                tls: prober.endpoint.tls,
                ..ServerInfo::default()
            })
        }
        _ => {
            let error = match info_response {
                Err(error) => error,
                Ok(response) => ProbeError::Protocol {
                    target: prober.endpoint.url(),
                    reason: format!("GET /info answered {}", response.status),
                },
            };
            let mut items = vec![unreachable(&prober.endpoint.url(), &error)];
            items.extend(configuration_items(paths, settings));
            return items;
        }
    };
    let (exposure, host_check, auth, grpc, public, transport, cors, metrics) = tokio::join!(
        exposure(
            &prober,
            info.loopback_only,
            info.tls,
            info.auth.unwrap_or(settings.auth.enabled)
        ),
        host_check(&prober),
        authentication(&prober),
        grpc(&prober, &info),
        public_endpoints(&prober, GATEHOUSE_PUBLIC_PATHS),
        Box::pin(transport(&prober, info.loopback_only, Some(info.mtls))),
        cors(&prober),
        metrics_protected(&prober, info.loopback_only, &["/metrics", "/docs"]),
    );
    let mut items = vec![
        with_deadline(exposure, settings),
        host_check,
        auth,
        grpc,
        key_in_url(info.keys_in_url.as_deref()),
        public,
    ];
    items.extend(transport);
    items.push(custom_python(
        info.custom_python,
        info.python_sandbox.as_ref().map(sandbox_text),
        settings,
    ));
    items.extend(sandbox(&info));
    items.push(cors);
    items.push(metrics);
    items.extend(configuration_items(paths, settings));
    items
}

pub async fn external(endpoint: Endpoint, options: Options) -> Vec<Item> {
    let prober = Prober::new(endpoint, TlsIdentity::default(), options.timeout);
    let root = prober.request("GET", "/", &[], &[]).await;
    if let Err(error) = &root {
        return vec![unreachable(&prober.endpoint.url(), error)];
    }
    let (open, public, transport, cors, metrics) = tokio::join!(
        open_endpoints(&prober),
        public_endpoints(&prober, EXTERNAL_PUBLIC_PATHS),
        Box::pin(transport(&prober, prober.endpoint.is_loopback(), None)),
        cors(&prober),
        metrics_protected(&prober, false, &["/metrics", "/docs"]),
    );
    let requires_auth = open.status == Status::Pass;
    let exposure = exposure(
        &prober,
        prober.endpoint.is_loopback(),
        prober.endpoint.tls,
        requires_auth,
    )
    .await;
    let mut items = vec![exposure, open, public];
    items.extend(transport);
    items.push(cors);
    items.push(metrics);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_key_is_well_formed_and_names_the_id_security_events_leave_out() {
        assert_eq!(
            crate::keys::format::parse(&wrong_key()),
            Ok(crate::events::CHECKLIST_PROBE_KEY_ID)
        );
    }

    #[test]
    fn every_item_has_its_text() {
        for (id, title, why, standards) in CATALOG {
            assert!(
                !title.is_empty() && !why.is_empty() && !standards.is_empty(),
                "{id}"
            );
        }
        let ids: std::collections::HashSet<_> = CATALOG.iter().map(|(id, ..)| id).collect();
        assert_eq!(ids.len(), CATALOG.len(), "ids are unique");
    }

    #[test]
    fn secrets_are_recognised_in_public_bodies() {
        let key = format!("gth_{}", "a".repeat(44));
        assert_eq!(secret_in(&format!("{{\"k\":\"{key}\"}}")), Some("an API key"));
        assert_eq!(
            secret_in("-----BEGIN PRIVATE KEY-----\nabc"),
            Some("a private key")
        );
        assert_eq!(
            secret_in("{\"password\": \"hunter2\"}"),
            Some("a credential field")
        );
        assert_eq!(secret_in("{\"name\":\"gatehouse\",\"tls\":true}"), None);
        assert_eq!(secret_in("use gth_ keys"), None);
    }
}
