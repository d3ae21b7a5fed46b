//! Faults: the server killed with SIGKILL over and over under load while the supervisor runs and
//! settings and keys are being changed; the config directory on a full filesystem and on a
//! read-only one; the keychain absent or locked; `settings.toml` and `keys.toml` damaged while in
//! use. Each ends in a clear error within 5 s, or in a working server, and never in lost or
//! corrupt settings and keys or a process left behind.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{budget, section};
use crate::supervisor::{Supervise, alive, pid_of, signal, zombies_of};
use crate::util::{data_dir, gatehouse, gatehouse_bin};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The pids of `gatehouse` processes whose environment names `home`: what a run left behind.
fn processes_of(home: &Path) -> Vec<u32> {
    let marker = format!("GATEHOUSE_HOME={}", home.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| alive(u64::from(*pid)))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
        })
        .collect()
}

fn keys_json(home: &Path, args: &[&str]) -> Value {
    let output = gatehouse(home, &[&["keys"], args, &["--json"]].concat());
    assert!(
        output.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn sigmoid_request() -> String {
    json!({"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32", "data": vec![0.25f32; 60]}]})
        .to_string()
}

/// Runs `program` with a 5 s bound; its output and how long it took.
fn bounded(mut command: Command) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("{command:?} did not finish within 5 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (child.wait_with_output().unwrap(), started.elapsed())
}

fn cli(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(gatehouse_bin());
    command
        .args(args)
        .env("GATEHOUSE_HOME", home)
        .env("GATEHOUSE_DATA", data_dir());
    command
}

const BUS_WITHOUT_SERVICES: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

/// A small filesystem of its own mounted on a fresh directory, unmounted on drop.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs(size: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "mounting a tmpfs needs root, as the test command runs in CI: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Mount { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let output = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

/// A config directory with settings and one key, on `dir`; the files' bytes to compare with.
fn seed(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    assert!(
        gatehouse(dir, &["settings", "set", "limits.max_body_bytes", "4000000"])
            .status
            .success()
    );
    keys_json(
        dir,
        &["create", "--name", "kept", "--scope", "infer", "--no-keychain"],
    );
    (
        std::fs::read(dir.join("settings.toml")).unwrap(),
        std::fs::read(dir.join("keys.toml")).unwrap(),
    )
}

/// Settings and key changes on a directory that cannot take them: each refused clearly and fast,
/// the files as they were. Returns the report's rows.
fn refused_on(dir: &Path, condition: &str, expect: &[&str], rows: &mut Vec<String>) {
    let before = (
        std::fs::read(dir.join("settings.toml")).unwrap(),
        std::fs::read(dir.join("keys.toml")).unwrap(),
    );
    for (what, args) in [
        (
            "settings set",
            vec!["settings", "set", "limits.max_body_bytes", "5000000"],
        ),
        (
            "keys create",
            vec![
                "keys",
                "create",
                "--name",
                "new",
                "--scope",
                "infer",
                "--no-keychain",
            ],
        ),
    ] {
        let (output, took) = bounded(cli(dir, &args));
        let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
        assert!(
            !output.status.success(),
            "{what} on {condition} succeeded: {said}"
        );
        assert!(
            expect.iter().any(|e| said.to_lowercase().contains(e)),
            "{what} on {condition}: the error does not say why: {said}"
        );
        let after = (
            std::fs::read(dir.join("settings.toml")).unwrap(),
            std::fs::read(dir.join("keys.toml")).unwrap(),
        );
        assert!(
            after == before,
            "{what} on {condition} changed the files it could not write"
        );
        rows.push(format!(
            "| {condition} | `{}` | refused in {:.0} ms: \"{}\" | unchanged |",
            args.join(" "),
            took.as_secs_f64() * 1000.0,
            said.lines().next().unwrap_or("").replace('|', "\\|")
        ));
    }
}

#[test]
fn kill_9_disks_keychains_and_damaged_files_never_lose_settings_or_keys() {
    let kills = budget(5, 100);
    let mut rows = Vec::new();

    // 1. SIGKILL under load, while settings and keys change.
    let port = free_port();
    let port_text = port.to_string();
    let mut supervise = Supervise::start(&[
        "--port",
        &port_text,
        "--crash-limit",
        "10000",
        "--check-every",
        "3600",
    ]);
    let home = supervise.home.path().to_path_buf();
    supervise.wait_for("ready", 1, Duration::from_secs(60));
    let key = keys_json(
        &home,
        &["create", "--name", "load", "--scope", "infer", "--no-keychain"],
    )["key"]
        .as_str()
        .unwrap()
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let (served, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, served, refused, key) = (stop.clone(), served.clone(), refused.clone(), key.clone());
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let url = format!("http://127.0.0.1:{port}/v2/models/sigmoid/infer");
            let body = sigmoid_request();
            while !stop.load(Ordering::Relaxed) {
                let ok = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .is_ok_and(|r| r.status() == 200);
                if ok { &served } else { &refused }.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    // Settings and keys change all along, each through the CLI (a process of its own, as a person
    // or the panel would), racing the kills.
    let expected = Arc::new(Mutex::new((
        String::new(),
        Vec::<String>::new(),
        Vec::<String>::new(),
    )));
    let mutator = {
        let (stop, expected, home) = (stop.clone(), expected.clone(), home.clone());
        std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let value = (4_000_000 + round).to_string();
                if gatehouse(&home, &["settings", "set", "limits.max_body_bytes", &value])
                    .status
                    .success()
                {
                    expected.lock().unwrap().0 = value;
                }
                let created = gatehouse(
                    &home,
                    &[
                        "keys",
                        "create",
                        "--name",
                        &format!("churn{round}"),
                        "--scope",
                        "infer",
                        "--no-keychain",
                        "--json",
                    ],
                );
                if let Ok(created) = serde_json::from_slice::<Value>(&created.stdout) {
                    let id = created["id"].as_str().unwrap().to_string();
                    if round.is_multiple_of(2) && gatehouse(&home, &["keys", "revoke", &id]).status.success()
                    {
                        expected.lock().unwrap().2.push(id);
                    } else {
                        expected.lock().unwrap().1.push(id);
                    }
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            round
        })
    };
    let mut to_ready = Vec::new();
    for round in 0..kills {
        // Most kills come 0.2 s after a start; every fourth after 1.5 s, long enough for a
        // settings change to restart the server first, so kills also land on those restarts.
        std::thread::sleep(Duration::from_millis(if round % 4 == 3 { 1500 } else { 200 }));
        // The server as it is now: a settings change may have replaced the one that was ready.
        crate::util::wait_until_within("the server ready to be killed", Duration::from_secs(60), || {
            supervise.states().last().is_some_and(|s| s["state"] == "ready")
        });
        let pid = pid_of(supervise.states().last().unwrap());
        let readies = supervise
            .states()
            .iter()
            .filter(|s| s["state"] == "ready")
            .count();
        signal(pid, "KILL");
        let killed = Instant::now();
        let ready = supervise.wait_for("ready", readies + 1, Duration::from_secs(60));
        to_ready.push(killed.elapsed());
        assert_ne!(pid_of(&ready), pid);
        assert!(!alive(pid), "the killed server {pid} is still there");
    }
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let rounds = mutator.join().unwrap();
    let ready_count = supervise
        .states()
        .iter()
        .filter(|s| s["state"] == "ready")
        .count();
    // Restarts beyond the kills' were the settings changes'.
    let deliberate = ready_count.saturating_sub(kills + 1);
    let failed_starts = supervise
        .states()
        .iter()
        .filter(|s| s["state"] == "crashed" && !s["reason"].as_str().unwrap_or("").contains("SIGKILL"))
        .count();
    assert_eq!(failed_starts, 0, "a restart failed: {:#?}", supervise.states());

    // Nothing lost or damaged: both files parse, the last settings written are there, every key
    // created is there, revoked ones revoked, and the load's key still works.
    let (last_value, active, revoked) = expected.lock().unwrap().clone();
    let settings = gatehouse_core::Settings::load(&home.join("settings.toml")).expect("settings.toml parses");
    assert_eq!(settings.limits.max_body_bytes.to_string(), last_value);
    let listed = keys_json(&home, &["list"]);
    let state_of = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .map(|k| k["state"].as_str().unwrap().to_string())
    };
    for id in &active {
        assert_eq!(state_of(id).as_deref(), Some("active"), "key {id} was lost");
    }
    for id in &revoked {
        assert_eq!(
            state_of(id).as_deref(),
            Some("revoked"),
            "key {id}'s revocation was lost"
        );
    }
    let client = reqwest::blocking::Client::new();
    let infer = |key: &str| {
        client
            .post(format!("http://127.0.0.1:{port}/v2/models/sigmoid/infer"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(sigmoid_request())
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    crate::util::wait_until("the server answers after the last kill", || infer(&key) == 200);
    let p50 = {
        let mut sorted = to_ready.clone();
        sorted.sort();
        sorted[sorted.len() / 2]
    };
    let slowest = to_ready.iter().max().copied().unwrap_or_default();
    // The supervisor waits before each restart, longer as crashes pile up within a minute
    // (exponential backoff, capped at 10 s): most of kill → ready is that wait, by design.
    let mut waits: Vec<u64> = supervise
        .states()
        .iter()
        .filter(|s| s["state"] == "crashed")
        .filter_map(|s| s["next_restart_ms"].as_u64())
        .collect();
    waits.sort_unstable();
    let (wait_p50, wait_max) = (
        waits.get(waits.len() / 2).copied().unwrap_or(0),
        waits.last().copied().unwrap_or(0),
    );

    // 2. Damaged files while in use: the server keeps the access it had and says which line.
    // First the last settings change the churn made must have been taken up (the supervisor
    // looks at the file every second), so that any restart from here on is the damaged file's.
    std::thread::sleep(Duration::from_millis(1500));
    crate::util::wait_until_within(
        "the server settled after the churn",
        Duration::from_secs(60),
        || supervise.states().last().is_some_and(|s| s["state"] == "ready"),
    );
    let pid = pid_of(supervise.states().last().unwrap());
    let settings_path = home.join("settings.toml");
    let good_settings = std::fs::read(&settings_path).unwrap();
    let mut damaged = good_settings.clone();
    damaged.splice(0..0, b"[server]\nport = \"nine thousand\n".iter().copied());
    std::fs::write(&settings_path, &damaged).unwrap();
    let rejected = |needle: &str| {
        supervise.events.lock().unwrap().iter().any(|e| {
            e["type"] == "log"
                && e.to_string().contains("settings_rejected")
                && e.to_string().contains(needle)
        })
    };
    crate::util::wait_until("the supervisor rejects the damaged settings", || {
        rejected("line 2")
    });
    let settings_said = supervise
        .events
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e.to_string().contains("settings_rejected"))
        .and_then(|e| {
            e["line"]["message"]
                .as_str()
                .or(e["message"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(infer(&key), 200, "damaged settings took the server down");
    assert_eq!(
        pid_of(supervise.states().last().unwrap()),
        pid,
        "damaged settings restarted the server"
    );
    let readies = supervise
        .states()
        .iter()
        .filter(|s| s["state"] == "ready")
        .count();
    std::fs::write(&settings_path, &good_settings).unwrap();
    // The good file again: used at once, by a restart.
    let restarted = supervise.wait_for("ready", readies + 1, Duration::from_secs(60));
    assert_ne!(pid_of(&restarted), pid, "the repaired settings were not taken up");
    let keys_path = home.join("keys.toml");
    let good_keys = std::fs::read(&keys_path).unwrap();
    std::fs::write(
        &keys_path,
        [good_keys.as_slice(), b"\n[[key]]\nid = \"torn"].concat(),
    )
    .unwrap();
    let log_has = |needle: &str| {
        supervise
            .events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "log" && e.to_string().contains(needle))
    };
    crate::util::wait_until("the server rejects the damaged keys", || {
        log_has("keys_reload_failed")
    });
    let keys_said = supervise
        .events
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e.to_string().contains("keys_reload_failed"))
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        keys_said.contains("line"),
        "the keys error names no line: {keys_said}"
    );
    assert_eq!(
        infer(&key),
        200,
        "a damaged keys.toml removed access that existed"
    );
    let reloaded = supervise
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.to_string().contains("\"keys_reloaded\""))
        .count();
    std::fs::write(&keys_path, &good_keys).unwrap();
    crate::util::wait_until("the repaired keys are read again", || {
        supervise
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.to_string().contains("\"keys_reloaded\""))
            .count()
            > reloaded
    });
    assert_eq!(infer(&key), 200);

    signal(u64::from(supervise.child.id()), "TERM");
    let status = supervise.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "supervise ended with {status}");
    assert!(zombies_of(supervise.child.id()).is_empty());
    std::thread::sleep(Duration::from_millis(200));
    let left = processes_of(&home);
    assert!(left.is_empty(), "processes left behind: {left:?}");

    rows.push(format!(
        "| SIGKILL ×{kills} under load, settings and keys changing (`supervise --crash-limit 10000`) | {rounds} settings changes and {keys} key changes by the CLI; {served} inferences served, {refused} refused or unanswered while down | every kill restarted ({deliberate} more restarts for settings changes came between them; {ready_count} readies in all, no start failed); kill → ready p50 {p50:.0} ms, slowest {slowest:.0} ms, of which the supervisor's backoff before the restart p50 {wait_p50} ms, longest {wait_max} ms (it doubles with each crash within a minute, up to 10 s ± 20 %) | both files parse; the last value written is in force; {active_n} keys active and {revoked_n} revoked as written; 0 processes left, 0 zombies |",
        keys = active.len() + revoked.len() * 2,
        served = served.load(Ordering::Relaxed),
        refused = refused.load(Ordering::Relaxed),
        p50 = p50.as_secs_f64() * 1000.0,
        slowest = slowest.as_secs_f64() * 1000.0,
        active_n = active.len(),
        revoked_n = revoked.len(),
    ));
    rows.push(format!(
        "| `settings.toml` damaged while supervised (an unclosed string) | — | the server keeps running, same process, and answers; the supervisor logs: \"{}\" | the good file, put back, is used |",
        settings_said.replace('|', "\\|")
    ));
    rows.push(
        "| `keys.toml` damaged while served (a torn last entry) | — | the previous keys stay in force and answer; `keys_reload_failed` names the line | the good file, put back, is used |".to_string(),
    );

    // 3. A full disk and a read-only one.
    let mut refusals = Vec::new();
    let full = Mount::tmpfs("256k");
    let (settings_before, keys_before) = seed(full.path());
    let filler = full.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 512 * 1024]);
    refused_on(full.path(), "a full disk", &["space", "full"], &mut refusals);
    assert_eq!(
        std::fs::read(full.path().join("settings.toml")).unwrap(),
        settings_before
    );
    assert_eq!(std::fs::read(full.path().join("keys.toml")).unwrap(), keys_before);
    drop(full);
    let read_only = Mount::tmpfs("1m");
    seed(read_only.path());
    read_only.remount("ro");
    refused_on(
        read_only.path(),
        "a read-only disk",
        &["read-only"],
        &mut refusals,
    );
    drop(read_only);

    // 4. The keychain absent (a session bus with no Secret Service) and locked.
    let keychain_home = tempfile::tempdir().unwrap();
    let (_, keys_before) = seed(keychain_home.path());
    for (condition, script) in [
        (
            "no Secret Service on the session bus (none to start either)",
            "exec \"$@\"",
        ),
        (
            "the keychain locked (the service runs, nobody unlocked it)",
            "gnome-keyring-daemon --components=secrets --daemonize >/dev/null 2>&1; sleep 0.3; exec \"$@\"",
        ),
    ] {
        let xdg = tempfile::tempdir().unwrap();
        // A session bus of its own that knows no services to start on demand, so "absent" is
        // absent rather than a keyring the bus starts, locked.
        let bus = xdg.path().join("bus.conf");
        std::fs::write(&bus, BUS_WITHOUT_SERVICES).unwrap();
        let mut command = Command::new("dbus-run-session");
        command
            .arg(format!("--config-file={}", bus.display()))
            .args(["--", "bash", "-c", script, "_"])
            .arg(gatehouse_bin())
            .args(["keys", "create", "--name", "desk", "--scope", "infer"])
            .env("GATEHOUSE_HOME", keychain_home.path())
            .env("XDG_DATA_HOME", xdg.path())
            .env_remove("DBUS_SESSION_BUS_ADDRESS");
        let (output, took) = bounded(command);
        let said = String::from_utf8_lossy(&output.stderr);
        let said = said
            .lines()
            .find(|l| l.starts_with("gatehouse:"))
            .unwrap_or("")
            .trim()
            .to_string();
        assert!(
            !output.status.success() && said.contains("keychain") && said.contains("fix"),
            "{condition}: {said}"
        );
        assert_eq!(
            std::fs::read(keychain_home.path().join("keys.toml")).unwrap(),
            keys_before
        );
        refusals.push(format!(
            "| {condition} | `keys create --name desk --scope infer` | refused in {:.0} ms: \"{}\" | unchanged |",
            took.as_secs_f64() * 1000.0,
            said.replace('|', "\\|")
        ));
    }

    section(
        "faults",
        "Faults",
        &format!(
            "Command: `./scripts/reliability.sh faults` (`tests/e2e/reliability/faults.rs`).\n\n\
             | fault | meanwhile | what happened | settings and keys afterwards |\n|---|---|---|---|\n{rows}\n\n\
             A config directory that cannot take a change (a 256 KiB tmpfs filled up, a tmpfs mounted \
             read-only) and a keychain that cannot: each change refused within 5 s, saying why and how to \
             fix it, the files byte for byte as before.\n\n\
             | condition | command | result | `settings.toml`, `keys.toml` |\n|---|---|---|---|\n{refusals}\n\n\
             Found and fixed: a `settings.toml` that could not be used (damaged by hand, or half written \
             by another program) made the supervisor stop the running server to start one that could not \
             start, removing access that existed. The supervisor now checks the file first, keeps the \
             running server when it cannot be used and logs `settings_rejected` with the line; it restarts \
             once the file is good again. A damaged `keys.toml` was reported without its line; its errors now \
             name the line as the settings file's do. `gatehouse supervise --crash-limit N` (default 5 within a \
             minute) makes a run of many kills possible without the crash-loop stop.\n",
            rows = rows.join("\n"),
            refusals = refusals.join("\n"),
        ),
    );
}
