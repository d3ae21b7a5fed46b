//! The Certificates page: the local CA and server certificate, client certificates for mutual
//! TLS, importing existing files and exporting the CA for trust stores.

use std::path::PathBuf;

use gatehouse_core::certs::{self, CertFiles, CertInfo, Initialised};
use gatehouse_core::ops;
use serde::Serialize;

use super::Shared;
use crate::error::CommandResult;

/// One certificate file: what it says, or why it could not be read.
#[derive(Serialize, ts_rs::TS)]
pub struct CertRow {
    pub info: Option<CertInfo>,
    pub error: Option<String>,
    /// A server certificate from another CA (imported): its issuer renews it, not Gatehouse.
    pub imported: bool,
}

fn files(state: &Shared<'_>) -> CertFiles {
    CertFiles::new(state.paths.certs_dir())
}

fn lifetime(days: i64) -> CommandResult<time::Duration> {
    Ok(certs::lifetime(days)?)
}

#[tauri::command]
pub fn certs_list(state: Shared<'_>) -> Vec<CertRow> {
    let files = files(&state);
    certs::list(&files)
        .into_iter()
        .map(|row| match row {
            Ok(info) => CertRow {
                imported: info.role == certs::CertRole::Server
                    && !certs::issued_by_local_ca(&files, &info.path),
                info: Some(info),
                error: None,
            },
            Err(error) => CertRow {
                info: None,
                error: Some(error.to_string()),
                imported: false,
            },
        })
        .collect()
}

/// Makes the local CA (first time only) and a server certificate for this computer, `hosts`
/// and the address the server listens on, so clients on the network can verify it too.
#[tauri::command]
pub fn certs_init(state: Shared<'_>, hosts: Vec<String>, days: i64) -> CommandResult<Initialised> {
    Ok(ops::init_certificates(&state.panel(), &hosts, false, lifetime(days)?)?.value)
}

/// A new server certificate from the local CA for the names the current one carries; refused,
/// with the way on, when the current one was imported.
#[tauri::command]
pub fn certs_renew_server(state: Shared<'_>, days: i64) -> CommandResult<CertInfo> {
    Ok(ops::renew_server(&state.panel(), lifetime(days)?)?.value)
}

/// A client certificate for mutual TLS, and where its files are.
#[derive(Serialize, ts_rs::TS)]
pub struct IssuedClient {
    pub certificate: CertInfo,
    pub key: PathBuf,
    pub ca: PathBuf,
}

#[tauri::command]
pub fn certs_issue_client(state: Shared<'_>, name: String, days: i64) -> CommandResult<IssuedClient> {
    let files = files(&state);
    let certificate = ops::issue_client(&state.panel(), &name, lifetime(days)?)?.value;
    Ok(IssuedClient {
        certificate,
        key: files.client_key(&name),
        ca: files.ca(),
    })
}

/// Existing certificate and key files (say, from a company CA) as the server's, with the CA
/// that issued them when given (then trusted by the checklist and the panel's own requests).
#[tauri::command]
pub fn certs_import(
    state: Shared<'_>,
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
) -> CommandResult<CertInfo> {
    Ok(ops::import_server(&state.panel(), &cert, &key, ca.as_deref())?.value)
}

/// The CA certificate, for the copy button and the trust-store instructions beside it.
#[derive(Serialize, ts_rs::TS)]
pub struct ExportedCa {
    pub path: PathBuf,
    pub pem: String,
}

#[tauri::command]
pub fn certs_export_ca(state: Shared<'_>) -> CommandResult<ExportedCa> {
    let path = files(&state).ca();
    let pem = std::fs::read_to_string(&path).map_err(|_| certs::CertError::NoAuthority)?;
    Ok(ExportedCa { path, pem })
}
