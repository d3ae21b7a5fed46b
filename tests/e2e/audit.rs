//! The audit log's hash chain, as written by the real server and the CLI at once, and checked by
//! `gatehouse audit verify` after someone edited, removed or inserted a line.

use serde_json::Value;

use crate::auth::sigmoid_body;
use crate::util::{self, TestServer, wait_until};

fn verify(home: &std::path::Path) -> (bool, Value) {
    let output = util::gatehouse(home, &["audit", "verify", "--json"]);
    let verdict: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "audit verify --json printed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(
        output.status.code(),
        Some(if verdict["whole"] == true { 0 } else { 1 }),
        "{verdict}"
    );
    (output.status.success(), verdict)
}

#[test]
fn the_audit_chain_holds_across_writers_and_names_an_edited_a_removed_and_an_inserted_line() {
    let mut server = TestServer::start_default();
    // The server's requests and the CLI's key changes land in one chain.
    for round in 0..5 {
        let (status, _) = server.post_json("/v2/models/sigmoid/infer", &sigmoid_body());
        assert_eq!(status, 200);
        server.create_key(&["--name", &format!("extra-{round}")]);
    }
    let path = server.home.path().join("audit/audit.jsonl");
    wait_until("the server's lines are written", || {
        std::fs::read_to_string(&path).is_ok_and(|t| t.matches("\"event\":\"request\"").count() >= 5)
    });
    server.terminate();
    let (whole, verdict) = verify(server.home.path());
    assert!(whole, "{verdict:#}");
    let lines = verdict["lines"].as_u64().unwrap();
    assert!(lines >= 10, "{verdict:#}");
    assert_eq!(verdict["last_seq"].as_u64(), Some(lines), "{verdict:#}");

    let original: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let tampered = |edit: &dyn Fn(&mut Vec<String>)| {
        let copy = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(copy.path().join("audit")).unwrap();
        let mut lines = original.clone();
        edit(&mut lines);
        std::fs::write(
            copy.path().join("audit/audit.jsonl"),
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        let (whole, verdict) = verify(copy.path());
        assert!(!whole, "{verdict:#}");
        let findings: Vec<(String, u64)> = verdict["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["tamper"].as_str().unwrap().to_string(),
                    f["line"].as_u64().unwrap(),
                )
            })
            .collect();
        // The human form names the same line.
        let text = util::gatehouse(copy.path(), &["audit", "verify"]);
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        assert!(text.contains("the audit chain is broken"), "{text}");
        (findings, text)
    };
    // A line's time moved back a year.
    let (findings, text) =
        tampered(&|lines| lines[3] = lines[3].replacen("\"time\":\"2026", "\"time\":\"2025", 1));
    assert_eq!(findings, [("changed".to_string(), 4)]);
    assert!(text.contains("audit.jsonl:4: changed"), "{text}");
    let (findings, _) = tampered(&|lines| {
        lines.remove(5);
    });
    assert_eq!(findings, [("removed".to_string(), 6)]);
    let (findings, text) = tampered(&|lines| {
        lines.insert(
            2,
            r#"{"time":"2026-01-01T00:00:00Z","event":"key_revoked","key_id":"x"}"#.into(),
        )
    });
    assert_eq!(findings, [("inserted".to_string(), 3)]);
    assert!(text.contains("audit.jsonl:3: inserted"), "{text}");

    // `audit tail` reads the same log as a person would.
    let output = util::gatehouse(server.home.path(), &["audit", "tail", "-n", "3"]);
    let tail = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert_eq!(tail.lines().count(), 3, "{tail}");
    assert!(tail.contains("key_created") || tail.contains("request"), "{tail}");
}

fn events(home: &std::path::Path) -> Vec<Value> {
    let output = util::gatehouse(home, &["events", "--json", "-n", "100"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn forty_bad_keys_from_one_address_are_one_burst_event_and_one_lockout_event() {
    // Slowed down only near the end, so forty attempts take a second, not a minute.
    let server = TestServer::builder()
        .settings("[limits]\nauth_failures_before_slowdown = 34\nauth_failures_before_lockout = 35\n")
        .start();
    for attempt in 0..40 {
        let response = server
            .client
            .get(server.url("/v2/models/sigmoid"))
            .bearer_auth(format!("gth_guess{attempt:04}notarealkeyatallxxxxxxxxxxxxxxxxxx"))
            .send()
            .unwrap();
        assert!(
            matches!(response.status().as_u16(), 401 | 429),
            "{}",
            response.status()
        );
    }
    let mut found = Vec::new();
    wait_until("the burst and the lockout are events", || {
        found = events(server.home.path());
        !of_kind(&found, "auth_burst").is_empty() && !of_kind(&found, "lockout").is_empty()
    });
    // A second look finds the same: each was said once.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let found = events(server.home.path());
    let bursts = of_kind(&found, "auth_burst");
    assert_eq!(bursts.len(), 1, "{found:#?}");
    assert_eq!(of_kind(&found, "lockout").len(), 1, "{found:#?}");
    assert_eq!(bursts[0]["severity"], "warning");
    assert!(
        bursts[0]["summary"]
            .as_str()
            .unwrap()
            .contains("failed authentications from 127.0.0.1"),
        "{}",
        bursts[0]
    );
    // What is shown never holds the key that was tried.
    let text = util::gatehouse(server.home.path(), &["events"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("WARNING") && !text.contains("gth_guess"), "{text}");
    // The server logs each warning as it finds it.
    assert!(
        server.log().contains("\"event\":\"security_event\""),
        "{}",
        server.log()
    );
}

#[test]
fn one_key_from_two_addresses_within_a_minute_is_an_event() {
    let server = TestServer::start_default();
    for source in ["127.0.0.2", "127.0.0.3"] {
        let client = reqwest::blocking::Client::builder()
            .local_address(source.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        let response = client
            .get(server.url("/v2/models/sigmoid"))
            .bearer_auth(&server.key)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "from {source}");
    }
    let mut found = Vec::new();
    wait_until("the two-address event", || {
        found = events(server.home.path());
        !of_kind(&found, "two_addresses").is_empty()
    });
    let event = of_kind(&found, "two_addresses")[0];
    assert_eq!(
        event["evidence"]["addresses"],
        serde_json::json!(["127.0.0.2", "127.0.0.3"]),
        "{event}"
    );
    assert!(event["evidence"]["audit_seq"].as_u64().is_some(), "{event}");
}
