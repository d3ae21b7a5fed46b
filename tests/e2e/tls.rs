//! HTTPS end to end with real TLS clients: a Rust (rustls) client trusting the generated CA, curl
//! and openssl s_client; protocol versions; untrusted and expired certificates; mutual TLS;
//! renewal picked up while running; plain HTTP on the TLS port. The CA's key lives in the real
//! Secret Service of the test session.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

use crate::util::{ServerBuilder, TestServer, assert_refused, certs, default_models, foreign_certificate};

/// A server with TLS on, using the certificates `certs init` made in its own config directory.
fn tls_server(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> (TestServer, PathBuf) {
    let builder = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_TLS", "true");
    certs(builder.home(), &["init"]);
    let ca = builder.home().join("certs/ca.pem");
    let server = configure(builder).start();
    assert_eq!(server.listening["tls"], true);
    (server, ca)
}

/// One HTTPS request with rustls, trusting `ca`, optionally presenting a client certificate.
fn https(
    addr: &str,
    host: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    path: &str,
    key: &str,
) -> Result<(u16, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            builder
                .with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
                .map_err(|e| e.to_string())?
        }
    };
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let socket = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, socket);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn wait_ready(server: &TestServer, ca: &Path, client: Option<(&Path, &Path)>) {
    let started = Instant::now();
    while https(&server.addr, "localhost", ca, client, "/readiness", "").map(|r| r.0) != Ok(200) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not ready over HTTPS:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn s_client(addr: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", addr])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let negotiated =
        text.contains("Protocol  : TLSv1.") || text.contains("Protocol: TLSv1.") || text.contains(", TLSv1.");
    let refused = text.contains("Cipher is (NONE)") || text.contains("alert") || !output.status.success();
    (negotiated && !refused, text)
}

#[test]
fn https_with_the_local_ca_works_for_rust_curl_and_openssl_clients() {
    let (server, ca) = tls_server(|b| b);
    wait_ready(&server, &ca, None);
    for host in ["localhost", "127.0.0.1"] {
        let (status, body) = https(&server.addr, host, &ca, None, "/v2/models/sigmoid", &server.key).unwrap();
        assert_eq!(status, 200, "{host}: {body}");
    }
    let (status, _) = https(&server.addr, "localhost", &ca, None, "/v2/models/sigmoid", "").unwrap();
    assert_eq!(status, 401, "TLS does not replace the key");
    let info: Value = serde_json::from_str(
        &https(&server.addr, "localhost", &ca, None, "/info", "")
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(
        (info["tls"].as_bool(), info["mtls"].as_bool()),
        (Some(true), Some(false))
    );

    // What `certs export-ca` hands out is what clients need: curl trusts the server through it.
    let exported = certs(server.home.path(), &["export-ca"]);
    assert_eq!(exported["certificate"]["role"], "ca");
    assert!(
        exported["trust"]["debian"]
            .as_str()
            .unwrap()
            .contains("update-ca-certificates"),
        "{exported:#}"
    );
    let client_dir = tempfile::tempdir().unwrap();
    let given = client_dir.path().join("gatehouse-ca.pem");
    std::fs::write(&given, exported["pem"].as_str().unwrap()).unwrap();
    let port = server.addr.rsplit_once(':').unwrap().1;
    let curl = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&given)
        .args(["-H", &format!("Authorization: Bearer {}", server.key)])
        .arg(format!("https://localhost:{port}/v2/models/magika"))
        .output()
        .unwrap();
    assert!(
        curl.status.success(),
        "curl --cacert: {}",
        String::from_utf8_lossy(&curl.stderr)
    );
    assert!(String::from_utf8_lossy(&curl.stdout).contains("target_label"));
    let untrusted = Command::new("curl")
        .args(["-sS", &format!("https://localhost:{port}/healthz")])
        .output()
        .unwrap();
    assert_eq!(
        untrusted.status.code(),
        Some(60),
        "curl must refuse a certificate it does not trust"
    );

    let ca_arg = ca.to_str().unwrap();
    for (flag, expected) in [
        ("-tls1", false),
        ("-tls1_1", false),
        ("-tls1_2", true),
        ("-tls1_3", true),
    ] {
        let (ok, text) = s_client(
            &server.addr,
            &[
                flag,
                "-CAfile",
                ca_arg,
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
                "-servername",
                "localhost",
            ],
        );
        assert_eq!(ok, expected, "openssl s_client {flag}:\n{text}");
        if expected {
            assert!(text.contains("Verify return code: 0 (ok)"), "{flag}:\n{text}");
        }
    }
}

#[test]
fn plain_http_to_the_tls_port_gets_a_clear_answer() {
    let (server, ca) = tls_server(|b| b);
    wait_ready(&server, &ca, None);
    let (status, body) = server.get_anonymous("/healthz");
    assert_eq!(status, 400);
    assert_eq!(body["code"], "tls_required");
    assert!(body["error"].as_str().unwrap().contains("https://"));
}

#[test]
fn mutual_tls_refuses_clients_without_a_certificate_from_the_ca() {
    let builder = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_TLS", "true");
    certs(builder.home(), &["init"]);
    certs(builder.home(), &["issue-client", "laptop"]);
    let home = builder.home().to_path_buf();
    let ca = home.join("certs/ca.pem");
    let server = builder.env("SSL_CA_CERTS", ca.to_str().unwrap()).start();
    assert_eq!(server.listening["mtls"], true);
    let client = (
        home.join("certs/clients/laptop.pem"),
        home.join("certs/clients/laptop-key.pem"),
    );
    wait_ready(&server, &ca, Some((&client.0, &client.1)));
    let (status, _) = https(
        &server.addr,
        "localhost",
        &ca,
        Some((&client.0, &client.1)),
        "/v2/models/sigmoid",
        &server.key,
    )
    .unwrap();
    assert_eq!(status, 200);
    let without = https(&server.addr, "localhost", &ca, None, "/healthz", "");
    assert!(without.is_err(), "a client without a certificate got {without:?}");

    // A certificate from another CA, even a valid one, is refused in the handshake.
    let stranger = tempfile::tempdir().unwrap();
    certs(stranger.path(), &["init", "--new-ca"]);
    certs(stranger.path(), &["issue-client", "intruder"]);
    let intruder = (
        stranger.path().join("certs/clients/intruder.pem"),
        stranger.path().join("certs/clients/intruder-key.pem"),
    );
    let refused = https(
        &server.addr,
        "localhost",
        &ca,
        Some((&intruder.0, &intruder.1)),
        "/healthz",
        "",
    );
    assert!(
        refused.is_err(),
        "a client certificate from another CA got {refused:?}"
    );
    let metrics = https(
        &server.addr,
        "localhost",
        &ca,
        Some((&client.0, &client.1)),
        "/metrics",
        "",
    )
    .unwrap()
    .1;
    assert!(
        metrics.contains(r#"gatehouse_tls_handshakes_total{result="failed"}"#),
        "{metrics}"
    );
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    let (server, ca) = tls_server(|b| b);
    wait_ready(&server, &ca, None);
    let before = certs(server.home.path(), &["show"])
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == "server")
        .unwrap()["not_after"]
        .clone();
    let served = || {
        let (ok, text) = s_client(
            &server.addr,
            &[
                "-CAfile",
                ca.to_str().unwrap(),
                "-servername",
                "localhost",
                "-showcerts",
            ],
        );
        assert!(ok, "{text}");
        let pem = &text[text.find("-----BEGIN CERTIFICATE-----").unwrap()
            ..text.find("-----END CERTIFICATE-----").unwrap()];
        pem.to_string()
    };
    let old = served();
    std::thread::sleep(Duration::from_millis(1100));
    let renewed = certs(server.home.path(), &["renew", "--force", "--days", "30"]);
    assert_eq!(renewed.as_array().unwrap().len(), 1, "{renewed}");
    assert_ne!(renewed[0]["not_after"], before);
    let started = Instant::now();
    while served() == old {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the renewed certificate was not picked up:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.log().contains("\"event\":\"tls_reloaded\""));
    assert_eq!(
        https(
            &server.addr,
            "localhost",
            &ca,
            None,
            "/v2/models/sigmoid",
            &server.key
        )
        .unwrap()
        .0,
        200
    );
}

#[test]
fn an_expired_certificate_fails_verification_and_a_missing_one_stops_the_start() {
    // An expired certificate signed by a CA made here, imported as the server's.
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path, ca_path) = foreign_certificate(dir.path(), &["localhost"], |params| {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let server = TestServer::builder()
        .models(&default_models())
        .env("ENABLE_HTTPS", "true")
        .env("SSL_CERTFILE", cert_path.to_str().unwrap())
        .env("SSL_KEYFILE", key_path.to_str().unwrap())
        .start();
    let error = https(&server.addr, "localhost", &ca_path, None, "/healthz", "").unwrap_err();
    assert!(error.to_lowercase().contains("expired"), "{error}");

    let (output, _) = TestServer::builder()
        .models(&default_models())
        .env("ENABLE_HTTPS", "true")
        .env("SSL_CERTFILE", "/nonexistent/server.pem")
        .env("SSL_KEYFILE", key_path.to_str().unwrap())
        .run_to_exit();
    assert_refused(&output, &["/nonexistent/server.pem", "certs init"]);
}

#[test]
fn a_request_carrying_a_key_goes_only_to_a_server_whose_certificate_verifies() {
    use gatehouse_core::probe::{Endpoint, ProbeError, Prober, TlsIdentity};
    let (server, ca) = tls_server(|builder| builder);
    wait_ready(&server, &ca, None);
    let endpoint = Endpoint::parse(&format!("https://{}", server.addr)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let probe = |identity: TlsIdentity, verified: bool| {
        let prober = Prober::new(endpoint.clone(), identity, Duration::from_secs(5));
        runtime.block_on(async {
            if verified {
                prober.request_verified("GET", "/readiness", &[], &[]).await
            } else {
                prober.request("GET", "/readiness", &[], &[]).await
            }
        })
    };
    // Trusting the CA that signed the server's certificate (what the panel does).
    assert_eq!(probe(TlsIdentity::trusting_pem(&ca), true).unwrap().status, 200);
    // Trusting another CA: refused in the handshake, before any header is sent.
    let elsewhere = tempfile::tempdir().unwrap();
    certs(elsewhere.path(), &["init"]);
    let stranger = TlsIdentity::trusting_pem(&elsewhere.path().join("certs/ca.pem"));
    let refused = probe(stranger.clone(), true);
    assert!(
        matches!(refused, Err(ProbeError::Handshake { .. })),
        "{refused:?}"
    );
    // The checklist's probes record the verdict instead and still get their answer.
    assert_eq!(probe(stranger, false).unwrap().status, 200);
}
