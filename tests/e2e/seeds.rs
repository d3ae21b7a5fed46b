//! The servers of the seeds' guides, guarded for real: Roboflow Inference (the `inference`
//! package, CPU) and a self-hosted Prefect server, each launched by `gatehouse guard --launch`
//! with its preset's own command, reached over real sockets by curl and by Prefect's own client.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{
    TestServer, certs, create_key, gatehouse, on_a_network_of_its_own, path_with_prefect, path_with_roboflow,
    prefect_python, report_item, split, wait_until_within,
};

/// One HTTPS request with curl trusting `ca`; status and body (JSON when it is).
fn curl(ca: &Path, method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, Value) {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "60", "--cacert"])
        .arg(ca)
        .args(["-X", method, "-w", "\n%{http_code}", url]);
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    if let Some(body) = body {
        command.args(["-H", "content-type: application/json", "--data-binary", body]);
    }
    let output = command.output().expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        status.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string())),
    )
}

/// The upstream's loopback address, from the guard's `guarding` log line (its `/info` tells it
/// to clients on this computer only, and these requests come from the network address).
fn upstream_of(server: &TestServer) -> String {
    server
        .log_events()
        .iter()
        .find(|e| e["event"] == "guarding")
        .and_then(|e| e["upstream"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no guarding line in:\n{}", server.log()))
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A workflow of built-in blocks only, which runs offline: a string template fed by an input.
fn template_workflow(who: &str) -> String {
    json!({
        "specification": {
            "version": "1.0",
            "inputs": [{"type": "WorkflowParameter", "name": "who"}],
            "steps": [{
                "type": "roboflow_core/string_template@v1",
                "name": "greeting",
                "template": "hello {who}",
                "data": {"who": "$inputs.who"}
            }],
            "outputs": [{"type": "JsonField", "name": "greeting", "selector": "$steps.greeting.output"}]
        },
        "inputs": {"who": who}
    })
    .to_string()
}

/// The workflow the checklist submits: one custom Python block that returns 42.
fn python_workflow() -> String {
    json!({
        "specification": {
            "version": "1.0",
            "inputs": [],
            "dynamic_blocks_definitions": [{
                "type": "DynamicBlockDefinition",
                "manifest": {
                    "type": "ManifestDescription",
                    "block_type": "Answer",
                    "inputs": {},
                    "outputs": {"answer": {"type": "DynamicOutputDefinition", "kind": []}}
                },
                "code": {"type": "PythonCode", "run_function_code": "def run(self) -> BlockResult:\n    return {'answer': 6 * 7}\n"}
            }],
            "steps": [{"type": "Answer", "name": "answer"}],
            "outputs": [{"type": "JsonField", "name": "answer", "selector": "$steps.answer.answer"}]
        },
        "inputs": {}
    })
    .to_string()
}

fn post_direct(upstream: &str, path: &str, body: &str) -> (u16, Value) {
    split(
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
            .post(format!("http://{upstream}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap(),
    )
}

fn wait_ready(ca: &Path, url: &str, what: &str) {
    wait_until_within(what, Duration::from_secs(180), || {
        curl(ca, "GET", &format!("{url}/_gatehouse/readiness"), &[], None).0 == 200
    });
}

/// `gatehouse check --url URL --json`, probing `lan` as this computer's other address.
fn report(home: &Path, url: &str, lan: IpAddr) -> Value {
    crate::util::check_report(home, url, &format!("127.0.0.2,{lan}")).1
}

/// A guard of Roboflow Inference on `lan` with TLS from the local CA, launched with the preset's
/// own command; `settings` go into `settings.toml` first. Also returns a `workflows` key.
fn roboflow_guard(lan: IpAddr, settings: &str) -> (TestServer, std::path::PathBuf, String, String) {
    let builder = TestServer::builder().guard().settings(settings);
    let home = builder.home().to_path_buf();
    let workflows = create_key(&home, &["--scope", "workflows", "--name", "workflows"])["key"]
        .as_str()
        .unwrap()
        .to_string();
    certs(&home, &["init", "--host", &lan.to_string()]);
    assert!(
        gatehouse(&home, &["settings", "set", "tls.enabled", "true"])
            .status
            .success()
    );
    let server = builder
        .env("PATH", &path_with_roboflow())
        .arg("--host")
        .arg(&lan.to_string())
        .arg("--preset")
        .arg("roboflow")
        .arg("--launch")
        .start();
    let ca = home.join("certs/ca.pem");
    let url = format!("https://{}", server.addr);
    wait_ready(&ca, &url, "Roboflow Inference ready behind the guard");
    (server, ca, url, workflows)
}

#[test]
fn roboflow_inference_behind_the_guard_meets_its_own_guide_and_keeps_custom_python_off() {
    on_a_network_of_its_own(
        "seeds::roboflow_inference_behind_the_guard_meets_its_own_guide_and_keeps_custom_python_off",
        roboflow_on_the_network,
    );
}

fn roboflow_on_the_network(lan: IpAddr) {
    let (server, ca, url, workflows) = roboflow_guard(lan, "");
    let home = server.home.path();
    let upstream = upstream_of(&server);
    assert!(upstream.starts_with("127.0.0.1:"), "{upstream}");
    let metrics = create_key(home, &["--scope", "metrics", "--name", "metrics"])["key"]
        .as_str()
        .unwrap()
        .to_string();

    // A workflow of built-in blocks: the same answer through the guard as from Roboflow itself.
    let workflow = template_workflow("gatehouse");
    let direct = post_direct(&upstream, "/workflows/run", &workflow);
    assert_eq!(direct.0, 200, "{}", direct.1);
    assert_eq!(direct.1["outputs"], json!([{"greeting": "hello gatehouse"}]));
    let run = format!("{url}/workflows/run");
    let guarded = curl(
        &ca,
        "POST",
        &run,
        &[("authorization", &bearer(&workflows))],
        Some(&workflow),
    );
    assert_eq!(guarded.0, 200, "{}", guarded.1);
    assert_eq!(guarded.1["outputs"], direct.1["outputs"]);
    // No key, and a key without the workflows scope.
    let anonymous = curl(&ca, "POST", &run, &[], Some(&workflow));
    assert_eq!(
        (anonymous.0, anonymous.1["code"].as_str()),
        (401, Some("unauthorized")),
        "{}",
        anonymous.1
    );
    let infer_only = curl(&ca, "POST", &run, &[("x-api-key", &server.key)], Some(&workflow));
    assert_eq!(infer_only.1["code"], "insufficient_scope", "{}", infer_only.1);

    // Custom Python, off: refused at the gate with any key or none, and Roboflow itself was
    // started with its flag off (asked directly, it refuses too).
    let python = python_workflow();
    for headers in [vec![], vec![("authorization", bearer(&workflows))]] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let refused = curl(&ca, "POST", &run, &headers, Some(&python));
        assert_eq!(
            (refused.0, refused.1["code"].as_str()),
            (403, Some("custom_python_disabled")),
            "{}",
            refused.1
        );
    }
    // A large one without a key is not read before its key is checked: only the key's refusal.
    let mut padded: Value = serde_json::from_str(&python).unwrap();
    padded["inputs"]["padding"] = Value::String("x".repeat(100 * 1024));
    let padded = padded.to_string();
    let unread = curl(&ca, "POST", &run, &[], Some(&padded));
    assert_eq!(unread.1["code"], "unauthorized", "{}", unread.1);
    let read = curl(
        &ca,
        "POST",
        &run,
        &[("authorization", &bearer(&workflows))],
        Some(&padded),
    );
    assert_eq!(read.1["code"], "custom_python_disabled", "{}", read.1);
    let direct = post_direct(&upstream, "/workflows/run", &python);
    assert_ne!(
        direct.0, 200,
        "Roboflow ran custom Python with the switch off: {}",
        direct.1
    );
    assert!(
        direct
            .1
            .to_string()
            .contains("ALLOW_CUSTOM_PYTHON_EXECUTION_IN_WORKFLOWS"),
        "{}",
        direct.1
    );

    // The pages Roboflow leaves open need a metrics key from the network.
    for path in ["/info", "/metrics", "/openapi.json"] {
        let open = curl(&ca, "GET", &format!("{url}{path}"), &[], None);
        assert_eq!(open.0, 401, "{path}: {}", open.1);
        let wrong = curl(
            &ca,
            "GET",
            &format!("{url}{path}"),
            &[("authorization", &bearer(&workflows))],
            None,
        );
        assert_eq!(wrong.0, 403, "{path}: {}", wrong.1);
        let allowed = curl(
            &ca,
            "GET",
            &format!("{url}{path}"),
            &[("authorization", &bearer(&metrics))],
            None,
        );
        assert_eq!(allowed.0, 200, "{path}: {}", allowed.1);
    }
    let info = curl(
        &ca,
        "GET",
        &format!("{url}/info"),
        &[("authorization", &bearer(&metrics))],
        None,
    )
    .1;
    assert!(info["name"].as_str().unwrap_or("").contains("Roboflow"), "{info}");
    // Model changes are admin's.
    let clear = curl(
        &ca,
        "POST",
        &format!("{url}/model/clear"),
        &[("authorization", &bearer(&workflows))],
        None,
    );
    assert_eq!(clear.1["code"], "insufficient_scope", "{}", clear.1);

    // Roboflow is not reachable on the network address, only on loopback.
    let port: u16 = upstream.rsplit(':').next().unwrap().parse().unwrap();
    assert!(std::net::TcpStream::connect_timeout(&(lan, port).into(), Duration::from_secs(2)).is_err());

    // The guide's four controls, live.
    let checked = report(home, &url, lan);
    for id in [
        "guard.upstream_loopback",
        "auth.required",
        "transport.tls",
        "guard.custom_python",
    ] {
        assert_eq!(
            report_item(&checked, id)["status"],
            "pass",
            "{id}: {:#}",
            report_item(&checked, id)
        );
    }
    // Open to the network on purpose, with TLS and keys: a warning, and the guide says where.
    assert_eq!(
        report_item(&checked, "network.exposure")["status"],
        "warn",
        "{:#}",
        report_item(&checked, "network.exposure")
    );
    let guide = report_item(&checked, "guard.guide");
    assert_eq!(guide["status"], "warn", "{guide:#}");
    assert!(
        guide["summary"]
            .as_str()
            .unwrap()
            .contains("with a warning on 1. Restrict network access"),
        "{guide:#}"
    );
    let evidence = guide["evidence"].to_string();
    for control in [
        "1. Restrict network access",
        "2. Enforce authentication",
        "3. Enable TLS",
        "4. Disable custom Python",
    ] {
        assert!(evidence.contains(control), "{control}: {guide:#}");
    }
    drop(server);

    // With the switch on, Roboflow is started with its flag on and the workflow runs; the
    // checklist says custom Python is on.
    let (server, ca, url, workflows) = roboflow_guard(lan, "[workflows]\nallow_custom_python = true\n");
    let ran = curl(
        &ca,
        "POST",
        &format!("{url}/workflows/run"),
        &[("authorization", &bearer(&workflows))],
        Some(&python),
    );
    assert_eq!(ran.0, 200, "{}", ran.1);
    assert_eq!(ran.1["outputs"], json!([{"answer": 42}]));
    let checked = report(server.home.path(), &url, lan);
    let python_item = report_item(&checked, "guard.custom_python");
    assert_eq!(python_item["status"], "fail", "{python_item:#}");
    assert_eq!(report_item(&checked, "guard.guide")["status"], "fail");
}

/// A guard of a Prefect server on loopback, launched with the preset's own command.
fn prefect_guard() -> (TestServer, String) {
    let server = TestServer::builder()
        .guard()
        .env("PATH", &path_with_prefect())
        .env(
            "PREFECT_HOME",
            tempfile::tempdir().unwrap().keep().to_str().unwrap(),
        )
        .arg("--preset")
        .arg("prefect")
        .arg("--launch")
        .start();
    wait_until_within("Prefect ready behind the guard", Duration::from_secs(180), || {
        server
            .client
            .get(server.url("/_gatehouse/readiness"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    let key = create_key(server.home.path(), &["--scope", "workflows", "--name", "prefect"])["key"]
        .as_str()
        .unwrap()
        .to_string();
    (server, key)
}

/// Prefect's own client (`run` or `subscribe`) against the guard, with `env` as its credentials.
fn prefect_client(server: &TestServer, what: &str, env: &[(&str, String)]) -> Value {
    let home = tempfile::tempdir().unwrap();
    let mut command = Command::new(prefect_python());
    command
        .arg(format!(
            "{}/e2e/upstreams/prefect/client.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(what)
        .env("PREFECT_HOME", home.path())
        .env("PREFECT_API_URL", server.url("/api"))
        .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        .env_remove("PREFECT_API_KEY")
        .env_remove("PREFECT_API_AUTH_STRING");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("the Prefect environment's python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "Prefect's client printed no JSON: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn a_prefect_server_behind_the_guard_takes_its_client_s_auth_string_and_refuses_forged_posts() {
    let (server, key) = prefect_guard();

    // Prefect's client with the auth string its guide describes, the password being the key.
    let auth = ("PREFECT_API_AUTH_STRING", format!("me:{key}"));
    let ran = prefect_client(&server, "run", std::slice::from_ref(&auth));
    assert!(ran["flow_run"].is_string(), "{ran}");
    assert_eq!(ran["state"], "PENDING", "{ran}");
    // A browser opening the UI without credentials is asked for them (Basic: the key as password).
    let anonymous = server.client.get(server.url("/")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenges: Vec<&str> = anonymous
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic ")),
        "{challenges:?}"
    );
    let refused = prefect_client(&server, "run", &[]);
    assert!(refused["error"].as_str().unwrap().contains("401"), "{refused}");
    let wrong = prefect_client(
        &server,
        "run",
        &[("PREFECT_API_AUTH_STRING", "me:gth_not_a_key".into())],
    );
    assert!(wrong["error"].as_str().unwrap().contains("401"), "{wrong}");

    // Event subscriptions are WebSockets whose upgrade carries no auth string: the key goes in
    // Prefect's custom client headers, which its WebSockets send too.
    let headers = (
        "PREFECT_CLIENT_CUSTOM_HEADERS",
        json!({"X-API-Key": key}).to_string(),
    );
    let subscribed = prefect_client(&server, "subscribe", &[auth.clone(), headers]);
    assert!(
        subscribed["received"]
            .as_str()
            .is_some_and(|e| e.starts_with("gatehouse.e2e.")),
        "{subscribed}"
    );
    let unsubscribed = prefect_client(&server, "subscribe", &[auth]);
    assert!(
        unsubscribed["error"].as_str().unwrap().contains("401"),
        "{unsubscribed}"
    );

    // A form a web page posts with the browser's remembered Basic credentials is refused; the
    // same request as JSON (what Prefect's UI and client send) goes through.
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("me:{key}"))
    );
    let forged = split(
        server
            .client
            .post(server.url("/api/flows/filter"))
            .header("authorization", &basic)
            .header("origin", "https://elsewhere.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("limit=1")
            .send()
            .unwrap(),
    );
    assert_eq!(forged.0, 403, "{}", forged.1);
    assert_eq!(forged.1["code"], "cross_site_request_refused", "{}", forged.1);
    let json_post = split(
        server
            .client
            .post(server.url("/api/flows/filter"))
            .header("authorization", &basic)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .unwrap(),
    );
    assert_eq!(json_post.0, 200, "{}", json_post.1);
    assert!(
        json_post.1.to_string().contains("gatehouse-e2e"),
        "{}",
        json_post.1
    );

    // The UI's settings point its browser code at Gatehouse, not around it.
    let ui = split(
        server
            .client
            .get(server.url("/ui-settings"))
            .header("authorization", &basic)
            .send()
            .unwrap(),
    );
    assert_eq!(ui.1["api_url"], server.url("/api"), "{}", ui.1);
    // Clearing Prefect's database is admin's.
    let clear = split(
        server
            .client
            .post(server.url("/api/admin/database/clear"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .unwrap(),
    );
    assert_eq!(clear.1["code"], "insufficient_scope", "{}", clear.1);

    // The guide's settings, as the checklist reports them.
    let checked = crate::util::check_item(&server, &server.url(""), "guard.guide");
    assert_eq!(checked["status"], "pass", "{checked:#}");
    for setting in [
        "server.api.auth_string",
        "server.api.csrf_protection_enabled",
        "server.api.cors_allowed_origins",
        "ui.api_url",
    ] {
        assert!(
            checked["evidence"].to_string().contains(setting),
            "{setting}: {checked:#}"
        );
    }
}
