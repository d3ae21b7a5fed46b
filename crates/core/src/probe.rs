//! The checklist's and the supervisor's eyes: a small HTTP/1.1 and TLS client that talks to a server
//! the way an outsider would and reports exactly what came back.
//!
//! It is deliberately not a general-purpose client. Every call is bounded in time and in bytes read,
//! it never retries, and a TLS handshake completes even when the certificate does not verify, so
//! the checklist can say *why* it would not be trusted (the verdict is recorded, not enforced).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

mod grpc;
mod http;
mod legacy;
mod verify;
pub use grpc::{GrpcAnswer, UNAUTHENTICATED};
pub use http::*;
use legacy::*;
use verify::*;

/// The most a probe reads of one response; enough for any page the checklist looks at.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Why a probe got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer from {target} within {} ms", after.as_millis())]
    Timeout { target: String, after: Duration },
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("TLS handshake with {target} failed: {reason}")]
    Handshake { target: String, reason: String },
    #[error("{target} answered something that is not HTTP: {reason}")]
    Protocol { target: String, reason: String },
    #[error("`{url}` is not a URL the checklist can probe: {reason}")]
    Url { url: String, reason: String },
}

/// Where a server listens, as `scheme://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    /// A host name or an IP address, without brackets.
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `http://host:port` or `https://host:port` (a path after it is ignored).
    pub fn parse(url: &str) -> Result<Endpoint, ProbeError> {
        let bad = |reason: &str| ProbeError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("it must start with http:// or https://"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(bad(
                "credentials in the URL would be sent to the server; leave them out",
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().map_err(|_| bad("the port is not a number"))?,
                None => default_port,
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (
                    host.to_string(),
                    port.parse()
                        .map_err(|_| bad("the port is not a number from 1 to 65535"))?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("it has no host"));
        }
        Ok(Endpoint { tls, host, port })
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// True when the host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Whether the host is this computer: loopback, or its own network address (a server exposed
    /// on the network is still this computer's, and its configuration can be read).
    pub fn is_this_computer(&self) -> bool {
        self.is_loopback()
            || self
                .host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| crate::net::network_address() == Some(ip))
    }
}

/// Certificates the prober trusts and, for servers that demand one, the client certificate it shows.
#[derive(Clone, Default)]
pub struct TlsIdentity {
    pub roots: Vec<CertificateDer<'static>>,
    pub client: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// Gatehouse's local CA, when it is among the roots: a server certificate it signed is
    /// Gatehouse's to renew; one from another root is its issuer's.
    pub local_ca: Option<CertificateDer<'static>>,
}

impl TlsIdentity {
    /// Trusts the CA certificates in the PEM file at `path` (none when it cannot be read).
    pub fn trusting_pem(path: &std::path::Path) -> TlsIdentity {
        TlsIdentity {
            roots: read_certificates(path),
            client: None,
            local_ca: None,
        }
    }

    /// Presents the certificate and key in these PEM files as the client's.
    pub fn with_client(mut self, cert: &std::path::Path, key: &std::path::Path) -> TlsIdentity {
        use rustls::pki_types::pem::PemObject;
        let chain = read_certificates(cert);
        if let (false, Ok(key)) = (chain.is_empty(), PrivateKeyDer::from_pem_file(key)) {
            self.client = Some((chain, Arc::new(key)));
        }
        self
    }
}

fn read_certificates(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(path)
        .map(|certs| certs.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// One HTTP response, read to its end.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `code` field of a JSON error body, if there is one.
    pub fn error_code(&self) -> Option<String> {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()?
            .get("code")?
            .as_str()
            .map(str::to_string)
    }
}

/// What a completed TLS handshake showed.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// `Ok` when the certificate chains to a trusted root and names the host; otherwise why not.
    pub verified: Result<(), String>,
    /// The server's own certificate (DER).
    pub certificate: Option<CertificateDer<'static>>,
}

/// How a server answered a ClientHello for a protocol version rustls no longer speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyAnswer {
    /// It chose that version: the server accepts an obsolete protocol.
    Accepted,
    /// It sent an alert, closed the connection or answered with a newer version.
    Refused(String),
}

/// A client for one endpoint, with a time limit on every call.
#[derive(Clone)]
pub struct Prober {
    pub endpoint: Endpoint,
    pub identity: TlsIdentity,
    pub timeout: Duration,
    /// The TLS configuration of plain requests, built once: the supervisor polls with it.
    request_config: Arc<std::sync::OnceLock<Arc<rustls::ClientConfig>>>,
}

impl Prober {
    pub fn new(endpoint: Endpoint, identity: TlsIdentity, timeout: Duration) -> Prober {
        Prober {
            endpoint,
            identity,
            timeout,
            request_config: Arc::default(),
        }
    }

    /// Sends one request and reads the whole response. TLS is used when the endpoint says so,
    /// whether or not the certificate verifies (the checklist judges that separately).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse, ProbeError> {
        let config = self.endpoint.tls.then(|| {
            self.request_config
                .get_or_init(|| self.client_config(rustls::ALL_VERSIONS, true).0)
                .clone()
        });
        self.send(config, method, path, headers, body).await
    }

    /// Like [`Prober::request`], for requests that carry a real key: over TLS it talks only to a
    /// server whose certificate verifies against the identity's roots (TLS 1.2 and 1.3).
    pub async fn request_verified(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse, ProbeError> {
        let config = if self.endpoint.tls {
            Some(self.verifying_config()?)
        } else {
            None
        };
        self.send(config, method, path, headers, body).await
    }

    /// One exchange within the time limit: over TLS with `config`, in plain text without.
    async fn send(
        &self,
        config: Option<Arc<rustls::ClientConfig>>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse, ProbeError> {
        let target = self.endpoint.url();
        let exchange = async {
            let tcp = self.connect_tcp().await?;
            match config {
                Some(config) => {
                    let mut stream = self.tls_connect(tcp, config).await?;
                    exchange(&mut stream, &self.endpoint, method, path, headers, body, &target).await
                }
                None => {
                    let mut stream = tcp;
                    exchange(&mut stream, &self.endpoint, method, path, headers, body, &target).await
                }
            }
        };
        within(self.timeout, format!("{method} {target}{path}"), exchange).await
    }

    fn verifying_config(&self) -> Result<Arc<rustls::ClientConfig>, ProbeError> {
        let failed = |reason: String| ProbeError::Handshake {
            target: self.endpoint.authority(),
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        for root in &self.identity.roots {
            roots.add(root.clone()).map_err(|e| failed(e.to_string()))?;
        }
        let builder =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| failed(e.to_string()))?
                .with_root_certificates(roots);
        let config = match &self.identity.client {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| failed(e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    /// Sends a plain-text HTTP request to the endpoint even when it speaks TLS.
    pub async fn plaintext_request(&self, path: &str) -> Result<HttpResponse, ProbeError> {
        let plain = Prober {
            endpoint: Endpoint {
                tls: false,
                ..self.endpoint.clone()
            },
            ..self.clone()
        };
        plain.request("GET", path, &[], &[]).await
    }

    /// Completes a handshake limited to `versions`, presenting the client certificate only when
    /// `with_client_certificate` is set.
    pub async fn handshake(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        with_client_certificate: bool,
    ) -> Result<Handshake, ProbeError> {
        let target = self.endpoint.authority();
        let attempt = async {
            let tcp = self.connect_tcp().await?;
            let (config, verdict) = self.client_config(versions, with_client_certificate);
            let mut stream = self.tls_connect(tcp, config).await?;
            let (_, connection) = stream.get_ref();
            let version = match connection.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "unknown",
            }
            .to_string();
            let certificate = connection
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|c| c.clone().into_owned());
            if connection.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
                self.confirm_tls13_acceptance(&mut stream).await?;
            }
            let verified = verdict
                .lock()
                .map(|v| v.clone())
                .ok()
                .flatten()
                .unwrap_or_else(|| Err("the server sent no certificate".into()));
            Ok(Handshake {
                version,
                verified,
                certificate,
            })
        };
        within(self.timeout, target.clone(), attempt).await
    }

    /// A TLS 1.3 server checks the client's certificate after the client considers the handshake
    /// done, so a refusal only shows on the first read: a tiny request proves the connection open.
    async fn confirm_tls13_acceptance<S>(&self, stream: &mut S) -> Result<(), ProbeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let target = self.endpoint.authority();
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.endpoint.authority()
        );
        let handshake_error = |reason: String| ProbeError::Handshake {
            target: target.clone(),
            reason,
        };
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| handshake_error(e.to_string()))?;
        let mut first = [0u8; 1];
        match stream.read(&mut first).await {
            Ok(0) => Err(handshake_error("the server closed the connection".into())),
            Ok(_) => Ok(()),
            Err(error) => Err(handshake_error(error.to_string())),
        }
    }

    /// Sends a bare TLS 1.0 (`minor` = 1) or 1.1 (`minor` = 2) ClientHello and reads the first
    /// record of the answer. rustls cannot speak these versions, so the hello is written by hand.
    pub async fn legacy_hello(&self, minor: u8) -> Result<LegacyAnswer, ProbeError> {
        let target = self.endpoint.authority();
        let attempt = async {
            let mut tcp = self.connect_tcp().await?;
            let hello = legacy_client_hello(minor, &self.endpoint.host);
            tcp.write_all(&hello).await.map_err(|e| ProbeError::Connect {
                target: target.clone(),
                reason: e.to_string(),
            })?;
            let mut header = [0u8; 5];
            match tcp.read_exact(&mut header).await {
                Err(_) => return Ok(LegacyAnswer::Refused("the server closed the connection".into())),
                Ok(_) if header[0] == 0x15 => {
                    let mut alert = [0u8; 2];
                    let description = match tcp.read_exact(&mut alert).await {
                        Ok(_) => alert_name(alert[1]),
                        Err(_) => "unreadable",
                    };
                    return Ok(LegacyAnswer::Refused(format!(
                        "the server sent the alert `{description}`"
                    )));
                }
                Ok(_) if header[0] != 0x16 => {
                    return Ok(LegacyAnswer::Refused(format!(
                        "the server answered with a non-TLS record (first byte 0x{:02x})",
                        header[0]
                    )));
                }
                Ok(_) => {}
            }
            // A handshake record: type (1), length (3), then the version the server chose (2).
            let mut start = [0u8; 6];
            tcp.read_exact(&mut start)
                .await
                .map_err(|e| ProbeError::Protocol {
                    target: target.clone(),
                    reason: e.to_string(),
                })?;
            if start[0] == 2 && start[4] == 3 && start[5] <= minor {
                Ok(LegacyAnswer::Accepted)
            } else {
                Ok(LegacyAnswer::Refused(format!(
                    "the server answered with version 3.{} (not the 3.{minor} offered)",
                    start[5]
                )))
            }
        };
        within(self.timeout, target.clone(), attempt).await
    }

    async fn connect_tcp(&self) -> Result<TcpStream, ProbeError> {
        connect(&self.endpoint.host, self.endpoint.port, self.timeout).await
    }

    fn client_config(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        with_client_certificate: bool,
    ) -> (Arc<rustls::ClientConfig>, Verdict) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verdict: Verdict = Arc::new(Mutex::new(None));
        let verifier = Arc::new(RecordingVerifier {
            roots: self.identity.roots.clone(),
            provider: provider.clone(),
            verdict: verdict.clone(),
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap_or_else(|_| {
                // ring supports every version rustls does; this branch is unreachable in practice.
                rustls::ClientConfig::builder_with_protocol_versions(versions)
            })
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.identity.client, with_client_certificate) {
            (Some((chain, key)), true) => builder
                .clone()
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .unwrap_or_else(|_| builder.with_no_client_auth()),
            _ => builder.with_no_client_auth(),
        };
        (Arc::new(config), verdict)
    }

    async fn tls_connect(
        &self,
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ProbeError> {
        let name = ServerName::try_from(self.endpoint.host.clone()).map_err(|e| ProbeError::Url {
            url: self.endpoint.url(),
            reason: e.to_string(),
        })?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| ProbeError::Handshake {
                target: self.endpoint.authority(),
                reason: e.to_string(),
            })
    }
}

/// Opens a TCP connection within `timeout`, trying each address the host resolves to.
pub async fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, ProbeError> {
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let attempt = async {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| ProbeError::Connect {
                target: target.clone(),
                reason: e.to_string(),
            })?
            .collect();
        let mut last = String::from("the host has no address");
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(error) => last = error.to_string(),
            }
        }
        Err(ProbeError::Connect {
            target: target.clone(),
            reason: last,
        })
    };
    within(timeout, target.clone(), attempt).await
}

/// Runs `work`, or gives up after `timeout` with an error naming `target`.
async fn within<T>(
    timeout: Duration,
    target: String,
    work: impl std::future::Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout {
            target,
            after: timeout,
        }),
    }
}

async fn exchange<S>(
    stream: &mut S,
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    target: &str,
) -> Result<HttpResponse, ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // A probe may address the request to another name (the DNS-rebinding check does).
    let host = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map_or_else(|| endpoint.authority(), |(_, value)| (*value).to_string());
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gatehouse-check/{}\r\nConnection: close\r\n",
        crate::VERSION
    );
    for (name, value) in headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let io_error = |e: std::io::Error| ProbeError::Connect {
        target: target.to_string(),
        reason: e.to_string(),
    };
    stream.write_all(request.as_bytes()).await.map_err(io_error)?;
    stream.write_all(body).await.map_err(io_error)?;
    stream.flush().await.map_err(io_error)?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&chunk[..n]);
                if raw.len() > MAX_RESPONSE_BYTES {
                    break;
                }
            }
            // A TLS peer that closes without close_notify still sent a complete response.
            Err(error) if !raw.is_empty() && error.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(error) => return Err(io_error(error)),
        }
    }
    parse_response(&raw).map_err(|reason| ProbeError::Protocol {
        target: target.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_default_ports_and_brackets() {
        let e = Endpoint::parse("https://[::1]:9443/v2").unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port), (true, "::1", 9443));
        assert_eq!(e.url(), "https://[::1]:9443");
        let e = Endpoint::parse("http://localhost").unwrap();
        assert_eq!((e.tls, e.port), (false, 80));
        assert!(e.is_loopback());
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://user:pw@host:1").is_err());
        assert!(Endpoint::parse("http://host:notaport").is_err());
    }

    #[test]
    fn responses_parse_identity_and_chunked_bodies() {
        let r = parse_response(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\r\n{\"code\":\"unauthorized\"}",
        )
        .unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert_eq!(r.error_code().as_deref(), Some("unauthorized"));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_response(b"").is_err());
    }

    #[test]
    fn the_legacy_hello_is_a_well_formed_record() {
        let hello = legacy_client_hello(1, "localhost");
        assert_eq!(&hello[..3], &[0x16, 3, 1]);
        let record_len = u16::from_be_bytes([hello[3], hello[4]]) as usize;
        assert_eq!(record_len, hello.len() - 5);
        assert_eq!(hello[5], 1, "a ClientHello");
        let body_len = u32::from_be_bytes([0, hello[6], hello[7], hello[8]]) as usize;
        assert_eq!(body_len, record_len - 4);
        assert_eq!(&hello[9..11], &[3, 1], "offers TLS 1.0");
    }
}
