//! `gatehouse check` against real servers: each item passes on a well-configured Gatehouse and fails,
//! with the evidence that shows why, on a misconfigured one; `--fix` changes the files; `--url`
//! audits a server that is not Gatehouse. Probes of "other addresses" are kept on loopback with
//! GATEHOUSE_PROBE_ADDRESSES.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{
    ServerBuilder, TestServer, assert_refused, certs, default_models, foreign_certificate, gatehouse,
    gatehouse_bin, import_foreign, on_a_network_of_its_own,
};

/// Runs `gatehouse check ARGS` with `home` as the config directory and extra environment.
fn check_command(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(gatehouse_bin());
    command
        .arg("check")
        .args(args)
        .env("GATEHOUSE_HOME", home)
        .env("GATEHOUSE_PROBE_ADDRESSES", "127.0.0.2")
        .env_remove("HOST")
        .env_remove("PORT");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// `check --url URL --json`, parsed, with the exit code.
fn check(home: &Path, url: &str, env: &[(&str, &str)]) -> (i32, Value) {
    let output = check_command(home, &["--url", url, "--json"], env);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "check printed no JSON; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap(), report)
}

use crate::util::report_item as item;

#[track_caller]
fn assert_item(report: &Value, id: &str, status: &str, evidence_fragments: &[&str]) {
    let item = item(report, id);
    assert_eq!(item["status"], status, "{id}: {item:#}");
    let evidence = item["evidence"].to_string();
    for fragment in evidence_fragments {
        assert!(
            evidence.contains(fragment),
            "{id}: `{fragment}` not in evidence {evidence}"
        );
    }
    for e in item["evidence"].as_array().unwrap() {
        assert!(
            e["at"].as_str().is_some_and(|t| t.starts_with("20")),
            "{id}: evidence without a time: {e}"
        );
    }
}

fn port_of(server: &TestServer) -> &str {
    server.addr.rsplit(':').next().unwrap()
}

#[test]
fn a_default_server_passes_with_evidence_for_every_item() {
    let server = TestServer::start_default();
    let forever = server.create_key(&["--name", "forever", "--expires", "never"]);
    let url = server.url("");
    let (code, report) = check(server.home.path(), &url, &[]);
    assert_eq!(report["kind"], "gatehouse");
    assert_eq!(code, 0, "no item fails: {report:#}");
    assert_item(&report, "network.exposure", "pass", &["127.0.0.2", "refused"]);
    assert_item(
        &report,
        "auth.required",
        "pass",
        &["without a key", "401 unauthorized", "never issued"],
    );
    assert_item(
        &report,
        "public.no_secrets",
        "pass",
        &["GET /info", "nothing secret"],
    );
    assert_item(&report, "transport.tls", "pass", &["no TLS"]);
    assert_item(
        &report,
        "grpc.perimeter",
        "pass",
        &["grpc-status 16: this endpoint needs an API key", "127.0.0.2"],
    );
    assert_item(&report, "workflows.custom_python", "pass", &["false"]);
    assert_item(&report, "cors.policy", "pass", &["(none)"]);
    assert_item(&report, "metrics.protected", "pass", &["GET /metrics"]);
    assert_item(&report, "keys.exist", "pass", &["2 active"]);
    assert_item(&report, "keys.storage", "pass", &["no key text", "2 hash-only"]);
    assert_item(&report, "files.permissions", "pass", &["keys.toml", "mode 0600"]);
    assert_item(&report, "audit.enabled", "pass", &["true"]);
    // A key made without an expiry is flagged, by id and name.
    let forever_id = forever["id"].as_str().unwrap();
    assert_item(&report, "keys.expiry", "warn", &[forever_id, "forever"]);
    for item in report["items"].as_array().unwrap() {
        assert!(
            item["why"].as_str().is_some_and(|w| !w.is_empty())
                && !item["standards"].as_array().unwrap().is_empty(),
            "{item}"
        );
    }

    // The text and Markdown forms carry the same findings.
    let text = check_command(server.home.path(), &["--url", &url], &[]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("PASS    auth.required"), "{text}");
    assert!(text.contains("WARN    keys.expiry"), "{text}");
    let md = check_command(server.home.path(), &["--url", &url, "--format", "md"], &[]);
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(md.starts_with("# Security checklist"), "{md}");
    assert!(
        md.contains("| pass | Protected endpoints demand a valid key (`auth.required`)"),
        "{md}"
    );
    assert!(md.contains("OWASP API2:2023"), "{md}");
}

fn misconfigured(builder: ServerBuilder) -> TestServer {
    let server = builder
        .models(&default_models())
        .settings(
            "[server]\nhost = \"0.0.0.0\"\n[tls]\nallow_plaintext_network = true\n[cors]\nallowed_origins = [\"*\"]\n[workflows]\nallow_custom_python = true\n",
        )
        .start();
    server.wait_ready();
    server
}

#[test]
fn a_misconfigured_server_fails_each_item_and_fix_repairs_the_files() {
    on_a_network_of_its_own(
        "checklist::a_misconfigured_server_fails_each_item_and_fix_repairs_the_files",
        misconfigured_server_fixed,
    );
}

fn misconfigured_server_fixed(lan: std::net::IpAddr) {
    let server = misconfigured(TestServer::builder());
    let home = server.home.path();
    let keys_file = home.join("keys.toml");
    std::fs::set_permissions(&keys_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let url = format!("http://127.0.0.1:{}", port_of(&server));
    let (code, report) = check(home, &url, &[]);
    assert_eq!(code, 1, "a failing item makes the exit status 1");
    assert_item(
        &report,
        "network.exposure",
        "fail",
        &[&format!("127.0.0.2:{}", port_of(&server)), "connection accepted"],
    );
    assert_item(&report, "transport.tls", "fail", &["no TLS"]);
    assert_item(
        &report,
        "workflows.custom_python",
        "fail",
        &["custom_python", "true", "python_sandbox", "in force: rlimits"],
    );
    assert_item(
        &report,
        "cors.policy",
        "fail",
        &["Access-Control-Allow-Origin: *"],
    );
    assert_item(&report, "files.permissions", "fail", &["keys.toml", "mode 0644"]);
    // Beyond loopback, /metrics needs a key by default, and auth is still on.
    assert_item(&report, "metrics.protected", "pass", &["401"]);
    assert_item(&report, "auth.required", "pass", &["401"]);
    assert_eq!(item(&report, "cors.policy")["fix"]["action"], "set_setting");

    // TLS first, while the settings still listen on every interface: the certificate the fix
    // makes must name this computer's network address too, or clients there would refuse it.
    for id in [
        "transport.tls",
        "network.exposure",
        "cors.policy",
        "workflows.custom_python",
        "files.permissions",
    ] {
        let output = check_command(home, &["--url", &url, "--fix", id], &[]);
        assert!(
            output.status.success(),
            "--fix {id}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(
        std::fs::metadata(&keys_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let certificate = gatehouse_core::certs::inspect(
        gatehouse_core::certs::CertRole::Server,
        &home.join("certs/server.pem"),
    )
    .unwrap();
    for name in ["localhost", "127.0.0.1", "::1"] {
        assert!(
            certificate.names.iter().any(|n| n == name),
            "{:?}",
            certificate.names
        );
    }
    let address = lan;
    assert!(
        certificate.names.contains(&address.to_string()),
        "{address} missing from {:?}",
        certificate.names
    );
    let settings = gatehouse_core::Settings::load(&home.join("settings.toml")).unwrap();
    assert!(settings.tls.enabled);
    assert_eq!(settings.server.host, "127.0.0.1");
    assert!(settings.cors.allowed_origins.is_empty());
    assert!(!settings.workflows.allow_custom_python);
    // A fix is audited.
    let audit = std::fs::read_to_string(home.join("audit/audit.jsonl")).unwrap();
    assert!(audit.contains("checklist_fix_applied"), "{audit}");

    // An item without an automatic fix says so.
    let output = check_command(home, &["--url", &url, "--fix", "auth.required"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no automatic fix"));
}

#[test]
fn authentication_off_fails_auth_required() {
    let server = TestServer::with_env(&[("GATEHOUSE_AUTH", "false")]);
    let (code, report) = check(
        server.home.path(),
        &server.url(""),
        &[("GATEHOUSE_AUTH", "false")],
    );
    assert_eq!(code, 1);
    assert_item(
        &report,
        "auth.required",
        "fail",
        &["GET /v2 without a key", "200"],
    );
    assert_eq!(item(&report, "auth.required")["fix"]["key"], "auth.enabled");
}

#[test]
fn an_imported_certificate_near_expiry_is_sent_back_to_its_issuer() {
    // A company certificate ten days from expiry: the item warns, but offers no fix that would
    // swap a local-CA certificate in for it behind the user's back; it says who renews it.
    let company = tempfile::tempdir().unwrap();
    let foreign = foreign_certificate(company.path(), &["127.0.0.1", "localhost"], |params| {
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    });
    let builder = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_TLS", "true");
    // A local CA made first, as by `certs init`: the one a renewal would sign with.
    certs(builder.home(), &["init"]);
    import_foreign(builder.home(), &foreign);
    let server = builder.start();
    let url = format!("https://127.0.0.1:{}", port_of(&server));
    let env = [("GATEHOUSE_TLS", "true")];
    let (_, report) = check(server.home.path(), &url, &env);
    assert_item(&report, "transport.certificate", "warn", &["trusted"]);
    let certificate = item(&report, "transport.certificate");
    let summary = certificate["summary"].as_str().unwrap();
    assert!(
        summary.contains("expires in 9 days") && summary.contains("renew it with its issuer"),
        "{certificate:#}"
    );
    assert!(certificate["fix"].is_null(), "{certificate:#}");

    let served = std::fs::read(server.home.path().join("certs/server.pem")).unwrap();
    let fix = check_command(
        server.home.path(),
        &["--url", &url, "--fix", "transport.certificate"],
        &env,
    );
    assert_refused(&fix, &["no automatic fix"]);
    assert_eq!(
        std::fs::read(server.home.path().join("certs/server.pem")).unwrap(),
        served,
        "the imported certificate is still the one served"
    );
}

#[test]
fn an_imported_certificate_is_trusted_once_its_ca_is_imported_with_it() {
    let company = tempfile::tempdir().unwrap();
    let (cert, key, ca) = foreign_certificate(company.path(), &["127.0.0.1", "localhost"], |_| {});
    let (cert, key, ca) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        ca.to_str().unwrap(),
    );

    let builder = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_TLS", "true");
    certs(builder.home(), &["import", "--cert", cert, "--key", key]);
    let server = builder.start();
    let url = format!("https://127.0.0.1:{}", port_of(&server));
    let env = [("GATEHOUSE_TLS", "true")];
    let (_, report) = check(server.home.path(), &url, &env);
    assert_item(&report, "transport.tls", "pass", &["completed with TLSv1.3"]);
    assert_item(&report, "transport.certificate", "warn", &["not trusted"]);

    certs(
        server.home.path(),
        &["import", "--cert", cert, "--key", key, "--ca", ca],
    );
    let (_, report) = check(server.home.path(), &url, &env);
    assert_item(&report, "transport.certificate", "pass", &["trusted", "days"]);
    let shown = certs(server.home.path(), &["show"]);
    assert!(
        shown
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["role"] == "imported-ca" && c["subject"] == "CN=Company CA"),
        "{shown:#}"
    );

    // Renewal leaves an imported certificate to its issuer and never mistakes its CA for a client.
    let served = std::fs::read(server.home.path().join("certs/server.pem")).unwrap();
    let renewal = gatehouse(server.home.path(), &["certs", "renew", "--force"]);
    assert_refused(&renewal, &["was imported", "certs import"]);
    assert_eq!(
        std::fs::read(server.home.path().join("certs/server.pem")).unwrap(),
        served
    );
    assert!(!server.home.path().join("certs/clients/imported-ca.pem").exists());

    // A CA that did not issue the certificate is refused, and the import before it stands.
    let wrong_ca = gatehouse(
        server.home.path(),
        &["certs", "import", "--cert", cert, "--key", key, "--ca", cert],
    );
    assert_refused(&wrong_ca, &["does not verify against this CA"]);
    let (_, report) = check(server.home.path(), &url, &env);
    assert_item(&report, "transport.certificate", "pass", &["trusted"]);
}

#[test]
fn tls_items_prove_versions_trust_plaintext_refusal_and_mutual_tls() {
    let builder = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_TLS", "true");
    certs(builder.home(), &["init"]);
    certs(builder.home(), &["issue-client", "laptop"]);
    let ca = builder.home().join("certs/ca.pem");
    let server = builder.env("SSL_CA_CERTS", ca.to_str().unwrap()).start();
    let env = [("GATEHOUSE_TLS", "true"), ("SSL_CA_CERTS", ca.to_str().unwrap())];
    let url = format!("https://127.0.0.1:{}", port_of(&server));
    let (code, report) = check(server.home.path(), &url, &env);
    assert_eq!(code, 0, "{report:#}");
    assert_item(&report, "transport.tls", "pass", &["completed with TLSv1.3"]);
    assert_item(&report, "transport.certificate", "pass", &["trusted", "days"]);
    assert_item(
        &report,
        "transport.versions",
        "pass",
        &[
            "completed (TLSv1.2)\",\"probe\":\"TLS 1.2 handshake",
            "refused: the server sent the alert `handshake_failure`\",\"probe\":\"TLS 1.0 ClientHello",
            "refused: the server sent the alert `handshake_failure`\",\"probe\":\"TLS 1.1 ClientHello",
        ],
    );
    assert_item(&report, "transport.plaintext", "pass", &["400 tls_required"]);
    assert_item(
        &report,
        "transport.mtls",
        "pass",
        &["without a client certificate", "CertificateRequired"],
    );
    // Through mTLS, with the client certificate, the other probes still got real answers.
    assert_item(&report, "auth.required", "pass", &["401 unauthorized"]);
}

#[test]
fn an_expired_certificate_fails_with_a_renewal_fix() {
    let builder = TestServer::builder().models(&default_models());
    let certs_dir = builder.home().join("certs");
    std::fs::create_dir_all(&certs_dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_cert.pem(), &ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(certs_dir.join("ca.pem"), ca_cert.pem()).unwrap();
    let (cert_path, key_path) = (certs_dir.join("old.pem"), certs_dir.join("old-key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env = [
        ("ENABLE_HTTPS", "true"),
        ("SSL_CERTFILE", cert_path.to_str().unwrap()),
        ("SSL_KEYFILE", key_path.to_str().unwrap()),
    ];
    let server = env
        .iter()
        .fold(builder, |b, (name, value)| b.env(name, value))
        .start();
    let url = format!("https://127.0.0.1:{}", port_of(&server));
    let (code, report) = check(server.home.path(), &url, &env);
    assert_eq!(code, 1);
    assert_item(
        &report,
        "transport.certificate",
        "fail",
        &["2021-01-01", "not trusted"],
    );
    let certificate = item(&report, "transport.certificate");
    assert_eq!(certificate["summary"], "the certificate has expired");
    assert_eq!(certificate["fix"]["action"], "renew_certificates");
}

/// A plain web server that is not Gatehouse, on loopback, killed on drop.
struct PlainServer(std::process::Child, u16);

impl Drop for PlainServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python_http_server(dir: &Path) -> PlainServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string()])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "python's http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    PlainServer(child, port)
}

#[test]
fn check_url_audits_a_server_that_is_not_gatehouse() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("notes.txt"), "hello").unwrap();
    let plain = python_http_server(files.path());
    let home = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", plain.1);
    let (code, report) = check(home.path(), &url, &[]);
    assert_eq!(report["kind"], "external");
    assert_eq!(code, 1, "{report:#}");
    assert_item(
        &report,
        "auth.required",
        "fail",
        &["GET / without credentials", "200"],
    );
    assert!(
        item(&report, "auth.required")["summary"]
            .as_str()
            .unwrap()
            .contains("GET /"),
    );
    assert_item(&report, "network.exposure", "pass", &["127.0.0.2"]);
    assert!(
        report["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| !i["id"].as_str().unwrap().starts_with("keys.")),
        "no configuration items for a server that is not Gatehouse"
    );
    let md = check_command(home.path(), &["--url", &url, "--format", "md"], &[]);
    assert_eq!(md.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&md.stdout).contains("| fail | Protected endpoints demand a valid key"));

    // A server that is not there: one clear failure, quickly.
    drop(plain);
    let started = Instant::now();
    let (code, report) = check(home.path(), &url, &[]);
    assert_eq!(code, 1);
    assert_item(&report, "server.reachable", "fail", &["Connection refused"]);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_certificate_from_the_cli_and_from_the_checklist_fix_names_the_same_addresses() {
    on_a_network_of_its_own(
        "checklist::a_certificate_from_the_cli_and_from_the_checklist_fix_names_the_same_addresses",
        same_names_from_cli_and_fix,
    );
}

fn same_names_from_cli_and_fix(lan: std::net::IpAddr) {
    // The file says loopback, the environment says every interface: both front ends read the
    // settings the server would run with, so both certificates name the network address.
    let env = [("GATEHOUSE_HOST", "0.0.0.0")];
    let by_cli = tempfile::tempdir().unwrap();
    let output = Command::new(gatehouse_bin())
        .args(["certs", "init"])
        .env("GATEHOUSE_HOME", by_cli.path())
        .env("GATEHOUSE_HOST", "0.0.0.0")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The fix is offered by a running server that listens beyond loopback without TLS.
    let server = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_HOST", "0.0.0.0")
        .settings("[tls]\nallow_plaintext_network = true\n")
        .start();
    server.wait_ready();
    let by_fix = server.home.path();
    let output = check_command(
        by_fix,
        &["--url", &server.url(""), "--fix", "transport.tls"],
        &env,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let names = |home: &Path| {
        let mut names = gatehouse_core::certs::inspect(
            gatehouse_core::certs::CertRole::Server,
            &home.join("certs/server.pem"),
        )
        .unwrap()
        .names;
        names.sort();
        names
    };
    assert!(
        names(by_cli.path()).contains(&lan.to_string()),
        "{:?}",
        names(by_cli.path())
    );
    assert_eq!(names(by_cli.path()), names(by_fix));
    // And both wrote the same certificate line, each with its own actor.
    let issued = |home: &Path, actor: &str| {
        std::fs::read_to_string(home.join("audit/audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["event"] == "certificates_initialised" && l["actor"] == actor)
            .count()
    };
    assert_eq!(issued(by_cli.path(), "cli"), 1);
    assert_eq!(issued(by_fix, "checklist"), 1);
}

#[test]
fn the_checklist_key_fix_writes_the_key_created_line_the_cli_and_panel_write() {
    let server = TestServer::start_default();
    // With the only key revoked, the item offers to create one.
    let id = gatehouse_core::keys::format::parse(&server.key)
        .unwrap()
        .to_string();
    assert!(server.keys(&["revoke", &id]).status.success());
    let home = &server.home;
    let output = check_command(
        home.path(),
        &["--url", &server.url(""), "--fix", "keys.exist"],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let audit = std::fs::read_to_string(home.path().join("audit/audit.jsonl")).unwrap();
    let created: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["event"] == "key_created" && l["actor"] == "checklist")
        .collect();
    assert_eq!(created.len(), 1, "{audit}");
    assert_eq!(created[0]["name"], "first key", "{audit}");
    assert!(audit.contains("checklist_fix_applied"), "{audit}");
}
