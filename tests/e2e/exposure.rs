//! Time-limited exposure: `gatehouse expose --for` opens the server to the network with TLS and
//! keys required, and the server is back on loopback by itself when the time is up, across
//! restarts too, because the deadline lives in settings.toml.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{TestServer, certs, default_models, gatehouse, gatehouse_bin, on_a_network_of_its_own};

fn expose(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(gatehouse_bin())
        .arg("expose")
        .args(args)
        .env("GATEHOUSE_HOME", home)
        .env_remove("HOST")
        .env_remove("GATEHOUSE_HOST")
        .output()
        .unwrap()
}

fn settings(home: &std::path::Path) -> gatehouse_core::Settings {
    gatehouse_core::Settings::load(&home.join("settings.toml")).unwrap()
}

#[test]
fn an_exposure_without_tls_is_refused_and_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let output = expose(home.path(), &["--for", "1h", "--host", "192.0.2.10"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("needs TLS") && stderr.contains("gatehouse certs init"),
        "{stderr}"
    );
    assert_eq!(settings(home.path()).server.host, "127.0.0.1");
    for (window, says) in [("8d", "at most 7 days"), ("soon", "not a duration")] {
        let output = expose(home.path(), &["--for", window]);
        assert!(String::from_utf8_lossy(&output.stderr).contains(says), "{window}");
    }
}

#[test]
fn a_lapsed_exposure_in_the_file_starts_on_loopback() {
    // As after a machine that was off when the deadline passed.
    let server = TestServer::builder()
        .models(&default_models())
        .settings("[server]\nhost = \"0.0.0.0\"\nexposed_until = \"2026-01-01T00:00:00Z\"\n")
        .start();
    let addr = server.listening["addr"].as_str().unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
}

#[test]
fn an_exposure_ends_by_itself_and_the_next_start_is_on_loopback() {
    on_a_network_of_its_own(
        "exposure::an_exposure_ends_by_itself_and_the_next_start_is_on_loopback",
        exposure_ends,
    );
}

fn exposure_ends(lan: std::net::IpAddr) {
    let lan = lan.to_string();
    let builder = TestServer::builder().models(&default_models());
    let home = builder.home().to_path_buf();
    certs(&home, &["init", "--host", &lan]);
    assert!(
        gatehouse(&home, &["settings", "set", "tls.enabled", "true"])
            .status
            .success()
    );
    let output = expose(&home, &["--for", "8s", "--host", &lan]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("open on {lan}:")));
    let written = settings(&home);
    assert_eq!(written.server.host, lan);
    assert!(written.server.exposed_until.is_some());

    // Open beyond this computer now, and saying until when.
    let server = builder.start();
    let addr = server.listening["addr"].as_str().unwrap().to_string();
    assert!(addr.starts_with(&format!("{lan}:")), "{addr}");
    // Logged right after the `listening` line, which is what `start` waits for.
    crate::util::wait_until("the deadline in the log", || {
        server.log().contains("\"event\":\"exposed_until\"")
    });
    // The checklist shows the exposure with its end.
    let output = Command::new(gatehouse_bin())
        .args(["check", "--json", "--url", &format!("https://{addr}")])
        .env("GATEHOUSE_HOME", &home)
        .env("GATEHOUSE_PROBE_ADDRESSES", "127.0.0.2")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)));
    let item = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "network.exposure")
        .unwrap()
        .clone();
    assert_eq!(item["status"], "warn", "{item:#}");
    let summary = item["summary"].as_str().unwrap();
    assert!(
        summary.contains("until") && summary.contains("then back to this computer only"),
        "{item:#}"
    );

    // A restart before the deadline (the machine, the panel or the supervisor) keeps it: the
    // server is back on the network address and still ends at the same time.
    let mut server = server.stop_for_restart().models(&default_models()).start();
    let addr = server.listening["addr"].as_str().unwrap().to_string();
    assert!(
        addr.starts_with(&format!("{lan}:")),
        "after a restart before the deadline: {addr}"
    );

    // When the time is up the settings go back to loopback and the server stops.
    let (code, log) = server.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("\"event\":\"exposure_ended\""), "{log}");
    let after = settings(&home);
    assert_eq!(after.server.host, "127.0.0.1");
    assert_eq!(after.server.exposed_until, None);
    let audit = std::fs::read_to_string(home.join("audit/audit.jsonl")).unwrap();
    let ended: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["actor"] == "deadline")
        .collect();
    assert!(!ended.is_empty(), "the end is audited: {audit}");

    // Started again, it is on this computer only.
    let server = server.stop_for_restart().models(&default_models()).start();
    let addr = server.listening["addr"].as_str().unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    // Both ends of the exposure are security events.
    let events = gatehouse(&home, &["events", "--json"]);
    let kinds: Vec<String> = String::from_utf8_lossy(&events.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        kinds.iter().any(|k| k == "exposure_opened") && kinds.iter().any(|k| k == "exposure_closed"),
        "{kinds:?}"
    );
}
