//! API keys in the real Secret Service (gnome-keyring in the private D-Bus session that
//! scripts/test.sh starts), and the error when no Secret Service is reachable.

use std::process::Command;

use serde_json::Value;

use crate::util::{gatehouse_bin, keys_command};

fn require_session() {
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "these tests need a Secret Service: run them through ./scripts/test.sh, which starts gnome-keyring \
         in a private D-Bus session"
    );
}

/// What the Secret Service itself holds for a key id, read with libsecret's own tool.
fn secret_tool_lookup(id: &str) -> Option<String> {
    let output = Command::new("secret-tool")
        .args(["lookup", "service", "gatehouse", "username", id])
        .output()
        .expect("secret-tool runs");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn json(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[test]
fn keys_live_in_the_keychain_and_only_there() {
    require_session();
    let home = tempfile::tempdir().unwrap();
    let created = json(&keys_command(
        home.path(),
        &[
            "create", "--name", "desk", "--scope", "infer", "--scope", "admin", "--json",
        ],
    ));
    let id = created["id"].as_str().unwrap();
    let key = created["key"].as_str().unwrap();
    assert_eq!(created["storage"], "keychain");
    assert_eq!(created["scopes"], serde_json::json!(["infer", "admin"]));
    assert_eq!(
        secret_tool_lookup(id).as_deref(),
        Some(key),
        "the Secret Service holds the key"
    );
    let file = std::fs::read_to_string(home.path().join("keys.toml")).unwrap();
    assert!(!file.contains(key), "keys.toml holds the key itself");

    let revealed = json(&keys_command(home.path(), &["reveal", id, "--json"]));
    assert_eq!(revealed["key"], key);

    let rotated = json(&keys_command(
        home.path(),
        &["rotate", id, "--grace", "1h", "--json"],
    ));
    let new_id = rotated["id"].as_str().unwrap();
    assert_eq!(secret_tool_lookup(new_id).as_deref(), rotated["key"].as_str());
    assert_eq!(rotated["replaces"]["rotated_to"], new_id);
    assert_eq!(rotated["scopes"], created["scopes"]);

    let revoked = json(&keys_command(home.path(), &["revoke", id, "--json"]));
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(
        secret_tool_lookup(id),
        None,
        "a revoked key's text is removed from the keychain"
    );
    assert!(!keys_command(home.path(), &["reveal", id]).status.success());
    let listed = json(&keys_command(home.path(), &["list", "--json"]));
    let text = listed.to_string();
    assert!(
        !text.contains(key) && !text.contains(rotated["key"].as_str().unwrap()),
        "list shows a key's text"
    );
    assert!(keys_command(home.path(), &["revoke", new_id]).status.success());
}

#[test]
fn without_a_secret_service_the_error_says_what_and_how_to_fix_it() {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(gatehouse_bin())
        .args(["keys", "create", "--name", "nowhere"])
        .env("GATEHOUSE_HOME", home.path())
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/gatehouse-test-bus",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no keychain is reachable") && stderr.contains("--no-keychain"),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "nothing that looks like a key is printed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        !home.path().join("keys.toml").exists(),
        "no key was recorded without its secret stored"
    );
}

#[test]
fn a_hash_only_key_cannot_be_revealed_and_says_why() {
    let home = tempfile::tempdir().unwrap();
    let created = json(&keys_command(home.path(), &["create", "--no-keychain", "--json"]));
    let output = keys_command(home.path(), &["reveal", created["id"].as_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--no-keychain") && stderr.contains("rotate"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
