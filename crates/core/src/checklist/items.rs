//! The items themselves: what each one probes or reads, and how it is judged.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use futures_util::future::join_all;
use time::OffsetDateTime;

use super::{Evidence, Fix, Item, ItemId, Options, Status, describe};
use crate::Settings;
use crate::certs::CertFiles;
use crate::keys::{KeyFile, KeyState, Scope, Storage};
use crate::paths::Paths;
use crate::probe::{Endpoint, HttpResponse, LegacyAnswer, ProbeError, Prober, TlsIdentity};
use crate::wire::{KeyInUrl, PythonSandbox, ServerInfo};

mod audit;
mod auth;
mod cors;
mod files;
mod grpc;
mod keys;
mod metrics;
mod network;
mod public;
mod transport;
mod workflows;

pub(super) use audit::*;
pub(super) use auth::*;
pub(super) use cors::*;
pub(super) use files::*;
pub(super) use grpc::*;
pub(super) use keys::*;
pub(super) use metrics::*;
pub(super) use network::*;
pub(super) use public::*;
pub(super) use transport::*;
pub use transport::{local_identity, local_identity_reader};
pub(super) use workflows::*;

/// Keys older than this should be rotated.
pub const ROTATION_DAYS: i64 = 90;
/// A certificate that expires within this many days is flagged.
pub const CERTIFICATE_WARN_DAYS: i64 = 30;

pub(super) fn item(
    id: ItemId,
    status: Status,
    summary: impl Into<String>,
    evidence: Vec<Evidence>,
    fix: Option<Fix>,
) -> Item {
    Item {
        id,
        title: id.title().to_string(),
        why: id.why().to_string(),
        standards: id.standards().iter().map(|s| s.to_string()).collect(),
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
            ItemId::ServerReachable,
            Status::Unknown,
            "the server demands a client certificate and certs/clients has none; issue one with `gatehouse certs issue-client NAME`",
            vec![evidence(format!("GET {url}/"), text)],
            None,
        );
    }
    item(
        ItemId::ServerReachable,
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

/// The items read from files rather than probed.
pub(in crate::checklist) fn configuration_items(paths: &Paths, settings: &Settings) -> Vec<Item> {
    let mut items = keys(paths, settings);
    items.push(file_permissions(paths, settings));
    items.push(audit(paths, settings));
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
