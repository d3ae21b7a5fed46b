//! TLS grading: sslyze scans the server as a TLS auditor would and holds it to Mozilla's
//! "intermediate" profile (no protocol below TLS 1.2, no weak suite, forward secrecy, the
//! certificate's key, signature and lifetime), with the local CA's certificates, with imported
//! ones, and with mutual TLS, which must refuse a client without a certificate.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{section, tool};
use crate::util::{TestServer, certs, default_models, foreign_certificate, import_foreign};

struct Grade {
    compliant: bool,
    output: String,
    scan: Value,
}

impl Grade {
    fn result(&self, command: &str) -> &Value {
        &self.scan["server_scan_results"][0]["scan_result"][command]["result"]
    }

    fn accepted(&self, command: &str) -> Vec<String> {
        self.result(command)["accepted_cipher_suites"]
            .as_array()
            .map(|suites| {
                suites
                    .iter()
                    .filter_map(|s| s["cipher_suite"]["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn versions(&self) -> Vec<&'static str> {
        [
            ("ssl_2_0_cipher_suites", "SSL 2.0"),
            ("ssl_3_0_cipher_suites", "SSL 3.0"),
            ("tls_1_0_cipher_suites", "TLS 1.0"),
            ("tls_1_1_cipher_suites", "TLS 1.1"),
            ("tls_1_2_cipher_suites", "TLS 1.2"),
            ("tls_1_3_cipher_suites", "TLS 1.3"),
        ]
        .into_iter()
        .filter(|(command, _)| !self.accepted(command).is_empty())
        .map(|(_, name)| name)
        .collect()
    }

    /// Whether the chain validated against the CA file sslyze was given.
    fn validated_by_ca_file(&self) -> bool {
        self.result("certificate_info")["certificate_deployments"][0]["path_validation_results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["trust_store"]["name"] == "Supplied CA file" && p["was_validation_successful"] == true)
    }

    fn client_auth(&self) -> String {
        self.scan["server_scan_results"][0]["connectivity_result"]["client_auth_requirement"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    }
}

/// `sslyze --mozilla_config=intermediate` against `addr`, the chain checked against `ca`.
fn grade(addr: &str, ca: &Path, client: Option<(&Path, &Path)>) -> Grade {
    let work = tempfile::tempdir().unwrap();
    let json = work.path().join("scan.json");
    let port = addr.rsplit(':').next().unwrap();
    let mut command = Command::new(tool("sslyze"));
    command
        .args(["--mozilla_config=intermediate", "--certinfo_ca_file"])
        .arg(ca)
        .arg("--json_out")
        .arg(&json);
    if let Some((cert, key)) = client {
        command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let output = command
        .arg(format!("localhost:{port}"))
        .output()
        .expect("sslyze runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let scan =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default()).unwrap_or(Value::Null);
    Grade {
        compliant: output.status.success() && text.contains("OK - Compliant"),
        output: text,
        scan,
    }
}

fn row(scenario: &str, grade: &Grade, client_auth: &str) -> String {
    format!(
        "| {scenario} | {} | {} | {} | {} | {} | {} |",
        grade.versions().join(", "),
        grade.accepted("tls_1_2_cipher_suites").join(", "),
        grade.accepted("tls_1_3_cipher_suites").join(", "),
        if grade.validated_by_ca_file() { "yes" } else { "no" },
        client_auth,
        if grade.compliant {
            "compliant"
        } else {
            "NOT compliant"
        },
    )
}

fn assert_intermediate(scenario: &str, grade: &Grade) {
    assert!(
        grade.compliant,
        "{scenario}: not compliant with Mozilla intermediate:\n{}",
        grade.output
    );
    assert!(
        grade
            .versions()
            .iter()
            .all(|v| v.starts_with("TLS 1.2") || v.starts_with("TLS 1.3")),
        "{scenario}: {:?}",
        grade.versions()
    );
    assert!(
        grade
            .accepted("tls_1_2_cipher_suites")
            .iter()
            .all(|s| s.starts_with("TLS_ECDHE_") && (s.contains("_GCM_") || s.contains("CHACHA20"))),
        "{scenario}: a TLS 1.2 suite without forward secrecy or AEAD: {:?}",
        grade.accepted("tls_1_2_cipher_suites")
    );
    assert!(
        grade.validated_by_ca_file(),
        "{scenario}: the chain did not validate:\n{}",
        grade.output
    );
    for (command, field, want) in [
        ("tls_compression", "supports_compression", false),
        ("heartbleed", "is_vulnerable_to_heartbleed", false),
        ("openssl_ccs_injection", "is_vulnerable_to_ccs_injection", false),
        ("tls_fallback_scsv", "supports_fallback_scsv", true),
        ("session_renegotiation", "supports_secure_renegotiation", true),
        (
            "session_renegotiation",
            "is_vulnerable_to_client_renegotiation_dos",
            false,
        ),
        ("tls_extended_master_secret", "supports_ems_extension", true),
    ] {
        assert_eq!(
            grade.result(command)[field],
            want,
            "{scenario}: {command}.{field}"
        );
    }
    let robot = grade.result("robot")["robot_result"].as_str().unwrap_or("?");
    assert!(robot.starts_with("NOT_VULNERABLE"), "{scenario}: ROBOT {robot}");
}

#[test]
fn sslyze_grades_every_way_of_serving_tls_mozilla_intermediate_and_mtls_refuses_strangers() {
    let mut rows = Vec::new();

    // The local CA's certificates, as `certs init` makes them.
    let builder = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_TLS", "true");
    certs(builder.home(), &["init"]);
    let ca = builder.home().join("certs/ca.pem");
    let server = builder.start();
    let local = grade(&server.addr, &ca, None);
    assert_intermediate("local CA", &local);
    assert_eq!(local.client_auth(), "DISABLED");
    rows.push(row(
        "certificates from `gatehouse certs init`",
        &local,
        "not asked",
    ));
    drop(server);

    // Imported: a certificate from a CA Gatehouse did not make.
    let builder = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_TLS", "true");
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let files = foreign_certificate(dir.path(), &["localhost", "127.0.0.1"], |params| {
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(90);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
    });
    import_foreign(builder.home(), &files);
    let server = builder.start();
    let imported = grade(&server.addr, &files.2, None);
    assert_intermediate("imported", &imported);
    rows.push(row(
        "an imported certificate (`gatehouse certs import`)",
        &imported,
        "not asked",
    ));
    drop(server);

    // Mutual TLS: sslyze without a certificate is refused; with one the local CA issued, graded.
    let builder = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_TLS", "true");
    certs(builder.home(), &["init"]);
    certs(builder.home(), &["issue-client", "auditor"]);
    let home = builder.home().to_path_buf();
    let ca = home.join("certs/ca.pem");
    let server = builder.env("SSL_CA_CERTS", ca.to_str().unwrap()).start();
    let stranger = grade(&server.addr, &ca, None);
    assert!(
        !stranger.compliant && stranger.client_auth() != "DISABLED",
        "a client without a certificate got through mutual TLS:\n{}",
        stranger.output
    );
    let client = (
        home.join("certs/clients/auditor.pem"),
        home.join("certs/clients/auditor-key.pem"),
    );
    let with_certificate = grade(&server.addr, &ca, Some((&client.0, &client.1)));
    assert_intermediate("mutual TLS", &with_certificate);
    rows.push(row(
        "mutual TLS, sslyze presenting a client certificate",
        &with_certificate,
        &format!("required (sslyze without one: {})", stranger.client_auth()),
    ));
    let stranger_said = stranger
        .output
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("client"))
        .unwrap_or("")
        .trim()
        .to_string();

    section(
        "tls",
        "TLS grading",
        &format!(
            "Tool: sslyze {version} (`--mozilla_config=intermediate`, the chain checked with `--certinfo_ca_file`).\n\
             Command: `./scripts/reliability.sh tls` (`tests/e2e/reliability/tls.rs`).\n\n\
             | server | protocols accepted | TLS 1.2 suites | TLS 1.3 suites | chain validates against its CA | client certificate | Mozilla intermediate |\n\
             |---|---|---|---|---|---|---|\n{rows}\n\n\
             Mutual TLS without a client certificate: refused (sslyze: \"{stranger_said}\").\n\n\
             sslyze also found, for each: no compression, not vulnerable to Heartbleed, CCS injection or \
             ROBOT (no RSA key exchange), TLS_FALLBACK_SCSV supported, secure renegotiation, extended \
             master secret. The certificates' key (ECDSA P-256), signature (SHA-256) and lifetime (90 \
             days) are within the profile; their key usage and extended key usage pass the path \
             validation against the CA (`cryptography`'s verifier, which sslyze uses).\n",
            version = super::version_of("sslyze"),
            rows = rows.join("\n"),
        ),
    );
}
