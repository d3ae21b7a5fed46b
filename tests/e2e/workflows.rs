//! Workflows over the real server: a DAG gives the numbers its steps give by hand, every
//! validation error names its step, python steps are refused while the switch is off and run
//! sandboxed when it is on, and hostile python fails safely and leaves the server healthy.

use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{TestServer, check_item, split, wait_until};

/// A key with the `workflows` scope for `server` (and `infer`, which model steps need), once the
/// running server has picked it up.
fn workflows_key(server: &TestServer) -> String {
    let key = server.create_key(&["--scope", "workflows", "--scope", "infer", "--name", "workflows"])["key"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("the new key being picked up", || {
        post(server, &key, "/v1/workflows/validate", &json!({})).0 != 401
    });
    key
}

fn post(server: &TestServer, key: &str, path: &str, body: &Value) -> (u16, Value) {
    split(
        server
            .client
            .post(server.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .unwrap(),
    )
}

/// Magika's input for some text: the first and last 1024 bytes, padded with 256.
fn magika_features(content: &[u8]) -> Vec<i32> {
    let head: Vec<i32> = content.iter().take(1024).map(|b| i32::from(*b)).collect();
    let tail: Vec<i32> = content[content.len().saturating_sub(1024)..]
        .iter()
        .map(|b| i32::from(*b))
        .collect();
    let mut features = head.clone();
    features.resize(1024, 256);
    features.extend(std::iter::repeat_n(256, 1024 - tail.len()));
    features.extend(tail);
    features
}

fn file_input() -> Value {
    let source = include_bytes!("workflows.rs");
    json!({"shape": [1, 2048], "datatype": "INT32", "data": magika_features(source)})
}

fn classify_workflow() -> Value {
    json!({
        "workflow": {
            "steps": [
                {"name": "classify", "kind": "model", "model": "magika", "inputs": {"bytes": "$inputs.file"}},
                {"name": "scores", "kind": "softmax", "inputs": {"x": "$steps.classify.target_label"}},
                {"name": "best", "kind": "top_k", "k": 3, "inputs": {"x": "$steps.scores.y"}},
                {"name": "names", "kind": "labels", "model": "magika", "inputs": {"indices": "$steps.best.indices"}}
            ],
            "outputs": {"labels": "$steps.names.labels", "best": "$steps.best"}
        },
        "inputs": {"file": file_input()}
    })
}

#[test]
fn a_content_type_workflow_gives_what_its_steps_give_by_hand() {
    let server = TestServer::start_default();
    let key = workflows_key(&server);
    let (status, body) = post(&server, &key, "/v1/workflows/run", &classify_workflow());
    assert_eq!(status, 200, "{body}");

    // By hand: the model through OIP, then softmax and top 3 here.
    let (status, inferred) = server.post_json(
        "/v2/models/magika/infer",
        &json!({"inputs": [{"name": "bytes", "shape": [1, 2048], "datatype": "INT32", "data": file_input()["data"]}]}),
    );
    assert_eq!(status, 200);
    let scores: Vec<f64> = inferred["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
    let probabilities: Vec<f64> = scores.iter().map(|s| (s - max).exp() / sum).collect();
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|a, b| probabilities[*b].total_cmp(&probabilities[*a]));
    let top: Vec<usize> = order[..3].to_vec();

    let got: Vec<usize> = body["outputs"]["best"]["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(got, top);
    let values = body["outputs"]["best"]["values"].as_array().unwrap();
    assert_eq!(values.len(), top.len(), "{body}");
    for (value, index) in values.iter().zip(&top) {
        assert!((value.as_f64().unwrap() - probabilities[*index]).abs() < 1e-9);
    }
    let labels = body["outputs"]["labels"].as_array().unwrap();
    assert_eq!(labels[0], "rust", "this file is Rust: {body}");
    for step in ["classify", "scores", "best", "names"] {
        assert!(
            body["timings_ms"][step].as_f64().is_some(),
            "timing for {step}: {body}"
        );
    }

    // validate answers the order without running anything.
    let mut shuffled = classify_workflow();
    shuffled["workflow"]["steps"].as_array_mut().unwrap().reverse();
    let (status, checked) = post(&server, &key, "/v1/workflows/validate", &shuffled);
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["order"], json!(["classify", "scores", "best", "names"]));

    // The infer-only harness key cannot run workflows.
    let (status, refused) = server.post_json("/v1/workflows/run", &classify_workflow());
    assert_eq!(
        (status, refused["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
}

#[test]
fn each_validation_error_is_a_400_naming_the_step() {
    let server = TestServer::start_default();
    let key = workflows_key(&server);
    let cases: Vec<(Value, &str, &[&str])> = vec![
        (
            json!([{"name": "a", "kind": "sort", "inputs": {"x": "$inputs.file"}}]),
            "a",
            &["unknown step kind `sort`"],
        ),
        (
            json!([{"name": "a", "kind": "softmax", "inputs": {"x": "$steps.ghost.y"}}]),
            "a",
            &["`ghost`", "does not exist"],
        ),
        (
            json!([
                {"name": "a", "kind": "softmax", "inputs": {"x": "$steps.b.y"}},
                {"name": "b", "kind": "softmax", "inputs": {"x": "$steps.a.y"}}
            ]),
            "a",
            &["cycle", "`b`"],
        ),
        (
            json!([
                {"name": "s", "kind": "softmax", "inputs": {"x": "$inputs.file"}},
                {"name": "n", "kind": "labels", "model": "magika", "inputs": {"indices": "$steps.s.y"}}
            ]),
            "n",
            &["type mismatch", "needs a list of integers but gets a tensor"],
        ),
        (
            json!([{"name": "m", "kind": "model", "model": "magika", "inputs": {"pixels": "$inputs.file"}}]),
            "m",
            &["needs an input `bytes`"],
        ),
        (
            json!([
                {"name": "m", "kind": "model", "model": "magika", "inputs": {"bytes": "$inputs.file"}},
                {"name": "s", "kind": "softmax", "inputs": {"x": "$steps.m.scores"}}
            ]),
            "s",
            &["no output `scores`", "`target_label`"],
        ),
        (
            json!([{"name": "m", "kind": "model", "model": "nonexistent", "inputs": {"x": "$inputs.file"}}]),
            "m",
            &["nonexistent"],
        ),
        (
            json!([{"name": "n", "kind": "labels", "model": "ghost", "inputs": {"indices": "$inputs.file"}}]),
            "n",
            &["there is no model `ghost`"],
        ),
        (
            json!([{"name": "t", "kind": "top_k", "k": 0, "inputs": {"x": "$inputs.file"}}]),
            "t",
            &["`k`"],
        ),
        (
            json!([{"name": "s", "kind": "softmax", "inputs": {"x": "$inputs.missing"}}]),
            "s",
            &["$inputs.missing"],
        ),
    ];
    for (steps, step, fragments) in cases {
        let body = json!({"workflow": {"steps": steps, "outputs": {}}, "inputs": {"file": file_input()}});
        for path in ["/v1/workflows/validate", "/v1/workflows/run"] {
            let (status, error) = post(&server, &key, path, &body);
            assert_eq!(status, 400, "{path} {steps}: {error}");
            assert_eq!(error["code"], "invalid_workflow");
            let message = error["error"].as_str().unwrap();
            assert!(
                message.contains(&format!("`{step}`")),
                "names step {step}: {message}"
            );
            for fragment in fragments {
                assert!(message.contains(fragment), "`{fragment}` in {message}");
            }
        }
    }
    let (status, error) = post(&server, &key, "/v1/workflows/run", &json!({"steps": []}));
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid_workflow")));
}

fn python_workflow(code: &str, inputs: Value) -> Value {
    json!({
        "workflow": {
            "steps": [{"name": "custom", "kind": "python", "code": code, "inputs": {"x": "$inputs.x"}}],
            "outputs": {"result": "$steps.custom"}
        },
        "inputs": {"x": inputs}
    })
}

fn model_runs(server: &TestServer) -> f64 {
    let (_, text) = server.get("/metrics");
    let text = text.as_str().unwrap_or_default().to_string();
    text.lines()
        .filter(|l| l.starts_with("gatehouse_inference_duration_seconds_count") && l.contains("magika"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn python_steps_are_refused_before_any_step_while_the_switch_is_off() {
    let server = TestServer::start_default();
    let key = workflows_key(&server);
    let (_, info) = server.get_anonymous("/info");
    assert_eq!(info["custom_python"], false);
    let mut workflow = classify_workflow();
    workflow["workflow"]["steps"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "count", "kind": "python", "code": "def run(i):\n    return {'n': len(i['x'])}", "inputs": {"x": "$steps.best.indices"}}));
    let before = model_runs(&server);
    let (status, error) = post(&server, &key, "/v1/workflows/run", &workflow);
    assert_eq!(status, 403, "{error}");
    assert_eq!(error["code"], "custom_python_disabled");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("workflows.allow_custom_python")
    );
    assert_eq!(
        model_runs(&server),
        before,
        "the model step before the python step did not run"
    );
    assert!(
        !server.log().contains("sandbox_ready"),
        "no python process was ever started"
    );
}

fn python_server(extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("ALLOW_CUSTOM_PYTHON_EXECUTION_IN_WORKFLOWS", "true")];
    env.extend_from_slice(extra);
    TestServer::with_env(&env)
}

#[test]
fn the_issue_example_runs_with_python_allowed_and_errors_show_only_user_frames() {
    let server = python_server(&[]);
    let key = workflows_key(&server);
    let (_, info) = server.get_anonymous("/info");
    assert_eq!(info["custom_python"], true);
    let workflow = json!({"workflow": {"steps": [
            {"name": "s1", "kind": "model", "model": "magika", "inputs": {"bytes": "$inputs.file"}},
            {"name": "s2", "kind": "top_k", "k": 3, "inputs": {"x": "$steps.s1.target_label"}},
            {"name": "s3", "kind": "python", "code": "def run(inputs):\n    return {'n': len(inputs['x'])}", "inputs": {"x": "$steps.s2.indices"}}],
        "outputs": {"top": "$steps.s2", "n": "$steps.s3.n"}},
        "inputs": {"file": file_input()}});
    let (status, body) = post(&server, &key, "/v1/workflows/run", &workflow);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"]["n"], 3);
    assert_eq!(body["outputs"]["top"]["indices"].as_array().unwrap().len(), 3);

    let (status, error) = post(
        &server,
        &key,
        "/v1/workflows/run",
        &python_workflow(
            "def helper(v):\n    return v / 0\n\ndef run(inputs):\n    return {'y': helper(inputs['x'])}",
            json!(1),
        ),
    );
    assert_eq!(
        (status, error["code"].as_str()),
        (422, Some("python_error")),
        "{error}"
    );
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains("File \"<workflow>\", line 2, in helper"),
        "{message}"
    );
    assert!(message.contains("ZeroDivisionError"), "{message}");
    assert!(
        !message.contains("json.loads") && !message.contains("main()"),
        "only user frames: {message}"
    );
}

/// Runs `code` as a python step and returns (status, body).
fn run_python(server: &TestServer, key: &str, code: &str, inputs: Value) -> (u16, Value) {
    post(server, key, "/v1/workflows/run", &python_workflow(code, inputs))
}

#[test]
fn hostile_python_fails_safely_and_the_server_stays_healthy() {
    let server = python_server(&[
        ("GATEHOUSE_PYTHON_TIMEOUT", "3"),
        ("GATEHOUSE_PYTHON_CPU_SECONDS", "1"),
        ("GATEHOUSE_PYTHON_MEMORY_MB", "256"),
        ("GATEHOUSE_PYTHON_OUTPUT_BYTES", "100000"),
        ("GATEHOUSE_SANDBOX_TEST_MARKER", "visible-only-to-the-server"),
    ]);
    let key = workflows_key(&server);
    let keys_file = server.home.path().join("keys.toml");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let escape = std::env::temp_dir().join(format!("gatehouse-escape-{}", std::process::id()));

    let cases: Vec<(&str, String, Value, &str, &[&str])> = vec![
        ("infinite loop", "def run(i):\n    while True:\n        pass".into(), json!(0), "python_limit", &["CPU"]),
        ("sleeping forever", "import time\ndef run(i):\n    time.sleep(60)".into(), json!(0), "python_timeout", &["3 s"]),
        ("memory bomb", "def run(i):\n    x = bytearray(1 << 33)\n    return {}".into(), json!(0), "python_limit", &["256 MiB"]),
        ("fork bomb", "import os\ndef run(i):\n    while True:\n        os.fork()".into(), json!(0), "python_forbidden", &["another process"]),
        ("a child left behind", "import subprocess\ndef run(i):\n    subprocess.Popen(['sleep', '300'])\n    return {}".into(), json!(0), "python_forbidden", &[]),
        ("huge output", "def run(i):\n    return {'x': 'a' * 5000000}".into(), json!(0), "python_limit", &["100000 bytes"]),
        (
            "writing outside the temporary directory",
            "def run(i):\n    open(i['x'], 'w').write('escaped')\n    return {}".into(),
            json!(escape.to_str().unwrap()),
            "python_error",
            &["OSError"],
        ),
        (
            "reading the keys file",
            "def run(i):\n    return {'k': open(i['x']).read()}".into(),
            json!(keys_file.to_str().unwrap()),
            "python_error",
            &["FileNotFoundError"],
        ),
        (
            "connecting to a loopback listener",
            "import socket\ndef run(i):\n    socket.create_connection(('127.0.0.1', i['x']), timeout=2)\n    return {}".into(),
            json!(port),
            "python_error",
            &["PermissionError"],
        ),
        (
            "reading the server's environment",
            "import os\ndef run(i):\n    return {'e': open('/proc/%d/environ' % os.getppid(), 'rb').read().decode('latin-1')}".into(),
            json!(0),
            "python_error",
            &["FileNotFoundError"],
        ),
    ];
    for (what, code, inputs, expected, fragments) in cases {
        let (status, body) = run_python(&server, &key, &code, inputs);
        assert_eq!(status, 422, "{what}: {body}");
        assert_eq!(body["code"], expected, "{what}: {body}");
        let message = body["error"].as_str().unwrap();
        for fragment in fragments {
            assert!(message.contains(fragment), "{what}: `{fragment}` in {message}");
        }
        let (status, _) = server.get_anonymous("/healthz");
        assert_eq!(status, 200, "the server is healthy after {what}");
    }
    assert!(!escape.exists(), "nothing was written outside the sandbox");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no connection reached the listener"
    );
    // The step's process group is killed as the step ends; on a loaded machine the last of it
    // may take a moment to be reaped, so this waits for that, never for a process that stays.
    crate::util::wait_until_within("no process left behind", Duration::from_secs(3), || {
        std::process::Command::new("pgrep")
            .args(["-f", "sleep 300"])
            .output()
            .unwrap()
            .stdout
            .is_empty()
    });

    // Its environment is empty, and its own directory is writable.
    let (status, body) = run_python(
        &server,
        &key,
        "import os\ndef run(i):\n    open('scratch.txt', 'w').write('ok')\n    return {'env': dict(os.environ), 'read': open('scratch.txt').read()}",
        json!(0),
    );
    assert_eq!(status, 200, "{body}");
    // Only what python sets for itself (PEP 538's LC_CTYPE); nothing of the server's.
    let env = body["outputs"]["result"]["env"].as_object().unwrap();
    assert!(env.keys().all(|k| k == "LC_CTYPE"), "{env:?}");
    assert!(!body.to_string().contains("visible-only-to-the-server"));
    assert_eq!(body["outputs"]["result"]["read"], "ok");
}

#[test]
fn without_namespaces_landlock_and_seccomp_still_contain_python() {
    // Containers often refuse namespaces; the kernel's Landlock and seccomp must hold on their own.
    let server = python_server(&[
        ("GATEHOUSE_SANDBOX_NAMESPACES", "off"),
        ("GATEHOUSE_ALLOW_WEAKER_SANDBOX", "True"),
    ]);
    let key = workflows_key(&server);
    let (_, info) = server.get_anonymous("/info");
    let sandbox = &info["python_sandbox"];
    assert!(
        sandbox["layers"].as_array().unwrap().contains(&json!("landlock")),
        "this kernel offers Landlock and the sandbox uses it: {sandbox}"
    );
    assert!(
        sandbox["layers"].as_array().unwrap().contains(&json!("seccomp")),
        "{sandbox}"
    );
    assert_eq!(sandbox["missing"], json!(["namespaces"]));
    assert_eq!(sandbox["weaker_accepted"], true);
    // Accepting a weaker sandbox is a weakness the checklist names and offers to undo.
    let judged = check_item(&server, &server.url(""), "workflows.sandbox");
    assert_eq!(judged["status"], "fail", "{judged}");
    assert!(
        judged["summary"].as_str().unwrap().contains("namespaces"),
        "{judged}"
    );
    assert_eq!(judged["fix"]["key"], "workflows.allow_weaker_sandbox", "{judged}");

    let keys_file = server.home.path().join("keys.toml");
    let (status, body) = run_python(
        &server,
        &key,
        "def run(i):\n    return {'k': open(i['x']).read()}",
        json!(keys_file.to_str().unwrap()),
    );
    assert_refused_with_permission_error(status, &body);

    let escape = std::env::temp_dir().join(format!("gatehouse-landlock-{}", std::process::id()));
    let (status, body) = run_python(
        &server,
        &key,
        "def run(i):\n    open(i['x'], 'w').write('escaped')\n    return {}",
        json!(escape.to_str().unwrap()),
    );
    assert_refused_with_permission_error(status, &body);
    assert!(!escape.exists());

    let (status, body) = run_python(
        &server,
        &key,
        "def run(i):\n    open('scratch.txt', 'w').write('ok')\n    return {'read': open('scratch.txt').read()}",
        json!(0),
    );
    assert_eq!(status, 200, "its own directory stays writable: {body}");
    assert_eq!(body["outputs"]["result"]["read"], "ok");
}

#[track_caller]
fn assert_refused_with_permission_error(status: u16, body: &Value) {
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("python_error")),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("PermissionError"),
        "{body}"
    );
}

/// What a hostile python step tries once custom Python is on: each escape must be refused.
const ESCAPES: &str = r#"
import os, socket, stat
def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as error:
        return "refused: " + type(error).__name__
def io_uring():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 8, params)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "io_uring_setup")
def run(inputs):
    return {
        "io_uring": attempt(io_uring),
        "signal_outside": attempt(lambda: os.kill(inputs["pid"], 9)),
        "signal_everyone": attempt(lambda: os.kill(-1, 0)),
        "mknod": attempt(lambda: os.mknod("device", stat.S_IFCHR | 0o600, os.makedev(1, 3))),
        "udp": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 9))),
        "unix": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect("/run/dbus/system_bus_socket")),
        "tcp": attempt(lambda: socket.create_connection(("127.0.0.1", 9), 1)),
    }
"#;

#[test]
fn a_hostile_python_step_finds_every_escape_refused() {
    let server = python_server(&[]);
    let key = workflows_key(&server);
    let mut outside = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let workflow = json!({"workflow": {"steps": [
            {"name": "escape", "kind": "python", "code": ESCAPES, "inputs": {"pid": "$inputs.pid"}}],
        "outputs": {"tried": "$steps.escape"}},
        "inputs": {"pid": outside.id()}});
    let (status, body) = post(&server, &key, "/v1/workflows/run", &workflow);
    assert_eq!(status, 200, "{body}");
    let tried = body["outputs"]["tried"].as_object().unwrap();
    assert_eq!(tried.len(), 7, "{body}");
    for (escape, outcome) in tried {
        assert!(
            outcome.as_str().unwrap().starts_with("refused"),
            "{escape}: {outcome}"
        );
    }
    assert!(
        outside.try_wait().unwrap().is_none(),
        "the process outside the sandbox was killed"
    );
    let _ = outside.kill();
    let _ = outside.wait();
    // The step is the first process of its own PID namespace: no process outside has a number
    // it could name.
    let (status, body) = run_python(
        &server,
        &key,
        "import os\ndef run(i):\n    return {'pid': os.getpid(), 'parent': os.getppid()}",
        json!(0),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["outputs"]["result"],
        json!({"pid": 1, "parent": 0}),
        "{body}"
    );
}

#[test]
fn a_sandbox_missing_a_layer_refuses_python_steps_until_a_weaker_one_is_accepted() {
    let server = python_server(&[("GATEHOUSE_SANDBOX_NAMESPACES", "off")]);
    let key = workflows_key(&server);
    let (status, body) = run_python(&server, &key, "def run(i):\n    return {}", json!(0));
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("sandbox_incomplete")),
        "{body}"
    );
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("namespaces") && message.contains("workflows.allow_weaker_sandbox"),
        "{message}"
    );
    let judged = check_item(&server, &server.url(""), "workflows.sandbox");
    assert_eq!(judged["status"], "warn", "{judged}");
    assert!(
        judged["summary"].as_str().unwrap().contains("refused"),
        "{judged}"
    );
}
