//! `gatehouse certs …`: the local CA, the server certificate and client certificates for mTLS.
//! Data (`--json`, PEM) goes to stdout, guidance to stderr; every change is audited.

use std::path::PathBuf;

use clap::Subcommand;
use gatehouse_core::audit::Actor;
use gatehouse_core::certs::{self, CertFiles, CertInfo};
use gatehouse_core::ops;
use gatehouse_core::paths::Paths;

use crate::audited;
use serde_json::json;

/// Where to add `ca.pem` so that each kind of client trusts the server, as `export-ca` prints it:
/// (key in the JSON, name for people, how).
const TRUST_STEPS: [(&str, &str, &str); 5] = [
    (
        "debian",
        "Debian/Ubuntu",
        "sudo cp ca.pem /usr/local/share/ca-certificates/gatehouse.crt && sudo update-ca-certificates",
    ),
    (
        "macos",
        "macOS",
        "sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ca.pem",
    ),
    (
        "firefox",
        "Firefox",
        "Settings → Privacy & Security → Certificates → View Certificates → Authorities → Import",
    ),
    (
        "chrome",
        "Chrome and Chromium",
        "Settings → Privacy and security → Security → Manage certificates → Authorities → Import",
    ),
    ("curl", "curl", "--cacert ca.pem"),
];

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Make the local CA (key in the keychain) and a server certificate for this computer.
    Init {
        /// Another name or address the server is reached by (a LAN address, say); repeatable.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Replace the CA too (clients must then trust the new ca.pem).
        #[arg(long)]
        new_ca: bool,
        /// Lifetime of the server certificate in days.
        #[arg(long, default_value_t = certs::SERVER_LIFETIME.whole_days())]
        days: i64,
        #[arg(long)]
        json: bool,
    },
    /// Issue a client certificate for mutual TLS.
    IssueClient {
        name: String,
        #[arg(long, default_value_t = certs::CLIENT_LIFETIME.whole_days())]
        days: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show every certificate and when it expires.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Reissue certificates that expire within 30 days (all of them with --force), same names.
    Renew {
        #[arg(long)]
        force: bool,
        #[arg(long, default_value_t = certs::SERVER_LIFETIME.whole_days())]
        days: i64,
        #[arg(long)]
        json: bool,
    },
    /// Print the CA certificate (PEM) to add to trust stores.
    ExportCa {
        /// Write it to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the certificate (PEM and details) and the trust-store steps as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Use an existing certificate and key as the server's.
    Import {
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// The CA that issued the certificate: checked against it, then trusted by `gatehouse
        /// check` and the panel.
        #[arg(long)]
        ca: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: CertsCommand, paths: &Paths) -> Result<(), String> {
    let files = CertFiles::new(paths.certs_dir());
    let ctx = ops::Context::new(paths, Actor::Cli);
    let lifetime = |days: i64| certs::lifetime(days).map_err(|e| format!("--days: {e}"));
    match command {
        CertsCommand::Init {
            hosts,
            new_ca,
            days,
            json,
        } => {
            // Beside the names given, the address the server is set to listen on, so a server
            // already bound to the local network gets a certificate its clients there accept.
            let made = audited(ops::init_certificates(&ctx, &hosts, new_ca, lifetime(days)?))?;
            let (ca, server, created) = (made.ca, made.server, made.ca_created);
            if json {
                println!(
                    "{}",
                    json!({"ca": ca, "server": server, "ca_created": created, "key": files.server_key()})
                );
            } else {
                eprintln!(
                    "{} local CA: {} (key in your keychain)",
                    if created { "Created" } else { "Kept the" },
                    ca.path.display()
                );
                print_info(&server);
                eprintln!(
                    "Turn TLS on with `gatehouse settings set tls.enabled true`; trust the CA with `gatehouse certs export-ca`."
                );
            }
        }
        CertsCommand::IssueClient { name, days, json } => {
            let info = audited(ops::issue_client(&ctx, &name, lifetime(days)?))?;
            if json {
                println!(
                    "{}",
                    json!({"certificate": info, "key": files.client_key(&name), "ca": files.ca()})
                );
            } else {
                print_info(&info);
                eprintln!(
                    "Its key: {}. Clients present both; the server trusts them once tls.client_ca is {}.",
                    files.client_key(&name).display(),
                    files.ca().display()
                );
            }
        }
        CertsCommand::Show { json } => {
            let found = certs::list(&files);
            if json {
                let rows: Vec<serde_json::Value> = found
                    .iter()
                    .map(|r| match r {
                        Ok(info) => json!(info),
                        Err(error) => json!({"error": error.to_string()}),
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
                );
            } else if found.is_empty() {
                eprintln!("No certificates yet; make them with `gatehouse certs init`.");
            } else {
                for row in &found {
                    match row {
                        Ok(info) => print_info(info),
                        Err(error) => eprintln!("gatehouse: {error}"),
                    }
                }
            }
        }
        CertsCommand::Renew { force, days, json } => {
            let ops::RenewedDue { renewed, imported } =
                audited(ops::renew_due(&ctx, force, lifetime(days)?))?;
            if json {
                println!("{}", json!(renewed));
            } else if !renewed.is_empty() {
                renewed.iter().for_each(print_info);
                eprintln!("A running server picks the new files up within a second.");
            } else if imported.is_none() {
                eprintln!(
                    "Nothing expires within {} days; use --force to renew anyway.",
                    certs::RENEW_WITHIN.whole_days()
                );
            }
            // Due but not ours to renew: the others are done, and the exit status says so.
            if let Some(error) = imported {
                return Err(error.to_string());
            }
        }
        CertsCommand::ExportCa { out, json } => {
            let pem =
                std::fs::read_to_string(files.ca()).map_err(|_| certs::CertError::NoAuthority.to_string())?;
            if let Some(path) = &out {
                std::fs::write(path, &pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            if json {
                let info = certs::inspect(certs::CertRole::Ca, &files.ca()).map_err(|e| e.to_string())?;
                let trust: serde_json::Map<String, serde_json::Value> = TRUST_STEPS
                    .iter()
                    .map(|(key, _, how)| (key.to_string(), json!(how)))
                    .collect();
                println!(
                    "{}",
                    json!({"certificate": info, "pem": pem, "written": out, "trust": trust})
                );
                return Ok(());
            }
            match &out {
                Some(path) => eprintln!("Wrote {}.", path.display()),
                None => print!("{pem}"),
            }
            let steps: Vec<String> = TRUST_STEPS
                .iter()
                .map(|(_, name, how)| format!("{name}: {how}"))
                .collect();
            eprintln!("To trust it: {}.", steps.join("; "));
        }
        CertsCommand::Import { cert, key, ca, json } => {
            let info = audited(ops::import_server(&ctx, &cert, &key, ca.as_deref()))?;
            if json {
                println!("{}", json!(info));
            } else {
                print_info(&info);
            }
        }
    }
    Ok(())
}

fn print_info(info: &CertInfo) {
    let until = info
        .not_after
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let names = if info.names.is_empty() {
        String::new()
    } else {
        format!(" for {}", info.names.join(", "))
    };
    eprintln!(
        "{:<7} {}{names}: expires {until} ({} days)",
        info.role,
        info.path.display(),
        info.days_left
    );
}
