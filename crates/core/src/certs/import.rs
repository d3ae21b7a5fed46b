//! Certificates Gatehouse did not make: an existing server certificate (and the CA that issued
//! it) installed in place of the local CA's, and the checks of who signed what.

use super::*;

/// Checks that `cert` and `key` are PEM files that belong together, then installs an existing certificate and key as the server's. With `ca`, the CA that issued it:
/// the certificate must verify against it, and it is kept as [`CertFiles::imported_ca`] so
/// Gatehouse's own clients trust the server; without, an earlier import's CA is forgotten.
pub fn import_server(
    files: &CertFiles,
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
) -> Result<CertInfo, CertError> {
    let info = inspect(CertRole::Server, cert)?;
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
pub(super) fn forget_names_twin(files: &CertFiles) -> Result<(), CertError> {
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
pub(super) fn verify_issued_by(
    cert: &Path,
    cert_pem: &[u8],
    info: &CertInfo,
    ca: &Path,
) -> Result<Vec<u8>, CertError> {
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
pub(super) fn forget_imported_ca(files: &CertFiles) -> Result<(), CertError> {
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
pub(super) fn certificate_public_key(pem: &[u8]) -> Option<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}
