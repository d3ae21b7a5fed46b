//! The desktop panel in a real webview: the real `gatehouse-app` driven through tauri-driver and
//! WebKitWebDriver under Xvfb, supervising the real server, with the real keychain of the test
//! session. Screenshots of each page go to `test-artifacts/` at the workspace root.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{data_dir, default_models, gatehouse_bin, wait_until_within};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A program the panel tests need, or a failure that says how to get it.
fn require(path: &str, how: &str) -> PathBuf {
    let found = if path.contains('/') {
        Some(PathBuf::from(path)).filter(|p| p.exists())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(path))
                .find(|p| p.exists())
        })
    };
    found.unwrap_or_else(|| panic!("{path} is missing: {how}"))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Xvfb, tauri-driver and one WebDriver session on the panel; everything stops on drop.
struct Panel {
    client: reqwest::blocking::Client,
    base: String,
    session: String,
    home: tempfile::TempDir,
    _driver: Killed,
    _display: Killed,
}

impl Panel {
    fn start() -> Panel {
        let xvfb = require("Xvfb", "./scripts/test.sh installs xvfb");
        // test.sh says where cargo installed it; by hand, cargo's default place.
        let driver = require(
            &std::env::var("TAURI_DRIVER").unwrap_or_else(|_| {
                format!(
                    "{}/.cargo/bin/tauri-driver",
                    std::env::var("HOME").unwrap_or_default()
                )
            }),
            "./scripts/test.sh installs it with `cargo install tauri-driver --locked`",
        );
        require("WebKitWebDriver", "./scripts/test.sh installs webkit2gtk-driver");
        assert!(
            std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
            "the panel stores keys in the keychain: run through ./scripts/test.sh, which starts a Secret Service"
        );
        let app = gatehouse_bin().with_file_name("gatehouse-app");
        assert!(
            app.exists(),
            "{} is missing: build it (`cargo build --workspace --bins`)",
            app.display()
        );
        let display = format!(":{}", 90 + std::process::id() % 9);
        let display_process = Killed(
            Command::new(xvfb)
                .args([
                    display.as_str(),
                    "-screen",
                    "0",
                    "1280x900x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(500));
        let home = tempfile::tempdir().unwrap();
        // A free port, so a Gatehouse the developer runs on 9001 is left alone.
        std::fs::write(
            home.path().join("settings.toml"),
            format!(
                "[server]\nport = {}\nmodels = \"{}\"\n",
                free_port(),
                default_models().display()
            ),
        )
        .unwrap();
        // Private, as Gatehouse writes it (the checklist fails a settings file others can read).
        std::fs::set_permissions(
            home.path().join("settings.toml"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let port = free_port();
        let driver_process = Killed(
            Command::new(driver)
                .args(["--port", &port.to_string()])
                .env("DISPLAY", &display)
                .env("GATEHOUSE_HOME", home.path())
                .env("GATEHOUSE_DATA", data_dir())
                .env("GATEHOUSE_BIN", gatehouse_bin())
                .env("GATEHOUSE_PROBE_ADDRESSES", "127.0.0.2")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while client.get(format!("{base}/status")).send().is_err() {
            assert!(Instant::now() < deadline, "tauri-driver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let created: Value = client
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {"tauri:options": {"application": app}}}}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        Panel {
            client,
            base,
            session,
            home,
            _driver: driver_process,
            _display: display_process,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().unwrap().json().unwrap();
        answer["value"].clone()
    }

    /// Runs `script` in the page and returns its value.
    fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Waits until `script` returns something truthy; returns it.
    fn wait_for(&self, what: &str, script: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self.script(script);
            if !(value.is_null() || value == json!(false) || value == json!("")) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {within:?}; the page says: {}",
                self.script("return document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Clicks the button whose text is `label` inside `scope`, the way a person would: the DOM
    /// click event on the real button (WebKitWebDriver's element click is unreliable under Xvfb).
    fn click(&self, scope: &str, label: &str) {
        let xpath = format!("{}//button[normalize-space(.)='{label}']", css_to_xpath(scope));
        let script = format!(
            "const b = document.evaluate({xpath:?}, document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue; \
             if (!b || b.disabled) return false; b.click(); return true;"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.script(&script) != json!(true) {
            assert!(
                Instant::now() < deadline,
                "no enabled button `{label}` in {scope}; the page says: {}",
                self.script("return document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) {
        use base64::Engine;
        // WebKit hands out the last painted frame; give the page one to paint what it shows.
        std::thread::sleep(Duration::from_millis(400));
        let data = self.call(reqwest::Method::GET, "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .unwrap();
        std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
    }

    fn server_url(&self) -> String {
        self.wait_for(
            "an endpoint URL",
            "const c = document.querySelector('.state code'); return c && c.textContent",
            Duration::from_secs(60),
        )
        .as_str()
        .unwrap()
        .to_string()
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        let _ = self
            .client
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
    }
}

/// The few selectors the test uses, as XPath prefixes.
fn css_to_xpath(scope: &str) -> String {
    match scope {
        "nav" => "//nav".into(),
        "header" => "//header".into(),
        "form" => "//form".into(),
        "created" => "//div[contains(@class,'created')]".into(),
        "table" => "//table".into(),
        other => format!("//li[.//span[normalize-space(.)=\"{other}\"]]"),
    }
}

const STATE: &str = "const s = document.querySelector('.state'); return s && s.textContent.trim()";
const CHECKLIST: &str =
    "const s = document.querySelector('.section-head span'); return s && s.textContent.trim()";

#[test]
fn the_panel_runs_the_server_proves_the_checklist_and_manages_keys() {
    let panel = Panel::start();
    panel.wait_for(
        "the server becoming ready",
        &format!("const t = (function() {{ {STATE} }})(); return t && t.includes('Ready') && t"),
        Duration::from_secs(90),
    );
    let url = panel.server_url();
    let summary = panel.wait_for(
        "a checklist with no failure",
        &format!("const t = (function() {{ {CHECKLIST} }})(); return t && t.includes(' 0 fail') && t"),
        Duration::from_secs(60),
    );
    assert!(summary.as_str().unwrap().contains("pass"), "{summary}");
    panel.screenshot("dashboard");

    // Keys: create one in the keychain, use it, revoke it, see it refused.
    panel.click("nav", "Keys");
    panel.wait_for(
        "the keys page",
        "return document.querySelector('form.create')",
        Duration::from_secs(10),
    );
    panel.click("form", "Create key");
    let key = panel
        .wait_for(
            "the new key",
            "const c = document.querySelector('.created code'); return c && c.textContent",
            Duration::from_secs(10),
        )
        .as_str()
        .unwrap()
        .to_string();
    assert!(key.starts_with("gth_"), "{key}");
    panel.screenshot("keys");
    let http = reqwest::blocking::Client::new();
    let status_with_key = || {
        let request = http.get(format!("{url}/v2")).bearer_auth(&key);
        request.send().unwrap().status()
    };
    wait_until_within("the new key being accepted", Duration::from_secs(3), || {
        status_with_key() == 200
    });
    panel.click("table", "Revoke");
    wait_until_within("the revoked key being refused", Duration::from_secs(2), || {
        status_with_key() == 401
    });

    // Custom Python turned on outside the panel: the item fails; one click fixes it.
    panel.click("nav", "Dashboard");
    let output = Command::new(gatehouse_bin())
        .args(["settings", "set", "workflows.allow_custom_python", "true"])
        .env("GATEHOUSE_HOME", panel.home.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    panel.wait_for(
        "the custom-Python item failing",
        "return [...document.querySelectorAll('li.item')].some(li => li.textContent.includes('Custom Python') && li.textContent.includes('fail'))",
        Duration::from_secs(60),
    );
    panel.screenshot("dashboard-failing");
    panel.click("Custom Python in workflows is off", "Fix");
    panel.wait_for(
        "the custom-Python item passing again",
        "return [...document.querySelectorAll('li.item')].some(li => li.textContent.includes('Custom Python') && li.textContent.includes('pass'))",
        Duration::from_secs(60),
    );
    let settings = gatehouse_core::Settings::load(&panel.home.path().join("settings.toml")).unwrap();
    assert!(!settings.workflows.allow_custom_python);

    // Stop and start from the panel.
    panel.click("header", "Stop");
    panel.wait_for(
        "the server stopping",
        &format!("const t = (function() {{ {STATE} }})(); return t && t.includes('Stopped') && t"),
        Duration::from_secs(20),
    );
    assert!(
        reqwest::blocking::get(format!("{url}/healthz")).is_err(),
        "nothing answers once stopped"
    );
    panel.click("header", "Start");
    panel.wait_for(
        "the server ready again",
        &format!("const t = (function() {{ {STATE} }})(); return t && t.includes('Ready') && t"),
        Duration::from_secs(60),
    );

    panel.click("nav", "Logs");
    panel.wait_for(
        "the log page",
        "return document.querySelector('ul.lines li')",
        Duration::from_secs(10),
    );
    panel.screenshot("logs");
    eprintln!("panel screenshots: {}", artifacts().display());
}
