//! What a certificate file says about itself: its role, subject, names and validity, read with
//! x509-parser for the CLI, the panel and the checklist alike.

use super::*;

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "kebab-case")]
pub enum CertRole {
    /// The local CA.
    Ca,
    Server,
    Client,
    /// The CA a server certificate was imported with.
    ImportedCa,
}

impl CertRole {
    pub fn as_str(self) -> &'static str {
        match self {
            CertRole::Ca => "ca",
            CertRole::Server => "server",
            CertRole::Client => "client",
            CertRole::ImportedCa => "imported-ca",
        }
    }

    /// A CA's certificate rather than one a CA issued.
    pub fn is_authority(self) -> bool {
        matches!(self, CertRole::Ca | CertRole::ImportedCa)
    }
}

impl std::fmt::Display for CertRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What one certificate file says about itself.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct CertInfo {
    pub role: CertRole,
    pub path: PathBuf,
    pub subject: String,
    pub names: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "bindings", ts(type = "string"))]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "bindings", ts(type = "string"))]
    pub not_after: OffsetDateTime,
    pub days_left: i64,
}

/// Reads a PEM certificate's subject, names and validity.
pub fn inspect(role: CertRole, path: &Path) -> Result<CertInfo, CertError> {
    let unreadable = |message: String| CertError::Unreadable {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(&bytes).map_err(|e| unreadable(format!("not PEM: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| unreadable(format!("not an X.509 certificate: {e}")))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => names.push((*dns).to_string()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let at = |t: i64| OffsetDateTime::from_unix_timestamp(t).map_err(|e| unreadable(e.to_string()));
    let not_before = at(cert.validity().not_before.timestamp())?;
    let not_after = at(cert.validity().not_after.timestamp())?;
    Ok(CertInfo {
        role,
        path: path.to_path_buf(),
        subject: cert.subject().to_string(),
        names,
        not_before,
        not_after,
        days_left: (not_after - OffsetDateTime::now_utc()).whole_days(),
    })
}
