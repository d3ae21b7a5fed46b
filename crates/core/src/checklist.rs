//! The live security checklist: each control Gatehouse promises, proved by probing the running
//! server the way an outsider would, and by reading the configuration where no probe can tell.
//!
//! Guarantees: every item carries the evidence it was judged on (what was probed, what came back,
//! when); every probe is bounded by [`Options::timeout`] and all of them run concurrently, so a dead
//! or hanging server costs one timeout, not one per item; a probe that cannot answer gives
//! `unknown`, never a guessed `pass`. The same engine audits servers that are not Gatehouse
//! ([`check_external`]), with the probes that make sense for any HTTP server.

mod catalog;
pub mod fix;
mod guard;
mod items;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Settings;
use crate::paths::Paths;
use crate::probe::{Endpoint, ProbeError, Prober};
use crate::wire::ServerInfo;

pub use catalog::ItemId;
pub use fix::{Applied, Fix, FixError, apply};
pub use items::{local_identity, local_identity_reader};

/// How an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[cfg_attr(feature = "bindings", ts(rename = "CheckStatus"))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Unknown,
    Warn,
    Fail,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
        }
    }
}

/// One observation an item was judged on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct Evidence {
    /// What was done, e.g. `GET /v2 without a key`.
    pub probe: String,
    /// What came back, e.g. `401 unauthorized`.
    pub observed: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "bindings", ts(type = "string"))]
    pub at: OffsetDateTime,
}

/// One control of the checklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct Item {
    pub id: ItemId,
    pub title: String,
    /// Why it matters, in plain words.
    pub why: String,
    /// The standards it maps to (OWASP API Security Top 10 2023, NIST SP 800-207, NIST CSF).
    pub standards: Vec<String>,
    pub status: Status,
    /// One line saying what was found.
    pub summary: String,
    pub evidence: Vec<Evidence>,
    /// What would put it right, as data the app applies in one click.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "bindings", ts(optional))]
    pub fix: Option<Fix>,
}

/// A whole checklist run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct Report {
    /// The URL that was probed.
    pub target: String,
    pub kind: ReportKind,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "bindings", ts(type = "string"))]
    pub started: OffsetDateTime,
    pub duration_ms: u64,
    pub summary: Summary,
    pub items: Vec<Item>,
}

/// What a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// A Gatehouse server on this computer: live probes and its local configuration.
    Gatehouse,
    /// Any server, from the outside only.
    External,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub unknown: usize,
}

/// Limits of one run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The most any single probe may take.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(2),
        }
    }
}

impl Report {
    fn new(
        target: String,
        kind: ReportKind,
        started: OffsetDateTime,
        clock: Instant,
        items: Vec<Item>,
    ) -> Report {
        let mut summary = Summary::default();
        for item in &items {
            match item.status {
                Status::Pass => summary.pass += 1,
                Status::Warn => summary.warn += 1,
                Status::Fail => summary.fail += 1,
                Status::Unknown => summary.unknown += 1,
            }
        }
        Report {
            target,
            kind,
            started,
            duration_ms: clock.elapsed().as_millis() as u64,
            summary,
            items,
        }
    }

    /// The worst status of any item.
    pub fn worst(&self) -> Status {
        self.items
            .iter()
            .map(|i| i.status)
            .max()
            .unwrap_or(Status::Unknown)
    }

    pub fn item(&self, id: ItemId) -> Option<&Item> {
        self.items.iter().find(|i| i.id == id)
    }

    /// A terminal-friendly listing: one line per item, evidence indented under the ones that are
    /// not passing.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "Gatehouse checklist for {} ({} pass, {} warn, {} fail, {} unknown; {} ms)\n",
            self.target,
            self.summary.pass,
            self.summary.warn,
            self.summary.fail,
            self.summary.unknown,
            self.duration_ms
        );
        for item in &self.items {
            out.push_str(&format!(
                "{:<7} {:<28} {}\n",
                item.status.name().to_uppercase(),
                item.id.as_str(),
                item.summary
            ));
            if item.status != Status::Pass {
                for evidence in &item.evidence {
                    out.push_str(&format!(
                        "          {} -> {}\n",
                        evidence.probe, evidence.observed
                    ));
                }
                if let Some(fix) = &item.fix {
                    out.push_str(&format!(
                        "          fix: {} (gatehouse check --fix {})\n",
                        fix.label(),
                        item.id
                    ));
                }
            }
        }
        out
    }

    /// A report a person can attach to a ticket.
    pub fn to_markdown(&self) -> String {
        let started = self
            .started
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut out = format!(
            "# Security checklist: {}\n\nChecked {started} by Gatehouse {} in {} ms: **{} pass, {} warn, {} fail, {} unknown**.\n\n| status | item | finding | standards |\n|---|---|---|---|\n",
            self.target,
            crate::VERSION,
            self.duration_ms,
            self.summary.pass,
            self.summary.warn,
            self.summary.fail,
            self.summary.unknown
        );
        for item in &self.items {
            out.push_str(&format!(
                "| {} | {} (`{}`) | {} | {} |\n",
                item.status.name(),
                markdown_cell(&item.title),
                item.id,
                markdown_cell(&item.summary),
                item.standards.join(", ")
            ));
        }
        out.push_str("\n## Evidence\n");
        for item in &self.items {
            out.push_str(&format!(
                "\n### {} — {}\n\n{}\n\n",
                item.id,
                item.status.name(),
                item.why
            ));
            for evidence in &item.evidence {
                let at = evidence
                    .at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                out.push_str(&format!(
                    "- `{}` → {} ({at})\n",
                    evidence.probe.replace('`', "'"),
                    evidence.observed
                ));
            }
            if let Some(fix) = &item.fix {
                out.push_str(&format!("\nFix: {}\n", fix.label()));
            }
        }
        out
    }
}

fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Checks the Gatehouse server at `url` together with the local configuration in `paths`
/// (`settings` as the server was started with them).
pub async fn check_gatehouse(url: &str, paths: &Paths, settings: &Settings, options: Options) -> Report {
    let started = OffsetDateTime::now_utc();
    let clock = Instant::now();
    let items = match Endpoint::parse(url) {
        // Boxed: the joined probes make a large future, too large for a worker's stack when it
        // is moved into a spawned task in a debug build.
        Ok(endpoint) => Box::pin(items::gatehouse(endpoint, paths, settings, options)).await,
        Err(error) => vec![items::unreachable(url, &error)],
    };
    Report::new(url.to_string(), ReportKind::Gatehouse, started, clock, items)
}

/// Audits any HTTP server at `url` (Gatehouse or not) from the outside: open endpoints,
/// unauthenticated access, TLS, exposure beyond this computer, CORS.
pub async fn check_external(url: &str, options: Options) -> Report {
    let started = OffsetDateTime::now_utc();
    let clock = Instant::now();
    let items = match Endpoint::parse(url) {
        Ok(endpoint) => Box::pin(items::external(endpoint, options)).await,
        Err(error) => vec![items::unreachable(url, &error)],
    };
    Report::new(url.to_string(), ReportKind::External, started, clock, items)
}

/// The URL of the local Gatehouse server as `settings` place it (a wildcard bind is probed on
/// loopback, which it includes).
pub fn local_url(settings: &Settings) -> String {
    let scheme = if settings.tls.enabled { "https" } else { "http" };
    let host = match settings.server.host.as_str() {
        "0.0.0.0" => "127.0.0.1".to_string(),
        "::" => "[::1]".to_string(),
        host if host.contains(':') => format!("[{host}]"),
        host => host.to_string(),
    };
    format!("{scheme}://{host}:{}", settings.server.port)
}

/// Whether the server at `url` says it is a Gatehouse server (`/info`), within `timeout`.
pub async fn is_gatehouse(url: &str, identity: crate::probe::TlsIdentity, timeout: Duration) -> bool {
    let Ok(endpoint) = Endpoint::parse(url) else {
        return false;
    };
    let prober = Prober::new(endpoint, identity, timeout);
    // A guard's own routes are under /_gatehouse/; a server of its own at /info.
    for path in [crate::wire::routes::INFO, "/info"] {
        if let Ok(response) = prober.request("GET", path, &[], &[]).await
            && response.status == 200
            && serde_json::from_slice::<ServerInfo>(&response.body).is_ok_and(|info| info.name == "gatehouse")
        {
            return true;
        }
    }
    false
}

fn describe(error: &ProbeError) -> String {
    error.to_string()
}
