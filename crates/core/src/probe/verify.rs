//! A certificate verifier that records its verdict instead of ending the handshake, so the probe
//! can report an untrusted certificate and still see what the server does over TLS.

use super::*;

pub(super) type Verdict = Arc<Mutex<Option<Result<(), String>>>>;

/// Verifies the server's certificate against the trusted roots, records the verdict and lets the
/// handshake go on either way.
#[derive(Debug)]
pub(super) struct RecordingVerifier {
    pub(super) roots: Vec<CertificateDer<'static>>,
    pub(super) provider: Arc<CryptoProvider>,
    pub(super) verdict: Verdict,
}

impl RecordingVerifier {
    pub(super) fn webpki(&self) -> Result<Arc<rustls::client::WebPkiServerVerifier>, String> {
        let mut store = rustls::RootCertStore::empty();
        for root in &self.roots {
            let _ = store.add(root.clone());
        }
        if store.is_empty() {
            return Err("no trusted CA certificate to check it against".into());
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), self.provider.clone())
            .build()
            .map_err(|e| e.to_string())
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.webpki().and_then(|verifier| {
            verifier
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(verdict);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
