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

mod authority;
mod constraints;
mod import;
mod inspect;

use crate::fsutil;
use crate::keys::{KeyError, Keychain};
use crate::net::host_name;
use crate::sensitive::Sensitive;
pub use authority::*;
use constraints::authority_constraints;
pub use constraints::{Permitted, authority_permits, authority_permits_der};
pub use import::*;
pub use inspect::*;

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
        "a certificate cannot live {days} days; fix: give 1 to {} days (Apple's TLS clients refuse longer ones)",
        MAX_LIFETIME_DAYS
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
        ca: inspect(CertRole::Ca, &files.ca())?,
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
    let names = inspect(CertRole::Server, &files.server_cert())
        .map(|info| info.names)
        .unwrap_or_else(|_| default_server_names(&[]));
    authority.issue_server(files, &names, lifetime)
}

/// Every certificate Gatehouse knows of: the local CA, the server's, an imported certificate's CA,
/// then the clients'.
pub fn list(files: &CertFiles) -> Vec<Result<CertInfo, CertError>> {
    let mut found = Vec::new();
    for (role, path) in [
        (CertRole::Ca, files.ca()),
        (CertRole::Server, files.server_cert()),
        (CertRole::ImportedCa, files.imported_ca()),
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
        found.extend(paths.iter().map(|p| inspect(CertRole::Client, p)));
    }
    found
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
        let twin = inspect(CertRole::Server, &files.server_names_cert()).unwrap();
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
