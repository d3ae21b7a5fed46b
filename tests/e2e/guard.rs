//! Guard mode against real servers: the perimeter in front of an upstream that is a separate
//! process on loopback, reached over real sockets. The echo upstream (FastAPI under uvicorn, the
//! stack many inference servers are built on) shows exactly what reached it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{
    TestServer, check_item, create_key, default_models, gatehouse_bin, kserve_python,
    on_a_network_of_its_own, report_item, split, upstreams_python, wait_until, wait_until_within,
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn echo_script() -> String {
    format!("{}/e2e/upstreams/echo.py", env!("CARGO_MANIFEST_DIR"))
}

/// The echo upstream, run by the test (not by Gatehouse); killed on drop.
struct Echo {
    child: Child,
    port: u16,
}

impl Echo {
    fn start(host: &str) -> Echo {
        let port = free_port();
        let child = Command::new(upstreams_python())
            .arg(echo_script())
            .arg(port.to_string())
            .arg(host)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the venv's python runs");
        let echo = Echo { child, port };
        wait_until("the echo upstream answers", || {
            reqwest::blocking::get(format!("http://127.0.0.1:{port}/health")).is_ok_and(|r| r.status() == 200)
        });
        echo
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn guard(upstream: &str, preset: &str, settings: &str) -> TestServer {
    let mut builder = TestServer::builder().guard();
    if !settings.is_empty() {
        builder = builder.settings(settings);
    }
    let server = builder
        .arg("--upstream")
        .arg(upstream)
        .arg("--preset")
        .arg(preset)
        .start();
    wait_guard_ready(&server);
    server
}

fn wait_guard_ready(server: &TestServer) {
    wait_until_within(
        "the guard reports its upstream ready",
        Duration::from_secs(60),
        || {
            server
                .client
                .get(server.url("/_gatehouse/readiness"))
                .send()
                .is_ok_and(|r| r.status() == 200)
        },
    );
}

fn get_with(server: &TestServer, path: &str, header: Option<(&str, &str)>) -> (u16, Value) {
    let mut request = server.client.get(server.url(path));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    split(request.send().unwrap())
}

#[test]
fn a_guarded_server_is_reached_only_with_the_right_scope_and_never_sees_the_key() {
    let echo = Echo::start("127.0.0.1");
    let mut server = guard(&echo.url(), "openai", "");
    let key = server.key.clone();
    let bearer = format!("Bearer {key}");

    // The preset's health route is public and answered by the upstream itself.
    assert_eq!(
        get_with(&server, "/health", None),
        (200, serde_json::json!({"status": "ok"}))
    );
    // No key: Gatehouse's own refusal, JSON like every other error, audited.
    let (status, body) = get_with(&server, "/v1/echo", None);
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    // An inference key on a route the preset keeps for admin.
    let (status, body) = get_with(&server, "/slots", Some(("authorization", &bearer)));
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("insufficient_scope")),
        "{body}"
    );
    let admin = server.create_key(&["--scope", "admin", "--name", "admin"])["key"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("the admin key is loaded", || {
        get_with(&server, "/slots", Some(("x-api-key", &admin))).0 == 200
    });

    // The right key: the upstream's answer, and the upstream never saw the key, wherever the
    // client put it. A forwarding header the client made up is replaced by what Gatehouse saw.
    for (how, path, header) in [
        ("bearer", "/v1/echo?a=1", Some(("authorization", bearer.as_str()))),
        ("x-api-key", "/v1/echo?a=1", Some(("x-api-key", key.as_str()))),
        ("query", &*format!("/v1/echo?a=1&api_key={key}"), None),
    ] {
        let mut request = server
            .client
            .get(server.url(path))
            .header("x-forwarded-for", "203.0.113.9");
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let (status, seen) = split(request.send().unwrap());
        assert_eq!(status, 200, "{how}: {seen}");
        let text = seen.to_string();
        assert!(!text.contains(&key), "{how}: the upstream saw the key: {text}");
        let headers = &seen["headers"];
        assert!(headers.get("authorization").is_none(), "{how}: {headers}");
        assert!(headers.get("x-api-key").is_none(), "{how}: {headers}");
        assert_eq!(seen["query"], "a=1", "{how}");
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{how}");
        assert_eq!(headers["x-forwarded-proto"], "http", "{how}");
        assert_eq!(headers["host"], format!("127.0.0.1:{}", echo.port), "{how}");
    }
    // A credential that belongs to the upstream (not a Gatehouse key) passes untouched.
    let (status, seen) = split(
        server
            .client
            .get(server.url("/v1/echo"))
            .bearer_auth(&key)
            .header("x-api-key", "the-upstream-s-own")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    assert_eq!(seen["headers"]["x-api-key"], "the-upstream-s-own");

    // The audit log names the key and the refused admin call.
    server.terminate();
    let audit = std::fs::read_to_string(server.home.path().join("audit/audit.jsonl")).unwrap();
    let lines: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        lines
            .iter()
            .any(|l| l["path"] == "/slots" && l["status"] == 403 && l["reason"] == "insufficient_scope"),
        "{audit}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["path"] == "/v1/echo" && l["status"] == 200),
        "{audit}"
    );
    assert!(!audit.contains(&key), "a key reached the audit log");
}

/// Sends a raw request line, so the path reaches the guard exactly as written.
#[test]
fn a_gatehouse_key_sent_to_a_public_route_does_not_reach_the_upstream_either() {
    let echo = Echo::start("127.0.0.1");
    let server = guard(
        &echo.url(),
        "openai",
        "[guard]\nroute_scopes = { \"/v1/echo\" = \"public\" }\n",
    );
    // A key on a route that needs none is not checked, and still removed: the upstream never
    // sees a Gatehouse key, whichever route it was sent to.
    let (status, body) = split(
        server
            .client
            .get(server.url("/v1/echo"))
            .bearer_auth(&server.key)
            .header("x-api-key", "the-upstream-s-own")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    let headers = &body["headers"];
    assert!(headers.get("authorization").is_none(), "{body}");
    assert_eq!(headers["x-api-key"], "the-upstream-s-own", "{body}");
    assert!(!body.to_string().contains(&server.key), "{body}");
}

fn raw_status(server: &TestServer, request_target: &str, key: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET {request_target} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[test]
fn a_path_the_upstream_could_read_as_another_route_is_refused() {
    let echo = Echo::start("127.0.0.1");
    let server = guard(&echo.url(), "openai", "");
    // An inference key may call /v1/**; these spell /slots (admin) in ways a server might
    // normalise after Gatehouse checked the route.
    for target in [
        "/v1/../slots",
        "/v1/%2e%2e/slots",
        "/v1%2F..%2Fslots",
        "/v1//../slots",
    ] {
        let (status, answer) = raw_status(&server, target, &server.key);
        assert_eq!(status, 400, "{target}: {answer}");
        assert!(answer.contains("ambiguous_path"), "{target}: {answer}");
    }
    let (status, answer) = raw_status(&server, "/v1/echo", &server.key);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn tokens_stream_through_the_guard_as_the_upstream_writes_them() {
    let echo = Echo::start("127.0.0.1");
    let server = guard(&echo.url(), "openai", "");
    let response = server
        .client
        .post(server.url("/v1/stream"))
        .bearer_auth(&server.key)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut lines = BufReader::new(response).lines();
    let first = lines.next().unwrap().unwrap();
    let first_arrived = now();
    let rest: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(rest.len(), 4, "five tokens in all");
    // The upstream writes its tokens 200 ms apart. The first one was here before the upstream
    // wrote the last, so the guard passed it on instead of collecting the body.
    let last_sent = rest[3]["sent"].as_f64().unwrap();
    assert!(
        first_arrived < last_sent - 0.3,
        "the first token arrived {:.3} s after the last was written",
        first_arrived - last_sent
    );
    // And it took the guard little time to pass on.
    let delay = first_arrived - first["sent"].as_f64().unwrap();
    assert!(delay < 0.1, "the first token took {delay:.3} s through the guard");
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn an_upstream_that_is_down_slow_or_sent_too_much_gets_a_json_answer() {
    let echo = Echo::start("127.0.0.1");
    let server = guard(
        &echo.url(),
        "openai",
        "[limits]\nrequest_timeout_seconds = 2\nmax_body_bytes = 4096\n",
    );
    // Slower than the request limit: 504, named as the upstream's.
    let started = Instant::now();
    let (status, body) = server.get("/v1/slow");
    assert_eq!(
        (status, body["code"].as_str()),
        (504, Some("upstream_timeout")),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // A body over the limit never reaches the upstream.
    let (status, body) = server.post_raw("/v1/echo", "application/json", vec![b' '; 8192]);
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    // Nor does one sent in chunks, without a length to refuse it by up front.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(vec![b' '; 8192]));
    let (status, body) = split(
        server
            .client
            .post(server.url("/v1/echo"))
            .bearer_auth(&server.key)
            .header("content-type", "application/json")
            .body(chunked)
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    // Under the limit it does, whole.
    let (status, body) = server.post_raw("/v1/echo", "application/json", vec![b' '; 4000]);
    assert_eq!((status, body["body_bytes"].as_u64()), (200, Some(4000)), "{body}");
    // Down: 502, and counted.
    drop(echo);
    let (status, body) = server.get("/v1/echo");
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("upstream_unavailable")),
        "{body}"
    );
    let (status, _) = get_with(&server, "/_gatehouse/readiness", None);
    assert_eq!(status, 503);
    let metrics = server
        .client
        .get(server.url("/_gatehouse/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for reason in ["timeout", "unavailable"] {
        assert!(
            metrics.contains(&format!(
                "gatehouse_upstream_errors_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason}: {metrics}"
        );
    }
}

fn upstream_pid(port: u16) -> Option<u32> {
    gatehouse_core::ports::listening_process(port).map(|holder| holder.pid)
}

#[test]
fn a_launched_upstream_is_restarted_after_a_crash_and_stopped_with_the_guard() {
    let port = free_port();
    let mut server = TestServer::builder()
        .guard()
        .arg("--preset")
        .arg("openai")
        .arg("--upstream")
        .arg(&format!("http://127.0.0.1:{port}"))
        .arg("--launch")
        .arg("--")
        .arg(upstreams_python().to_str().unwrap())
        .arg(&echo_script())
        .arg("{port}")
        .arg("--access-log")
        .start();
    wait_guard_ready(&server);
    let (status, body) = server.get("/v1/echo");
    assert_eq!(status, 200, "{body}");
    let info = get_with(&server, "/_gatehouse/info", None).1;
    assert_eq!(info["guarding"]["launched"], true, "{info}");
    assert_eq!(info["guarding"]["state"], "ready", "{info}");
    assert_eq!(info["guarding"]["upstream"], format!("127.0.0.1:{port}"));
    // The checklist's canary (a made-up key as Bearer, X-API-Key and api_key) reached the
    // upstream, whose own access log shows the request and no key.
    let stripped = check_item(&server, &server.url(""), "guard.key_stripped");
    assert_eq!(stripped["status"], "pass", "{stripped:#}\n{}", server.log());
    let log = server.log();
    let canary = log
        .lines()
        .find(|l| l.contains("gatehouse_canary="))
        .unwrap_or_else(|| panic!("the upstream logged no canary: {log}"));
    assert!(
        !canary.contains("api_key") && !canary.contains("redacted"),
        "the request reached the upstream with its key: {canary}"
    );

    // The upstream dies: requests get 502 until the guard has started it again.
    let first = upstream_pid(port).expect("the launched upstream listens");
    Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap();
    wait_until("the guard answers 502 for the dead upstream", || {
        server.get("/v1/echo").0 == 502
    });
    wait_until("the guard sees the upstream gone", || {
        get_with(&server, "/_gatehouse/info", None).1["guarding"]["state"] != "ready"
    });
    wait_guard_ready(&server);
    let (status, body) = server.get("/v1/echo");
    assert_eq!(status, 200, "{body}\n{}", server.log());
    let second = upstream_pid(port).expect("restarted");
    assert_ne!(first, second);
    let log = server.log();
    assert!(log.contains("\"event\":\"upstream_exited\""), "{log}");
    assert!(log.contains("\"event\":\"upstream_started\""), "{log}");

    // Stopping the guard stops what it launched.
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0));
    wait_until("the launched upstream is gone", || upstream_pid(port).is_none());
}

#[test]
fn a_gatehouse_key_in_the_launched_upstream_s_output_fails_the_checklist_and_stays_out_of_the_log() {
    // An upstream that prints a Gatehouse key is one that received it, however it got there.
    let (_, leaked) = gatehouse_core::keys::format::generate().unwrap();
    let leaked = leaked.as_str();
    let server = TestServer::builder()
        .guard()
        .arg("--preset")
        .arg("openai")
        .arg("--launch")
        .arg("--")
        .arg("sh")
        .arg("-c")
        .arg(&format!(
            "echo 'received Authorization: Bearer {leaked}'; exec {} {} {{port}}",
            upstreams_python().display(),
            echo_script()
        ))
        .start();
    wait_guard_ready(&server);
    wait_until("the guard read the upstream's first line", || {
        server.log().contains("upstream_received_key")
    });
    let stripped = check_item(&server, &server.url(""), "guard.key_stripped");
    assert_eq!(stripped["status"], "fail", "{stripped:#}");
    assert!(
        stripped["summary"]
            .as_str()
            .unwrap()
            .contains("received a Gatehouse key"),
        "{stripped:#}"
    );
    assert!(!server.log().contains(leaked), "the key reached Gatehouse's log");
}

#[test]
fn an_upstream_listening_beyond_loopback_is_refused_with_the_address_and_the_fix() {
    let echo = Echo::start("0.0.0.0");
    let (output, home) = TestServer::builder()
        .guard()
        .arg("--upstream")
        .arg(&echo.url())
        .arg("--preset")
        .arg("ollama")
        .run_to_exit();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("listens on 0.0.0.0 port {}", echo.port)),
        "{stderr}"
    );
    assert!(stderr.contains("OLLAMA_HOST=127.0.0.1"), "{stderr}");
    // The refusal is a critical security event.
    let events = crate::util::gatehouse(home.path(), &["events", "--json"]);
    let events = String::from_utf8_lossy(&events.stdout);
    let exposed = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["kind"] == "upstream_exposed")
        .unwrap_or_else(|| panic!("no upstream_exposed event in {events}"));
    assert_eq!(exposed["severity"], "critical", "{exposed}");
    assert_eq!(exposed["evidence"]["port"], echo.port, "{exposed}");
    // And an upstream address that is not loopback is refused before anything starts.
    let (output, _home) = TestServer::builder()
        .guard()
        .arg("--upstream")
        .arg("http://192.0.2.1:11434")
        .run_to_exit();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("guard.upstream") && stderr.contains("not on loopback"),
        "{stderr}"
    );
}

/// Opens a WebSocket on `path` by hand (RFC 6455): the upgrade request, the 101, then frames.
fn websocket(server: &TestServer, path: &str, key: Option<&str>) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n",
        server.addr
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).map_err(|e| e.to_string())?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 101") {
        return Err(head);
    }
    // The accept value RFC 6455 gives for this very key: the upstream's own handshake came back.
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    Ok(stream)
}

fn read_text_frame(stream: &mut TcpStream) -> String {
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(header[0], 0x81, "a final text frame");
    let length = match header[1] & 0x7f {
        126 => {
            let mut extended = [0u8; 2];
            stream.read_exact(&mut extended).unwrap();
            usize::from(u16::from_be_bytes(extended))
        }
        short => usize::from(short),
    };
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).unwrap();
    String::from_utf8(payload).unwrap()
}

fn send_text_frame(stream: &mut TcpStream, text: &str) {
    // Clients mask every frame; the mask is arbitrary.
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | u8::try_from(text.len()).unwrap()];
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).unwrap();
}

#[test]
fn a_websocket_opens_through_the_guard_only_with_a_key_and_without_passing_it_on() {
    let echo = Echo::start("127.0.0.1");
    let server = guard(&echo.url(), "openai", "");
    let refused = websocket(&server, "/v1/ws", None).unwrap_err();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let wrong_scope = websocket(&server, "/slots", Some(&server.key)).unwrap_err();
    assert!(wrong_scope.starts_with("HTTP/1.1 403"), "{wrong_scope}");

    let mut stream = websocket(&server, "/v1/ws", Some(&server.key)).unwrap();
    let hello: Value = serde_json::from_str(&read_text_frame(&mut stream)).unwrap();
    assert!(hello["headers"].get("authorization").is_none(), "{hello}");
    assert!(!hello.to_string().contains(&server.key));
    for text in ["hello", "through the guard"] {
        send_text_frame(&mut stream, text);
        assert_eq!(read_text_frame(&mut stream), format!("echo:{text}"));
    }
}

/// MLServer on the sigmoid test model, launched by the guard.
fn mlserver_guard() -> TestServer {
    let grpc = free_port();
    let model = default_models().join("sigmoid/1/model.onnx");
    let server = TestServer::builder()
        .guard()
        .arg("--preset")
        .arg("oip")
        .arg("--launch")
        .arg("--")
        .arg(upstreams_python().to_str().unwrap())
        .arg(&format!(
            "{}/e2e/upstreams/mlserver/serve.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(model.to_str().unwrap())
        .arg("{port}")
        .arg(&grpc.to_string())
        .start();
    wait_guard_ready(&server);
    server
}

#[test]
fn mlserver_behind_the_guard_answers_byte_for_byte_and_keeps_its_repository_for_admin() {
    let server = mlserver_guard();
    let info = split(server.client.get(server.url("/_gatehouse/info")).send().unwrap()).1;
    let upstream = info["guarding"]["upstream"].as_str().unwrap().to_string();
    // Found on this computer as what it is, with the preset that fits.
    let port = upstream.rsplit(':').next().unwrap();
    let found = detected(port);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["preset"], "oip", "{found:?}");
    assert!(
        found[0]["looks_like"].as_str().unwrap().contains("mlserver"),
        "{found:?}"
    );
    // A request id makes MLServer's answer the same every time, so the two can be compared whole.
    let request = serde_json::json!({
        "id": "gatehouse-e2e",
        "inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32",
                    "data": (0..60).map(|i| f64::from(i) / 10.0 - 3.0).collect::<Vec<_>>()}]
    })
    .to_string();
    let post = |url: String, key: Option<&str>| {
        let mut request_builder = server
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(request.clone());
        if let Some(key) = key {
            request_builder = request_builder.bearer_auth(key);
        }
        let response = request_builder.send().unwrap();
        (response.status().as_u16(), response.bytes().unwrap().to_vec())
    };
    let direct = post(format!("http://{upstream}/v2/models/sigmoid/infer"), None);
    assert_eq!(direct.0, 200, "{}", String::from_utf8_lossy(&direct.1));
    let guarded = post(server.url("/v2/models/sigmoid/infer"), Some(&server.key));
    assert_eq!(guarded, direct, "the guard changed MLServer's answer");
    let (status, body) = split(
        server
            .client
            .post(server.url("/v2/models/sigmoid/infer"))
            .body(request.clone())
            .send()
            .unwrap(),
    );
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));

    // Unloading a model changes the server: an inference key cannot, an admin key can.
    let unload = "/v2/repository/models/sigmoid/unload";
    let (status, body) = split(
        server
            .client
            .post(server.url(unload))
            .bearer_auth(&server.key)
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("insufficient_scope")),
        "{body}"
    );
    assert_eq!(server.get("/v2/models/sigmoid/ready").0, 200);
    let admin = create_key(server.home.path(), &["--scope", "admin", "--name", "admin"])["key"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("the admin key unloads the model", || {
        server
            .client
            .post(server.url(unload))
            .bearer_auth(&admin)
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    assert_ne!(
        server.get("/v2/models/sigmoid/ready").0,
        200,
        "MLServer unloaded it"
    );
}

/// The first server-sent event of MLServer's `infer_stream` on the tokens model, with the time it
/// arrived, and the rest of the events.
fn stream_tokens(server: &TestServer, url: String, key: Option<&str>) -> (f64, Vec<Value>) {
    let request = serde_json::json!({
        "inputs": [{"name": "count", "shape": [1], "datatype": "INT32", "data": [5]}]
    });
    let mut builder = server.client.post(url).json(&request);
    if let Some(key) = key {
        builder = builder.bearer_auth(key);
    }
    let response = builder.send().unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        response.headers()
    );
    let mut events = Vec::new();
    let mut first_arrived = 0.0;
    for line in BufReader::new(response).lines() {
        let line = line.unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            if events.is_empty() {
                first_arrived = now();
            }
            events.push(serde_json::from_str::<Value>(data).unwrap());
        }
    }
    (first_arrived, events)
}

fn output(event: &Value, name: &str) -> f64 {
    event["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap()["data"][0]
        .as_f64()
        .unwrap()
}

#[test]
fn mlserver_s_stream_reaches_the_client_event_by_event_through_the_guard() {
    let server = mlserver_guard();
    let info = split(server.client.get(server.url("/_gatehouse/info")).send().unwrap()).1;
    let upstream = info["guarding"]["upstream"].as_str().unwrap().to_string();
    let route = "/v2/models/tokens/infer_stream";
    let (status, body) = split(server.client.post(server.url(route)).send().unwrap());
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));

    let (direct_first, direct) = stream_tokens(&server, format!("http://{upstream}{route}"), None);
    let (guarded_first, guarded) = stream_tokens(&server, server.url(route), Some(&server.key));
    assert_eq!(guarded.len(), 5, "{guarded:?}");
    let tokens: Vec<f64> = guarded.iter().map(|e| output(e, "token")).collect();
    assert_eq!(tokens, [0.0, 1.0, 2.0, 3.0, 4.0]);
    // MLServer writes its events 200 ms apart; the first was here before it wrote the last, so
    // the guard passed each on as it came instead of collecting the body.
    let last_sent = output(&guarded[4], "sent");
    assert!(
        guarded_first < last_sent - 0.3,
        "the first event arrived {:.3} s after the last was written",
        guarded_first - last_sent
    );
    let through_guard = guarded_first - output(&guarded[0], "sent");
    let direct_delay = direct_first - output(&direct[0], "sent");
    eprintln!(
        "first event after it was written: {:.1} ms through the guard, {:.1} ms direct",
        through_guard * 1e3,
        direct_delay * 1e3
    );
    assert!(
        through_guard < direct_delay + 0.05,
        "the first event took {through_guard:.3} s through the guard against {direct_delay:.3} s direct"
    );
}

/// `gatehouse check --url URL --json` from `home`, probing 127.0.0.2 and `lan` as this
/// computer's other addresses.
fn report(home: &std::path::Path, url: &str, lan: std::net::IpAddr) -> (i32, Value) {
    crate::util::check_report(home, url, &format!("127.0.0.2,{lan}"))
}

#[test]
fn the_checklist_proves_the_guard_and_sees_a_way_around_it_live() {
    on_a_network_of_its_own(
        "guard::the_checklist_proves_the_guard_and_sees_a_way_around_it_live",
        checklist_of_a_guard,
    );
}

fn checklist_of_a_guard(lan: std::net::IpAddr) {
    let echo = Echo::start("127.0.0.1");
    // Before: the server as it is, checked from outside, answers anyone.
    let scratch = tempfile::tempdir().unwrap();
    let (code, before) = report(scratch.path(), &echo.url(), lan);
    assert_eq!(code, 1, "{before:#}");
    let open = report_item(&before, "auth.required");
    assert_eq!(open["status"], "fail", "{open:#}");
    assert!(
        open["summary"].as_str().unwrap().contains("GET /v1/models"),
        "{open:#}"
    );

    // After: behind the guard, the same server is proved closed.
    let server = guard(&echo.url(), "openai", "");
    let (code, after) = report(server.home.path(), &server.url(""), lan);
    assert_eq!(after["kind"], "gatehouse", "{after:#}");
    for id in [
        "guard.upstream_loopback",
        "guard.admin_routes",
        "auth.required",
        "network.host_check",
        "network.exposure",
        "public.no_secrets",
        "cors.policy",
    ] {
        assert_eq!(
            report_item(&after, id)["status"],
            "pass",
            "{id}: {:#}",
            report_item(&after, id)
        );
    }
    assert_ne!(code, 1, "no item fails: {after:#}");
    let admin = report_item(&after, "guard.admin_routes");
    assert!(admin["evidence"].to_string().contains("GET /slots"), "{admin:#}");

    // A way around the guard appears: the server's port answers on the network address too.
    let around = std::net::TcpListener::bind((lan, echo.port)).unwrap();
    let (code, seen) = report(server.home.path(), &server.url(""), lan);
    assert_eq!(code, 1);
    let item = report_item(&seen, "guard.upstream_loopback");
    assert_eq!(item["status"], "fail", "{item:#}");
    assert!(
        item["summary"].as_str().unwrap().contains(&format!("{lan}")),
        "{item:#}"
    );
    drop(around);
}

#[test]
fn the_supervisor_runs_a_guard_the_settings_describe_and_checks_it() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let settings = format!(
        "[server]\nport = {port}\n[guard]\npreset = \"openai\"\nlaunch = [{:?}, {:?}, \"{{port}}\"]\n",
        upstreams_python().to_str().unwrap(),
        echo_script()
    );
    let file = home.path().join("settings.toml");
    std::fs::write(&file, settings).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut child = Command::new(gatehouse_bin())
        .args(["supervise", "--json", "--check-every", "1"])
        .env("GATEHOUSE_HOME", home.path())
        .env("GATEHOUSE_DATA", crate::util::data_dir())
        .env("GATEHOUSE_PROBE_ADDRESSES", "127.0.0.2")
        .env_remove("HOST")
        .env_remove("PORT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, events) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                let _ = sender.send(event);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut url = None;
    let mut report = None;
    while report.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = events
            .recv_timeout(left)
            .expect("the supervisor reports a started guard and a checklist within 60 s");
        if event["type"] == "state" && event["url"].is_string() {
            url = event["url"].as_str().map(str::to_string);
        }
        if event["type"] == "checklist" && url.is_some() {
            report = Some(event["report"].clone());
        }
    }
    let url = url.unwrap();
    assert_eq!(url, format!("http://127.0.0.1:{port}"));
    let report = report.unwrap();
    assert_eq!(report["kind"], "gatehouse", "{report:#}");
    assert_eq!(
        report_item(&report, "guard.upstream_loopback")["status"],
        "pass",
        "{report:#}"
    );
    assert_eq!(
        report_item(&report, "guard.admin_routes")["status"],
        "pass",
        "{report:#}"
    );
    // The guard is in front: its refusal, not the upstream's answer.
    let (status, body) = split(reqwest::blocking::get(format!("{url}/v1/models")).unwrap());
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// `gatehouse guard --detect --json` looking at `ports` only.
fn detected(ports: &str) -> Vec<Value> {
    let output = Command::new(gatehouse_bin())
        .args(["guard", "--detect", "--json"])
        .env("GATEHOUSE_DETECT_PORTS", ports)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn servers_running_here_are_found_with_what_they_answer_and_where_they_listen() {
    let on_loopback = Echo::start("127.0.0.1");
    let everywhere = Echo::start("0.0.0.0");
    let nothing = free_port();
    let found = detected(&format!("{},{},{nothing}", on_loopback.port, everywhere.port));
    assert_eq!(found.len(), 2, "nothing listens on {nothing}: {found:#?}");
    for server in &found {
        assert_eq!(server["preset"], "openai", "{server}");
        assert_eq!(server["looks_like"], "an OpenAI-compatible server");
        let open = server["open"].to_string();
        assert!(open.contains("GET /v1/models"), "{open}");
    }
    assert_eq!(found[0]["beyond_loopback"], serde_json::json!([]));
    assert_eq!(found[1]["beyond_loopback"], serde_json::json!(["0.0.0.0"]));
    // A guard is recognised as Gatehouse, which needs no guard of its own.
    let server = guard(&on_loopback.url(), "openai", "");
    let port = server.addr.rsplit(':').next().unwrap();
    let found = detected(port);
    assert_eq!(found[0]["looks_like"], "Gatehouse", "{found:?}");
    assert_eq!(found[0]["preset"], Value::Null);
}

#[test]
fn triton_s_own_client_with_its_defaults_reaches_kserve_through_the_guard_with_a_key() {
    let model = default_models().join("sigmoid/1/model.onnx");
    let upstreams = format!("{}/e2e/upstreams/kserve", env!("CARGO_MANIFEST_DIR"));
    let server = TestServer::builder()
        .guard()
        .arg("--preset")
        .arg("oip")
        .arg("--launch")
        .arg("--")
        .arg(kserve_python().to_str().unwrap())
        .arg(&format!("{upstreams}/serve.py"))
        .arg(model.to_str().unwrap())
        .arg("{port}")
        .start();
    wait_guard_ready(&server);
    let info = split(server.client.get(server.url("/_gatehouse/info")).send().unwrap()).1;
    let upstream = info["guarding"]["upstream"].as_str().unwrap().to_string();
    let triton = |address: &str, key: Option<&str>| {
        let mut command = Command::new(kserve_python());
        command.arg(format!("{upstreams}/triton_client.py")).arg(address);
        if let Some(key) = key {
            command.arg(key);
        }
        command.output().unwrap()
    };
    // Binary tensors in and out, the client's defaults: the same numbers directly and through
    // the guard.
    let direct = triton(&upstream, None);
    assert!(
        direct.status.success(),
        "{}",
        String::from_utf8_lossy(&direct.stderr)
    );
    let guarded = triton(&server.addr, Some(&server.key));
    assert!(
        guarded.status.success(),
        "{}",
        String::from_utf8_lossy(&guarded.stderr)
    );
    assert_eq!(guarded.stdout, direct.stdout);
    let values: Vec<f64> = serde_json::from_slice(&guarded.stdout).unwrap();
    assert_eq!(values.len(), 60);
    assert!((values[0] - 1.0 / (1.0 + 3f64.exp())).abs() < 1e-6, "{values:?}");
    // Without a key the client gets Gatehouse's refusal, in the client's own error.
    let refused = triton(&server.addr, None);
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("401") && error.contains("API key"), "{error}");
}
