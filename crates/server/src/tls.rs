//! HTTPS: rustls with TLS 1.2 and 1.3 only and the ring provider's modern suites, optional mutual
//! TLS, certificates re-read when their files change, and a plain answer for plain HTTP.
//!
//! [`accept`] runs a background task per socket that accepts TCP connections and runs each
//! handshake in its own task (bounded in time and in number), so a slow or hostile client never
//! holds up the others; finished TLS streams go to `connections::serve` through a channel.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::connections::{self, Admitted, Connection, ConnectionLimits};

/// A TLS handshake that has not finished in this long is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Where the server's TLS material comes from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Set for mutual TLS.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Reads the files and builds the HTTP port's rustls configuration; every error names the
    /// file and the fix.
    pub fn load(&self) -> Result<Arc<ServerConfig>, String> {
        self.load_for(crate::connections::Protocol::Http1)
    }

    /// [`TlsFiles::load`] for a port speaking `protocol`, which it offers in ALPN: gRPC clients
    /// insist on `h2` there, HTTP ones are told `http/1.1`.
    pub fn load_for(&self, protocol: crate::connections::Protocol) -> Result<Arc<ServerConfig>, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| unreadable(&self.cert, "certificate", &e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| unreadable(&self.cert, "certificate", &e.to_string()))?;
        if chain.is_empty() {
            return Err(unreadable(&self.cert, "certificate", "no certificate in it"));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| unreadable(&self.key, "private key", &e.to_string()))?;
        let provider = Arc::new(provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS setup failed: {e}"))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path)
                    .map_err(|e| unreadable(path, "client CA", &e.to_string()))?
                {
                    let cert = cert.map_err(|e| unreadable(path, "client CA", &e.to_string()))?;
                    roots
                        .add(cert)
                        .map_err(|e| unreadable(path, "client CA", &e.to_string()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| unreadable(path, "client CA", &e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let all = rustls::sign::CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| format!("the certificate {} and key {} do not fit together: {e}; fix: use the key that belongs to the certificate", self.cert.display(), self.key.display()))?;
        let names = self.names_twin().and_then(|(cert, key)| {
            let chain = CertificateDer::pem_file_iter(&cert)
                .ok()?
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            let key = PrivateKeyDer::from_pem_file(&key).ok()?;
            rustls::sign::CertifiedKey::from_der(chain, key, &provider)
                .ok()
                .map(Arc::new)
        });
        let mut config = builder.with_cert_resolver(Arc::new(BySni {
            all: Arc::new(all),
            names,
        }));
        config.alpn_protocols = vec![match protocol {
            crate::connections::Protocol::Http1 => b"http/1.1".to_vec(),
            crate::connections::Protocol::Http2 => b"h2".to_vec(),
        }];
        // Our order, not the client's: most clients list AES-256 first, whose SHA-384 key
        // schedule runs in plain code, while SHA-256 runs on the CPU's SHA extensions (the
        // SHA-384 hashing was 9 % of a handshake's cost in a profile).
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }

    /// The local CA's names-only twin of the certificate (see
    /// `gatehouse_core::certs::CertFiles::server_names_cert`), when one lies beside it and was
    /// issued with it: the same validity to the second, and names the certificate has too. A
    /// certificate put in place any other way has no twin that fits, so none is served.
    fn names_twin(&self) -> Option<(PathBuf, PathBuf)> {
        if self.cert.file_name()? != "server.pem" {
            return None;
        }
        let files = gatehouse_core::certs::CertFiles::new(self.cert.parent()?.to_path_buf());
        let (cert, key) = (files.server_names_cert(), files.server_names_key());
        let twin = gatehouse_core::certs::inspect(gatehouse_core::certs::CertRole::Server, &cert).ok()?;
        let main =
            gatehouse_core::certs::inspect(gatehouse_core::certs::CertRole::Server, &self.cert).ok()?;
        let fits = twin.not_before == main.not_before
            && twin.not_after == main.not_after
            && !twin.names.is_empty()
            && twin.names.iter().all(|name| main.names.contains(name));
        fits.then_some((cert, key))
    }

    fn signature(&self) -> Vec<Option<(SystemTime, u64)>> {
        let files =
            gatehouse_core::certs::CertFiles::new(self.cert.parent().unwrap_or(Path::new(".")).to_path_buf());
        let twin = [files.server_names_cert(), files.server_names_key()];
        let mut files = vec![&self.cert, &self.key];
        files.extend(twin.iter());
        files.extend(self.client_ca.as_ref());
        files
            .into_iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }
}

/// Which certificate a client gets: one that asked for a name (SNI) gets the names-only twin
/// when there is one, so BoringSSL-based clients accept it under the local CA's constraints;
/// one that asked for none (it connected to an address) gets the certificate with every name.
#[derive(Debug)]
struct BySni {
    all: Arc<rustls::sign::CertifiedKey>,
    names: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl rustls::server::ResolvesServerCert for BySni {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        match (&self.names, hello.server_name()) {
            (Some(names), Some(_)) => Some(names.clone()),
            _ => Some(self.all.clone()),
        }
    }
}

/// ring's suites (all AEAD with forward secrecy), AES-128-GCM with SHA-256 first in each TLS
/// version. AES-128 is the strength every current TLS 1.3 profile accepts, and the
/// hardware-backed hash makes it the cheapest of the three to negotiate.
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::cipher_suite as suite;
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            suite::TLS13_AES_128_GCM_SHA256,
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS13_CHACHA20_POLY1305_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    }
}

fn unreadable(path: &Path, what: &str, detail: &str) -> String {
    format!(
        "cannot use {} as the TLS {what}: {detail}; fix: run `gatehouse certs init`, or point the setting at a PEM file you can read",
        path.display()
    )
}

/// Accepts TLS connections on `listeners` with the configuration in `config`, which may be
/// swapped at any time (renewed certificates); each new handshake uses the current one.
pub fn accept(
    listeners: Vec<TcpListener>,
    config: Arc<ArcSwap<ServerConfig>>,
    limits: Arc<ConnectionLimits>,
    sender: mpsc::Sender<Admitted<TlsStream<TcpStream>>>,
) {
    let refusals = Arc::new(RefusalLog::default());
    for listener in listeners {
        accept_loop(
            listener,
            config.clone(),
            limits.clone(),
            refusals.clone(),
            sender.clone(),
        );
    }
}

/// Accepts on one socket, handing each connection's handshake to a task of its own.
fn accept_loop(
    listener: TcpListener,
    config: Arc<ArcSwap<ServerConfig>>,
    limits: Arc<ConnectionLimits>,
    refusals: Arc<RefusalLog>,
    sender: mpsc::Sender<Admitted<TlsStream<TcpStream>>>,
) {
    tokio::spawn(async move {
        loop {
            let Some((stream, peer)) = connections::accept(&listener).await else {
                continue;
            };
            if sender.is_closed() {
                return;
            }
            let Some(permit) = limits.admit() else {
                continue;
            };
            let Some(handshake_permit) = limits.admit_handshake() else {
                continue;
            };
            let Ok(local) = stream.local_addr() else {
                continue;
            };
            let acceptor = TlsAcceptor::from(config.load_full());
            let sender = sender.clone();
            let limits = limits.clone();
            let refusals = refusals.clone();
            tokio::spawn(async move {
                let metrics = limits.metrics();
                let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(acceptor, stream)).await;
                drop(handshake_permit);
                match outcome {
                    Ok(Ok(Some(tls))) => {
                        metrics.tls_handshake("ok");
                        let server_name = tls
                            .get_ref()
                            .1
                            .server_name()
                            .map(|name| Arc::from(name.to_ascii_lowercase()));
                        let admitted = Admitted {
                            io: tls,
                            connection: Connection {
                                peer,
                                local,
                                server_name,
                            },
                            permit,
                        };
                        let _ = sender.send(admitted).await;
                    }
                    Ok(Ok(None)) => metrics.tls_handshake("plaintext"),
                    Ok(Err(error)) => {
                        metrics.tls_handshake("failed");
                        refusals.log(peer, &error);
                    }
                    Err(_) => metrics.tls_handshake("timeout"),
                }
            });
        }
    });
}

/// Handshake refusals in the log, at most one a second: a person whose client certificate is
/// turned away needs to see why, and a client hammering the port must not flood the log.
#[derive(Default)]
struct RefusalLog {
    /// Milliseconds since the epoch of the last line written.
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl RefusalLog {
    fn log(&self, peer: SocketAddr, error: &std::io::Error) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let last = self.last.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 1000
            || self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(event = "tls_handshake_refused", %peer, reason = %error, suppressed,
            "a TLS handshake was refused: {}", explain_refusal(error));
    }
}

/// What a person can do about the common refusals.
fn explain_refusal(error: &std::io::Error) -> &'static str {
    let text = error.to_string();
    if text.contains("CertificateRequired") || text.contains("NoCertificatesPresented") {
        "the client sent no certificate; this server requires one (issue one with `gatehouse certs issue-client NAME`)"
    } else if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        "the client certificate was not issued by the CA this server trusts"
    } else if text.contains("Expired") || text.contains("NotValidYet") {
        "the client certificate is outside its validity period; issue a new one"
    } else if text.contains("BadEncoding")
        || text.contains("UnsupportedCertVersion")
        || text.contains("InvalidCertificate")
    {
        "the client certificate is not one TLS accepts (X.509 v3 is required); issue a new one with `gatehouse certs issue-client NAME`"
    } else if text.contains("protocol version") || text.contains("ProtocolVersion") {
        "the client offered only TLS versions older than 1.2"
    } else {
        "see the reason; the client and server share no acceptable way to connect"
    }
}

/// Runs one handshake; `Ok(None)` when the client spoke plain HTTP and was told to use HTTPS.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
) -> std::io::Result<Option<TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    let read = stream.peek(&mut first).await?;
    // Every TLS connection opens with a handshake record (content type 22).
    if read == 1 && first[0] != 0x16 {
        let mut stream = stream;
        let body = "{\"error\":\"this port speaks HTTPS; use https:// instead of http://\",\"code\":\"tls_required\"}";
        let response = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        return Ok(None);
    }
    acceptor.accept(stream).await.map(Some)
}

/// Re-reads the certificate files when they change and swaps the new configuration into each
/// port's slot; a file that does not load leaves the current one in force.
pub fn watch(files: TlsFiles, configs: Vec<(crate::connections::Protocol, Arc<ArcSwap<ServerConfig>>)>) {
    tokio::spawn(async move {
        let mut seen = files.signature();
        let mut interval = tokio::time::interval(RELOAD_INTERVAL);
        loop {
            interval.tick().await;
            let now = files.signature();
            if now == seen {
                continue;
            }
            seen = now;
            let loading = files.clone();
            let protocols: Vec<_> = configs.iter().map(|(protocol, _)| *protocol).collect();
            let loaded = tokio::task::spawn_blocking(move || {
                protocols
                    .into_iter()
                    .map(|protocol| loading.load_for(protocol))
                    .collect::<Result<Vec<_>, String>>()
            });
            match loaded.await {
                Ok(Ok(new)) => {
                    for ((_, config), new) in configs.iter().zip(new) {
                        config.store(new);
                    }
                    tracing::info!(event = "tls_reloaded", cert = %files.cert.display(), "TLS certificate reloaded");
                }
                Ok(Err(error)) => {
                    tracing::error!(event = "tls_reload_failed", %error, "the new certificate files cannot be used; the previous ones stay in force")
                }
                Err(_) => {}
            }
        }
    });
}
