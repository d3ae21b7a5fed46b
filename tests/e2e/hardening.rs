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
    server.metric("gatehouse_rate_limited_total", &format!("limit=\"{limit}\""))
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

#[test]
fn a_key_sent_in_a_url_is_warned_about_by_id_and_address_also_after_a_restart() {
    let server = TestServer::start_default();
    let url = server.url("");
    // A web page can send any number of made-up keys in URLs: those leak nothing of the
    // person's and must not raise the warning.
    let (status, _) = split(
        server
            .client
            .get(server.url("/v2/models/magika?api_key=gth_made_up_by_a_page"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 401);
    let before = check_item(&server, &url, "auth.key_in_url");
    assert_eq!(before["status"], "pass", "{before}");

    let key_id = gatehouse_core::keys::format::parse(&server.key)
        .unwrap()
        .to_string();
    let (status, _) = split(
        server
            .client
            .get(server.url(&format!("/v2/models/magika?api_key={}", server.key)))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    let warned = check_item(&server, &url, "auth.key_in_url");
    assert_eq!(warned["status"], "warn", "{warned}");
    let text = warned.to_string();
    assert!(text.contains(&key_id) && text.contains("127.0.0.1"), "{text}");
    assert!(
        !text.contains(&server.key),
        "the warning must not carry the key itself: {text}"
    );

    // The record of the last day comes back from the audit log after a restart.
    let restarted = server.stop_for_restart().models(&default_models()).start();
    restarted.wait_ready();
    let after = check_item(&restarted, &restarted.url(""), "auth.key_in_url");
    assert_eq!(after["status"], "warn", "{after}");
    assert!(after.to_string().contains(&key_id), "{after}");
}

/// A network namespace joined to this one by a veth pair: another computer on a small network,
/// made by the test and removed after it. Needs root (CAP_NET_ADMIN), as the test command has.
struct OtherComputer {
    name: String,
    host_side: String,
    /// This computer's address on that network, and the other computer's.
    here: String,
    there: String,
}

impl OtherComputer {
    fn new() -> OtherComputer {
        let id = std::process::id() % 100_000;
        let subnet = 16 + id % 200;
        let other = OtherComputer {
            name: format!("gh-other-{id}"),
            host_side: format!("ghv{id}a"),
            here: format!("10.251.{subnet}.1"),
            there: format!("10.251.{subnet}.2"),
        };
        let ns_side = format!("ghv{id}b");
        let ip = |args: &[&str]| {
            let output = Command::new("ip")
                .args(args)
                .output()
                .expect("`ip` from iproute2");
            assert!(
                output.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        ip(&["netns", "add", &other.name]);
        ip(&[
            "link",
            "add",
            &other.host_side,
            "type",
            "veth",
            "peer",
            "name",
            &ns_side,
        ]);
        ip(&["link", "set", &ns_side, "netns", &other.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", other.here),
            "dev",
            &other.host_side,
        ]);
        ip(&["link", "set", &other.host_side, "up"]);
        let inside = |args: &[&str]| ip(&[&["netns", "exec", &other.name, "ip"], args].concat());
        inside(&["addr", "add", &format!("{}/30", other.there), "dev", &ns_side]);
        inside(&["link", "set", &ns_side, "up"]);
        inside(&["link", "set", "lo", "up"]);
        other
    }

    /// `curl` run on the other computer; the body it got.
    fn get(&self, url: &str) -> (bool, String) {
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "curl",
                "-sS",
                "--max-time",
                "10",
                url,
            ])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }
}

impl Drop for OtherComputer {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_side]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

#[test]
fn info_tells_the_posture_only_to_clients_on_this_computer() {
    let other = OtherComputer::new();
    let server = TestServer::builder()
        .models(&default_models())
        .arg("--host")
        .arg("0.0.0.0")
        .settings("[tls]\nallow_plaintext_network = true\n")
        .start();
    server.wait_ready();
    let port = server.addr.rsplit(':').next().unwrap();
    let (status, local) = split(server.client.get(server.url("/info")).send().unwrap());
    assert_eq!(status, 200);
    for field in ["auth", "custom_python", "keys_in_url"] {
        assert!(
            local.get(field).is_some(),
            "{field} missing for a local client: {local}"
        );
    }
    // This computer reaching its own address on that network is still this computer.
    let (status, own) = split(
        server
            .client
            .get(format!("http://{}:{port}/info", other.here))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{own}");
    assert!(own.get("auth").is_some(), "{own}");
    // The other computer is told what a client needs, not the posture.
    let (reached, body) = other.get(&format!("http://{}:{port}/info", other.here));
    assert!(reached, "the other computer could not reach the server: {body}");
    let remote: Value = serde_json::from_str(&body).unwrap();
    for field in ["auth", "custom_python", "python_sandbox", "keys_in_url"] {
        assert!(
            remote.get(field).is_none(),
            "{field} told to {}: {remote}",
            other.there
        );
    }
    assert_eq!(remote["name"], "gatehouse");
    assert!(remote.get("tls").is_some(), "{remote}");
    // The runtime's version, as the wheel it was taken from names it.
    let wheel = Command::new(crate::util::python())
        .args(["-c", "import onnxruntime; print(onnxruntime.__version__)"])
        .output()
        .unwrap();
    let wheel = String::from_utf8_lossy(&wheel.stdout).trim().to_string();
    assert_eq!(local["onnxruntime"], wheel.as_str(), "{local}");
}

/// The most memory the server process has held so far (VmHWM), in bytes.
fn peak_memory(server: &TestServer) -> u64 {
    server.memory("VmHWM")
}

#[test]
fn a_malformed_8_mb_tensor_is_refused_without_the_memory_of_a_json_tree() {
    let server = TestServer::start_default();
    // Warm the model up, so what it allocates on its first run is not counted below.
    let features = vec![256; 2048];
    let (status, _) = server.post_json(
        "/v2/models/magika/infer",
        &json!({"inputs": [{"name": "bytes", "shape": [1, 2048], "datatype": "INT32", "data": features}]}),
    );
    assert_eq!(status, 200);
    let before = peak_memory(&server);
    // 3.9 million elements where the shape asks for 2,048: the slow path names the count, and
    // must not build a tree of every number to do it (that took about 270 MB).
    let mut data = "1,".repeat(3_900_000);
    data.pop();
    let body = format!(
        r#"{{"inputs": [{{"name": "bytes", "shape": [1, 2048], "datatype": "INT32", "data": [{data}]}}]}}"#
    );
    let (status, answer) = server.post_raw("/v2/models/magika/infer", "application/json", body.into_bytes());
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "wrong_element_count", "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("has 3900000"),
        "{answer}"
    );
    let grown = peak_memory(&server).saturating_sub(before);
    assert!(
        grown < 80 << 20,
        "an 8 MB malformed request raised the server's peak memory by {} MB",
        grown >> 20
    );
}

fn softmax_chain(steps: usize) -> Value {
    let mut list = vec![json!({"name": "s0", "kind": "softmax", "inputs": {"x": "$inputs.x"}})];
    for i in 1..steps {
        list.push(json!({"name": format!("s{i}"), "kind": "softmax", "inputs": {"x": format!("$steps.s{}.y", i - 1)}}));
    }
    json!({"steps": list, "outputs": {"y": format!("$steps.s{}.y", steps - 1)}})
}

#[test]
fn a_workflow_frees_what_no_later_step_reads_and_one_that_outgrows_its_budget_gets_413() {
    let builder = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_WORKFLOW_MEMORY_MB", "16");
    let key = create_key(builder.home(), &["--scope", "workflows", "--name", "chain"])["key"]
        .as_str()
        .unwrap()
        .to_string();
    let server = builder.start();
    server.wait_ready();
    let run = |body: &Value| {
        split(
            server
                .client
                .post(server.url("/v1/workflows/run"))
                .bearer_auth(&key)
                .json(body)
                .send()
                .unwrap(),
        )
    };
    // 60,000 numbers take about 2 MB as step results; sixteen softmax steps kept whole would be
    // 30 MB, over the 16 MB budget. Each result is freed once the next step has read it.
    let x: Vec<f64> = (0..60_000).map(|i| f64::from(i % 7)).collect();
    let (status, answer) = run(&json!({"workflow": softmax_chain(16), "inputs": {"x": x}}));
    assert_eq!(status, 200, "{answer}");
    let y = answer["outputs"]["y"]["data"].as_array().unwrap();
    assert_eq!(y.len(), 60_000);
    let total: f64 = y.iter().map(|v| v.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-6, "softmax sums to {total}");

    // Twelve steps that each read the input keep twelve results until the end.
    let fan: Vec<Value> = (0..12)
        .map(|i| json!({"name": format!("f{i}"), "kind": "softmax", "inputs": {"x": "$inputs.x"}}))
        .collect();
    let outputs: serde_json::Map<String, Value> = (0..12)
        .map(|i| (format!("o{i}"), json!(format!("$steps.f{i}.y"))))
        .collect();
    let (status, answer) = run(&json!({"workflow": {"steps": fan, "outputs": outputs}, "inputs": {"x": x}}));
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["code"], "workflow_too_large");
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains("limits.workflow_memory_mb") && message.contains("16 MB"),
        "{message}"
    );
}

#[test]
fn completion_scripts_cover_every_command_and_bash_can_read_its_own() {
    let home = tempfile::tempdir().unwrap();
    let script = |shell: &str| {
        let output = crate::util::gatehouse(home.path(), &["completions", shell]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let bash = script("bash");
    for command in [
        "serve",
        "keys",
        "certs",
        "check",
        "supervise",
        "settings",
        "completions",
        "issue-client",
    ] {
        assert!(bash.contains(command), "bash completion lacks {command}");
    }
    let path = home.path().join("gatehouse.bash");
    std::fs::write(&path, &bash).unwrap();
    // Sourcing it registers the completion function, as a person's shell would.
    let sourced = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p gatehouse", path.display()))
        .output()
        .unwrap();
    assert!(
        sourced.status.success(),
        "{}",
        String::from_utf8_lossy(&sourced.stderr)
    );
    assert!(String::from_utf8_lossy(&sourced.stdout).contains("gatehouse"));
    assert!(script("zsh").starts_with("#compdef gatehouse"));
    assert!(script("fish").contains("complete -c gatehouse"));
    let refused = crate::util::gatehouse(home.path(), &["completions", "powershell-ish"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("bash"));
}

#[test]
fn the_local_ca_vouches_only_for_this_computer_and_refuses_to_issue_for_another_site() {
    let home = tempfile::tempdir().unwrap();
    certs(home.path(), &["init", "--host", "gatehouse.test"]);
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "nameConstraints", "-in"])
        .arg(home.path().join("certs/ca.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    for permitted in [
        "DNS:localhost",
        "DNS:gatehouse.test",
        "IP:127.0.0.0/255.0.0.0",
        "IP:192.168.0.0/255.255.0.0",
    ] {
        assert!(
            text.contains(permitted),
            "{permitted} not in the CA's constraints:\n{text}"
        );
    }
    // The server certificate it issued verifies under those constraints with an independent client.
    let verified = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(home.path().join("certs/ca.pem"))
        .arg(home.path().join("certs/server.pem"))
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // A name outside them is refused before anything is written, with the way on.
    let before = std::fs::read(home.path().join("certs/server.pem")).unwrap();
    let refused = crate::util::gatehouse(home.path(), &["certs", "init", "--host", "www.bank.example"]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("www.bank.example") && message.contains("--new-ca"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(home.path().join("certs/server.pem")).unwrap(),
        before
    );
    // Lifetimes have one cap, whichever front end asks.
    let too_long = crate::util::gatehouse(home.path(), &["certs", "issue-client", "phone", "--days", "900"]);
    assert!(!too_long.status.success());
    let message = String::from_utf8_lossy(&too_long.stderr);
    assert!(
        message.contains("900 days") && message.contains("825"),
        "{message}"
    );
}

#[test]
fn bodies_read_for_a_key_before_it_is_known_are_bounded_and_a_header_key_is_never_held_up() {
    let server = TestServer::start_default();
    // Eight senders that announce a JSON body with the key inside and then stall, holding every
    // turn the server gives to such bodies.
    let stalled: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = TcpStream::connect(&server.addr).unwrap();
            stream
                .write_all(
                    b"POST /v2/models/magika/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                      Content-Length: 100000\r\n\r\n{\"api_key\": \"",
                )
                .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // A key in a header is checked without reading the body: served at once.
    let started = Instant::now();
    let (status, _) = server.get("/v2/models/magika");
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A ninth body with its key inside waits for a turn, then is refused with the way on.
    let (status, body) = raw(
        &server,
        "POST /v2/models/magika/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: 17\r\nConnection: close\r\n\r\n{\"api_key\": \"x\"}",
    );
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "busy");
    assert!(body["error"].as_str().unwrap().contains("header"), "{body}");
    // A body that is not JSON cannot carry a key and is refused for its missing key unread.
    let (status, body) = raw(
        &server,
        "POST /v2/models/magika/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\
         Content-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(status, 401, "{body}");
    drop(stalled);
    assert!(rate_limited(&server, "unauthenticated_bodies") >= 1);
}

#[test]
fn a_local_ca_made_before_name_constraints_keeps_working_and_the_checklist_suggests_reissuing_it() {
    let builder = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_TLS", "true");
    // A CA as Gatehouse made them before: no name constraints, its key in the keychain under the
    // account its fingerprint names.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Gatehouse local CA (before)");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = params.self_signed(&key).unwrap();
    gatehouse_core::keys::Keychain::connect()
        .unwrap()
        .store(
            &gatehouse_core::certs::ca_key_account(&ca.pem()),
            "local certificate authority",
            &gatehouse_core::sensitive::Sensitive::new(key.serialize_pem()),
        )
        .unwrap();
    std::fs::create_dir_all(builder.home().join("certs")).unwrap();
    std::fs::write(builder.home().join("certs/ca.pem"), ca.pem()).unwrap();
    // It still issues, and what it issued is still served and trusted.
    certs(builder.home(), &["init"]);
    let server = builder.start();
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let item = check_item(
        &server,
        &format!("https://localhost:{port}"),
        "transport.certificate",
    );
    assert_eq!(item["status"], "warn", "{item}");
    let summary = item["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("trusted")
            && summary.contains("no name constraints")
            && summary.contains("--new-ca"),
        "{item}"
    );
}
