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
        "auth.required",
        "Protected endpoints demand a valid key",
        "Without authentication anyone who can reach the port can run models, read metadata and exhaust the machine.",
        &["OWASP API2:2023", "NIST SP 800-207 (tenet 6)", "NIST CSF PR.AC-1"],
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

fn set(key: &str, value: &str) -> Option<Fix> {
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

/// The sandbox as `/info` reports it, in evidence's words.
fn sandbox_text(sandbox: &PythonSandbox) -> String {
    let missing = sandbox.missing.join(", ");
    format!(
        "in force: {}; missing: {}",
        sandbox.layers.join(", "),
        if missing.is_empty() { "nothing" } else { &missing }
    )
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
    let (exposure, host_check, auth, public, transport, cors, metrics) = tokio::join!(
        exposure(
            &prober,
            info.loopback_only,
            info.tls,
            info.auth.unwrap_or(settings.auth.enabled)
        ),
        host_check(&prober),
        authentication(&prober),
        public_endpoints(&prober, GATEHOUSE_PUBLIC_PATHS),
        Box::pin(transport(&prober, info.loopback_only, Some(info.mtls))),
        cors(&prober),
        metrics_protected(&prober, info.loopback_only, &["/metrics", "/docs"]),
    );
    let mut items = vec![
        with_deadline(exposure, settings),
        host_check,
        auth,
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

/// Whether the server answers on addresses of this computer other than the one probed: another
/// loopback address (answers only when bound to every interface) and the address of the
/// interface that holds the default route.
pub(super) async fn exposure(prober: &Prober, loopback_only: bool, tls: bool, auth: bool) -> Item {
    let port = prober.endpoint.port;
    let mut others = other_addresses();
    others.retain(|ip| ip.to_string() != prober.endpoint.host);
    let probes = others.iter().map(|ip| async move {
        let result = crate::probe::connect(&ip.to_string(), port, prober.timeout).await;
        (*ip, result.is_ok(), result.err())
    });
    let results = join_all(probes).await;
    let mut found = Vec::new();
    let mut reachable = Vec::new();
    for (ip, accepted, error) in results {
        let observed = if accepted {
            reachable.push(ip.to_string());
            "connection accepted".to_string()
        } else {
            error.map(|e| describe(&e)).unwrap_or_default()
        };
        found.push(evidence(format!("TCP connect {ip}:{port}"), observed));
    }
    let fix = set("server.host", "127.0.0.1");
    if loopback_only && reachable.is_empty() {
        return item(
            "network.exposure",
            Status::Pass,
            "only this computer can connect",
            found,
            None,
        );
    }
    let at = if reachable.is_empty() {
        "beyond this computer".to_string()
    } else {
        format!("on {}", reachable.join(", "))
    };
    if !tls || !auth {
        let missing = match (tls, auth) {
            (false, false) => "without TLS or authentication",
            (false, true) => "without TLS",
            _ => "without authentication",
        };
        item(
            "network.exposure",
            Status::Fail,
            format!("reachable {at} {missing}"),
            found,
            fix,
        )
    } else {
        item(
            "network.exposure",
            Status::Warn,
            format!("reachable {at}; protected by TLS and keys"),
            found,
            fix,
        )
    }
}

/// An exposure with a deadline says when it ends: still a warning (it is open now), but one that
/// ends by itself, unlike an address set for good.
pub(super) fn with_deadline(mut item: Item, settings: &Settings) -> Item {
    let Some(until) = crate::exposure::deadline(settings) else {
        return item;
    };
    if item.status == Status::Pass {
        return item;
    }
    let left = until - OffsetDateTime::now_utc();
    let minutes = left.whole_minutes().max(0);
    item.summary = format!(
        "{}; until {until} ({} h {} min left), then back to this computer only",
        item.summary,
        minutes / 60,
        minutes % 60
    );
    item.evidence
        .push(evidence("settings.toml server.exposed_until", until.to_string()));
    item.fix = Some(Fix::SetSetting {
        key: "server.host".into(),
        value: "127.0.0.1".into(),
    });
    item
}

/// The addresses probed besides the server's own: `GATEHOUSE_PROBE_ADDRESSES` (comma-separated)
/// when set — tests keep their traffic on loopback with it —, else 127.0.0.2 and the address of
/// the interface holding the default route.
pub(super) fn other_addresses() -> Vec<IpAddr> {
    if let Ok(list) = std::env::var("GATEHOUSE_PROBE_ADDRESSES") {
        return list.split(',').filter_map(|a| a.trim().parse().ok()).collect();
    }
    let mut others = vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))];
    others.extend(crate::net::network_address());
    others
}

/// A name no server of this computer has; the rebinding probe addresses requests to it.
const FOREIGN_HOST: &str = "rebind-probe.invalid";

/// Sends public and protected requests addressed to a foreign name, as a web page reaching the
/// server through a rebound DNS name would: each must get 421.
pub(super) async fn host_check(prober: &Prober) -> Item {
    let host = [("Host", FOREIGN_HOST)];
    let paths = ["/", "/info", "/v2/health/ready", "/v2"];
    let responses = join_all(
        paths
            .iter()
            .map(|path| async move { (*path, prober.request("GET", path, &host, &[]).await) }),
    )
    .await;
    let found: Vec<Evidence> = responses
        .iter()
        .map(|(path, response)| {
            evidence(
                format!("GET {path} with Host: {FOREIGN_HOST}"),
                observed(response),
            )
        })
        .collect();
    let statuses: Vec<Option<u16>> = responses
        .iter()
        .map(|(_, r)| r.as_ref().ok().map(|r| r.status))
        .collect();
    if statuses.iter().all(|s| *s == Some(421)) {
        return item(
            "network.host_check",
            Status::Pass,
            "requests to a name that is not the server's get 421",
            found,
            None,
        );
    }
    let answered: Vec<&str> = responses
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|r| r.status != 421 && r.status < 500))
        .map(|(path, _)| *path)
        .collect();
    if answered.is_empty() {
        return item(
            "network.host_check",
            Status::Unknown,
            "the probes did not get a clear answer",
            found,
            None,
        );
    }
    item(
        "network.host_check",
        Status::Fail,
        format!(
            "{} answered a request addressed to {FOREIGN_HOST}: a web page could read it through a rebound DNS name",
            answered.join(", ")
        ),
        found,
        None,
    )
}

/// A key that is well-formed (checksum included) but was never issued. Its id, `probe000`, is
/// how the security events tell the checklist's own attempt from a guess.
fn wrong_key() -> String {
    crate::keys::format::with_checksum(&format!(
        "gth_{}wrongwrongwrongwrongwrongwrongwr",
        crate::events::CHECKLIST_PROBE_KEY_ID
    ))
}

pub(super) async fn authentication(prober: &Prober) -> Item {
    let bearer = format!("Bearer {}", wrong_key());
    let wrong_key = [("Authorization", bearer.as_str())];
    let (anonymous, wrong) = tokio::join!(
        prober.request("GET", "/v2", &[], &[]),
        prober.request("GET", "/v2", &wrong_key, &[]),
    );
    let found = vec![
        evidence("GET /v2 without a key", observed(&anonymous)),
        evidence("GET /v2 with a key that was never issued", observed(&wrong)),
    ];
    let statuses = [&anonymous, &wrong].map(|r| r.as_ref().ok().map(|r| r.status));
    let fix = set("auth.enabled", "true");
    // While someone floods the server with bad keys, the guessing guard answers the wrong key
    // with 429 without checking it: still a refusal, so the item stays judgeable.
    let guarded = wrong
        .as_ref()
        .is_ok_and(|r| r.status == 429 && r.error_code().as_deref() == Some("too_many_auth_failures"));
    match statuses {
        [Some(401), Some(401)] => item(
            "auth.required",
            Status::Pass,
            "requests without a valid key get 401",
            found,
            None,
        ),
        [Some(401), Some(429)] if guarded => item(
            "auth.required",
            Status::Pass,
            "requests without a valid key are refused (401; wrong keys get 429 from the guessing guard, which someone is setting off now)",
            found,
            None,
        ),
        [a, b] if [a, b].iter().any(|s| s.is_some_and(|s| (200..300).contains(&s))) => item(
            "auth.required",
            Status::Fail,
            "protected endpoints answer without a valid key",
            found,
            fix,
        ),
        _ => item(
            "auth.required",
            Status::Unknown,
            "the probes did not get a clear answer",
            found,
            None,
        ),
    }
}

const GATEHOUSE_PUBLIC_PATHS: &[&str] = &[
    "/",
    "/healthz",
    "/readiness",
    "/info",
    "/v2/health/live",
    "/v2/health/ready",
];
const EXTERNAL_PUBLIC_PATHS: &[&str] = &[
    "/",
    "/info",
    "/health",
    "/healthz",
    "/v2/health/ready",
    "/api/version",
];

pub(super) async fn public_endpoints(prober: &Prober, paths: &[&str]) -> Item {
    let responses = join_all(
        paths
            .iter()
            .map(|path| async move { (*path, prober.request("GET", path, &[], &[]).await) }),
    )
    .await;
    let mut found = Vec::new();
    let mut leaks = Vec::new();
    for (path, response) in &responses {
        let note = match response {
            Ok(r) if (200..300).contains(&r.status) => match secret_in(&r.text()) {
                Some(kind) => {
                    leaks.push(format!("{path} ({kind})"));
                    format!("{} with {kind} in the body", r.status)
                }
                None => format!("{}; {} bytes, nothing secret", r.status, r.body.len()),
            },
            other => observed(other),
        };
        found.push(evidence(format!("GET {path} without a key"), note));
    }
    if leaks.is_empty() {
        item(
            "public.no_secrets",
            Status::Pass,
            "no key, private key or token in public answers",
            found,
            None,
        )
    } else {
        item(
            "public.no_secrets",
            Status::Fail,
            format!("secrets in {}", leaks.join(", ")),
            found,
            None,
        )
    }
}

/// What kind of secret `text` holds, if any.
fn secret_in(text: &str) -> Option<&'static str> {
    if text.contains("PRIVATE KEY-----") {
        return Some("a private key");
    }
    let bytes = text.as_bytes();
    let key_like = text.match_indices("gth_").any(|(at, _)| {
        bytes[at + 4..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count()
            >= 40
    });
    if key_like {
        return Some("an API key");
    }
    let lower = text.to_ascii_lowercase();
    [
        "\"password\":\"",
        "\"api_key\":\"",
        "\"secret\":\"",
        "aws_secret_access_key",
    ]
    .iter()
    .any(|needle| lower.replace(": \"", ":\"").contains(needle))
    .then_some("a credential field")
}

/// The TLS items. `mtls` is what the server says of itself (`None` for other servers).
pub(super) async fn transport(prober: &Prober, loopback_only: bool, mtls: Option<bool>) -> Vec<Item> {
    if !prober.endpoint.tls {
        let fix = Some(Fix::EnableTls);
        let plain = evidence(format!("scheme of {}", prober.endpoint.url()), "http: no TLS");
        return vec![if loopback_only {
            item(
                "transport.tls",
                Status::Pass,
                "TLS is off; only this computer connects, so traffic never leaves it",
                vec![plain],
                None,
            )
        } else {
            item(
                "transport.tls",
                Status::Fail,
                "reachable beyond this computer in plain text",
                vec![plain],
                fix,
            )
        }];
    }
    let only_tls13 = [&rustls::version::TLS13];
    let only_tls12 = [&rustls::version::TLS12];
    let (tls13, tls12, tls11, tls10, plaintext, anonymous) = tokio::join!(
        prober.handshake(&only_tls13, true),
        prober.handshake(&only_tls12, true),
        prober.legacy_hello(2),
        prober.legacy_hello(1),
        prober.plaintext_request("/healthz"),
        async {
            match mtls {
                Some(true) => Some(prober.handshake(&only_tls13, false).await),
                _ => None,
            }
        },
    );
    let mut items = Vec::new();
    let modern = tls13.as_ref().or(tls12.as_ref());
    items.push(match modern {
        Ok(handshake) => item(
            "transport.tls",
            Status::Pass,
            format!("TLS on ({})", handshake.version),
            vec![evidence(
                "TLS handshake",
                format!("completed with {}", handshake.version),
            )],
            None,
        ),
        Err(error) => item(
            "transport.tls",
            Status::Fail,
            "no TLS handshake succeeded",
            vec![evidence("TLS handshake", describe(error))],
            None,
        ),
    });
    if let Ok(handshake) = modern {
        items.push(certificate(handshake, prober.identity.local_ca.as_ref()));
    }
    let version_evidence = vec![
        evidence("TLS 1.3 handshake", handshake_outcome(&tls13)),
        evidence("TLS 1.2 handshake", handshake_outcome(&tls12)),
        evidence("TLS 1.1 ClientHello", legacy_outcome(&tls11)),
        evidence("TLS 1.0 ClientHello", legacy_outcome(&tls10)),
    ];
    let legacy_accepted: Vec<&str> = [("1.1", &tls11), ("1.0", &tls10)]
        .iter()
        .filter(|(_, answer)| matches!(answer, Ok(LegacyAnswer::Accepted)))
        .map(|(name, _)| *name)
        .collect();
    items.push(if !legacy_accepted.is_empty() {
        item(
            "transport.versions",
            Status::Fail,
            format!("accepts TLS {}", legacy_accepted.join(" and ")),
            version_evidence,
            None,
        )
    } else if tls11.is_err() || tls10.is_err() {
        item(
            "transport.versions",
            Status::Unknown,
            "the legacy handshakes got no clear answer",
            version_evidence,
            None,
        )
    } else {
        let accepted: Vec<&str> = [("1.3", &tls13), ("1.2", &tls12)]
            .iter()
            .filter(|(_, h)| h.is_ok())
            .map(|(name, _)| *name)
            .collect();
        item(
            "transport.versions",
            Status::Pass,
            format!("TLS {} accepted; 1.0 and 1.1 refused", accepted.join(" and ")),
            version_evidence,
            None,
        )
    });
    let plain_evidence = vec![evidence(
        "plain HTTP GET /healthz to the TLS port",
        observed(&plaintext),
    )];
    items.push(match &plaintext {
        Ok(response) if (200..400).contains(&response.status) => item(
            "transport.plaintext",
            Status::Fail,
            format!("plain HTTP answered {}", response.status),
            plain_evidence,
            None,
        ),
        Ok(response) => item(
            "transport.plaintext",
            Status::Pass,
            format!("plain HTTP refused with {}", response.status),
            plain_evidence,
            None,
        ),
        Err(_) => item(
            "transport.plaintext",
            Status::Pass,
            "plain HTTP gets no answer",
            plain_evidence,
            None,
        ),
    });
    if let Some(mtls) = mtls {
        items.push(mutual_tls(mtls, anonymous, loopback_only, prober));
    }
    items
}

fn handshake_outcome(result: &Result<crate::probe::Handshake, ProbeError>) -> String {
    match result {
        Ok(handshake) => format!("completed ({})", handshake.version),
        Err(error) => describe(error),
    }
}

fn legacy_outcome(result: &Result<LegacyAnswer, ProbeError>) -> String {
    match result {
        Ok(LegacyAnswer::Accepted) => "accepted".into(),
        Ok(LegacyAnswer::Refused(how)) => format!("refused: {how}"),
        Err(error) => describe(error),
    }
}

fn certificate(
    handshake: &crate::probe::Handshake,
    local_ca: Option<&rustls::pki_types::CertificateDer<'static>>,
) -> Item {
    let Some(der) = &handshake.certificate else {
        return item(
            "transport.certificate",
            Status::Unknown,
            "the server sent no certificate",
            vec![],
            None,
        );
    };
    let parsed = x509_parser::parse_x509_certificate(der.as_ref());
    let (subject, not_after) = match &parsed {
        Ok((_, cert)) => (
            cert.subject().to_string(),
            OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok(),
        ),
        Err(_) => ("unreadable".to_string(), None),
    };
    let now = OffsetDateTime::now_utc();
    let days_left = not_after.map(|t| (t - now).whole_days());
    let expiry = match (not_after, days_left) {
        (Some(t), Some(days)) => format!(
            "expires {} ({days} days)",
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        ),
        _ => "expiry unreadable".to_string(),
    };
    let mut found = vec![evidence(
        "certificate presented in the handshake",
        format!("{subject}; {expiry}"),
    )];
    found.push(evidence(
        "verification against Gatehouse's local CA",
        match &handshake.verified {
            Ok(()) => "trusted".to_string(),
            Err(reason) => format!("not trusted: {reason}"),
        },
    ));
    // Only a certificate the local CA signed is Gatehouse's to renew; an imported one goes back
    // to its issuer. Without the local CA at hand (a bare `check --url`), the fix says what it
    // needs when it runs.
    let ours = local_ca.is_none_or(|ca| crate::certs::signed_by(der.as_ref(), ca.as_ref()));
    let (renew, by_issuer) = if ours {
        (Some(Fix::RenewCertificates), "")
    } else {
        (
            None,
            "; it was imported: renew it with its issuer, then run `gatehouse certs import`",
        )
    };
    let expired = not_after.is_some_and(|t| t <= now);
    match (expired, days_left, &handshake.verified) {
        (true, ..) => item(
            "transport.certificate",
            Status::Fail,
            format!("the certificate has expired{by_issuer}"),
            found,
            renew,
        ),
        (_, Some(days), _) if days < CERTIFICATE_WARN_DAYS => item(
            "transport.certificate",
            Status::Warn,
            format!("the certificate expires in {days} days{by_issuer}"),
            found,
            renew,
        ),
        (_, _, Err(reason)) => item(
            "transport.certificate",
            Status::Warn,
            format!("not verifiable with the local CA or an imported certificate's CA: {reason}"),
            found,
            None,
        ),
        _ => {
            // A CA made before name constraints can vouch for any site once trusted; only a new
            // CA fixes that, and its clients must trust it anew, so this is advice, not a fix.
            let unconstrained = ours
                && local_ca
                    .is_some_and(|ca| matches!(crate::certs::authority_permits_der(ca.as_ref()), Ok(None)));
            if unconstrained {
                found.push(evidence("the local CA's name constraints", "none"));
                return item(
                    "transport.certificate",
                    Status::Warn,
                    format!(
                        "trusted; {expiry}; but the local CA has no name constraints, so whoever takes its key \
                         can make certificates for any site: run `gatehouse certs init --new-ca` to reissue it \
                         for this computer's names only (clients then trust the new ca.pem)"
                    ),
                    found,
                    None,
                );
            }
            item(
                "transport.certificate",
                Status::Pass,
                format!("trusted; {expiry}"),
                found,
                None,
            )
        }
    }
}

fn mutual_tls(
    mtls: bool,
    anonymous: Option<Result<crate::probe::Handshake, ProbeError>>,
    loopback_only: bool,
    prober: &Prober,
) -> Item {
    let with_certificate = if prober.identity.client.is_some() {
        "the probes presented a client certificate from certs/clients"
    } else {
        "no client certificate in certs/clients to probe with"
    };
    match (mtls, anonymous) {
        (true, Some(Err(error))) => item(
            "transport.mtls",
            Status::Pass,
            "a client without a certificate is refused in the handshake",
            vec![
                evidence("TLS handshake without a client certificate", describe(&error)),
                evidence("client certificate", with_certificate),
            ],
            None,
        ),
        (true, Some(Ok(_))) => item(
            "transport.mtls",
            Status::Fail,
            "mTLS is on but a client without a certificate got through",
            vec![evidence(
                "TLS handshake without a client certificate",
                "completed",
            )],
            None,
        ),
        (false, _) if loopback_only => item(
            "transport.mtls",
            Status::Pass,
            "off; not needed while only this computer connects",
            vec![evidence("/info", "mtls: false")],
            None,
        ),
        _ => item(
            "transport.mtls",
            Status::Warn,
            "off: any device on the network can try keys",
            vec![evidence("/info", "mtls: false")],
            None,
        ),
    }
}

fn custom_python(reported: Option<bool>, sandbox: Option<String>, settings: &Settings) -> Item {
    let (allowed, source) = match reported {
        Some(allowed) => (allowed, "GET /info custom_python"),
        None => (
            settings.workflows.allow_custom_python,
            "settings workflows.allow_custom_python",
        ),
    };
    let mut found = vec![evidence(source, allowed.to_string())];
    if let Some(layers) = sandbox {
        found.push(evidence("GET /info python_sandbox", layers));
    }
    if allowed {
        item(
            "workflows.custom_python",
            Status::Fail,
            "workflows may run custom Python on this computer",
            found,
            set("workflows.allow_custom_python", "false"),
        )
    } else {
        item(
            "workflows.custom_python",
            Status::Pass,
            "python steps are refused",
            found,
            None,
        )
    }
}

/// Judged only while python steps are allowed: otherwise no step runs in the sandbox at all.
fn sandbox(info: &ServerInfo) -> Option<Item> {
    if info.custom_python != Some(true) {
        return None;
    }
    let reported = info.python_sandbox.clone().unwrap_or_default();
    let found = vec![evidence("GET /info python_sandbox", sandbox_text(&reported))];
    let missing = reported.missing.join(", ");
    Some(if reported.missing.is_empty() {
        item(
            "workflows.sandbox",
            Status::Pass,
            "every layer of the sandbox is in force",
            found,
            None,
        )
    } else if reported.weaker_accepted {
        item(
            "workflows.sandbox",
            Status::Fail,
            format!("python steps run without {missing}: a weaker sandbox was accepted"),
            found,
            set("workflows.allow_weaker_sandbox", "false"),
        )
    } else {
        item(
            "workflows.sandbox",
            Status::Warn,
            format!("this system lacks {missing}, so python steps are refused"),
            found,
            None,
        )
    })
}

/// Keys sent in a URL in the last 24 hours, as the server counted them.
fn key_in_url(reported: Option<&[KeyInUrl]>) -> Item {
    let Some(keys) = reported else {
        return item(
            "auth.key_in_url",
            Status::Unknown,
            "the server tells which keys came in a URL only to clients on its own computer",
            vec![evidence("GET /info keys_in_url", "absent")],
            None,
        );
    };
    if keys.is_empty() {
        return item(
            "auth.key_in_url",
            Status::Pass,
            "no key came in a URL in the last 24 hours",
            vec![evidence("GET /info keys_in_url", "none")],
            None,
        );
    }
    let ids: Vec<&str> = keys.iter().map(|key| key.key_id.as_str()).collect();
    let found = keys
        .iter()
        .map(|key| {
            let last = key
                .last_seen
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let observed = format!(
                "key {} from {}, {} time(s), last at {last}",
                key.key_id, key.address, key.count
            );
            evidence("GET /info keys_in_url", observed)
        })
        .collect();
    item(
        "auth.key_in_url",
        Status::Warn,
        format!(
            "{} sent in a URL in the last 24 hours: send it in an `Authorization: Bearer` or \
             `X-API-Key` header, and rotate it if that URL was logged or shared",
            if ids.len() == 1 {
                format!("key {} was", ids[0])
            } else {
                format!("keys {} were", ids.join(", "))
            }
        ),
        found,
        None,
    )
}

/// A page on another site would send this origin.
const FOREIGN_ORIGIN: &str = "https://gatehouse-check.invalid";

pub(super) async fn cors(prober: &Prober) -> Item {
    let response = prober
        .request(
            "OPTIONS",
            "/v2",
            &[
                ("Origin", FOREIGN_ORIGIN),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "authorization"),
            ],
            &[],
        )
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            return item(
                "cors.policy",
                Status::Unknown,
                "the preflight got no answer",
                vec![evidence("CORS preflight", describe(&error))],
                None,
            );
        }
    };
    let allow_origin = response.header("access-control-allow-origin").unwrap_or("");
    let credentials = response
        .header("access-control-allow-credentials")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let found = vec![evidence(
        format!("OPTIONS /v2 preflight from {FOREIGN_ORIGIN}"),
        format!(
            "{}; Access-Control-Allow-Origin: {}{}",
            response.status,
            if allow_origin.is_empty() {
                "(none)"
            } else {
                allow_origin
            },
            if credentials {
                "; Access-Control-Allow-Credentials: true"
            } else {
                ""
            }
        ),
    )];
    let fix = set("cors.allowed_origins", "");
    if allow_origin == "*" {
        item(
            "cors.policy",
            Status::Fail,
            "any website may call the server (wildcard origin)",
            found,
            fix,
        )
    } else if allow_origin == FOREIGN_ORIGIN {
        item(
            "cors.policy",
            Status::Fail,
            "the server allows whatever origin asks",
            found,
            fix,
        )
    } else {
        item(
            "cors.policy",
            Status::Pass,
            "a foreign origin is not allowed",
            found,
            None,
        )
    }
}

pub(super) async fn metrics_protected(prober: &Prober, loopback_only: bool, paths: &[&str]) -> Item {
    let responses = join_all(
        paths
            .iter()
            .map(|path| async move { (*path, prober.request("GET", path, &[], &[]).await) }),
    )
    .await;
    let found = responses
        .iter()
        .map(|(path, response)| evidence(format!("GET {path} without a key"), observed(response)))
        .collect();
    let open: Vec<&str> = responses
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|r| r.status == 200))
        .map(|(path, _)| *path)
        .collect();
    if open.is_empty() {
        item(
            "metrics.protected",
            Status::Pass,
            "metrics and docs need a key",
            found,
            None,
        )
    } else if loopback_only {
        item(
            "metrics.protected",
            Status::Pass,
            format!("{} open, to this computer only", open.join(" and ")),
            found,
            None,
        )
    } else {
        item(
            "metrics.protected",
            Status::Warn,
            format!("{} readable by anyone who can connect", open.join(" and ")),
            found,
            set("server.metrics_access", "key"),
        )
    }
}

/// Endpoints of common inference servers (Gatehouse/Triton/KServe, TF Serving, Ollama, Roboflow
/// Inference, OpenAI-compatible servers) and plain web servers.
const KNOWN_ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/v2"),
    ("GET", "/v2/models"),
    ("POST", "/v2/repository/index"),
    ("GET", "/v1/models"),
    ("GET", "/api/tags"),
    ("GET", "/model/registry"),
    ("GET", "/workflows/definition/schema"),
];

async fn open_endpoints(prober: &Prober) -> Item {
    let responses =
        join_all(KNOWN_ENDPOINTS.iter().map(|(method, path)| async move {
            (*method, *path, prober.request(method, path, &[], &[]).await)
        }))
        .await;
    let mut found = Vec::new();
    let mut open = Vec::new();
    let mut refused = 0;
    for (method, path, response) in &responses {
        match response {
            Ok(r) if (200..300).contains(&r.status) => open.push(format!("{method} {path}")),
            Ok(r) if r.status == 401 || r.status == 403 => refused += 1,
            _ => {}
        }
        found.push(evidence(
            format!("{method} {path} without credentials"),
            observed(response),
        ));
    }
    if !open.is_empty() {
        item(
            "auth.required",
            Status::Fail,
            format!("answers without credentials: {}", open.join(", ")),
            found,
            None,
        )
    } else if refused > 0 {
        item(
            "auth.required",
            Status::Pass,
            "every known endpoint it serves demands credentials",
            found,
            None,
        )
    } else {
        item(
            "auth.required",
            Status::Unknown,
            "none of the known endpoints answered; cannot tell",
            found,
            None,
        )
    }
}

/// The items read from files rather than probed.
pub(super) fn configuration_items(paths: &Paths, settings: &Settings) -> Vec<Item> {
    let mut items = keys(paths, settings);
    items.push(file_permissions(paths, settings));
    items.push(audit(paths, settings));
    items
}

fn keys(paths: &Paths, settings: &Settings) -> Vec<Item> {
    let file = paths.keys_file();
    let source = format!("read {}", file.display());
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return vec![item(
                "keys.exist",
                Status::Unknown,
                "keys.toml cannot be read",
                vec![evidence(source, error.to_string())],
                None,
            )];
        }
    };
    let parsed = match KeyFile::parse(&text) {
        Ok(parsed) => parsed,
        Err(error) => {
            return vec![item(
                "keys.exist",
                Status::Fail,
                "keys.toml is broken; the server keeps the last good set",
                vec![evidence(source, error)],
                None,
            )];
        }
    };
    let now = OffsetDateTime::now_utc();
    let active: Vec<_> = parsed
        .keys
        .iter()
        .filter(|k| k.state(now) == KeyState::Active)
        .collect();
    let ids = |keys: &[&&crate::keys::KeyRecord]| {
        keys.iter()
            .map(|k| format!("{} ({})", k.id, k.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut items = Vec::new();
    let count = evidence(
        &source,
        format!("{} active of {} keys", active.len(), parsed.keys.len()),
    );
    items.push(if !active.is_empty() {
        item(
            "keys.exist",
            Status::Pass,
            format!("{} active key(s)", active.len()),
            vec![count],
            None,
        )
    } else if settings.auth.enabled {
        item(
            "keys.exist",
            Status::Warn,
            "no active key: every protected request is refused",
            vec![count],
            Some(Fix::CreateKey {
                name: "first key".into(),
                scopes: vec![Scope::Infer],
                expires: "90d".into(),
            }),
        )
    } else {
        item("keys.exist", Status::Warn, "no active key", vec![count], None)
    });
    let forever: Vec<_> = active.iter().filter(|k| k.expires.is_none()).collect();
    items.push(if forever.is_empty() {
        item(
            "keys.expiry",
            Status::Pass,
            "every active key has an expiry",
            vec![evidence(&source, "all active keys have `expires`")],
            None,
        )
    } else {
        item(
            "keys.expiry",
            Status::Warn,
            format!("{} key(s) never expire", forever.len()),
            vec![evidence(&source, format!("no expiry: {}", ids(&forever)))],
            None,
        )
    });
    let old: Vec<_> = active
        .iter()
        .filter(|k| (now - k.created).whole_days() > ROTATION_DAYS)
        .collect();
    items.push(if old.is_empty() {
        item(
            "keys.age",
            Status::Pass,
            format!("no active key is older than {ROTATION_DAYS} days"),
            vec![evidence(&source, "creation dates checked")],
            None,
        )
    } else {
        item(
            "keys.age",
            Status::Warn,
            format!(
                "{} key(s) older than {ROTATION_DAYS} days; rotate them",
                old.len()
            ),
            vec![evidence(
                &source,
                format!("older than {ROTATION_DAYS} days: {}", ids(&old)),
            )],
            None,
        )
    });
    let mixed: Vec<_> = active
        .iter()
        .filter(|k| {
            k.scopes.contains(&Scope::Admin)
                && (k.scopes.contains(&Scope::Infer) || k.scopes.contains(&Scope::Workflows))
        })
        .collect();
    items.push(if mixed.is_empty() {
        item(
            "keys.separation",
            Status::Pass,
            "no key both administers and runs models",
            vec![evidence(&source, "scopes checked")],
            None,
        )
    } else {
        item(
            "keys.separation",
            Status::Warn,
            format!("{} key(s) combine admin with inference", mixed.len()),
            vec![evidence(
                &source,
                format!("admin and infer/workflows: {}", ids(&mixed)),
            )],
            None,
        )
    });
    let in_keychain = parsed
        .keys
        .iter()
        .filter(|k| k.storage == Storage::Keychain)
        .count();
    let leaked = secret_in(&text) == Some("an API key");
    items.push(if leaked {
        item(
            "keys.storage",
            Status::Fail,
            "keys.toml contains key text",
            vec![evidence(&source, "a full API key appears in the file")],
            None,
        )
    } else {
        item(
            "keys.storage",
            Status::Pass,
            "keys.toml holds hashes only",
            vec![evidence(
                &source,
                format!(
                    "no key text in the file; {in_keychain} key(s) in the keychain, {} hash-only",
                    parsed.keys.len() - in_keychain
                ),
            )],
            None,
        )
    });
    items
}

fn file_permissions(paths: &Paths, settings: &Settings) -> Item {
    let files = CertFiles::new(paths.certs_dir());
    let mut candidates: Vec<PathBuf> = vec![paths.settings_file(), paths.keys_file(), paths.audit_log()];
    candidates.push(settings.tls.key.clone().unwrap_or_else(|| files.server_key()));
    if let Ok(entries) = std::fs::read_dir(paths.certs_dir().join("clients")) {
        candidates.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with("-key.pem")),
        );
    }
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let mut found = Vec::new();
    let mut loose = Vec::new();
    for path in candidates {
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        let mode = metadata.mode() & 0o777;
        let owner_ok = me.is_none_or(|uid| uid == metadata.uid());
        let private = mode & 0o077 == 0;
        found.push(evidence(
            format!("stat {}", path.display()),
            format!(
                "mode {mode:04o}, owner uid {}{}",
                metadata.uid(),
                if owner_ok { "" } else { " (not you)" }
            ),
        ));
        if !private || !owner_ok {
            loose.push(path);
        }
    }
    if loose.is_empty() {
        item(
            "files.permissions",
            Status::Pass,
            format!("{} private file(s), all mode 0600 and yours", found.len()),
            found,
            None,
        )
    } else {
        item(
            "files.permissions",
            Status::Fail,
            format!(
                "readable by others: {}",
                loose
                    .iter()
                    .map(|p| display_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            found,
            Some(Fix::RestrictFileModes { paths: loose }),
        )
    }
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn audit(paths: &Paths, settings: &Settings) -> Item {
    let log = paths.audit_log();
    if settings.audit.enabled {
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        item(
            "audit.enabled",
            Status::Pass,
            "requests and key changes are written to the audit log",
            vec![evidence(
                "settings audit.enabled",
                format!("true; {} holds {size} bytes", log.display()),
            )],
            None,
        )
    } else {
        item(
            "audit.enabled",
            Status::Warn,
            "the audit log is off",
            vec![evidence("settings audit.enabled", "false")],
            set("audit.enabled", "true"),
        )
    }
}

/// [`local_identity`], read afresh each time it is called: what the supervisor's probes use, so
/// certificates made while it runs are in force from the server's next start.
pub fn local_identity_reader(paths: &Paths) -> std::sync::Arc<dyn Fn() -> TlsIdentity + Send + Sync> {
    let paths = paths.clone();
    std::sync::Arc::new(move || local_identity(&paths))
}

/// What probes of the local server trust and show: the local CA and the CA of an imported server
/// certificate, and the first current client certificate in `certs/clients` (sent only when the
/// server asks for one, i.e. with mutual TLS).
pub fn local_identity(paths: &Paths) -> TlsIdentity {
    let files = CertFiles::new(paths.certs_dir());
    let mut identity = TlsIdentity::trusting_pem(&files.ca());
    identity.local_ca = identity.roots.first().cloned();
    identity
        .roots
        .extend(TlsIdentity::trusting_pem(&files.imported_ca()).roots);
    let client = crate::certs::list(&files)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|info| info.role == "client" && info.days_left >= 0)
        .find_map(|info| {
            let name = info.path.file_stem()?.to_string_lossy().into_owned();
            let key = files.client_key(&name);
            key.exists().then_some((info.path, key))
        });
    match client {
        Some((cert, key)) => identity.with_client(&cert, &key),
        None => identity,
    }
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
