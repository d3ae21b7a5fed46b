//! Certificates for TLS and mTLS, made with rcgen: a local certificate authority whose private key
//! lives in the OS keychain (never on disk), a server certificate it signs for this computer's
//! names and chosen LAN addresses, and client certificates for mutual TLS.
//!
//! Files live in `<config>/certs/`: `ca.pem` (public), `server.pem` + `server-key.pem`, and
//! `clients/<name>.pem` + `clients/<name>-key.pem`. Key files are 0600 and written atomically.
//! Renewal reissues a certificate with the same names; a running server picks the new files up.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PublicKeyData,
};
use serde::Serialize;
use time::OffsetDateTime;

mod constraints;

use crate::fsutil;
use crate::keys::{KeyError, Keychain};
use crate::net::host_name;
use crate::sensitive::Sensitive;
use constraints::authority_constraints;
pub use constraints::{Permitted, authority_permits, authority_permits_der};

/// Keychain account that holds a CA's private key (PEM), under service `gatehouse`. It names the
/// CA certificate by fingerprint, so several Gatehouse homes (or a replaced CA) never share a key.
pub fn ca_key_account(cert_pem: &str) -> String {
    let digest = crate::keys::format::hash(cert_pem.trim());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("certificate-authority-{hex}")
}
/// How long the local CA is valid.
pub const CA_LIFETIME: time::Duration = time::Duration::days(5 * 365);
/// How long a server certificate is valid; browsers refuse more than 398 days.
pub const SERVER_LIFETIME: time::Duration = time::Duration::days(90);
/// The longest a certificate Gatehouse issues may live: Apple's TLS clients refuse server
/// certificates that live longer, even from a CA the person trusts.
pub const MAX_LIFETIME_DAYS: i64 = 825;

/// A certificate lifetime given in days, checked against [`MAX_LIFETIME_DAYS`]: the one check the
/// CLI and the panel make.
pub fn lifetime(days: i64) -> Result<time::Duration, CertError> {
    if (1..=MAX_LIFETIME_DAYS).contains(&days) {
        Ok(time::Duration::days(days))
    } else {
        Err(CertError::Lifetime { days })
    }
}
/// Default lifetime of a client certificate.
pub const CLIENT_LIFETIME: time::Duration = time::Duration::days(90);
/// Certificates that expire within this are renewed by `renew`.
pub const RENEW_WITHIN: time::Duration = time::Duration::days(30);

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(transparent)]
    Keychain(#[from] KeyError),
    #[error("there is no local CA yet; fix: run `gatehouse certs init` first")]
    NoAuthority,
    #[error(
        "the CA certificate exists but its private key is not in the keychain; fix: run `gatehouse certs init --new-ca` \
         to make a new CA (clients must then trust the new ca.pem)"
    )]
    AuthorityKeyMissing,
    #[error("`{name}` is not a usable {what}; fix: {fix}")]
    Invalid {
        what: &'static str,
        name: String,
        fix: &'static str,
    },
    #[error("cannot read {path}: {message}; fix: check the file is a PEM certificate or key you can read")]
    Unreadable { path: PathBuf, message: String },
    #[error(
        "cannot write {path}: {source}; fix: check free disk space and permissions (the previous file is unchanged)"
    )]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} cannot be used with {other}: {message}; fix: {fix}")]
    Mismatch {
        path: PathBuf,
        other: PathBuf,
        message: String,
        fix: &'static str,
    },
    #[error(
        "{path} was imported, not issued by Gatehouse's local CA, so Gatehouse cannot renew it; fix: get a renewed \
         certificate from its issuer and run `gatehouse certs import` again, or run `gatehouse certs init` to serve one \
         from the local CA"
    )]
    Imported { path: PathBuf },
    #[error(
        "the local CA vouches only for this computer's names, private network addresses and the names given when it \
         was made, not for {}; fix: run `gatehouse certs init --new-ca --host {}` (clients must then trust the new ca.pem)",
        names.join(", "),
        names.join(" --host ")
    )]
    OutsideAuthority { names: Vec<String> },
    #[error(
        "a certificate cannot live {days} days; fix: give 1 to 825 days (Apple's TLS clients refuse longer ones)"
    )]
    Lifetime { days: i64 },
    #[error("certificate generation failed: {0}")]
    Generation(String),
}

impl From<rcgen::Error> for CertError {
    fn from(error: rcgen::Error) -> CertError {
        CertError::Generation(error.to_string())
    }
}

/// Where the certificate files are.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub dir: PathBuf,
}

impl CertFiles {
    pub fn new(dir: PathBuf) -> CertFiles {
        CertFiles { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }

    /// The server certificate's twin with its DNS names only, issued with it by the local CA and
    /// served to clients that ask by name (SNI). BoringSSL-based clients (gRPC's, Chrome's
    /// relatives) refuse a leaf with IP addresses under a CA whose name constraints list
    /// address ranges; asked by name, they get this one.
    pub fn server_names_cert(&self) -> PathBuf {
        self.dir.join("server-names.pem")
    }

    pub fn server_names_key(&self) -> PathBuf {
        self.dir.join("server-names-key.pem")
    }

    /// The CA that issued an imported server certificate, when the import named one; trusted
    /// beside `ca.pem` by the checklist's probes and the panel's own requests.
    pub fn imported_ca(&self) -> PathBuf {
        self.dir.join("imported-ca.pem")
    }

    pub fn client_cert(&self, name: &str) -> PathBuf {
        self.dir.join("clients").join(format!("{name}.pem"))
    }

    pub fn client_key(&self, name: &str) -> PathBuf {
        self.dir.join("clients").join(format!("{name}-key.pem"))
    }
}

/// What one certificate file says about itself.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct CertInfo {
    /// `ca` (the local CA), `server`, `client`, or `imported-ca` (the CA a server certificate was
    /// imported with).
    #[cfg_attr(
        feature = "bindings",
        ts(type = "\"ca\" | \"server\" | \"client\" | \"imported-ca\"")
    )]
    pub role: &'static str,
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
pub fn inspect(role: &'static str, path: &Path) -> Result<CertInfo, CertError> {
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

/// The names a server certificate covers by default: this computer under every name a local client
/// uses, plus the host name and any addresses given.
pub fn default_server_names(extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(host) = host_name() {
        names.push(host);
    }
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// `extra` and the names clients on the network reach the server by, from the settings it would
/// run with (file and environment): what every front end puts on a server certificate it makes,
/// so the same settings give the same names whichever made it. Unreadable settings add nothing;
/// the server reports them when it starts.
pub fn names_for_server(settings_file: &Path, extra: &[String]) -> Vec<String> {
    let mut names = extra.to_vec();
    if let Ok(settings) = crate::Settings::effective(settings_file) {
        names.extend(listening_names(&settings.server.host));
    }
    names
}

/// The names clients on the network reach a server bound to `host` by, beyond the defaults:
/// that address when it listens on one, this computer's network address when it listens on
/// every interface, none on loopback.
pub fn listening_names(host: &str) -> Vec<String> {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() => crate::net::network_address()
            .map(|lan| vec![lan.to_string()])
            .unwrap_or_default(),
        Ok(ip) if !ip.is_loopback() => vec![ip.to_string()],
        _ => Vec::new(),
    }
}

/// The local CA: its certificate on disk, its key in the keychain.
pub struct Authority {
    cert_pem: String,
    key: KeyPair,
}

impl Authority {
    /// Loads the CA, or makes one when there is none (or `replace` is set), constrained to this
    /// computer's names, private addresses and `names`.
    pub fn load_or_create(
        files: &CertFiles,
        keychain: &Keychain,
        replace: bool,
        names: &[String],
    ) -> Result<(Authority, bool), CertError> {
        if !replace && files.ca().exists() {
            return Ok((Self::load(files, keychain)?, false));
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.name_constraints = Some(authority_constraints(names));
        params.distinguished_name = name(&format!(
            "Gatehouse local CA ({})",
            host_name().unwrap_or_else(|| "this computer".into())
        ));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + CA_LIFETIME;
        let cert = params.self_signed(&key)?;
        // The key goes to the keychain before the certificate is written: a CA file without its
        // key would be a CA nobody can use.
        keychain.store(
            &ca_key_account(&cert.pem()),
            "local certificate authority",
            &Sensitive::new(key.serialize_pem()),
        )?;
        write_public(&files.ca(), cert.pem().as_bytes())?;
        Ok((
            Authority {
                cert_pem: cert.pem(),
                key,
            },
            true,
        ))
    }

    pub fn load(files: &CertFiles, keychain: &Keychain) -> Result<Authority, CertError> {
        let cert_pem = std::fs::read_to_string(files.ca()).map_err(|_| CertError::NoAuthority)?;
        let key_pem = match keychain.get(&ca_key_account(&cert_pem)) {
            Ok(pem) => pem,
            Err(KeyError::NotInKeychain { .. }) => return Err(CertError::AuthorityKeyMissing),
            Err(other) => return Err(other.into()),
        };
        let key = KeyPair::from_pem(key_pem.expose())?;
        Ok(Authority { cert_pem, key })
    }

    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, CertError> {
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?)
    }

    /// Issues the server certificate for `names` into `server.pem` / `server-key.pem`.
    pub fn issue_server(
        &self,
        files: &CertFiles,
        names: &[String],
        lifetime: time::Duration,
    ) -> Result<CertInfo, CertError> {
        // A certificate for a name outside the CA's constraints would be refused by every client.
        if let Ok(Some(permitted)) = authority_permits(self.cert_pem.as_bytes()) {
            let outside = permitted.outside(names);
            if !outside.is_empty() {
                return Err(CertError::OutsideAuthority { names: outside });
            }
        }
        let server_params = |names: &[String], subject: &[String]| -> Result<CertificateParams, CertError> {
            let mut params = CertificateParams::new(names.to_vec()).map_err(|_| CertError::Invalid {
                what: "host name",
                name: names.join(", "),
                fix: "give DNS names (letters, digits, dots, dashes) or IP addresses",
            })?;
            params.distinguished_name = name(subject.first().map_or("gatehouse", String::as_str));
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            Ok(params)
        };
        let params = server_params(names, names)?;
        // Both certificates get the same validity, which is how the server tells that the twin
        // belongs to the certificate beside it.
        let now = OffsetDateTime::now_utc();
        let validity = (now - time::Duration::minutes(5), now + lifetime);
        let dns: Vec<String> = names
            .iter()
            .filter(|n| n.parse::<std::net::IpAddr>().is_err())
            .cloned()
            .collect();
        if dns.is_empty() || dns.len() == names.len() {
            forget_names_twin(files)?;
        } else {
            self.sign_at(
                server_params(&dns, names)?,
                validity,
                &files.server_names_cert(),
                &files.server_names_key(),
            )?;
        }
        self.sign_at(params, validity, &files.server_cert(), &files.server_key())?;
        inspect("server", &files.server_cert())
    }

    /// Issues a client certificate for mutual TLS.
    pub fn issue_client(
        &self,
        files: &CertFiles,
        client: &str,
        lifetime: time::Duration,
    ) -> Result<CertInfo, CertError> {
        if client.is_empty()
            || client.len() > 64
            || !client
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(CertError::Invalid {
                what: "client name",
                name: client.to_string(),
                fix: "use letters, digits, - and _ (it names the files)",
            });
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(client);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.sign(
            params,
            lifetime,
            &files.client_cert(client),
            &files.client_key(client),
        )?;
        inspect("client", &files.client_cert(client))
    }

    fn sign(
        &self,
        params: CertificateParams,
        lifetime: time::Duration,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<(), CertError> {
        let now = OffsetDateTime::now_utc();
        self.sign_at(
            params,
            (now - time::Duration::minutes(5), now + lifetime),
            cert_path,
            key_path,
        )
    }

    fn sign_at(
        &self,
        mut params: CertificateParams,
        (not_before, not_after): (OffsetDateTime, OffsetDateTime),
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<(), CertError> {
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        // Key first: a certificate whose key is missing would fail at the next handshake.
        fsutil::write_atomic(key_path, key.serialize_pem().as_bytes()).map_err(|source| {
            CertError::Write {
                path: key_path.to_path_buf(),
                source,
            }
        })?;
        write_public(cert_path, cert.pem().as_bytes())
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "Gatehouse");
    name
}

/// Certificates are public, but written the same careful way; 0644 so other tools can read them.
fn write_public(path: &Path, contents: &[u8]) -> Result<(), CertError> {
    use std::os::unix::fs::PermissionsExt;
    fsutil::write_atomic(path, contents).map_err(|source| CertError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(|source| {
        CertError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// What [`init`] made.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct Initialised {
    pub ca: CertInfo,
    pub server: CertInfo,
    /// The CA is new (clients must trust this `ca.pem`), rather than the one already there.
    pub ca_created: bool,
    pub server_key: PathBuf,
}

/// Makes the local CA when there is none (or `new_ca`) and a server certificate for this computer
/// and `extra_names`: `gatehouse certs init`, the panel's wizard and its Certificates page.
pub fn init(
    files: &CertFiles,
    keychain: &Keychain,
    extra_names: &[String],
    new_ca: bool,
    lifetime: time::Duration,
) -> Result<Initialised, CertError> {
    let (authority, ca_created) = Authority::load_or_create(files, keychain, new_ca, extra_names)?;
    let server = authority.issue_server(files, &default_server_names(extra_names), lifetime)?;
    forget_imported_ca(files)?;
    Ok(Initialised {
        ca: inspect("ca", &files.ca())?,
        server,
        ca_created,
        server_key: files.server_key(),
    })
}

/// Refuses, with the way on, when the server certificate on disk was imported: it is its issuer's
/// to renew, and one from the local CA swapped in for it would break every client that trusts only
/// that issuer.
pub fn ensure_renewable(files: &CertFiles) -> Result<(), CertError> {
    let current = files.server_cert();
    if current.exists() && !issued_by_local_ca(files, &current) {
        return Err(CertError::Imported { path: current });
    }
    Ok(())
}

/// A new server certificate from the local CA for the names the current one carries (this
/// computer's when there is none): the panel's renew button and the checklist's renewal fix.
/// An imported certificate is refused ([`ensure_renewable`]), never replaced.
pub fn renew_server(
    files: &CertFiles,
    keychain: &Keychain,
    lifetime: time::Duration,
) -> Result<CertInfo, CertError> {
    ensure_renewable(files)?;
    let authority = Authority::load(files, keychain)?;
    let names = inspect("server", &files.server_cert())
        .map(|info| info.names)
        .unwrap_or_else(|_| default_server_names(&[]));
    authority.issue_server(files, &names, lifetime)
}

/// Every certificate Gatehouse knows of: the local CA, the server's, an imported certificate's CA,
/// then the clients'.
pub fn list(files: &CertFiles) -> Vec<Result<CertInfo, CertError>> {
    let mut found = Vec::new();
    for (role, path) in [
        ("ca", files.ca()),
        ("server", files.server_cert()),
        ("imported-ca", files.imported_ca()),
    ] {
        if path.exists() {
            found.push(inspect(role, &path));
        }
    }
    if let Ok(entries) = std::fs::read_dir(files.dir.join("clients")) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "pem") && !p.to_string_lossy().ends_with("-key.pem")
            })
            .collect();
        paths.sort();
        found.extend(paths.iter().map(|p| inspect("client", p)));
    }
    found
}

/// Checks that `cert` and `key` are PEM files that belong together, then copies them into place
/// as the server's certificate (for people who already have one).
/// Installs an existing certificate and key as the server's. With `ca`, the CA that issued it:
/// the certificate must verify against it, and it is kept as [`CertFiles::imported_ca`] so
/// Gatehouse's own clients trust the server; without, an earlier import's CA is forgotten.
pub fn import_server(
    files: &CertFiles,
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
) -> Result<CertInfo, CertError> {
    let info = inspect("server", cert)?;
    let key_pem = std::fs::read_to_string(key).map_err(|e| CertError::Unreadable {
        path: key.to_path_buf(),
        message: e.to_string(),
    })?;
    let pair = KeyPair::from_pem(&key_pem).map_err(|e| CertError::Unreadable {
        path: key.to_path_buf(),
        message: format!("not a private key: {e}"),
    })?;
    let cert_pem = std::fs::read(cert).map_err(|e| CertError::Unreadable {
        path: cert.to_path_buf(),
        message: e.to_string(),
    })?;
    // A key from another certificate would only show when the server next starts, and then
    // as a server that does not start: refuse it here, before anything is replaced.
    if certificate_public_key(&cert_pem).as_deref() != Some(pair.der_bytes()) {
        return Err(CertError::Mismatch {
            path: key.to_path_buf(),
            other: cert.to_path_buf(),
            message: "this private key does not belong to the certificate".into(),
            fix: "choose the key file that was made with the certificate",
        });
    }
    let ca_pem = match ca {
        Some(ca) => Some(verify_issued_by(cert, &cert_pem, &info, ca)?),
        None => None,
    };
    fsutil::write_atomic(&files.server_key(), key_pem.as_bytes()).map_err(|source| CertError::Write {
        path: files.server_key(),
        source,
    })?;
    forget_names_twin(files)?;
    write_public(&files.server_cert(), &cert_pem)?;
    match ca_pem {
        Some(pem) => write_public(&files.imported_ca(), &pem)?,
        None => forget_imported_ca(files)?,
    }
    Ok(CertInfo {
        path: files.server_cert(),
        ..info
    })
}

/// Removes the local CA's names-only twin: it must never outlive the certificate it was made
/// with (an imported certificate has none).
fn forget_names_twin(files: &CertFiles) -> Result<(), CertError> {
    for path in [files.server_names_cert(), files.server_names_key()] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(CertError::Write { path, source }),
        }
    }
    Ok(())
}

/// Checks that the certificate in `cert_pem` verifies, for its first name and now, against the
/// CA certificates in the file `ca`, as a client trusting that CA would; returns the CA's PEM.
fn verify_issued_by(cert: &Path, cert_pem: &[u8], info: &CertInfo, ca: &Path) -> Result<Vec<u8>, CertError> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let refused = |message: String| CertError::Unreadable {
        path: ca.to_path_buf(),
        message,
    };
    let ca_pem = std::fs::read(ca).map_err(|e| refused(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(&ca_pem) {
        let root = root.map_err(|e| refused(format!("not a PEM certificate: {e}")))?;
        roots
            .add(root)
            .map_err(|e| refused(format!("not a CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(refused("no certificate in it".into()));
    }
    let mut chain = CertificateDer::pem_slice_iter(cert_pem).filter_map(Result::ok);
    let leaf = chain
        .next()
        .ok_or_else(|| refused(format!("{} holds no certificate", cert.display())))?;
    let intermediates: Vec<_> = chain.collect();
    let mismatch = |message: String, fix: &'static str| CertError::Mismatch {
        path: cert.to_path_buf(),
        other: ca.to_path_buf(),
        message,
        fix,
    };
    let name = info
        .names
        .first()
        .and_then(|name| ServerName::try_from(name.clone()).ok())
        .ok_or_else(|| {
            mismatch(
                "the certificate names no host or address (subjectAltName), so no client can verify it"
                    .into(),
                "use a certificate issued with the names clients connect to",
            )
        })?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(std::sync::Arc::new(roots), provider)
            .build()
            .map_err(|e| refused(e.to_string()))?;
    verifier
        .verify_server_cert(&leaf, &intermediates, &name, &[], UnixTime::now())
        .map_err(|e| {
            mismatch(
                format!("the certificate does not verify against this CA ({e})"),
                "choose the CA certificate that issued it, or leave the CA out",
            )
        })?;
    Ok(ca_pem)
}

/// Removes the CA of an earlier import: it vouched for a certificate that is no longer served.
fn forget_imported_ca(files: &CertFiles) -> Result<(), CertError> {
    match std::fs::remove_file(files.imported_ca()) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(CertError::Write {
            path: files.imported_ca(),
            source: error,
        }),
        _ => Ok(()),
    }
}

/// Whether the certificate at `cert` carries the local CA's signature. Only those are Gatehouse's
/// to renew: an imported certificate belongs to the CA that issued it.
pub fn issued_by_local_ca(files: &CertFiles, cert: &Path) -> bool {
    let (Ok(ca), Ok(leaf)) = (std::fs::read(files.ca()), std::fs::read(cert)) else {
        return false;
    };
    let (Ok((_, ca)), Ok((_, leaf))) = (
        x509_parser::pem::parse_x509_pem(&ca),
        x509_parser::pem::parse_x509_pem(&leaf),
    ) else {
        return false;
    };
    signed_by(&leaf.contents, &ca.contents)
}

/// Whether the certificate `leaf` carries the signature of the CA certificate `ca` (both DER).
pub fn signed_by(leaf: &[u8], ca: &[u8]) -> bool {
    let (Ok((_, leaf)), Ok((_, ca))) = (
        x509_parser::parse_x509_certificate(leaf),
        x509_parser::parse_x509_certificate(ca),
    ) else {
        return false;
    };
    leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// The public key a PEM certificate carries, as the raw bits of its SubjectPublicKeyInfo.
fn certificate_public_key(pem: &[u8]) -> Option<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_der(pem: &str) -> Vec<u8> {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents
    }

    #[test]
    fn a_server_beyond_loopback_is_named_by_its_address() {
        assert_eq!(listening_names("192.0.2.7"), vec!["192.0.2.7".to_string()]);
        assert_eq!(listening_names("fd00::7"), vec!["fd00::7".to_string()]);
        assert!(listening_names("127.0.0.1").is_empty());
        assert!(listening_names("::1").is_empty());
        assert!(listening_names("not an address").is_empty());
        // Independently of the function under test: the addresses `ip` lists as global ones.
        let listed = std::process::Command::new("ip")
            .args(["-o", "addr", "show", "scope", "global"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .expect("`ip` from iproute2 lists the addresses");
        let global: Vec<String> = listed
            .lines()
            .filter_map(|line| {
                let mut fields = line
                    .split_whitespace()
                    .skip_while(|f| *f != "inet" && *f != "inet6");
                fields.nth(1)?.split('/').next().map(str::to_string)
            })
            .collect();
        let everywhere = listening_names("0.0.0.0");
        if global.is_empty() {
            assert!(
                everywhere.is_empty(),
                "{everywhere:?} named without any global address"
            );
        } else {
            assert_eq!(everywhere.len(), 1, "{everywhere:?}");
            assert!(
                global.contains(&everywhere[0]),
                "{everywhere:?} is not one of {global:?}"
            );
        }
    }

    #[test]
    fn an_import_takes_a_matching_pair_and_refuses_a_stranger_s_key() {
        let source = tempfile::tempdir().unwrap();
        let made = |stem: &str| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec!["imported.example".to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let (cert_path, key_path) = (
                source.path().join(format!("{stem}.pem")),
                source.path().join(format!("{stem}-key.pem")),
            );
            std::fs::write(&cert_path, cert.pem()).unwrap();
            std::fs::write(&key_path, key.serialize_pem()).unwrap();
            (cert_path, key_path)
        };
        let (first_cert, first_key) = made("first");
        let (second_cert, second_key) = made("second");
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles::new(dir.path().to_path_buf());

        let info = import_server(&files, &first_cert, &first_key, None).unwrap();
        assert_eq!(info.names, vec!["imported.example".to_string()]);
        let installed = std::fs::read(files.server_cert()).unwrap();

        let error = import_server(&files, &second_cert, &first_key, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not belong to the certificate"), "{error}");
        assert!(error.contains("second.pem"), "{error}");
        // Nothing was replaced.
        assert_eq!(std::fs::read(files.server_cert()).unwrap(), installed);
        assert_eq!(
            std::fs::read_to_string(files.server_key()).unwrap(),
            std::fs::read_to_string(&first_key).unwrap()
        );
        // A twin the local CA made for an earlier certificate does not outlive it.
        std::fs::write(files.server_names_cert(), "old").unwrap();
        std::fs::write(files.server_names_key(), "old").unwrap();
        import_server(&files, &second_cert, &second_key, None).unwrap();
        assert!(!files.server_names_cert().exists() && !files.server_names_key().exists());
    }

    #[test]
    fn an_import_with_its_ca_is_verified_against_it_and_the_ca_kept() {
        let source = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = source.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let authority = |name_: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name = name(name_);
            let cert = params.self_signed(&key).unwrap();
            (cert.pem(), key)
        };
        let (company_pem, company_key) = authority("Company CA");
        let (other_pem, _) = authority("Someone else's CA");
        let leaf_key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_ca_cert_pem(&company_pem, &company_key).unwrap();
        let leaf = CertificateParams::new(vec!["gpu-box.example".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let (cert, key) = (
            write("server.pem", leaf.pem()),
            write("server-key.pem", leaf_key.serialize_pem()),
        );
        let (company, other) = (
            write("company.pem", company_pem.clone()),
            write("other.pem", other_pem),
        );
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles::new(dir.path().to_path_buf());

        let error = import_server(&files, &cert, &key, Some(&other))
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not verify against this CA"), "{error}");
        assert!(!files.server_cert().exists() && !files.imported_ca().exists());

        import_server(&files, &cert, &key, Some(&company)).unwrap();
        assert_eq!(std::fs::read_to_string(files.imported_ca()).unwrap(), company_pem);
        // Beside a local CA, the imported certificate is not Gatehouse's to renew; one the local
        // CA signed is.
        let (local_pem, local_key) = authority("Gatehouse local CA");
        std::fs::write(files.ca(), &local_pem).unwrap();
        let error = ensure_renewable(&files).unwrap_err().to_string();
        assert!(
            error.contains("was imported") && error.contains("certs import"),
            "{error}"
        );
        let local = Issuer::from_ca_cert_pem(&local_pem, &local_key).unwrap();
        let ours = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&KeyPair::generate().unwrap(), &local)
            .unwrap();
        assert!(signed_by(ours.der(), &pem_der(&local_pem)));
        assert!(!signed_by(leaf.der(), &pem_der(&local_pem)));
        std::fs::write(files.server_cert(), ours.pem()).unwrap();
        ensure_renewable(&files).unwrap();
        std::fs::write(files.server_cert(), leaf.pem()).unwrap();
        // A later import without a CA forgets the one that vouched for the old certificate.
        import_server(&files, &cert, &key, None).unwrap();
        assert!(!files.imported_ca().exists());
    }

    #[test]
    fn default_names_cover_every_local_address() {
        let names = default_server_names(&["192.0.2.7".into(), "localhost".into()]);
        for name in ["localhost", "127.0.0.1", "::1", "192.0.2.7"] {
            assert!(names.contains(&name.to_string()), "{name} missing from {names:?}");
        }
        assert_eq!(names.iter().filter(|n| *n == "localhost").count(), 1);
    }

    #[test]
    fn a_signed_certificate_carries_its_names_and_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles::new(dir.path().to_path_buf());
        // The CA here is built in memory, without a keychain, to test signing alone.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name = name("test CA");
        let ca = params.self_signed(&key).unwrap();
        let authority = Authority {
            cert_pem: ca.pem(),
            key,
        };
        let info = authority
            .issue_server(
                &files,
                &default_server_names(&["10.9.8.7".into()]),
                SERVER_LIFETIME,
            )
            .unwrap();
        assert!(
            info.names.contains(&"127.0.0.1".to_string()) && info.names.contains(&"10.9.8.7".to_string())
        );
        assert!((89..=90).contains(&info.days_left), "{}", info.days_left);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(files.server_key())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        // Its twin: the DNS names only, the same validity, the key as private.
        let twin = inspect("server", &files.server_names_cert()).unwrap();
        assert!(!twin.names.is_empty());
        assert!(
            twin.names
                .iter()
                .all(|n| n.parse::<std::net::IpAddr>().is_err() && info.names.contains(n)),
            "{:?}",
            twin.names
        );
        assert_eq!(
            (twin.not_before, twin.not_after),
            (info.not_before, info.not_after)
        );
        let mode = std::fs::metadata(files.server_names_key())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        // Addresses only: no twin, and the old one goes.
        authority
            .issue_server(&files, &["127.0.0.1".to_string()], SERVER_LIFETIME)
            .unwrap();
        assert!(!files.server_names_cert().exists() && !files.server_names_key().exists());
        let client = authority.issue_client(&files, "phone", CLIENT_LIFETIME).unwrap();
        assert!(client.subject.contains("phone"));
        assert!(authority.issue_client(&files, "../etc", CLIENT_LIFETIME).is_err());
        assert_eq!(
            list(&files).len(),
            2,
            "server and client (no ca.pem written in this test)"
        );
    }

    #[test]
    fn a_new_ca_vouches_for_this_computer_and_private_addresses_only() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.name_constraints = Some(authority_constraints(&[
            "gatehouse.test".into(),
            "203.0.113.9".into(),
        ]));
        let ca = params.self_signed(&key).unwrap();
        let permitted = authority_permits(ca.pem().as_bytes())
            .unwrap()
            .expect("constrained");
        let ok: Vec<String> = [
            "localhost",
            "127.0.0.1",
            "::1",
            "192.168.1.20",
            "10.1.2.3",
            "fd00::5",
            "gatehouse.test",
            "api.gatehouse.test",
            "203.0.113.9",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect();
        assert_eq!(permitted.outside(&ok), Vec::<String>::new());
        let bad: Vec<String> = [
            "www.bank.example",
            "8.8.8.8",
            "2001:db8::1",
            "203.0.113.10",
            "test",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect();
        assert_eq!(permitted.outside(&bad), bad);

        let authority = Authority {
            cert_pem: ca.pem(),
            key,
        };
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles::new(dir.path().to_path_buf());
        let refused = authority
            .issue_server(
                &files,
                &["localhost".into(), "www.bank.example".into()],
                SERVER_LIFETIME,
            )
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("www.bank.example") && refused.contains("--new-ca"),
            "{refused}"
        );
        assert!(!files.server_cert().exists());

        let old = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap();
        assert!(authority_permits(old.pem().as_bytes()).unwrap().is_none());
    }
}
