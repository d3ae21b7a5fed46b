//! The harness: a [`TestServer`] that runs the real `gatehouse` binary on a free port with a private
//! config directory, collects its log lines and kills it on drop; and helpers to reach the Python
//! environment setup installed (ONNX Runtime's reference results, generated test models).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `gatehouse` binary next to this test binary (`target/<profile>/gatehouse`).
pub fn gatehouse_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("GATEHOUSE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let bin = profile_dir.join("gatehouse");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build --workspace --bins`, as scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Where setup installed the runtime, the models and the Python environment.
pub fn data_dir() -> PathBuf {
    std::env::var_os("GATEHOUSE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").map(PathBuf::from).expect("HOME is set");
            home.join(".local/share/gatehouse")
        })
}

pub fn default_models() -> PathBuf {
    let models = data_dir().join("models");
    assert!(
        models.join("magika/1/model.onnx").exists(),
        "the default models are not installed in {}; run ./scripts/test.sh, which installs them",
        models.display()
    );
    models
}

pub fn python() -> PathBuf {
    venv_python("GATEHOUSE_VENV", "venv")
}

/// The Python of the environment the guard's upstream servers run in (MLServer, uvicorn with
/// WebSockets), which `scripts/test.sh` installs from `scripts/upstreams.txt`.
pub fn upstreams_python() -> PathBuf {
    venv_python("GATEHOUSE_UPSTREAMS_VENV", "upstreams-venv")
}

/// The Python of KServe's environment (KServe and Triton's HTTP client).
pub fn kserve_python() -> PathBuf {
    venv_python("GATEHOUSE_KSERVE_VENV", "kserve-venv")
}

/// The Python with kubernetes-validate, for the Kubernetes export's manifests.
pub fn kubernetes_python() -> PathBuf {
    venv_python("GATEHOUSE_KUBERNETES_VENV", "kubernetes-venv")
}

/// The Python with the reliability suite's tools (schemathesis, sslyze).
pub fn reliability_python() -> PathBuf {
    venv_python("GATEHOUSE_RELIABILITY_VENV", "reliability-venv")
}

/// PATH with Roboflow Inference's environment first, so its `inference` command is found the way
/// a person who installed it with pip has it.
pub fn path_with_roboflow() -> String {
    path_with(
        &venv_python("GATEHOUSE_ROBOFLOW_VENV", "roboflow-venv"),
        "inference",
    )
}

/// PATH with the Prefect environment first (its `prefect` command).
pub fn path_with_prefect() -> String {
    path_with(&venv_python("GATEHOUSE_PREFECT_VENV", "prefect-venv"), "prefect")
}

/// The Python of the Prefect environment, for Prefect's own client.
pub fn prefect_python() -> PathBuf {
    venv_python("GATEHOUSE_PREFECT_VENV", "prefect-venv")
}

fn path_with(python: &Path, program: &str) -> String {
    let bin = python.parent().expect("bin/python has a folder");
    assert!(
        bin.join(program).exists(),
        "`{program}` is missing from {}; run ./scripts/test.sh, which installs it",
        bin.display()
    );
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// `bin/python` of the environment `variable` names, else `directory` under the data directory.
fn venv_python(variable: &str, directory: &str) -> PathBuf {
    let venv = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| data_dir().join(directory));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing; run ./scripts/test.sh, which creates it",
        python.display()
    );
    python
}

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e")
}

/// ONNX Runtime's own outputs (via the onnxruntime Python package) for `inputs` on `model`.
pub fn reference_outputs(model: &Path, inputs: Value) -> Value {
    let request = serde_json::json!({"model": model, "inputs": inputs});
    let mut child = Command::new(python())
        .arg(e2e_dir().join("reference.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write request");
    let output = child.wait_with_output().expect("python finishes");
    assert!(
        output.status.success(),
        "reference.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("reference.py prints JSON")
}

/// A model repository made for one test: copies of installed models plus generated ones.
pub struct ModelDir {
    pub dir: tempfile::TempDir,
}

impl ModelDir {
    pub fn new() -> ModelDir {
        ModelDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies an installed model (all its files) into this repository.
    pub fn copy_installed(&self, name: &str) -> &Self {
        copy_dir(&default_models().join(name), &self.path().join(name));
        self
    }

    /// Generates the identity and sequence models with `make_models.py`.
    pub fn generate(&self) -> &Self {
        let status = Command::new(python())
            .arg(e2e_dir().join("make_models.py"))
            .arg(self.path())
            .status()
            .expect("python runs");
        assert!(status.success(), "make_models.py failed");
        self
    }

    pub fn write(&self, relative: &str, contents: &[u8]) -> &Self {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write");
        self
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read model dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Starts a server the way a user would, with options.
pub struct ServerBuilder {
    /// `serve`, or `guard` for a guard in front of another server.
    subcommand: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    home: tempfile::TempDir,
    models: Option<PathBuf>,
}

impl ServerBuilder {
    /// Runs `gatehouse guard` instead of `serve`; the test adds `--upstream`/`--preset`/`--`.
    pub fn guard(mut self) -> Self {
        self.subcommand = "guard";
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn models(mut self, dir: &Path) -> Self {
        self.models = Some(dir.to_path_buf());
        self
    }

    /// The server's private config directory (`GATEHOUSE_HOME`).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Writes `settings.toml` in the server's private config directory.
    pub fn settings(self, toml: &str) -> Self {
        std::fs::write(self.home.path().join("settings.toml"), toml).expect("write settings");
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(gatehouse_bin());
        command.arg(self.subcommand);
        // Options first: a guard's arguments may end with `-- COMMAND`.
        if !self.args.iter().any(|a| a == "--port") {
            command.args(["--port", "0"]);
        }
        if let Some(models) = &self.models {
            command.arg("--models").arg(models);
        }
        command.args(&self.args);
        // The server must see only what the test gives it, not the developer's or CI's settings.
        for name in [
            "HOST",
            "PORT",
            "GATEHOUSE_HOST",
            "GATEHOUSE_PORT",
            "GATEHOUSE_MODELS",
            "GATEHOUSE_LOG",
            "ORT_DYLIB_PATH",
            "RUST_LOG",
        ] {
            command.env_remove(name);
        }
        command
            .env("GATEHOUSE_HOME", self.home.path())
            .env("GATEHOUSE_DATA", data_dir())
            // Tests run side by side: each server's gRPC port is a free one unless a test says.
            .env("GATEHOUSE_GRPC_PORT", "0");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    /// Runs a server that is expected to refuse to start; returns its output and its config
    /// directory, so the test can look at what it left behind.
    pub fn run_to_exit(self) -> (Output, tempfile::TempDir) {
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gatehouse starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("gatehouse kept running although it should have refused to start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (child.wait_with_output().expect("output"), self.home)
    }

    /// Starts the server and waits for its `listening` line. Before it starts, an `infer` key is
    /// created in its config directory (hash-only, as on a headless machine) for the helpers to use.
    pub fn start(self) -> TestServer {
        let key = create_key(self.home.path(), &["--scope", "infer", "--name", "harness"])["key"]
            .as_str()
            .expect("created key has its text")
            .to_string();
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gatehouse starts");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let (sender, receiver) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("\"event\":\"listening\"") {
                    let _ = sender.send(line.clone());
                }
                sink.lock().expect("lines").push(line);
            }
        });
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        let line = match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "gatehouse did not report listening within 30 s; output:\n{}",
                    lines.lock().expect("lines").join("\n")
                );
            }
        };
        let event: Value = serde_json::from_str(&line).expect("the listening line is JSON");
        let addr = event["addr"]
            .as_str()
            .expect("listening line has addr")
            .to_string();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        TestServer {
            child,
            addr,
            home: self.home,
            lines,
            client,
            listening: event,
            key,
        }
    }
}

/// A running `gatehouse serve`, killed on drop.
pub struct TestServer {
    child: Child,
    pub addr: String,
    pub listening: Value,
    /// An `infer` key the helpers send as `Authorization: Bearer`.
    pub key: String,
    pub home: tempfile::TempDir,
    lines: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::blocking::Client,
}

impl TestServer {
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            subcommand: "serve",
            args: Vec::new(),
            env: Vec::new(),
            home: tempfile::tempdir().expect("temp dir"),
            models: None,
        }
    }

    /// A server on the installed default models with extra environment, ready to answer.
    pub fn with_env(env: &[(&str, &str)]) -> TestServer {
        let builder = env
            .iter()
            .fold(Self::builder().models(&default_models()), |b, (name, value)| {
                b.env(name, value)
            });
        let server = builder.start();
        server.wait_ready();
        server
    }

    /// A server on the installed default models, ready to answer.
    pub fn start_default() -> TestServer {
        Self::with_env(&[])
    }

    /// The URL of `path`, as a client would write it: a server listening on every interface
    /// (`0.0.0.0`) is reached at 127.0.0.1, the name it answers to.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr.replace("0.0.0.0:", "127.0.0.1:"))
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = self.client.get(self.url("/readiness")).send()
                && response.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not become ready; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// GET with the harness key.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.key)
            .send()
            .expect("GET succeeds");
        split(response)
    }

    /// GET with no key at all.
    pub fn get_anonymous(&self, path: &str) -> (u16, Value) {
        split(self.client.get(self.url(path)).send().expect("GET succeeds"))
    }

    /// Runs `gatehouse keys …` against this server's config directory.
    pub fn keys(&self, args: &[&str]) -> Output {
        keys_command(self.home.path(), args)
    }

    /// Creates a key with `keys create --no-keychain --json` and returns its JSON.
    pub fn create_key(&self, args: &[&str]) -> Value {
        create_key(self.home.path(), args)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, "application/json", body.to_string().into_bytes())
    }

    pub fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .expect("POST succeeds");
        split(response)
    }

    pub fn log(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// Log lines parsed as JSON (non-JSON lines are left out).
    pub fn log_events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub fn terminate(&mut self) -> (Option<i32>, String) {
        // A server that already stopped by itself is not there to signal.
        if let Some(status) = self.child.try_wait().expect("wait") {
            return (status.code(), self.log());
        }
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(50));
                return (status.code(), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl TestServer {
    /// Waits for the server to exit on its own; its exit code and log.
    pub fn wait_exit(&mut self, within: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(50));
                return (status.code(), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A memory figure of the server process from `/proc/<pid>/status` (`VmRSS`, `VmHWM`…), in bytes.
    pub fn memory(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("the server runs");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"))
            * 1024
    }

    /// The value of one series of `/metrics` (`name{labels}`), 0 when it is not there yet.
    pub fn metric(&self, name: &str, labels: &str) -> u64 {
        let (_, metrics) = self.get_anonymous("/metrics");
        let prefix = format!("{name}{{{labels}}} ");
        metrics
            .as_str()
            .unwrap_or("")
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    }

    /// Stops the server (SIGTERM, so the audit log is flushed) and gives back a builder on the
    /// same config directory, to start it again as a person restarting it would.
    pub fn stop_for_restart(mut self) -> ServerBuilder {
        self.terminate();
        let home = std::mem::replace(&mut self.home, tempfile::tempdir().expect("temp dir"));
        ServerBuilder {
            subcommand: "serve",
            args: Vec::new(),
            env: Vec::new(),
            home,
            models: None,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `gatehouse keys …` with `home` as its config directory.
pub fn keys_command(home: &Path, args: &[&str]) -> Output {
    gatehouse(home, &[&["keys"], args].concat())
}

/// Runs `gatehouse ARGS…` with `home` as its config directory.
pub fn gatehouse(home: &Path, args: &[&str]) -> Output {
    Command::new(gatehouse_bin())
        .args(args)
        .env("GATEHOUSE_HOME", home)
        .output()
        .expect("gatehouse runs")
}

/// Asserts that a command failed and that its stderr says every one of `fragments`.
pub fn assert_refused(output: &Output, fragments: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected a refusal: {stderr}");
    for fragment in fragments {
        assert!(stderr.contains(fragment), "`{fragment}` missing from: {stderr}");
    }
}

/// `gatehouse keys create --no-keychain --json ARGS`, parsed.
pub fn create_key(home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["create", "--no-keychain", "--json"];
    all.extend_from_slice(args);
    let output = keys_command(home, &all);
    assert!(
        output.status.success(),
        "keys create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("keys create --json prints JSON")
}

pub fn split(response: reqwest::blocking::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Asserts an error response: status, code, and a message containing every fragment.
#[track_caller]
pub fn assert_error(response: (u16, Value), status: u16, code: &str, fragments: &[&str]) {
    let (got_status, body) = response;
    assert_eq!(got_status, status, "status for {body}");
    assert_eq!(body["code"], code, "code in {body}");
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"));
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "`{fragment}` not in error message `{message}`"
        );
    }
}

/// `gatehouse certs ARGS --json` with `home` as the config directory, parsed. The CA's key lives in
/// the keychain, so this needs the Secret Service that ./scripts/test.sh starts.
pub fn certs(home: &Path, args: &[&str]) -> Value {
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "the CA key lives in the keychain: run through ./scripts/test.sh, which starts a Secret Service"
    );
    let output = gatehouse(home, &[&["certs"], args, &["--json"]].concat());
    assert!(
        output.status.success(),
        "certs {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Polls `check` until it holds, failing with `what` after `within`; returns how long it took.
#[track_caller]
pub fn wait_until_within(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < within,
            "{what} did not happen within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// [`wait_until_within`] five seconds: more than the one second a key change may take to apply.
#[track_caller]
pub fn wait_until(what: &str, check: impl FnMut() -> bool) -> Duration {
    wait_until_within(what, Duration::from_secs(5), check)
}

/// `gatehouse certs import` of the files [`foreign_certificate`] wrote, CA included.
pub fn import_foreign(home: &Path, (cert, key, ca): &(PathBuf, PathBuf, PathBuf)) -> Value {
    let arg = |path: &PathBuf| path.to_str().unwrap().to_string();
    certs(
        home,
        &[
            "import",
            "--cert",
            &arg(cert),
            "--key",
            &arg(key),
            "--ca",
            &arg(ca),
        ],
    )
}

/// A server certificate for `names` from a CA made here rather than by Gatehouse, as a company CA
/// or mkcert would issue one, written into `dir`; `adjust` may change the certificate's
/// parameters first (its validity, say). Returns the certificate, key and CA files.
pub fn foreign_certificate(
    dir: &Path,
    names: &[&str],
    adjust: impl FnOnce(&mut rcgen::CertificateParams),
) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // As a company CA or mkcert marks a CA; strict validators refuse a CA without it.
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Company CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_cert.pem(), &ca_key).unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    adjust(&mut params);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let files = (
        dir.join("server.pem"),
        dir.join("server-key.pem"),
        dir.join("company-ca.pem"),
    );
    std::fs::write(&files.0, cert.pem()).unwrap();
    std::fs::write(&files.1, key.serialize_pem()).unwrap();
    std::fs::write(&files.2, ca_cert.pem()).unwrap();
    files
}

/// `gatehouse check --url URL --json` from `home`, probing `addresses` (comma-separated) as this
/// computer's other addresses: its exit code and its report.
pub fn check_report(home: &Path, url: &str, addresses: &str) -> (i32, Value) {
    let output = std::process::Command::new(gatehouse_bin())
        .args(["check", "--url", url, "--json"])
        .env("GATEHOUSE_HOME", home)
        .env("GATEHOUSE_PROBE_ADDRESSES", addresses)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "check printed no JSON: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

/// The item `id` of a checklist report.
#[track_caller]
pub fn report_item<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no item {id} in {report:#}"))
}

/// `gatehouse check --url URL --json` with the server's config directory (probing 127.0.0.2 as
/// loopback), and the item `id` of its report.
pub fn check_item(server: &TestServer, url: &str, id: &str) -> Value {
    report_item(&check_report(server.home.path(), url, "127.0.0.2").1, id).clone()
}

/// Runs `body` on a network this test makes for itself: a network namespace whose one interface
/// holds a private address and the default route. Tests about "this computer's network address"
/// then expect an address they chose, not one read back the way the code under test reads it,
/// and they run the same on a host that has no route at all.
///
/// The test binary runs itself again inside the namespace with the address in the environment;
/// `test` is the test's path as the harness names it (`module::function`).
pub fn on_a_network_of_its_own(test: &str, body: impl FnOnce(std::net::IpAddr)) {
    const ADDRESS: &str = "GATEHOUSE_TEST_NETWORK_ADDRESS";
    if let Ok(address) = std::env::var(ADDRESS) {
        return body(address.parse().expect("an address this harness wrote"));
    }
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = std::process::id() % 100_000;
    let name = format!("gh-lan-{id}-{made}");
    let address = format!("10.252.{}.1", (id + made) % 250);
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
    ip(&["netns", "add", &name]);
    let network = PrivateNetwork { name };
    let inside = |args: &[&str]| ip(&[&["netns", "exec", &network.name, "ip"], args].concat());
    // A veth pair with both ends inside: an interface that is up and can hold a route, made
    // without touching the host's own interfaces.
    inside(&["link", "add", "lan0", "type", "veth", "peer", "name", "lan1"]);
    inside(&["addr", "add", &format!("{address}/24"), "dev", "lan0"]);
    for link in ["lo", "lan0", "lan1"] {
        inside(&["link", "set", link, "up"]);
    }
    inside(&["route", "add", "default", "dev", "lan0"]);
    let output = Command::new("ip")
        .args(["netns", "exec", &network.name])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ADDRESS, &address)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} on its own network ({address}):\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A "laptop" and "another device on the network": two network namespaces joined by a veth pair,
/// with addresses only they know. The test body runs on the laptop (the test binary runs itself
/// again there, as [`on_a_network_of_its_own`] does); [`Lan::on_device`] runs a command on the
/// other device. No host interface is touched and no packet leaves the two namespaces.
pub struct Lan {
    pub laptop: std::net::IpAddr,
    pub device: std::net::IpAddr,
    device_namespace: String,
}

impl Lan {
    /// `program ARGS` run on the other device.
    pub fn on_device(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.device_namespace, program])
            .args(args)
            .output()
            .expect("`ip netns exec` runs")
    }
}

pub fn on_a_lan(test: &str, body: impl FnOnce(Lan)) {
    const LAN: &str = "GATEHOUSE_TEST_LAN";
    if let Ok(lan) = std::env::var(LAN) {
        let mut parts = lan.split(',');
        let mut next = || parts.next().expect("a LAN this harness described").to_string();
        let (laptop, device, device_namespace) = (next(), next(), next());
        return body(Lan {
            laptop: laptop.parse().unwrap(),
            device: device.parse().unwrap(),
            device_namespace,
        });
    }
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = std::process::id() % 100_000;
    let subnet = format!("10.253.{}", (id + made) % 250);
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
    let laptop = PrivateNetwork {
        name: format!("gh-laptop-{id}-{made}"),
    };
    ip(&["netns", "add", &laptop.name]);
    let device = PrivateNetwork {
        name: format!("gh-device-{id}-{made}"),
    };
    ip(&["netns", "add", &device.name]);
    let on = |namespace: &str, args: &[&str]| ip(&[&["netns", "exec", namespace, "ip"], args].concat());
    on(
        &laptop.name,
        &[
            "link",
            "add",
            "lan0",
            "type",
            "veth",
            "peer",
            "name",
            "lan1",
            "netns",
            &device.name,
        ],
    );
    on(
        &laptop.name,
        &["addr", "add", &format!("{subnet}.1/24"), "dev", "lan0"],
    );
    on(
        &device.name,
        &["addr", "add", &format!("{subnet}.2/24"), "dev", "lan1"],
    );
    for (namespace, link) in [
        (&laptop.name, "lo"),
        (&laptop.name, "lan0"),
        (&device.name, "lo"),
        (&device.name, "lan1"),
    ] {
        on(namespace, &["link", "set", link, "up"]);
    }
    // The laptop's way out is its LAN, as on a real network: that is the address it calls its own.
    on(&laptop.name, &["route", "add", "default", "dev", "lan0"]);
    let output = Command::new("ip")
        .args(["netns", "exec", &laptop.name])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(LAN, format!("{subnet}.1,{subnet}.2,{}", device.name))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // What the body printed (a reliability section, say) is the test's output too.
    print!("{stdout}");
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} on a LAN of its own ({subnet}.0/24):\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

struct PrivateNetwork {
    name: String,
}

impl Drop for PrivateNetwork {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}
