//! Secrets: after a run that makes every kind of secret Gatehouse handles — API keys in the
//! keychain and hash-only, a rotated key, a key sent in a URL, a wrong key a client tried, the
//! local CA's private key (keychain), the server's and a client's private keys (files) — none of
//! them is in any file of the config directory except where it belongs (key files, 0600), in the
//! data directory, in any log or audit line, or in any Gatehouse process's argv or environment.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::section;
use crate::util::{TestServer, certs, data_dir, default_models, keys_command};

/// What must never be found, with a name to report it by.
struct Needle {
    what: String,
    text: String,
}

/// Each base64 line of a PEM private key: a leak of any part of it is a leak. A line that its
/// own certificate holds too is left out: an EC key's encoding carries the public key, which the
/// certificate publishes.
fn pem_lines(what: &str, pem: &str, certificate: &str) -> Vec<Needle> {
    pem.lines()
        .filter(|line| line.len() >= 32 && !line.starts_with("-----") && !certificate.contains(line))
        .map(|line| Needle {
            what: what.to_string(),
            text: line.to_string(),
        })
        .collect()
}

fn keychain_secret(account: &str) -> String {
    let output = Command::new("secret-tool")
        .args(["lookup", "service", "gatehouse", "username", account])
        .output()
        .expect("secret-tool runs");
    assert!(output.status.success(), "the keychain has no {account}");
    String::from_utf8(output.stdout).unwrap()
}

fn json(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_under(&path, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The pids of every `gatehouse` process on this computer.
fn gatehouse_processes() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "gatehouse"))
        })
        .collect()
}

#[test]
fn no_secret_is_where_it_must_not_be_after_a_run_that_makes_every_kind() {
    let started = SystemTime::now() - Duration::from_secs(1);
    let builder = TestServer::builder()
        .models(&default_models())
        .env("GATEHOUSE_TLS", "true");
    let home = builder.home().to_path_buf();
    certs(&home, &["init"]);
    certs(&home, &["issue-client", "laptop"]);
    let ca_pem = std::fs::read_to_string(home.join("certs/ca.pem")).unwrap();
    let ca_key = keychain_secret(&gatehouse_core::certs::ca_key_account(&ca_pem));
    let server_key_file = home.join("certs/server-key.pem");
    let client_key_file = home.join("certs/clients/laptop-key.pem");
    let mut needles = Vec::new();
    let read = |path: &str| std::fs::read_to_string(home.join(path)).unwrap();
    needles.extend(pem_lines("the local CA's private key", &ca_key, &ca_pem));
    needles.extend(pem_lines(
        "the server's private key",
        &read("certs/server-key.pem"),
        &read("certs/server.pem"),
    ));
    needles.extend(pem_lines(
        "a client's private key",
        &read("certs/clients/laptop-key.pem"),
        &read("certs/clients/laptop.pem"),
    ));
    assert!(
        needles.len() >= 3,
        "every private key has base64 lines of its own"
    );

    // Keys: one in the keychain, rotated; one hash-only; each revealed or shown once, by design.
    let desk = json(&keys_command(
        &home,
        &["create", "--name", "desk", "--scope", "infer", "--json"],
    ));
    let revealed = json(&keys_command(
        &home,
        &["reveal", desk["id"].as_str().unwrap(), "--json"],
    ));
    assert_eq!(revealed["key"], desk["key"]);
    let rotated = json(&keys_command(
        &home,
        &["rotate", desk["id"].as_str().unwrap(), "--grace", "1h", "--json"],
    ));
    let demo = json(&keys_command(
        &home,
        &[
            "create",
            "--name",
            "demo",
            "--scope",
            "infer",
            "--expires",
            "30m",
            "--no-keychain",
            "--json",
        ],
    ));
    let server = builder.start();
    let ca = home.join("certs/ca.pem");
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let url = |path: &str| format!("https://localhost:{port}{path}");
    let work = tempfile::tempdir().unwrap();
    // curl as the client, with the key in a header file rather than its argv.
    let get = |path: &str, header: &str| -> u16 {
        let file = work.path().join("header");
        std::fs::write(&file, header).unwrap();
        let output = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
                "--cacert",
            ])
            .arg(&ca)
            .arg("-H")
            .arg(format!("@{}", file.display()))
            .arg(url(path))
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&output.stdout).parse().unwrap_or(0)
    };
    crate::util::wait_until("the TLS server answers", || {
        get("/readiness", "X-Nothing: 1") == 200
    });
    let desk_key = desk["key"].as_str().unwrap();
    // A key a client got wrong: the right id, a changed secret.
    let wrong = format!(
        "{}{}",
        &desk_key[..desk_key.len() - 4],
        if desk_key.ends_with("AAAA") {
            "BBBB"
        } else {
            "AAAA"
        }
    );
    for (key, expect) in [
        (desk_key, 200),
        (rotated["key"].as_str().unwrap(), 200),
        (demo["key"].as_str().unwrap(), 200),
        (server.key.as_str(), 200),
        (wrong.as_str(), 401),
    ] {
        assert_eq!(
            get("/v2/models/sigmoid", &format!("Authorization: Bearer {key}")),
            expect,
            "{key:.12}…"
        );
        assert_eq!(
            get("/v2/models/sigmoid", &format!("X-API-Key: {key}")),
            expect,
            "{key:.12}…"
        );
    }
    // A key in the URL: answered, warned about by id, and never written down.
    assert_eq!(
        get(&format!("/v2/models/sigmoid?api_key={desk_key}"), "X-Nothing: 1"),
        200
    );
    let check = Command::new(crate::util::gatehouse_bin())
        .args(["check", "--json", "--url", &url("")])
        .env("GATEHOUSE_HOME", &home)
        .env("GATEHOUSE_DATA", data_dir())
        .env("SSL_CERT_FILE", &ca)
        .output()
        .unwrap();
    assert!(
        !check.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Revoking removes the text from the keychain; its hash stays in keys.toml.
    json(&keys_command(
        &home,
        &["revoke", desk["id"].as_str().unwrap(), "--json"],
    ));

    for (what, key) in [
        ("an API key in the keychain", desk_key),
        ("a rotated API key", rotated["key"].as_str().unwrap()),
        ("a hash-only API key", demo["key"].as_str().unwrap()),
        ("the harness's API key", server.key.as_str()),
        ("a wrong key a client sent", wrong.as_str()),
    ] {
        needles.push(Needle {
            what: what.to_string(),
            text: key.to_string(),
        });
        // The secret half alone is a secret too.
        needles.push(Needle {
            what: format!("{what} (its secret part)"),
            text: key[key.len() - 24..].to_string(),
        });
    }

    let processes = gatehouse_processes();
    assert!(
        processes.contains(&server.pid()),
        "the server is among Gatehouse's processes"
    );
    let mut places = BTreeMap::<String, Vec<u8>>::new();
    for pid in &processes {
        for part in ["cmdline", "environ"] {
            if let Ok(bytes) = std::fs::read(format!("/proc/{pid}/{part}")) {
                places.insert(format!("/proc/{pid}/{part}"), bytes);
            }
        }
    }
    let mut server = server;
    let (_, log) = server.terminate();
    places.insert("the server's log (stdout and stderr)".into(), log.into_bytes());
    places.insert(
        "`gatehouse check`'s output".into(),
        [check.stdout, check.stderr].concat(),
    );

    // Every file of the config directory; of the shared data directory, what changed during the
    // run, leaving out the Python environments setup made (third-party code, not Gatehouse's).
    let mut files = Vec::new();
    files_under(&home, &mut files);
    let config_files = files.len();
    let mut data_files = Vec::new();
    files_under(&data_dir(), &mut data_files);
    let data_files: Vec<PathBuf> = data_files
        .into_iter()
        .filter(|p| {
            !p.components()
                .any(|c| c.as_os_str().to_string_lossy().ends_with("venv"))
        })
        .filter(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= started)
        })
        .collect();
    let scanned_data = data_files.len();
    files.extend(data_files);
    let allowed = [
        (server_key_file.clone(), "the server's private key"),
        (client_key_file.clone(), "a client's private key"),
    ];
    for (file, _) in &allowed {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
    let mut bytes_scanned = 0;
    let mut leaks = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        bytes_scanned += bytes.len();
        for needle in &needles {
            let belongs = allowed.iter().any(|(f, what)| f == file && *what == needle.what);
            if !belongs && contains(&bytes, &needle.text) {
                leaks.push(format!("{} in {}", needle.what, file.display()));
            }
        }
    }
    for (place, bytes) in &places {
        bytes_scanned += bytes.len();
        for needle in &needles {
            if contains(bytes, &needle.text) {
                leaks.push(format!("{} in {place}", needle.what));
            }
        }
    }
    leaks.dedup();
    assert!(
        leaks.is_empty(),
        "secrets found where they must not be:\n{}",
        leaks.join("\n")
    );
    let audit = std::fs::read_to_string(home.join("audit/audit.jsonl")).unwrap();
    assert!(
        audit.contains(desk["id"].as_str().unwrap()) && audit.contains("\"query\""),
        "the audit log names the keys by id and the key in the URL: the scan read a real log"
    );

    section(
        "secrets",
        "Secrets",
        &format!(
            "Command: `./scripts/reliability.sh secrets` (`tests/e2e/reliability/secrets.rs`), against the \
             real keychain (gnome-keyring in the run's own D-Bus session).\n\n\
             The run makes every kind of secret Gatehouse handles — the local CA (its key in the keychain), \
             the server's key and a client's key (files), an API key in the keychain revealed, rotated and \
             revoked, a hash-only key, a key sent in a URL, a wrong key sent by a client — serves TLS \
             requests with each key in `Authorization` and `X-API-Key`, and runs `gatehouse check`. Then \
             it looks for {needles} needles (each key, its secret half, every base64 line of each private \
             key) in {config_files} files of the config directory, {scanned_data} files of the data directory \
             that changed during the run (its Python environments left out), the server's log, the \
             checklist's output, and `/proc/<pid>/cmdline` and `/proc/<pid>/environ` of {processes} \
             running Gatehouse processes: {bytes_scanned} bytes in all.\n\n\
             Found: 0 secrets out of place. The two private key files are mode 0600 and hold only their own key.\n",
            needles = needles.len(),
            processes = processes.len(),
        ),
    );
}
