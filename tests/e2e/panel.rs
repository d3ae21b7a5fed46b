//! The desktop panel in a real webview: the real `gatehouse-app` driven through tauri-driver and
//! WebKitWebDriver under Xvfb, supervising the real server, with the real keychain of the test
//! session. Screenshots of each page go to `test-artifacts/` at the workspace root.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{data_dir, default_models, gatehouse, gatehouse_bin, wait_until_within};

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
    display: String,
    _driver: Killed,
    _display: Killed,
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// One panel at a time: two WebKit sessions on two cores make each other's waits time out.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Panel {
    fn start() -> Panel {
        Self::start_with(&[])
    }

    /// A panel whose app sees `env` besides the harness's own environment.
    fn start_with(env: &[(&str, &str)]) -> Panel {
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
        let mut driver_command = Command::new(driver);
        driver_command.envs(env.iter().copied());
        let driver_process = Killed(
            driver_command
                // WebKitWebDriver's own port too: one left from an earlier panel on the default
                // port would launch the app with that panel's environment.
                .args([
                    "--port",
                    &port.to_string(),
                    "--native-port",
                    &free_port().to_string(),
                ])
                .env("DISPLAY", &display)
                .env("GATEHOUSE_HOME", home.path())
                .env("GATEHOUSE_DATA", data_dir())
                .env("GATEHOUSE_BIN", gatehouse_bin())
                .env("GATEHOUSE_PROBE_ADDRESSES", "127.0.0.2")
                // Python steps' sandbox without its namespaces, as in a container that refuses
                // them: the Workflows page must show that layer as missing.
                .env("GATEHOUSE_SANDBOX_NAMESPACES", "off")
                // The app's own state (window size and position, start at login) stays in the
                // test's directory, away from the developer's desktop.
                .env("XDG_CONFIG_HOME", home.path().join("xdg-config"))
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
            display,
            _driver: driver_process,
            _display: display_process,
            _turn: turn,
        }
    }

    /// The process id of the app this panel's WebDriver session drives: the `gatehouse-app` whose
    /// GATEHOUSE_HOME is this panel's.
    fn app_pid(&self) -> u32 {
        let app = gatehouse_bin().with_file_name("gatehouse-app");
        let home = format!("GATEHOUSE_HOME={}", self.home.path().display());
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == app)
                    && std::fs::read(format!("/proc/{pid}/environ"))
                        .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == home.as_bytes()))
                    && running(*pid)
            })
            .expect("the panel's gatehouse-app process")
    }

    /// Waits until the header's server state line says `state` (`Ready`, `Stopped`, …).
    fn wait_for_state(&self, what: &str, state: &str, within: Duration) -> Value {
        self.wait_for(
            what,
            &format!("const t = (function() {{ {STATE} }})(); return t && t.includes({state:?}) && t"),
            within,
        )
    }

    /// Quits the app and opens it again, as a person would after closing it mid-way.
    fn relaunch(&mut self) {
        let app = gatehouse_bin().with_file_name("gatehouse-app");
        let _ = self
            .client
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let created: Value = self
            .client
            .post(format!("{}/session", self.base))
            .json(&json!({"capabilities": {"alwaysMatch": {"tauri:options": {"application": app}}}}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        self.session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session after relaunching: {created}"))
            .to_string();
    }

    /// Clicks the first enabled element matching `xpath` with a DOM click event, the way a person
    /// would (WebKitWebDriver's element click is unreliable under Xvfb).
    fn click_xpath(&self, xpath: &str) {
        let script = format!(
            "const e = document.evaluate({xpath:?}, document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue; \
             if (!e || e.matches(':disabled')) return false; e.click(); return true;"
        );
        self.wait_for(
            &format!("something enabled at {xpath}"),
            &script,
            Duration::from_secs(10),
        );
    }

    /// Types `text` into the field matching `css`, firing the input event Svelte listens to.
    fn fill(&self, css: &str, text: &str) {
        let script = format!(
            "const e = document.querySelector({css:?}); if (!e) return false; e.value = {text:?}; \
             e.dispatchEvent(new Event('input', {{bubbles: true}})); return true;"
        );
        self.wait_for(&format!("a field {css}"), &script, Duration::from_secs(10));
    }

    /// Picks `value` in the select `css`, as a person choosing it would (the page hears `change`).
    fn choose(&self, css: &str, value: &str) {
        let script = format!(
            "const e = document.querySelector({css:?}); if (!e) return false; e.value = {value:?}; \
             e.dispatchEvent(new Event('change', {{bubbles: true}})); return true;"
        );
        self.wait_for(&format!("a choice {css}"), &script, Duration::from_secs(10));
    }

    /// What the desktop's clipboard holds, read by xclip as another program would paste it.
    fn clipboard(&self) -> String {
        require("xclip", "./scripts/test.sh installs xclip");
        let output = Command::new("xclip")
            .args(["-o", "-selection", "clipboard"])
            .env("DISPLAY", &self.display)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn text_of(&self, what: &str, css: &str) -> String {
        self.wait_for(
            what,
            &format!("const e = document.querySelector({css:?}); return e && e.textContent.trim()"),
            Duration::from_secs(20),
        )
        .as_str()
        .unwrap()
        .to_string()
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let status = response.status();
        let answer: Value = response.json().unwrap();
        // A WebDriver error (a script that threw, a dead session, no such element) is never a
        // value a wait or a click may take for success.
        let error_shaped = answer["value"]["error"].is_string() && answer["value"]["message"].is_string();
        assert!(
            status.is_success() && !error_shaped,
            "WebDriver {path} failed ({status}): {} — {}",
            answer["value"]["error"],
            answer["value"]["message"]
        );
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

    /// Clicks the button whose text is `label` inside `scope`.
    fn click(&self, scope: &str, label: &str) {
        self.click_xpath(&format!(
            "{}//button[normalize-space(.)='{label}']",
            css_to_xpath(scope)
        ));
    }

    /// Saves what the display shows of the window, captured from the X server the way a person's
    /// screenshot tool would (WebKit's own snapshot waits forever for a composited frame, which the
    /// panel turns off).
    fn screenshot(&self, name: &str) {
        require("import", "./scripts/test.sh installs imagemagick");
        // Give the page a moment to paint what it shows.
        std::thread::sleep(Duration::from_millis(400));
        let rect = self.call(reqwest::Method::GET, "/window/rect", None);
        let number = |field: &str| rect[field].as_f64().unwrap_or(0.0).max(0.0) as u32;
        let geometry = format!(
            "{}x{}+{}+{}",
            number("width").max(1),
            number("height").max(1),
            number("x"),
            number("y")
        );
        let output = Command::new("import")
            .args(["-window", "root", "-crop", &geometry, "+repage"])
            .arg(artifacts().join(format!("{name}.png")))
            .env("DISPLAY", &self.display)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "screenshot {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
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
        "wizard" => "//div[contains(@class,'wizard')]".into(),
        "main" => "//main".into(),
        other => format!("//li[.//span[normalize-space(.)=\"{other}\"]]"),
    }
}

const STATE: &str = "const s = document.querySelector('.state'); return s && s.textContent.trim()";
const CHECKLIST: &str =
    "const s = document.querySelector('.section-head span'); return s && s.textContent.trim()";

/// A script that is truthy once the checklist item titled `title` shows `status`.
fn item_is(title: &str, status: &str) -> String {
    format!(
        "return [...document.querySelectorAll('li.item')].some(li => li.querySelector('.title')?.textContent === {title:?} \
         && li.querySelector('.status')?.textContent === {status:?})"
    )
}

/// The HTTP status of `GET {url}/v2` with `key`, from curl trusting the panel's CA; 0 when
/// nothing answered.
/// How a request with a key ended: the HTTP status, or curl's account of why there was none.
#[derive(Debug)]
enum Answer {
    Status(u16),
    /// curl's exit code (7: connection refused, 35/56: the TLS handshake or the first read failed
    /// with an alert, 60: certificate not trusted, 28: timeout) and its error text.
    Failed {
        exit: Option<i32>,
        error: String,
    },
}

fn answer_with_key(url: &str, key: &str, ca: &std::path::Path) -> Answer {
    let output = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            "--cacert",
        ])
        .arg(ca)
        .args([
            "-H",
            &format!("Authorization: Bearer {key}"),
            &format!("{url}/v2"),
        ])
        .output()
        .unwrap();
    if output.status.success() {
        let text = String::from_utf8_lossy(&output.stdout);
        return Answer::Status(
            text.parse()
                .unwrap_or_else(|_| panic!("curl succeeded but printed no status: {text:?}")),
        );
    }
    Answer::Failed {
        exit: output.status.code(),
        error: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    }
}

/// The status of a request with `key`; 0 when no HTTP answer came (for polling until one does).
fn status_with_key(url: &str, key: &str, ca: &std::path::Path) -> u16 {
    match answer_with_key(url, key, ca) {
        Answer::Status(status) => status,
        Answer::Failed { .. } => 0,
    }
}

/// Asserts that the request failed the way `what` says: one of curl's `exits`, with `fragment`
/// in its error, not merely that no answer came.
fn assert_fails(answer: Answer, exits: &[i32], fragment: &str, what: &str) {
    match answer {
        Answer::Failed { exit, error }
            if exit.is_some_and(|e| exits.contains(&e)) && error.to_lowercase().contains(fragment) => {}
        other => panic!("{what}: expected curl exit {exits:?} with `{fragment}`, got {other:?}"),
    }
}

#[test]
fn a_first_run_walks_the_wizard_then_every_page_works_against_the_real_server() {
    let mut panel = Panel::start();
    let ca = panel.home.path().join("certs/ca.pem");

    // First run: the wizard, and no server until its choices are made. Gatehouse's own server
    // is the choice already made.
    panel.wait_for(
        "the setup wizard",
        "return document.querySelector('.wizard h2')?.textContent.includes('Which server')",
        Duration::from_secs(30),
    );
    panel.wait_for(
        "the own server chosen",
        "const r = document.querySelector('.wizard input[type=radio]'); return r && r.checked",
        Duration::from_secs(10),
    );
    panel.screenshot("wizard-server");
    panel.click("wizard", "Next");
    panel.wait_for(
        "the network step",
        "return document.querySelector('.wizard h2')?.textContent.includes('Who may connect')",
        Duration::from_secs(10),
    );
    // Asked of the panel's own children, not of the port: another test's server may be given
    // the same port number by the kernel meanwhile.
    assert_eq!(
        servers_started_by(panel.app_pid()),
        Vec::<u32>::new(),
        "the server must not start before the wizard ends"
    );
    panel.screenshot("wizard-network");
    panel.click("wizard", "Next");

    panel.click("wizard", "Create my first key");
    let key = panel.text_of("the first key", ".created code.secret");
    let key_id = panel.script("return document.querySelector('.created code.secret').dataset.keyId");
    assert!(key.starts_with("gth_"), "{key}");
    assert!(
        panel
            .text_of("the curl line", ".created code.curl")
            .contains("$GATEHOUSE_KEY"),
        "the curl line names the variable, never the key"
    );
    panel.click("created", "Copy key");
    wait_until_within("the key on the clipboard", Duration::from_secs(3), || {
        panel.clipboard() == key
    });
    panel.screenshot("wizard-key");
    panel.click("wizard", "Next");
    panel.wait_for(
        "the TLS step",
        "return document.querySelector('.wizard h2')?.textContent.includes('TLS')",
        Duration::from_secs(10),
    );

    // Quit half-way: the wizard resumes at the step it had reached.
    panel.relaunch();
    panel.wait_for(
        "the wizard resuming at the TLS step",
        "return document.querySelector('.wizard h2')?.textContent.includes('TLS')",
        Duration::from_secs(30),
    );
    panel.screenshot("wizard-tls");
    panel.click("wizard", "Generate and turn TLS on");
    panel.wait_for(
        "TLS turned on",
        "return document.querySelector('.wizard .body')?.textContent.includes('TLS is on')",
        Duration::from_secs(20),
    );
    assert!(ca.exists(), "the local CA is written to {}", ca.display());
    panel.click("wizard", "Next");

    panel.wait_for(
        "the custom-Python step",
        "return document.querySelector('.wizard input[role=switch]:not(:disabled)')",
        Duration::from_secs(10),
    );
    let switch = panel.script("return document.querySelector('.wizard input[role=switch]').checked");
    assert_eq!(switch, json!(false), "custom Python is off by default");
    panel.screenshot("wizard-python");
    panel.click("wizard", "Next");

    // Review: the server starts with the choices made and proves every control.
    panel.wait_for_state("the server ready in the review", "Ready", Duration::from_secs(90));
    panel.wait_for(
        "every checklist item passing in the review",
        "const items = [...document.querySelectorAll('.wizard li.item .status')]; \
         return items.length > 10 && items.every(s => s.textContent === 'pass')",
        Duration::from_secs(60),
    );
    panel.screenshot("wizard-review");
    panel.click("wizard", "Finish and open the dashboard");

    let url = panel.server_url();
    assert_eq!(
        servers_started_by(panel.app_pid()).len(),
        1,
        "the panel runs its one server now"
    );
    assert!(
        url.starts_with("https://"),
        "TLS from the wizard is in force: {url}"
    );
    let summary = panel.wait_for(
        "a checklist with no failure",
        &format!("const t = (function() {{ {CHECKLIST} }})(); return t && t.includes(' 0 fail') && t"),
        Duration::from_secs(60),
    );
    assert!(summary.as_str().unwrap().contains("pass"), "{summary}");
    assert_eq!(
        status_with_key(&url, &key, &ca),
        200,
        "the wizard's key works over TLS"
    );

    // Keys: reveal the wizard's key, create one, use it, rotate and revoke it.
    panel.click("nav", "Keys");
    panel.click("table", "Reveal");
    assert_eq!(panel.text_of("the revealed key", "tr.revealed code"), key);
    panel.click("form", "Create key");
    let second = panel.text_of("the new key", ".created code.secret");
    let second_id = panel.script("return document.querySelector('.created code.secret').dataset.keyId");
    assert!(second.starts_with("gth_") && second != key, "{second}");
    panel.screenshot("keys");
    wait_until_within("the new key being accepted", Duration::from_secs(3), || {
        status_with_key(&url, &second, &ca) == 200
    });
    panel.click("created", "Done");
    panel.click_xpath(&format!(
        "//tr[.//code[normalize-space(.)={second_id}]]//button[normalize-space(.)='Revoke']"
    ));
    wait_until_within("the revoked key being refused", Duration::from_secs(2), || {
        status_with_key(&url, &second, &ca) == 401
    });
    // A demo key: half an hour, one model, handed over with a card and its QR code.
    panel.fill("form.create input[placeholder='every model']", "sigmoid");
    panel.choose("form.create select", "30m");
    panel.click("form", "Create key");
    let demo = panel.text_of("the demo key", ".created code.secret");
    let card = panel.text_of("the share card", ".created .share");
    assert!(
        card.contains("Valid until") && card.contains("sigmoid") && card.contains(&url),
        "{card}"
    );
    assert_eq!(
        panel.script("return !!document.querySelector('.created .share .qr svg')"),
        json!(true),
        "the card has its QR code"
    );
    panel.screenshot("keys-share");
    wait_until_within("the demo key being accepted", Duration::from_secs(3), || {
        status_with_key(&url, &demo, &ca) == 200
    });
    panel.click("created", "Done");
    panel.fill("form.create input[placeholder='every model']", "");
    panel.choose("form.create select", "90d");
    panel.click_xpath(&format!(
        "//tr[.//code[normalize-space(.)={key_id}]]//button[normalize-space(.)='Rotate']"
    ));
    let rotated = panel.text_of("the rotated key", ".created code.secret");
    assert!(
        panel
            .text_of("the grace note", ".created")
            .contains("keeps working until"),
        "rotation says how long the old key lasts"
    );
    wait_until_within(
        "the rotated key and the old one both working",
        Duration::from_secs(3),
        || status_with_key(&url, &rotated, &ca) == 200 && status_with_key(&url, &key, &ca) == 200,
    );

    // Back on the dashboard, the requests chart shows a caller's traffic: a request every
    // 200 ms from here until it does.
    panel.click("nav", "Dashboard");
    let charted = "const chart = [...document.querySelectorAll('.charts figure')].find(f => f.querySelector('figcaption span')?.textContent === 'Requests'); \
         const points = (chart?.querySelector('polyline')?.getAttribute('points') || '').split(' '); \
         return points.length > 1 && points.some(p => Number(p.split(',')[1]) < 30)";
    wait_until_within(
        "a caller's requests in the requests chart",
        Duration::from_secs(30),
        || {
            assert_eq!(status_with_key(&url, &rotated, &ca), 200);
            std::thread::sleep(Duration::from_millis(200));
            panel.script(charted) == json!(true)
        },
    );
    panel.screenshot("dashboard");

    // Network: listening on every interface turns the exposure item to a warning; its fix
    // puts the server back on this computer only.
    panel.click("nav", "Network");
    panel.click_xpath("//label[.//strong[normalize-space(.)='Every network interface']]//input");
    panel.screenshot("network");
    panel.click("main", "Save and restart");
    let saved = panel.text_of("the saved notice", ".saved");
    // The gRPC port is saved beside the HTTP port, on by default.
    assert!(saved.contains("gRPC on port 9002"), "{saved}");
    panel.click("nav", "Dashboard");
    panel.wait_for(
        "the exposure item warning",
        &item_is("Reachable only where intended", "warn"),
        Duration::from_secs(60),
    );
    panel.click("Reachable only where intended", "Fix");
    panel.wait_for(
        "the exposure item passing again",
        &item_is("Reachable only where intended", "pass"),
        Duration::from_secs(60),
    );

    // Open to the network for a while from the Network page: the dashboard counts down, the
    // server answers on the network address, and closing it puts it back on this computer only.
    let lan = gatehouse_core::net::network_address()
        .expect("this machine has a network address (the exposure is tested on it)");
    panel.click("nav", "Network");
    panel.click("main", "Open for 15 minutes");
    let open = panel.text_of("the exposure's deadline", ".exposure .open");
    assert!(
        open.contains(&lan.to_string()) && open.contains("min left"),
        "{open}"
    );
    panel.click("nav", "Dashboard");
    let countdown = panel.text_of("the dashboard's countdown", "p.guarding.tone-warn");
    assert!(
        countdown.contains("Open to your network") && countdown.contains("min left"),
        "{countdown}"
    );
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap();
    let reachable = || {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::new(lan, port),
            Duration::from_millis(300),
        )
        .is_ok()
    };
    wait_until_within(
        "the server listening on the network address",
        Duration::from_secs(30),
        reachable,
    );
    panel.screenshot("dashboard-exposed");
    panel.click("nav", "Network");
    panel.click("main", "Close it now");
    panel.text_of("the exposure's choices again", ".exposure .choices");
    wait_until_within(
        "the server back on this computer only",
        Duration::from_secs(30),
        || !reachable() && status_with_key(&url, &rotated, &ca) == 200,
    );

    // Certificates: the CA and server certificate listed; a client certificate for mTLS.
    panel.click("nav", "Certificates");
    panel.wait_for(
        "the certificate table",
        "return document.querySelectorAll('table tbody tr').length >= 2",
        Duration::from_secs(10),
    );
    panel.fill("form.issue input", "ci-client");
    panel.click("form", "Issue client certificate");
    let issued = panel.text_of("the issued client certificate", "ul.files");
    let client_cert = panel.home.path().join("certs/clients/ci-client.pem");
    assert!(issued.contains(&client_cert.display().to_string()), "{issued}");
    assert!(client_cert.exists());
    panel.screenshot("certificates");

    // Mutual TLS from the page: the server restarts demanding client certificates and is ready
    // again (the panel's probes present the certificate just issued, made after the panel
    // started); curl without one is refused in the handshake. Then off again.
    panel.click("form", "Require client certificates");
    panel.click("nav", "Dashboard");
    panel.wait_for(
        "mutual TLS proven by the checklist",
        "return [...document.querySelectorAll('li.item')].some(li => li.textContent.includes('a client without a certificate is refused in the handshake'))",
        Duration::from_secs(90),
    );
    panel.wait_for_state(
        "the server ready with mutual TLS",
        "Ready",
        Duration::from_secs(30),
    );
    assert_fails(
        answer_with_key(&url, &rotated, &ca),
        &[35, 56],
        "certificate required",
        "a client without a certificate is refused in the handshake",
    );
    panel.click("nav", "Certificates");
    panel.click("form", "Turn mutual TLS off");
    wait_until_within("mutual TLS off again", Duration::from_secs(60), || {
        status_with_key(&url, &rotated, &ca) == 200
    });

    // Renewing from the page reissues the server certificate from the local CA; once a
    // certificate from another CA is imported, the page offers no renewal, only a deliberate
    // switch back to the local CA, and the server serves each in turn.
    let certs = gatehouse_core::certs::CertFiles::new(panel.home.path().join("certs"));
    let before = std::fs::read(certs.server_cert()).unwrap();
    panel.click("main", "Renew server certificate");
    panel.wait_for(
        "the renewal notice",
        "return document.querySelector('.notice')?.textContent.includes('Issued a new server certificate')",
        Duration::from_secs(10),
    );
    assert_ne!(
        std::fs::read(certs.server_cert()).unwrap(),
        before,
        "a new certificate was written"
    );
    // Importing is the page's own form, shown once TLS is off: a CA that did not issue the
    // certificate is refused where it was given, and nothing is replaced.
    let company = tempfile::tempdir().unwrap();
    let (company_cert, company_key, company_ca) =
        crate::util::foreign_certificate(company.path(), &["localhost", "127.0.0.1"], |_| {});
    panel.click("main", "Turn TLS off");
    panel.click_xpath("//input[@type='radio' and @value='import']");
    panel.fill(
        "input[placeholder='/home/you/certs/server.pem']",
        company_cert.to_str().unwrap(),
    );
    panel.fill(
        "input[placeholder='/home/you/certs/server-key.pem']",
        company_key.to_str().unwrap(),
    );
    panel.fill(
        "input[placeholder='/home/you/certs/company-ca.pem']",
        ca.to_str().unwrap(),
    );
    let served = std::fs::read(certs.server_cert()).unwrap();
    panel.click("main", "Import and turn TLS on");
    let refusal = panel.text_of("the refusal", "main .error");
    assert!(refusal.contains("does not verify against this CA"), "{refusal}");
    assert!(
        refusal.contains("Fix: ") && !refusal.contains("`gatehouse "),
        "the panel gives the fix in its own words, never a CLI command: {refusal}"
    );
    assert_eq!(
        std::fs::read(certs.server_cert()).unwrap(),
        served,
        "nothing was replaced"
    );
    panel.fill(
        "input[placeholder='/home/you/certs/company-ca.pem']",
        company_ca.to_str().unwrap(),
    );
    panel.click("main", "Import and turn TLS on");
    panel.wait_for(
        "the import done and TLS on",
        "return document.querySelector('main .notice')?.textContent.includes('TLS is on')",
        Duration::from_secs(10),
    );
    panel.click("nav", "Dashboard");
    panel.click("nav", "Certificates");
    panel.wait_for(
        "the imported certificate marked as such",
        "return [...document.querySelectorAll('table tbody td')].some(td => td.textContent === 'Server (imported)')",
        Duration::from_secs(10),
    );
    assert_eq!(
        panel.script("return [...document.querySelectorAll('main button')].some(b => b.textContent.includes('Renew server'))"),
        json!(false),
        "no renewal is offered for an imported certificate"
    );
    wait_until_within(
        "the server serving the imported certificate",
        Duration::from_secs(30),
        || status_with_key(&url, &key, &company_ca) == 200,
    );
    panel.screenshot("certificates-imported");
    panel.click("main", "Use a local-CA certificate instead");
    panel.wait_for(
        "the switch back to the local CA",
        "return document.querySelector('.notice')?.textContent.includes('certificate from the local CA')",
        Duration::from_secs(10),
    );
    assert!(gatehouse_core::certs::issued_by_local_ca(
        &certs,
        &certs.server_cert()
    ));
    wait_until_within(
        "the server serving the local CA's certificate again",
        Duration::from_secs(5),
        || status_with_key(&url, &key, &ca) == 200,
    );

    // Models: the repository through the user's key, and "try it" on some Rust.
    panel.click("nav", "Models");
    panel.wait_for(
        "magika listed as ready",
        "return [...document.querySelectorAll('table tr')].some(r => r.textContent.includes('magika') && r.textContent.includes('ready'))",
        Duration::from_secs(20),
    );
    panel.fill(
        "form.paste textarea",
        "use std::collections::HashMap;\n\nfn main() {\n    let mut counts: HashMap<&str, u32> = HashMap::new();\n    for word in \"a b a\".split(' ') {\n        *counts.entry(word).or_default() += 1;\n    }\n    println!(\"{counts:?}\");\n}\n",
    );
    panel.click("form", "Classify text");
    let label = panel.text_of("the classification", ".result .label");
    assert_eq!(label, "rust", "magika names Rust source");
    let curl = panel.text_of("the curl line", ".result code.curl");
    assert!(
        curl.contains("--cacert") && curl.contains("/v2/models/magika/infer"),
        "{curl}"
    );
    panel.screenshot("models");

    // Workflows: the switch, off; custom Python turned on outside the panel fails its item and
    // one click on Fix turns it off again.
    panel.click("nav", "Workflows");
    panel.wait_for(
        "the custom-Python switch",
        "return document.querySelector('input[role=switch]:not(:disabled)')",
        Duration::from_secs(10),
    );
    panel.screenshot("workflows");
    panel.click("nav", "Dashboard");
    let output = gatehouse(
        panel.home.path(),
        &["settings", "set", "workflows.allow_custom_python", "true"],
    );
    assert!(output.status.success());
    panel.wait_for(
        "the custom-Python item failing",
        &item_is("Custom Python in workflows is off", "fail"),
        Duration::from_secs(60),
    );
    panel.screenshot("dashboard-failing");
    // With Python on, the page lists what the running server reports, and the layer this
    // server lacks is shown as missing, not as in force.
    panel.click("nav", "Workflows");
    let missing = panel.wait_for(
        "the missing sandbox layer",
        "const items = [...document.querySelectorAll('.layers li')].map(li => li.innerText); \
         return items.some(t => t.includes('namespaces') && t.includes('missing')) && items.join('\\n')",
        Duration::from_secs(30),
    );
    let missing = missing.as_str().unwrap();
    assert!(
        missing.contains("seccomp")
            && !missing
                .lines()
                .any(|l| l.contains("namespaces") && l.starts_with('✓')),
        "{missing}"
    );
    panel.screenshot("workflows-missing-layer");
    panel.click("nav", "Dashboard");
    panel.click("Custom Python in workflows is off", "Fix");
    panel.wait_for(
        "the custom-Python item passing again",
        &item_is("Custom Python in workflows is off", "pass"),
        Duration::from_secs(60),
    );
    let settings = gatehouse_core::Settings::load(&panel.home.path().join("settings.toml")).unwrap();
    assert!(!settings.workflows.allow_custom_python);

    // Stop and start from the panel.
    panel.click("header", "Stop");
    panel.wait_for_state("the server stopping", "Stopped", Duration::from_secs(20));
    assert_fails(
        answer_with_key(&url, &rotated, &ca),
        &[7],
        "failed to connect",
        "nothing answers once stopped",
    );
    panel.click("header", "Start");
    panel.wait_for_state("the server ready again", "Ready", Duration::from_secs(60));
    // Its gRPC port is shown beside the URL, read from the same `listening` line.
    let grpc = panel.wait_for(
        "the gRPC address beside the URL",
        "const c = document.querySelector('.state code.grpc'); return c && c.textContent",
        Duration::from_secs(10),
    );
    let grpc = grpc.as_str().unwrap();
    assert!(
        grpc.starts_with("127.0.0.1:")
            && grpc
                .rsplit(':')
                .next()
                .unwrap()
                .parse::<u16>()
                .is_ok_and(|p| p != 0),
        "{grpc}"
    );

    // Someone guesses keys: one security event on the Events page, and one desktop notification
    // (raised through the notification service; under Xvfb none answers, which the page says).
    for guess in 0..12 {
        let status = status_with_key(&url, &format!("gth_guess{guess:03}notakey"), &ca);
        assert!(matches!(status, 401 | 429), "guess {guess}: {status}");
    }
    panel.click("nav", "Events");
    panel.wait_for(
        "the burst on the Events page",
        "return [...document.querySelectorAll('ul.events li')].find(li => li.textContent.includes('failed authentications from 127.0.0.1'))",
        Duration::from_secs(20),
    );
    // Notifications come at most every 30 s, so an earlier one may hold this one back that long.
    panel.wait_for(
        "the notification it raised",
        "return [...document.querySelectorAll('.notes li')].find(li => li.textContent.includes('failed authentications'))",
        Duration::from_secs(45),
    );
    let page = panel.text_of("the Events page", "main");
    assert!(
        !page.contains("gth_guess"),
        "no key that was tried is shown: {page}"
    );
    panel.screenshot("events");

    panel.click("nav", "Logs");
    panel.wait_for(
        "the log page",
        "return document.querySelector('ul.lines li')",
        Duration::from_secs(10),
    );
    panel.screenshot("logs");
    // A line's fields show beside its message, and the search reaches them.
    panel.fill("input[type=search]", "model=magika");
    panel.wait_for(
        "only the lines about magika",
        "const lines = [...document.querySelectorAll('ul.lines li')]; \
         return lines.length > 0 && lines.every(li => li.textContent.includes('model=magika'))",
        Duration::from_secs(10),
    );
    // The audit log beside it, its chain checked: the guesses above are in it, without a key.
    panel.click("main", "Audit log");
    let chain = panel.text_of("the audit chain's verdict", "p.chain");
    assert!(chain.contains("The audit chain is whole"), "{chain}");
    panel.wait_for(
        "the refused guesses in the audit log",
        "return [...document.querySelectorAll('ul.audit li')].some(li => li.textContent.includes('401 malformed'))",
        Duration::from_secs(10),
    );
    assert!(
        !panel.text_of("the audit lines", "ul.audit").contains("gth_"),
        "no key in the audit view"
    );
    panel.screenshot("audit");

    // SIGTERM (a desktop session ending) quits the way the tray's Quit does: the server stops,
    // and the window's size is saved and comes back at the next launch.
    panel.call(
        reqwest::Method::POST,
        "/window/rect",
        Some(json!({"width": 1040, "height": 720})),
    );
    wait_until_within("the window resized", Duration::from_secs(5), || {
        panel.call(reqwest::Method::GET, "/window/rect", None)["width"] == json!(1040)
    });
    let app = panel.app_pid();
    let signalled = Command::new("kill")
        .args(["-TERM", &app.to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    wait_until_within("the app quitting on SIGTERM", Duration::from_secs(20), || {
        !running(app)
    });
    assert_fails(
        answer_with_key(&url, &rotated, &ca),
        &[7],
        "failed to connect",
        "the server stopped with the app",
    );
    let saved = panel
        .home
        .path()
        .join("xdg-config/dev.gatehouse.panel/.window-state.json");
    let saved = std::fs::read_to_string(&saved)
        .unwrap_or_else(|e| panic!("no window state at {}: {e}", saved.display()));
    assert!(saved.contains("1040"), "{saved}");
    panel.relaunch();
    panel.wait_for(
        "the dashboard after the relaunch",
        "return document.querySelector('nav')",
        Duration::from_secs(30),
    );
    let rect = panel.call(reqwest::Method::GET, "/window/rect", None);
    assert_eq!(
        (&rect["width"], &rect["height"]),
        (&json!(1040), &json!(720)),
        "the window opens at the size it was left at: {rect}"
    );
    eprintln!("panel screenshots: {}", artifacts().display());
}

/// Whether process `pid` still runs (a zombie waiting for its parent to reap it does not).
/// The `gatehouse` processes whose parent is `parent`.
fn servers_started_by(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // `pid (comm) state ppid …`; comm may hold spaces, so read after its closing paren.
            let comm = stat.split_once('(').and_then(|(_, rest)| rest.rsplit_once(')'));
            comm.is_some_and(|(name, rest)| {
                name == "gatehouse"
                    && rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent)
            })
        })
        .collect()
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").split_whitespace().next();
            !matches!(state, Some("Z" | "X"))
        })
        .unwrap_or(false)
}

#[test]
fn the_wizard_guards_a_server_already_running_and_the_dashboard_shows_it() {
    // An OpenAI-style server already running on this computer, answering anyone.
    let port = free_port();
    let mut upstream = Killed(
        Command::new(crate::util::upstreams_python())
            .arg(format!("{}/e2e/upstreams/echo.py", env!("CARGO_MANIFEST_DIR")))
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_within("the upstream answers", Duration::from_secs(30), || {
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/health")).is_ok_and(|r| r.status() == 200)
    });
    let panel = Panel::start_with(&[("GATEHOUSE_DETECT_PORTS", &port.to_string())]);

    // The wizard finds it, says what it is and that it answers without a key.
    let found = panel.wait_for(
        "the running server in the wizard",
        "const l = [...document.querySelectorAll('.wizard label.detected')]; return l.length === 1 && l[0].textContent",
        Duration::from_secs(30),
    );
    let found = found.as_str().unwrap();
    assert!(found.contains("an OpenAI-compatible server"), "{found}");
    assert!(found.contains(&format!("127.0.0.1:{port}")), "{found}");
    assert!(found.contains("answers without a key: GET /v1/models"), "{found}");
    panel.click_xpath("//label[contains(@class,'detected')]//input");
    panel.screenshot("wizard-server-guard");
    panel.click("wizard", "Next");
    let settings = gatehouse_core::Settings::load(&panel.home.path().join("settings.toml")).unwrap();
    assert_eq!(
        settings.guard.upstream.as_deref(),
        Some(&*format!("http://127.0.0.1:{port}"))
    );
    assert_eq!(settings.guard.preset, "openai");

    panel.wait_for(
        "the network step",
        "return document.querySelector('.wizard h2')?.textContent.includes('Who may connect')",
        Duration::from_secs(10),
    );
    panel.click("wizard", "Next");
    panel.click("wizard", "Create my first key");
    let key = panel.text_of("the first key", ".created code.secret");
    // The line to try it calls the guarded server's own model list.
    panel.wait_for(
        "a curl line for the guarded server",
        "return document.querySelector('.created code.curl')?.textContent.endsWith('/v1/models')",
        Duration::from_secs(10),
    );
    panel.click("wizard", "Next");
    panel.wait_for(
        "the TLS step",
        "return document.querySelector('.wizard h2')?.textContent.includes('TLS')",
        Duration::from_secs(10),
    );
    panel.click("wizard", "Next");
    panel.wait_for(
        "the custom-Python step",
        "return document.querySelector('.wizard input[role=switch]')",
        Duration::from_secs(10),
    );
    panel.click("wizard", "Next");

    // Review: the guard runs and the checklist proves it and the server behind it.
    panel.wait_for_state("the guard ready in the review", "Ready", Duration::from_secs(60));
    for title in [
        "The guarded server is reached only through Gatehouse",
        "Routes that change the guarded server need an admin key",
        "Protected endpoints demand a valid key",
    ] {
        panel.wait_for(
            &format!("{title} passing"),
            &item_is(title, "pass"),
            Duration::from_secs(60),
        );
    }
    panel.click("wizard", "Finish and open the dashboard");
    let line = panel.wait_for(
        "the dashboard naming the guarded server",
        &format!(
            "const g = document.querySelector('.guarding'); return g && g.textContent.includes('127.0.0.1:{port}') && g.textContent"
        ),
        Duration::from_secs(20),
    );
    assert!(line.as_str().unwrap().contains("openai preset"), "{line}");
    panel.screenshot("dashboard-guard");

    // And the server is behind it: no key, Gatehouse's refusal; the wizard's key, the server's answer.
    let url = panel.server_url();
    let client = reqwest::blocking::Client::new();
    let anonymous = client.get(format!("{url}/v1/models")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    let answer: Value = client
        .get(format!("{url}/v1/models"))
        .bearer_auth(&key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["data"][0]["id"], "echo", "{answer}");
    drop(panel);
    let _ = upstream.0.kill();
}

#[test]
fn the_wizard_launches_roboflow_inference_and_its_switch_restarts_it_with_custom_python_on() {
    // Roboflow Inference installed the way pip leaves it: its `inference` command on PATH.
    let path = crate::util::path_with_roboflow();
    let nobody = free_port().to_string();
    let panel = Panel::start_with(&[("PATH", &path), ("GATEHOUSE_DETECT_PORTS", &nobody)]);

    // "A server Gatehouse starts", Roboflow Inference: found installed, started with its own command.
    panel.click_xpath(
        "//label[contains(@class,'choice')][.//strong[normalize-space(.)='A server Gatehouse starts']]//input",
    );
    panel.choose(".launch select", "roboflow");
    let about = panel.wait_for(
        "Roboflow Inference found installed",
        "const p = document.querySelector('.launch .about'); return p && p.textContent.includes('Installed') && p.textContent",
        Duration::from_secs(10),
    );
    assert!(
        about.as_str().unwrap().contains("roboflow-venv/bin/inference"),
        "{about}"
    );
    panel.wait_for(
        "the preset's own command in the field",
        "return document.querySelector('.launch input[type=text]')?.value === '{preset}'",
        Duration::from_secs(10),
    );
    let note = panel.text_of("what happens to Roboflow's own api_key", ".consequence.roboflow");
    assert!(note.contains("api_key") && note.contains("untouched"), "{note}");
    panel.screenshot("wizard-roboflow");
    panel.click("wizard", "Next");
    let settings = gatehouse_core::Settings::load(&panel.home.path().join("settings.toml")).unwrap();
    assert_eq!(settings.guard.preset, "roboflow");
    assert_eq!(settings.guard.launch, vec!["{preset}".to_string()]);

    panel.wait_for(
        "the network step",
        "return document.querySelector('.wizard h2')?.textContent.includes('Who may connect')",
        Duration::from_secs(10),
    );
    panel.click("wizard", "Next");
    panel.click("wizard", "Create my first key");
    let key = panel.text_of("the first key", ".created code.secret");
    // The first key may run workflows too: that is what Roboflow Inference is for.
    let listed = gatehouse(panel.home.path(), &["keys", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["scopes"], json!(["infer", "workflows"]), "{listed}");
    panel.click("wizard", "Next");
    panel.wait_for(
        "the TLS step",
        "return document.querySelector('.wizard h2')?.textContent.includes('TLS')",
        Duration::from_secs(10),
    );
    panel.click("wizard", "Next");
    let risk = panel.text_of("the custom-Python step", "#python-risk");
    assert!(
        risk.contains("ALLOW_CUSTOM_PYTHON_EXECUTION_IN_WORKFLOWS"),
        "{risk}"
    );
    panel.click("wizard", "Next");

    // Review: Roboflow Inference ready behind the guard, its guide's controls proved.
    panel.wait_for_state("the guard ready in the review", "Ready", Duration::from_secs(180));
    for title in [
        "Workflows cannot bring code to the guarded server",
        "The guarded server's own security guide is applied",
        "The guarded server is reached only through Gatehouse",
    ] {
        panel.wait_for(
            &format!("{title} passing"),
            &item_is(title, "pass"),
            Duration::from_secs(90),
        );
    }
    panel.screenshot("wizard-roboflow-review");
    panel.click("wizard", "Finish and open the dashboard");

    let url = panel.server_url();
    let python = json!({
        "specification": {
            "version": "1.0", "inputs": [],
            "dynamic_blocks_definitions": [{
                "type": "DynamicBlockDefinition",
                "manifest": {"type": "ManifestDescription", "block_type": "Answer", "inputs": {},
                             "outputs": {"answer": {"type": "DynamicOutputDefinition", "kind": []}}},
                "code": {"type": "PythonCode", "run_function_code": "def run(self) -> BlockResult:\n    return {'answer': 6 * 7}\n"}
            }],
            "steps": [{"type": "Answer", "name": "answer"}],
            "outputs": [{"type": "JsonField", "name": "answer", "selector": "$steps.answer.answer"}]
        },
        "inputs": {}
    });
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let submit = || {
        client
            .post(format!("{url}/workflows/run"))
            .bearer_auth(&key)
            .json(&python)
            .send()
            .ok()
            .map(|r| (r.status().as_u16(), r.json::<Value>().unwrap_or(Value::Null)))
    };
    let (status, body) = submit().expect("the guard answers");
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("custom_python_disabled")),
        "{body}"
    );

    // The switch on the Workflows page: Roboflow restarts with its flag on and runs the block.
    panel.click("nav", "Workflows");
    panel.click_xpath("//input[@role='switch']");
    wait_until_within(
        "the custom Python block to run in the restarted Roboflow Inference",
        Duration::from_secs(180),
        || submit().is_some_and(|(status, body)| status == 200 && body["outputs"] == json!([{"answer": 42}])),
    );
    panel.click("nav", "Dashboard");
    panel.wait_for(
        "the checklist seeing custom Python on",
        &item_is("Workflows cannot bring code to the guarded server", "fail"),
        Duration::from_secs(90),
    );
    panel.screenshot("dashboard-roboflow-python-on");
}
