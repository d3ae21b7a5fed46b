//! The Open Inference Protocol over gRPC with NVIDIA's own Triton gRPC client at its defaults:
//! the answers equal ONNX Runtime's in-process, and the port is behind the same perimeter as HTTP
//! (no key, a wrong key, the wrong scope, another model's key, TLS), audited and counted.

use std::path::Path;

use serde_json::{Value, json};

use crate::util::{ModelDir, TestServer, reference_outputs};

/// Runs the Triton gRPC client script against `addr` with `key` (over TLS trusting `ca`).
fn triton_grpc(addr: &str, key: &str, ca: Option<&Path>) -> Value {
    triton_grpc_as(addr, key, ca, None)
}

/// [`triton_grpc`] presenting a client certificate and its key (mutual TLS).
fn triton_grpc_as(addr: &str, key: &str, ca: Option<&Path>, identity: Option<(&Path, &Path)>) -> Value {
    let script = format!(
        "{}/e2e/upstreams/kserve/triton_grpc.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut command = std::process::Command::new(crate::util::kserve_python());
    command.arg(&script).arg(addr).arg(key);
    if let Some(ca) = ca {
        command.arg(ca);
    }
    if let Some((cert, key)) = identity {
        command.arg(cert).arg(key);
    }
    let output = command.output().expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

fn models() -> ModelDir {
    let models = ModelDir::new();
    models.copy_installed("sigmoid");
    models.generate();
    models
}

fn grpc_addr(server: &TestServer) -> String {
    let addr = server.listening["grpc_addr"]
        .as_str()
        .expect("the listening line has grpc_addr")
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{}", server.listening);
    addr
}

fn refused<'a>(report: &'a Value, call: &str) -> (&'a str, &'a str) {
    let refusal = &report[call]["refused"];
    (
        refusal["status"]
            .as_str()
            .unwrap_or_else(|| panic!("{call} was not refused: {report}")),
        refusal["message"].as_str().unwrap_or(""),
    )
}

fn sigmoid_reference(sigmoid: &Path) -> Value {
    let x: Vec<f32> = (0..60).map(|i| (i as f32 - 30.0) / 7.0).collect();
    reference_outputs(
        sigmoid,
        json!({"x": {"datatype": "FP32", "shape": [3, 4, 5], "data": x}}),
    )["y"]
        .clone()
}

#[test]
fn triton_s_grpc_client_at_its_defaults_gets_onnx_runtime_s_answers_behind_the_perimeter() {
    let models = models();
    let server = TestServer::builder().models(models.path()).start();
    server.wait_ready();
    let addr = grpc_addr(&server);
    let (_, info) = server.get("/info");
    assert_eq!(info["grpc_address"], json!(addr), "{info}");
    let report = triton_grpc(&addr, &server.key, None);

    // Health is public; the rest needs a key, and says how to send one.
    assert_eq!(report["live"], true, "{report}");
    assert_eq!(report["ready"], true, "{report}");
    for call in ["anonymous_metadata", "anonymous_infer"] {
        let (status, message) = refused(&report, call);
        assert_eq!(status, "StatusCode.UNAUTHENTICATED", "{call}: {report}");
        assert!(message.contains("needs an API key"), "{call}: {message}");
    }
    assert_eq!(refused(&report, "wrong_key").0, "StatusCode.UNAUTHENTICATED");

    // Metadata, readiness and the index, as Triton's client reads them.
    assert!(
        report["metadata"]["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("binary_tensor_data")),
        "{report}"
    );
    assert_eq!(report["metadata"]["name"], "gatehouse");
    let input = &report["model_metadata"]["inputs"][0];
    assert_eq!(
        (&input["name"], &input["datatype"]),
        (&json!("x"), &json!("FP32"))
    );
    assert_eq!(report["model_ready"], true);
    assert_eq!(report["missing_model_ready"], false, "{report}");
    let index = report["index"]["models"].as_array().expect("index rows");
    let state = |name: &str| {
        index
            .iter()
            .find(|row| row["name"] == name)
            .map(|row| row["state"].clone())
    };
    assert_eq!(state("sigmoid"), Some(json!("READY")), "{index:?}");
    assert_eq!(state("sequence"), Some(json!("UNAVAILABLE")), "{index:?}");

    // Inference: FP32, strings, and image-sized tensors, each equal to ONNX Runtime's own.
    let y = sigmoid_reference(&models.path().join("sigmoid/1/model.onnx"));
    assert_eq!(report["sigmoid"]["y"], y, "{report}");
    assert_eq!(report["sigmoid"]["id"], "grpc-1");
    assert_eq!(
        report["sigmoid_x_api_key"]["y"], y,
        "X-API-Key metadata works too"
    );
    let upper = reference_outputs(
        &models.path().join("upper/1/model.onnx"),
        json!({"text": {"datatype": "BYTES", "shape": [4], "data": ["hello", "ünïcödé", "", "Gatehouse ✓"]}}),
    );
    assert_eq!(report["upper"]["upper"], upper["upper"], "{report}");
    let pixels: Vec<f32> = (0..2 * 3 * 224 * 224)
        .map(|i| ((i % 251) as f64 / 251.0) as f32)
        .collect();
    let image = reference_outputs(
        &models.path().join("image/1/model.onnx"),
        json!({"image": {"datatype": "FP32", "shape": [2, 3, 224, 224], "data": pixels}}),
    );
    assert_eq!(report["image"]["channel_mean"], image["channel_mean"]);
    assert_eq!(report["image"]["half"]["shape"], json!([2, 3, 224, 224]));
    assert!(
        report["image"]["half"] == image["half"],
        "the half-brightness image differs from ONNX Runtime's"
    );

    // Refusals carry the HTTP routes' messages.
    let (status, message) = refused(&report, "missing_model");
    assert_eq!(status, "StatusCode.NOT_FOUND");
    assert!(message.contains("no-such-model"), "{message}");
    let (status, message) = refused(&report, "wrong_shape");
    assert_eq!(status, "StatusCode.INVALID_ARGUMENT");
    assert!(message.contains("shape") && message.contains('x'), "{message}");

    // Counted like HTTP requests, and audited with the key that made them.
    assert!(
        server.metric(
            "gatehouse_http_requests_total",
            "route=\"/inference.GRPCInferenceService/ModelInfer\",method=\"POST\",status=\"200\""
        ) >= 5
    );
    let mut server = server;
    let home = server.home.path().to_path_buf();
    server.terminate();
    let audit = std::fs::read_to_string(home.join("audit/audit.jsonl")).unwrap();
    let lines: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let infer_route = json!("/inference.GRPCInferenceService/ModelInfer");
    assert!(
        lines
            .iter()
            .any(|l| l["route"] == infer_route && l["outcome"] == "allowed" && l["key_id"].is_string()),
        "{audit}"
    );
    // The model a call was for is in its line, though gRPC carries it in the message.
    assert!(
        lines
            .iter()
            .any(|l| l["route"] == infer_route && l["outcome"] == "allowed" && l["model"] == "sigmoid"),
        "{audit}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["route"] == infer_route && l["reason"] == "missing_key" && l["status"] == 401),
        "{audit}"
    );
    assert!(
        !audit.contains(server.key.as_str()),
        "a key reached the audit log"
    );
}

#[test]
fn grpc_keys_keep_their_scopes_and_models() {
    let models = models();
    let server = TestServer::builder().models(models.path()).start();
    server.wait_ready();
    let addr = grpc_addr(&server);
    let workflows = server.create_key(&["--scope", "workflows", "--name", "wf"])["key"]
        .as_str()
        .unwrap()
        .to_string();
    let upper_only = server.create_key(&["--scope", "infer", "--model", "upper", "--name", "upper"])["key"]
        .as_str()
        .unwrap()
        .to_string();
    crate::util::wait_until("the new keys are accepted", || {
        let response = server
            .client
            .get(server.url("/v2/models/upper"))
            .bearer_auth(&upper_only)
            .send()
            .unwrap();
        response.status() == 200
    });
    let report = triton_grpc(&addr, &workflows, None);
    let (status, message) = refused(&report, "sigmoid");
    assert_eq!(status, "StatusCode.PERMISSION_DENIED", "{report}");
    assert!(message.contains("does not have the `infer` scope"), "{message}");

    // A key for reading metrics only reaches no model over gRPC either.
    let metrics = server.create_key(&["--scope", "metrics", "--name", "metrics"])["key"]
        .as_str()
        .unwrap()
        .to_string();
    // Known once HTTP refuses it for its scope rather than as an unknown key.
    crate::util::wait_until("the metrics key is known", || {
        let response = server
            .client
            .get(server.url("/v2/models/sigmoid"))
            .bearer_auth(&metrics)
            .send()
            .unwrap();
        response.status() == 403
    });
    let report = triton_grpc(&addr, &metrics, None);
    let (status, message) = refused(&report, "sigmoid");
    assert_eq!(status, "StatusCode.PERMISSION_DENIED", "{report}");
    assert!(message.contains("does not have the `infer` scope"), "{message}");

    let report = triton_grpc(&addr, &upper_only, None);
    let (status, message) = refused(&report, "sigmoid");
    assert_eq!(status, "StatusCode.PERMISSION_DENIED", "{report}");
    assert!(message.contains("may run only upper"), "{message}");
    assert!(report["upper"]["upper"].is_object(), "{report}");
    // The index shows such a key only its models.
    let names: Vec<&Value> = report["index"]["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row["name"])
        .collect();
    assert_eq!(names, [&json!("upper")], "{report}");
}

/// With the certificate a company CA issued, imported with `certs import`: the gRPC port uses
/// the same files as the HTTP port, offers `h2`, and speaks nothing but TLS.
#[test]
fn grpc_speaks_tls_with_the_server_s_certificate_and_only_tls() {
    let models = models();
    let builder = TestServer::builder()
        .models(models.path())
        .env("GATEHOUSE_TLS", "true");
    let company = tempfile::tempdir().unwrap();
    let files = crate::util::foreign_certificate(company.path(), &["localhost", "127.0.0.1"], |_| {});
    crate::util::import_foreign(builder.home(), &files);
    let server = builder.start();
    crate::util::wait_until("the models are loaded", || {
        server.log().contains("\"event\":\"ready\"")
    });
    let addr = grpc_addr(&server);
    let report = triton_grpc(&addr, &server.key, Some(&files.2));
    let y = sigmoid_reference(&models.path().join("sigmoid/1/model.onnx"));
    assert_eq!(report["sigmoid"]["y"], y, "{report}");
    assert_eq!(
        refused(&report, "anonymous_infer").0,
        "StatusCode.UNAUTHENTICATED"
    );
    // A client that does not speak TLS gets nowhere.
    let plain = triton_grpc(&addr, &server.key, None);
    assert_eq!(
        plain["live"]["refused"]["status"], "StatusCode.UNAVAILABLE",
        "{plain}"
    );
    assert!(plain["sigmoid"]["refused"].is_object(), "{plain}");
}

/// KServe's own gRPC client, InferenceGRPCClient, as a KServe user calls a model server.
#[test]
fn kserve_s_grpc_client_gets_the_same_answer_and_the_same_refusal() {
    let models = models();
    let server = TestServer::builder().models(models.path()).start();
    server.wait_ready();
    let script = format!(
        "{}/e2e/upstreams/kserve/kserve_grpc.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = std::process::Command::new(crate::util::kserve_python())
        .arg(&script)
        .arg(grpc_addr(&server))
        .arg(&server.key)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let y = sigmoid_reference(&models.path().join("sigmoid/1/model.onnx"));
    assert_eq!(report["y"], y["data"], "{report}");
    assert_eq!(report["id"], "kserve-1");
    assert_eq!(report["anonymous"]["status"], "UNAUTHENTICATED", "{report}");
    assert!(
        report["anonymous"]["message"]
            .as_str()
            .unwrap()
            .contains("needs an API key"),
        "{report}"
    );
}

/// With the local CA's own certificate (`certs init`), no import: Triton's gRPC client (BoringSSL
/// inside) refuses a certificate that lists addresses under a CA whose constraints list address
/// ranges, so a client asking by name gets the names-only certificate issued with it. Renewed,
/// the pair is served again without a restart.
#[test]
fn triton_s_grpc_client_trusts_the_local_ca_when_it_asks_by_name() {
    let models = models();
    let builder = TestServer::builder()
        .models(models.path())
        .env("GATEHOUSE_TLS", "true");
    crate::util::certs(builder.home(), &["init"]);
    let home = builder.home().to_path_buf();
    let ca = home.join("certs/ca.pem");
    let server = builder.start();
    crate::util::wait_until("the models are loaded", || {
        server.log().contains("\"event\":\"ready\"")
    });
    let port = grpc_addr(&server).rsplit(':').next().unwrap().to_string();
    let by_name = format!("localhost:{port}");
    let y = sigmoid_reference(&models.path().join("sigmoid/1/model.onnx"));
    let report = triton_grpc(&by_name, &server.key, Some(&ca));
    assert_eq!(report["sigmoid"]["y"], y, "{report}");
    assert_eq!(
        refused(&report, "anonymous_infer").0,
        "StatusCode.UNAUTHENTICATED"
    );
    // A client asking by address still gets the certificate with the addresses (curl: OpenSSL).
    let http_port = server.addr.rsplit(':').next().unwrap().to_string();
    let curl = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&ca)
        .arg(format!("https://127.0.0.1:{http_port}/v2/health/live"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );

    // Renewed: both certificates again, picked up while running.
    let before = std::fs::read(home.join("certs/server-names.pem")).unwrap();
    crate::util::certs(&home, &["renew", "--force"]);
    assert_ne!(
        std::fs::read(home.join("certs/server-names.pem")).unwrap(),
        before
    );
    crate::util::wait_until("the renewed certificates are loaded", || {
        server.log().contains("\"event\":\"tls_reloaded\"")
    });
    let report = triton_grpc(&by_name, &server.key, Some(&ca));
    assert_eq!(report["sigmoid"]["y"], y, "{report}");
}

/// Mutual TLS on the gRPC port: a client certificate from the CA in `tls.client_ca` gets in, a
/// client without one does not get as far as a key check.
#[test]
fn grpc_with_mutual_tls_wants_the_client_s_certificate() {
    let models = models();
    let builder = TestServer::builder()
        .models(models.path())
        .env("GATEHOUSE_TLS", "true");
    crate::util::certs(builder.home(), &["init"]);
    crate::util::certs(builder.home(), &["issue-client", "laptop"]);
    let company = tempfile::tempdir().unwrap();
    let files = crate::util::foreign_certificate(company.path(), &["localhost", "127.0.0.1"], |_| {});
    crate::util::import_foreign(builder.home(), &files);
    let home = builder.home().to_path_buf();
    let client_ca = home.join("certs/ca.pem");
    let server = builder.env("SSL_CA_CERTS", client_ca.to_str().unwrap()).start();
    assert_eq!(server.listening["mtls"], true);
    crate::util::wait_until("the models are loaded", || {
        server.log().contains("\"event\":\"ready\"")
    });
    let addr = grpc_addr(&server);
    let laptop = (
        home.join("certs/clients/laptop.pem"),
        home.join("certs/clients/laptop-key.pem"),
    );
    let report = triton_grpc_as(&addr, &server.key, Some(&files.2), Some((&laptop.0, &laptop.1)));
    let y = sigmoid_reference(&models.path().join("sigmoid/1/model.onnx"));
    assert_eq!(report["sigmoid"]["y"], y, "{report}");
    let stranger = triton_grpc(&addr, &server.key, Some(&files.2));
    assert_eq!(
        stranger["sigmoid"]["refused"]["status"], "StatusCode.UNAVAILABLE",
        "{stranger}"
    );
    assert!(stranger["live"]["refused"].is_object(), "{stranger}");
}

#[test]
fn a_grpc_port_in_use_is_named_and_grpc_can_be_off() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let (output, _home) = TestServer::builder().arg("--grpc-port").arg(&port).run_to_exit();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("the gRPC port {port} on 127.0.0.1 is already in use"))
            && stderr.contains("grpc.enabled false"),
        "{stderr}"
    );
    let server = TestServer::builder().env("GATEHOUSE_GRPC", "false").start();
    assert_eq!(server.listening["grpc_addr"], "", "{}", server.listening);
    let (_, info) = server.get("/info");
    assert!(info["grpc_address"].is_null(), "{info}");
}

/// The checklist calls the gRPC port as a client without a key would, and sees it open the
/// moment authentication is off, and refusing plain text when TLS is on.
#[test]
fn the_checklist_sees_the_grpc_port_refuse_or_answer_a_caller_without_a_key() {
    let open = TestServer::builder().env("GATEHOUSE_AUTH", "false").start();
    let item = crate::util::check_item(&open, &open.url(""), "grpc.perimeter");
    assert_eq!(item["status"], "fail", "{item:#}");
    assert!(
        item["summary"]
            .as_str()
            .unwrap()
            .contains("answers calls without a key"),
        "{item:#}"
    );
    assert!(item["evidence"].to_string().contains("grpc-status 0"), "{item:#}");

    let builder = TestServer::builder().env("GATEHOUSE_TLS", "true");
    let company = tempfile::tempdir().unwrap();
    let files = crate::util::foreign_certificate(company.path(), &["localhost", "127.0.0.1"], |_| {});
    crate::util::import_foreign(builder.home(), &files);
    let tls = builder.start();
    let url = format!("https://{}", tls.addr.replace("127.0.0.1", "localhost"));
    let item = crate::util::check_item(&tls, &url, "grpc.perimeter");
    assert_eq!(item["status"], "pass", "{item:#}");
    assert!(
        item["summary"].as_str().unwrap().contains("speaks only TLS"),
        "{item:#}"
    );
    assert!(item["evidence"].to_string().contains("in plain text"), "{item:#}");
}

/// Triton's perf_analyzer, as scripts/setup.sh installs it.
fn perf_analyzer(args: &[&str]) -> std::process::Output {
    let tools = std::env::var_os("GATEHOUSE_PERF_ANALYZER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::util::data_dir().join("perf-analyzer"));
    std::process::Command::new(tools.join("perf_analyzer"))
        .args(args)
        .env("LD_LIBRARY_PATH", &tools)
        .output()
        .expect("perf_analyzer runs (scripts/setup.sh installs it)")
}

/// The load tool Triton's users run, at its defaults (random data, synchronous calls), over HTTP
/// and over gRPC with a key header: it reads the model's configuration, loads it and reports; a
/// run without the key is refused with the perimeter's message.
#[test]
fn perf_analyzer_runs_against_gatehouse_over_http_and_grpc_with_a_key() {
    let models = ModelDir::new();
    models.copy_installed("sigmoid");
    let server = TestServer::builder()
        .models(models.path())
        // Its load is the point here, not the per-key limit.
        .env("GATEHOUSE_KEY_RPS", "1000000")
        .env("GATEHOUSE_ADDRESS_RPS", "1000000")
        .start();
    server.wait_ready();
    let grpc = grpc_addr(&server);
    let header = format!("authorization: Bearer {}", server.key);
    for (protocol, url) in [("grpc", grpc.as_str()), ("http", server.addr.as_str())] {
        let base = [
            "-m",
            "sigmoid",
            "-u",
            url,
            "-i",
            protocol,
            "--concurrency-range",
            "2",
            "--measurement-interval",
            "500",
            "--stability-percentage",
            "100",
            "--max-trials",
            "3",
        ];
        let output = perf_analyzer(&[&base[..], &["-H", &header]].concat());
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("Throughput:") && !stdout.contains("error"),
            "{protocol}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let refused = perf_analyzer(&base);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&refused.stdout),
            String::from_utf8_lossy(&refused.stderr)
        );
        assert!(!refused.status.success(), "{protocol} without a key: {text}");
        assert!(
            text.contains("needs an API key"),
            "{protocol} without a key: {text}"
        );
    }
}

/// HTTP/2 has no header timeout of its own: a client that opens the gRPC port, even with the
/// HTTP/2 preface, and never starts a call is closed after `limits.header_read_timeout_seconds`,
/// as a slow HTTP client is, and counted; the port keeps serving.
#[test]
fn a_connection_that_never_starts_a_call_is_closed_after_the_header_timeout() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let server = TestServer::builder()
        .env("GATEHOUSE_HEADER_READ_TIMEOUT", "1")
        .start();
    let addr = grpc_addr(&server);
    for preface in [&b""[..], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"] {
        let mut silent = std::net::TcpStream::connect(&addr).unwrap();
        silent.write_all(preface).unwrap();
        silent.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let opened = Instant::now();
        let mut rest = Vec::new();
        // The server's own SETTINGS frame comes first; then nothing until it closes.
        let _ = silent.read_to_end(&mut rest);
        let waited = opened.elapsed();
        assert!(
            waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
            "a silent gRPC connection was closed after {waited:?}"
        );
    }
    assert!(
        server.metric("gatehouse_rate_limited_total", "limit=\"header_timeout\"") >= 2,
        "the closes were not counted"
    );
    let report = triton_grpc(&addr, &server.key, None);
    assert_eq!(report["live"], true, "{report}");
}
