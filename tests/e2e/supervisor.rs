//! `gatehouse supervise` keeping the real server running: restarts after SIGKILL, the crash-loop
//! stop, the server dying with a SIGKILLed supervisor, a port in use reported and not retried,
//! graceful stops, restarts on settings changes, and no process left behind.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{certs, data_dir, default_models, gatehouse, gatehouse_bin};

/// A running `gatehouse supervise --json`, with its events collected; killed on drop.
pub(crate) struct Supervise {
    pub(crate) child: Child,
    pub(crate) home: tempfile::TempDir,
    pub(crate) events: Arc<Mutex<Vec<Value>>>,
}

impl Supervise {
    pub(crate) fn start(args: &[&str]) -> Supervise {
        Self::start_with_env(args, &[])
    }

    pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Supervise {
        let home = tempfile::tempdir().unwrap();
        let mut command = Command::new(gatehouse_bin());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .args(["supervise", "--json", "--models"])
            .arg(default_models())
            .args(args)
            .env("GATEHOUSE_HOME", home.path())
            .env("GATEHOUSE_DATA", data_dir())
            .env("GATEHOUSE_PROBE_ADDRESSES", "127.0.0.2")
            .env_remove("HOST")
            .env_remove("PORT")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(event);
                }
            }
        });
        Supervise { child, home, events }
    }

    pub(crate) fn states(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "state")
            .cloned()
            .collect()
    }

    /// Waits for the `n`th (1-based) state event with this state; returns it.
    pub(crate) fn wait_for(&self, state: &str, n: usize, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let matching: Vec<Value> = self
                .states()
                .into_iter()
                .filter(|s| s["state"] == state)
                .collect();
            if matching.len() >= n {
                return matching[n - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {state} #{n} within {within:?}; states so far: {:#?}",
                self.states()
                    .iter()
                    .map(|s| format!("{} {}", s["state"], s["reason"]))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "supervise did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Supervise {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn signal(pid: u64, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// True while `pid` is a live process (a zombie waiting to be reaped counts as gone: it no longer
/// runs or holds a port).
pub(crate) fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

#[track_caller]
fn assert_gone(pid: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Zombie children of `parent`: processes whose parent it is and that are dead but not reaped.
pub(crate) fn zombies_of(parent: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&parent.to_string().as_str()) {
            found.push(stat);
        }
    }
    found
}

pub(crate) fn pid_of(status: &Value) -> u64 {
    status["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no pid in {status}"))
}

#[test]
fn a_killed_server_is_restarted_until_a_crash_loop_stops_it() {
    let mut supervise = Supervise::start(&["--port", "0"]);
    let mut pid = pid_of(&supervise.wait_for("ready", 1, Duration::from_secs(60)));
    let url = supervise.wait_for("ready", 1, Duration::ZERO)["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    for crash in 1..=4 {
        signal(pid, "KILL");
        let crashed = supervise.wait_for("crashed", crash, Duration::from_secs(30));
        let reason = crashed["reason"].as_str().unwrap();
        assert!(reason.contains("signal 9 (SIGKILL)"), "{reason}");
        assert!(crashed["next_restart_ms"].as_u64().is_some(), "{crashed}");
        let ready = supervise.wait_for("ready", crash + 1, Duration::from_secs(60));
        assert_eq!(ready["restarts"], crash as u64);
        let new_pid = pid_of(&ready);
        assert_ne!(new_pid, pid, "a new process after crash {crash}");
        assert!(!alive(pid));
        pid = new_pid;
    }
    // The fifth crash within a minute ends the restarts, quoting the server's last lines.
    signal(pid, "KILL");
    let looping = supervise.wait_for("crash-looping", 1, Duration::from_secs(30));
    let reason = looping["reason"].as_str().unwrap();
    assert!(reason.contains("crashed 5 times within 60 s"), "{reason}");
    assert!(
        reason.contains("models loaded"),
        "the last lines are quoted: {reason}"
    );
    let status = supervise.wait_exit(Duration::from_secs(15));
    assert_eq!(
        status.code(),
        Some(1),
        "supervise reports the crash loop in its exit status"
    );
    assert!(zombies_of(supervise.child.id()).is_empty());
}

#[test]
fn killing_the_supervisor_takes_the_server_with_it() {
    // At log level warn the server still announces its address, which the supervisor needs.
    let mut supervise = Supervise::start_with_env(&["--port", "0"], &[("GATEHOUSE_LOG", "warn")]);
    let ready = supervise.wait_for("ready", 1, Duration::from_secs(60));
    let pid = pid_of(&ready);
    let port: u16 = ready["url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    supervise.child.kill().unwrap();
    supervise.child.wait().unwrap();
    assert_gone(pid, Duration::from_secs(15));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on the port any more"
    );
}

#[test]
fn a_port_in_use_is_reported_with_its_holder_and_not_retried() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let mut supervise = Supervise::start(&["--port", &port]);
    let status = supervise.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1));
    let last = supervise.states().last().cloned().unwrap();
    assert_eq!(last["state"], "crashed", "{last}");
    assert!(last["next_restart_ms"].is_null(), "not retried: {last}");
    let reason = last["reason"].as_str().unwrap();
    assert!(reason.contains("same error, so it is not retried"), "{reason}");
    assert!(
        reason.contains(&format!("port {port}")) && reason.contains("already in use"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("(pid {})", std::process::id())),
        "names the holder: {reason}"
    );
    let crashes = supervise
        .states()
        .iter()
        .filter(|s| s["state"] == "crashed")
        .count();
    assert_eq!(crashes, 2, "one retry, then the report");
}

#[test]
fn sigterm_stops_the_server_gracefully_and_a_settings_change_restarts_it() {
    let mut supervise = Supervise::start(&["--port", "0"]);
    let first = pid_of(&supervise.wait_for("ready", 1, Duration::from_secs(60)));

    // A changed setting that makes the checklist fail: restarted, then degraded.
    let output = gatehouse(
        supervise.home.path(),
        &["settings", "set", "workflows.allow_custom_python", "true"],
    );
    assert!(output.status.success());
    let audit = std::fs::read_to_string(supervise.home.path().join("audit/audit.jsonl")).unwrap();
    let change = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "setting_changed")
        .expect("the switch change is audited");
    assert_eq!(change["key"], "workflows.allow_custom_python");
    assert_eq!(
        (change["value"].as_str(), change["previous"].as_str()),
        (Some("true"), Some("false"))
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !supervise.states().iter().any(|s| {
        s["state"] == "starting"
            && s["reason"]
                .as_str()
                .is_some_and(|r| r.contains("settings changed"))
    }) {
        assert!(Instant::now() < deadline, "no restart after the settings change");
        std::thread::sleep(Duration::from_millis(20));
    }
    let degraded = supervise.wait_for("degraded", 1, Duration::from_secs(60));
    assert!(
        degraded["reason"]
            .as_str()
            .unwrap()
            .contains("workflows.custom_python"),
        "{degraded}"
    );
    let second = pid_of(&degraded);
    assert_ne!(first, second);
    assert!(!alive(first));

    signal(supervise.child.id() as u64, "TERM");
    let started = Instant::now();
    let status = supervise.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(11),
        "within the stop timeout"
    );
    let stopped = supervise.states().last().cloned().unwrap();
    assert_eq!(stopped["state"], "stopped");
    assert!(!alive(second));
    // The server shut down on its own terms: its last log lines say so.
    let logs: Vec<Value> = supervise
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "log")
        .cloned()
        .collect();
    assert!(
        logs.iter().any(|l| l["fields"]["event"] == "stopped"),
        "the server logged its graceful stop"
    );
    let samples = supervise
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "sample")
        .count();
    assert!(samples > 0, "metrics samples were published");
}

/// The auth-failure counter of the server's `/metrics`.
fn auth_failures_at(url: &str) -> f64 {
    let text = reqwest::blocking::get(format!("{url}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("gatehouse_auth_failures_total"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn the_charts_leave_out_the_checklist_s_own_probes_but_not_a_caller_s_failures() {
    // Samples every 25 ms: many land while a checklist run is still sending its probes. On a
    // loopback address of its own: other tests pick ports on 127.0.0.1 and poll them, and one
    // that lands on this server's port would be a caller the charts rightly show.
    let supervise = Supervise::start(&[
        "--host",
        "127.0.0.3",
        "--port",
        "0",
        "--check-every",
        "1",
        "--sample-every-ms",
        "25",
    ]);
    let url = supervise.wait_for("ready", 1, Duration::from_secs(60))["url"]
        .as_str()
        .unwrap()
        .to_string();
    let count = |kind: &str| {
        let events = supervise.events.lock().unwrap();
        events.iter().filter(|e| e["type"] == kind).count()
    };
    let auth_failure_rates = |from: usize| -> Vec<f64> {
        let events = supervise.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e["type"] == "sample")
            .skip(from)
            .map(|e| e["auth_failures_per_second"].as_f64().unwrap_or(-1.0))
            .collect()
    };
    // Several checklist runs while samples are taken; each run sends requests without a key and
    // with a wrong one, which the server counts.
    let (samples, checks) = (count("sample"), count("checklist"));
    crate::util::wait_until_within("four checklist runs", Duration::from_secs(20), || {
        count("checklist") >= checks + 4 && count("sample") >= samples + 4
    });
    assert!(auth_failures_at(&url) >= 8.0, "the probes reached the server");
    let rates = auth_failure_rates(samples);
    assert!(
        rates.iter().all(|&rate| rate == 0.0),
        "the checklist's probes show up as auth failures: {rates:?}"
    );
    let idle: Vec<Value> = supervise.events.lock().unwrap()[..]
        .iter()
        .filter(|e| e["type"] == "sample")
        .skip(samples)
        .cloned()
        .collect();
    assert!(
        idle.iter()
            .all(|e| e["requests_per_second"] == 0.0 && e["p50_ms"].is_null()),
        "with no caller the charts show no requests and no latency: {idle:?}"
    );

    // A caller's wrong key is charted.
    let seen = count("sample");
    let status = reqwest::blocking::Client::new()
        .get(format!("{url}/v2"))
        .bearer_auth("gth_notarealkeynotarealkeynotarealkeynotarealkey00")
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 401);
    crate::util::wait_until_within(
        "the caller's failure in a sample",
        Duration::from_secs(10),
        || auth_failure_rates(seen).iter().any(|&rate| rate > 0.0),
    );
}

#[test]
fn certificates_made_after_the_supervisor_started_are_used_when_it_next_starts_the_server() {
    // The panel launches before its wizard makes any certificate. Once TLS with mutual TLS is on,
    // the supervisor's readiness probe must present the client certificate made since, or the
    // server refuses it in the handshake and never counts as ready.
    let supervise = Supervise::start(&["--port", "0"]);
    supervise.wait_for("ready", 1, Duration::from_secs(60));
    let home = supervise.home.path();
    certs(home, &["init"]);
    certs(home, &["issue-client", "panel"]);
    let ca = home.join("certs/ca.pem");
    for (key, value) in [("tls.enabled", "true"), ("tls.client_ca", ca.to_str().unwrap())] {
        let output = gatehouse(home, &["settings", "set", key, value]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !supervise
        .states()
        .iter()
        .any(|s| s["state"] == "ready" && s["url"].as_str().is_some_and(|u| u.starts_with("https://")))
    {
        assert!(
            Instant::now() < deadline,
            "the server never became ready over mutual TLS; states: {:#?}",
            supervise
                .states()
                .iter()
                .map(|s| format!("{} {} {}", s["state"], s["url"], s["reason"]))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
