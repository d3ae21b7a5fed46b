//! The attacks an outsider runs against a local server, each reproduced against the real binary:
//! a web page reaching it through a rebound DNS name, slow and idle connections, a flood of idle
//! sockets, and a workflows key reaching models through a model step.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{TestServer, certs, check_item, create_key, default_models, split};

/// Sends `request` as raw bytes on a fresh connection and returns the status and body.
fn raw(server: &TestServer, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get_with_host(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

fn rate_limited(server: &TestServer, limit: &str) -> u64 {
    let metrics = server.get_anonymous("/metrics").1;
    let text = metrics.as_str().unwrap_or("").to_string();
    let prefix = format!("gatehouse_rate_limited_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_rebound_dns_name_gets_421_on_every_route_and_the_server_own_names_are_served() {
    let server = TestServer::start_default();
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    for path in [
        "/",
        "/info",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/v2/health/ready",
        "/v2",
    ] {
        for host in [
            "evil.example",
            &format!("evil.example:{port}"),
            "localhost.evil.example",
        ] {
            let (status, body) = raw(&server, &get_with_host(path, host));
            assert_eq!(status, 421, "{path} with Host {host}: {body}");
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["code"], "unknown_host", "{body}");
            assert!(
                body["error"].as_str().unwrap().contains("server.allowed_hosts"),
                "the refusal names the fix: {body}"
            );
        }
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST".to_string(),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(raw(&server, &get_with_host("/info", &host)).0, 200, "Host {host}");
    }
    // An absolute-form request target is judged by its authority, like Host.
    let (status, _) = raw(
        &server,
        "GET http://evil.example/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 421);
    // No Host at all (HTTP/1.0) is not one of the server's names either.
    assert_eq!(raw(&server, "GET /info HTTP/1.0\r\n\r\n").0, 421);
    assert!(rate_limited(&server, "unknown_host") >= 21);

    // Basic auth with an Origin that matches the rebound Host is still a cross-site form post.
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("u:{}", server.key),
    );
    let response = server
        .client
        .post(server.url("/v2/models/sigmoid/infer"))
        .header("authorization", format!("Basic {basic}"))
        .header("origin", "http://evil.example")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(split(response).1["code"], "cross_site_request_refused");

    let item = check_item(&server, &server.url(""), "network.host_check");
    assert_eq!(item["status"], "pass", "{item}");
}

#[test]
fn names_in_settings_are_served_and_auth_off_on_loopback_still_refuses_rebound_names() {
    let server = TestServer::with_env(&[
        ("GATEHOUSE_ALLOWED_HOSTS", "gatehouse.lan"),
        ("GATEHOUSE_AUTH", "false"),
    ]);
    assert_eq!(raw(&server, &get_with_host("/v2", "gatehouse.lan")).0, 200);
    assert_eq!(
        raw(&server, &get_with_host("/v2/models/sigmoid", "evil.example")).0,
        421,
        "with keys off, the Host check is all that keeps a web page out"
    );
}

#[test]
fn over_tls_the_server_name_asked_for_must_be_the_servers_own_too() {
    let builder = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_TLS", "true");
    certs(builder.home(), &["init"]);
    let ca = builder.home().join("certs/ca.pem");
    let server = builder.start();
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let curl = |name: &str, host: &str| {
        let output = Command::new("curl")
            .args(["-sk", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
            .args(["--cacert", ca.to_str().unwrap(), "-H", &format!("Host: {host}")])
            .arg(format!("https://{name}:{port}/info"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    assert_eq!(curl("localhost", "localhost"), "200");
    assert_eq!(curl("evil.example", "localhost"), "421", "SNI of a foreign name");
    assert_eq!(curl("localhost", "evil.example"), "421", "Host of a foreign name");
    let item = check_item(
        &server,
        &format!("https://localhost:{port}"),
        "network.host_check",
    );
    assert_eq!(item["status"], "pass", "{item}");
}

#[test]
fn slow_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    let server = TestServer::with_env(&[("GATEHOUSE_HEADER_READ_TIMEOUT", "1")]);
    // Slowloris: a request line and half the headers, then a byte now and then.
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(400));
        if slow.write_all(b"X-Slow: 1\r\n").is_err() {
            closed = true;
            break;
        }
    }
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        closed || !answer.contains("200 OK"),
        "headers still incomplete after {:?} were answered: {answer}",
        started.elapsed()
    );
    assert!(!answer.contains("200 OK"), "{answer}");

    // A keep-alive connection left idle is closed too.
    let mut idle = TcpStream::connect(&server.addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 512];
    let read = idle.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..read]).contains("200 OK"));
    let idle_since = Instant::now();
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    let waited = idle_since.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "the idle connection was closed after {waited:?}"
    );
    assert!(rate_limited(&server, "header_timeout") >= 1);
    assert_eq!(server.get("/healthz").0, 200);
}

#[test]
fn past_the_connection_limit_new_sockets_are_closed_and_counted_and_service_resumes() {
    let server = TestServer::with_env(&[
        ("GATEHOUSE_MAX_CONNECTIONS", "16"),
        ("GATEHOUSE_HEADER_READ_TIMEOUT", "2"),
    ]);
    let flood: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let refused = rate_limited_after_flood(&server);
    assert!(
        refused >= 24,
        "{refused} of 40 sockets refused with a limit of 16"
    );
    drop(flood);
    // Once the flood's sockets are gone (or timed out), real clients are served again at once.
    let mut status = 0;
    for _ in 0..50 {
        status = server.get("/healthz").0;
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, 200);
}

/// The refusal count, read over a fresh connection once one is free again.
fn rate_limited_after_flood(server: &TestServer) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = rate_limited(server, "connections");
        if count > 0 || Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_workflows_key_cannot_reach_a_model_through_a_model_step() {
    let server = TestServer::start_default();
    let workflows_only = create_key(server.home.path(), &["--scope", "workflows"]);
    let key = workflows_only["key"].as_str().unwrap();
    crate::util::wait_until("the new key in force", || {
        let response = server
            .client
            .get(server.url("/v2"))
            .bearer_auth(key)
            .send()
            .unwrap();
        response.status() == 403
    });
    let workflow = json!({
        "workflow": {
            "steps": [{"name": "classify", "kind": "model", "model": "no-such-model", "inputs": {"bytes": "$inputs.file"}}],
            "outputs": {"scores": "$steps.classify"}
        },
        "inputs": {"file": {"shape": [1, 2048], "datatype": "INT32", "data": vec![65; 2048]}}
    });
    for path in ["/v1/workflows/run", "/v1/workflows/validate"] {
        let response = server
            .client
            .post(server.url(path))
            .bearer_auth(key)
            .json(&workflow)
            .send()
            .unwrap();
        let (status, body) = split(response);
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("insufficient_scope")),
            "{path}: {body}"
        );
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("infer"), "{message}");
        assert!(
            !message.contains("magika") && !message.contains("sigmoid"),
            "{path} listed the models: {message}"
        );
    }
    // The same workflow with a key that may also infer gets as far as the unknown model.
    let both = create_key(server.home.path(), &["--scope", "workflows", "--scope", "infer"]);
    crate::util::wait_until("the second key in force", || {
        let response = server
            .client
            .get(server.url("/v2"))
            .bearer_auth(both["key"].as_str().unwrap())
            .send()
            .unwrap();
        response.status() == 200
    });
    let response = server
        .client
        .post(server.url("/v1/workflows/validate"))
        .bearer_auth(both["key"].as_str().unwrap())
        .json(&workflow)
        .send()
        .unwrap();
    assert_ne!(split(response).1["code"], "insufficient_scope");
}

#[test]
fn a_symlinked_model_is_not_opened_and_no_error_names_a_path_on_disk() {
    let models = crate::util::ModelDir::new();
    models.copy_installed("sigmoid");
    models.write("broken/1/model.onnx", b"not an onnx file at all");
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("model.onnx");
    std::fs::copy(models.path().join("sigmoid/1/model.onnx"), &target).unwrap();
    std::fs::create_dir_all(models.path().join("linked/1")).unwrap();
    std::os::unix::fs::symlink(&target, models.path().join("linked/1/model.onnx")).unwrap();
    std::os::unix::fs::symlink(outside.path(), models.path().join("linked/2")).unwrap();
    let server = TestServer::builder().models(models.path()).start();
    server.wait_ready();
    let response = server
        .client
        .post(server.url("/v2/repository/index"))
        .bearer_auth(&server.key)
        .json(&json!({}))
        .send()
        .unwrap();
    let (status, index) = split(response);
    assert_eq!(status, 200, "{index}");
    let text = index.to_string();
    for path in [models.path(), outside.path()] {
        assert!(!text.contains(path.to_str().unwrap()), "a path on disk in {text}");
    }
    let rows = index.as_array().unwrap();
    let state = |name: &str, version: &str| {
        rows.iter()
            .find(|r| r["name"] == name && r["version"] == version)
            .unwrap_or_else(|| panic!("no {name} {version} in {text}"))
            .clone()
    };
    assert_eq!(state("sigmoid", "1")["state"], "READY");
    for version in ["1", "2"] {
        let linked = state("linked", version);
        assert_eq!(linked["state"], "UNAVAILABLE", "{linked}");
        assert!(
            linked["reason"].as_str().unwrap().contains("symbolic link"),
            "{linked}"
        );
    }
    let broken = state("broken", "1");
    assert!(
        broken["reason"].as_str().unwrap().contains("broken/1/model.onnx"),
        "{broken}"
    );
    // Content-Type is enforced on the index too.
    let response = server
        .client
        .post(server.url("/v2/repository/index"))
        .bearer_auth(&server.key)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(split(response).0, 415);
}
