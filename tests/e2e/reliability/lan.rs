//! A LAN in network namespaces: the bind toggle proved from another device's side. On loopback
//! the other device cannot connect at all; on the LAN address with TLS and keys it is served only
//! over TLS and only with a key; without TLS the start is refused, unless the person said
//! otherwise, and then the checklist fails it. In each case `network.exposure` says what the
//! other device saw.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use super::section;
use crate::util::{Lan, TestServer, certs, default_models, gatehouse, gatehouse_bin, on_a_lan};

/// `curl` on the other device: the status it got, or why it got none.
fn device_get(
    lan: &Lan,
    url: &str,
    ca: Option<&Path>,
    key: Option<&str>,
    work: &Path,
) -> Result<u16, String> {
    let header = work.join("header");
    std::fs::write(
        &header,
        key.map_or("X-Nothing: 1".to_string(), |k| {
            format!("Authorization: Bearer {k}")
        }),
    )
    .unwrap();
    let header = format!("@{}", header.display());
    let mut args = vec![
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--connect-timeout",
        "2",
        "--max-time",
        "5",
    ];
    args.extend(["-H", &header]);
    let ca_text;
    if let Some(ca) = ca {
        ca_text = ca.display().to_string();
        args.extend(["--cacert", &ca_text]);
    }
    args.push(url);
    let output: Output = lan.on_device("curl", &args);
    let code = output.status.code().unwrap_or(-1);
    let status: u16 = String::from_utf8_lossy(&output.stdout).parse().unwrap_or(0);
    match (code, status) {
        (0, status) => Ok(status),
        (7, _) => Err("connection refused".into()),
        (28, _) => Err("timed out".into()),
        (35, _) => Err("TLS handshake failed".into()),
        (52, _) => Err("empty reply".into()),
        (code, status) => Err(format!("curl exit {code} (status {status})")),
    }
}

fn exposure_item(home: &Path, url: &str) -> Value {
    let output = std::process::Command::new(gatehouse_bin())
        .args(["check", "--json", "--url", url])
        .env("GATEHOUSE_HOME", home)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)));
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "network.exposure")
        .unwrap()
        .clone()
}

#[track_caller]
fn set(home: &Path, key: &str, value: &str) {
    let output = gatehouse(home, &["settings", "set", key, value]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn seen(result: &Result<u16, String>) -> String {
    match result {
        Ok(status) => format!("HTTP {status}"),
        Err(why) => why.clone(),
    }
}

#[test]
fn another_device_on_the_network_sees_what_the_bind_toggle_and_the_checklist_say() {
    on_a_lan(
        "reliability::lan::another_device_on_the_network_sees_what_the_bind_toggle_and_the_checklist_say",
        |lan| {
            let work = tempfile::tempdir().unwrap();
            let laptop = lan.laptop.to_string();
            let mut rows = Vec::new();
            let mut requests = 0;

            // 1. This computer only (the default).
            let server = TestServer::start_default();
            let port = server.addr.rsplit(':').next().unwrap().to_string();
            let direct = device_get(
                &lan,
                &format!("http://{laptop}:{port}/healthz"),
                None,
                None,
                work.path(),
            );
            requests += 1;
            assert_eq!(
                direct,
                Err("connection refused".into()),
                "the other device reached a loopback server"
            );
            assert_eq!(server.get("/healthz").0, 200, "this computer still reaches it");
            let item = exposure_item(server.home.path(), &server.url(""));
            assert_eq!(item["status"], "pass", "{item:#}");
            assert!(
                item.to_string().contains(&format!("TCP connect {laptop}:{port}")),
                "the checklist tried the LAN address: {item:#}"
            );
            rows.push(format!(
                "| this computer only (`server.host = 127.0.0.1`) | {} | — | — | {} ({}) |",
                seen(&direct),
                item["status"].as_str().unwrap(),
                item["summary"].as_str().unwrap()
            ));
            drop(server);

            // 2. The local network, with TLS and keys.
            let builder = TestServer::builder().models(&default_models());
            let home = builder.home().to_path_buf();
            certs(&home, &["init", "--host", &laptop]);
            set(&home, "tls.enabled", "true");
            set(&home, "server.host", &laptop);
            let server = builder.start();
            assert!(
                server.listening["addr"].as_str().unwrap().starts_with(&laptop),
                "{}",
                server.listening
            );
            let port = server.addr.rsplit(':').next().unwrap().to_string();
            let ca = home.join("certs/ca.pem");
            let https = |path: &str| format!("https://{laptop}:{port}{path}");
            crate::util::wait_until("the server answers the other device", || {
                device_get(&lan, &https("/readiness"), Some(&ca), None, work.path()) == Ok(200)
            });
            let plain = device_get(
                &lan,
                &format!("http://{laptop}:{port}/v2/models/sigmoid"),
                None,
                Some(&server.key),
                work.path(),
            );
            let anonymous = device_get(&lan, &https("/v2/models/sigmoid"), Some(&ca), None, work.path());
            let wrong = device_get(
                &lan,
                &https("/v2/models/sigmoid"),
                Some(&ca),
                Some("gth_AAAAAAAAwrongwrongwrongwrongwrongwrongwrongwrongwr"),
                work.path(),
            );
            let keyed = device_get(
                &lan,
                &https("/v2/models/sigmoid"),
                Some(&ca),
                Some(&server.key),
                work.path(),
            );
            let untrusted = lan.on_device(
                "curl",
                &[
                    "-s",
                    "-o",
                    "/dev/null",
                    "--connect-timeout",
                    "2",
                    &https("/healthz"),
                ],
            );
            requests += 6;
            assert!(
                !matches!(plain, Ok(200)),
                "plain HTTP from the other device was served: {plain:?}"
            );
            assert_eq!(anonymous, Ok(401));
            assert_eq!(wrong, Ok(401));
            assert_eq!(keyed, Ok(200));
            assert_eq!(
                untrusted.status.code(),
                Some(60),
                "curl trusting only the system's CAs must refuse the local CA's certificate"
            );
            let item = exposure_item(&home, &https(""));
            assert_eq!(item["status"], "warn", "{item:#}");
            assert!(
                item["summary"]
                    .as_str()
                    .unwrap()
                    .contains("protected by TLS and keys"),
                "{item:#}"
            );
            rows.push(format!(
            "| the local network, TLS and keys (`server.host = {laptop}`) | {} | {} without a key, {} with a wrong one | {} | {} ({}) |",
            seen(&plain), seen(&anonymous), seen(&wrong), seen(&keyed), item["status"].as_str().unwrap(), item["summary"].as_str().unwrap()
        ));
            drop(server);

            // 3. The local network without TLS: the CLI refuses to set it, and a settings file
            // written by hand is refused at start.
            let builder = TestServer::builder().models(&default_models());
            let cli = gatehouse(builder.home(), &["settings", "set", "server.host", &laptop]);
            let cli_said = String::from_utf8_lossy(&cli.stderr).to_string();
            assert!(
                !cli.status.success() && cli_said.contains("tls.enabled"),
                "{cli_said}"
            );
            let builder = builder.settings(&format!("[server]\nhost = \"{laptop}\"\n"));
            let (output, _home) = builder.arg("--port").arg("19090").run_to_exit();
            let refusal = String::from_utf8_lossy(&output.stderr).to_string();
            assert!(
                !output.status.success() && refusal.contains("certs init"),
                "{refusal}"
            );
            let after = device_get(
                &lan,
                &format!("http://{laptop}:19090/healthz"),
                None,
                None,
                work.path(),
            );
            requests += 1;
            assert_eq!(after, Err("connection refused".into()));
            rows.push(format!(
            "| the local network without TLS | {} (`settings set` refuses it; a file written by hand is refused at start) | — | — | — |",
            seen(&after)
        ));

            // 4. Without TLS because the person insisted: served, and the checklist fails it.
            let builder = TestServer::builder().models(&default_models());
            let home = builder.home().to_path_buf();
            set(&home, "tls.allow_plaintext_network", "true");
            set(&home, "server.host", &laptop);
            let server = builder.start();
            let port = server.addr.rsplit(':').next().unwrap().to_string();
            let http = |path: &str| format!("http://{laptop}:{port}{path}");
            crate::util::wait_until("the plaintext server answers the other device", || {
                device_get(&lan, &http("/readiness"), None, None, work.path()) == Ok(200)
            });
            let anonymous = device_get(&lan, &http("/v2/models/sigmoid"), None, None, work.path());
            let keyed = device_get(
                &lan,
                &http("/v2/models/sigmoid"),
                None,
                Some(&server.key),
                work.path(),
            );
            requests += 2;
            assert_eq!(anonymous, Ok(401));
            assert_eq!(keyed, Ok(200));
            let item = exposure_item(&home, &http(""));
            assert_eq!(item["status"], "fail", "{item:#}");
            assert!(
                item["summary"].as_str().unwrap().contains("without TLS"),
                "{item:#}"
            );
            rows.push(format!(
            "| the local network in plain text (`tls.allow_plaintext_network = true`) | — | {} without a key | {} | {} ({}) |",
            seen(&anonymous), seen(&keyed), item["status"].as_str().unwrap(), item["summary"].as_str().unwrap()
        ));

            section(
                "lan",
                "A LAN in network namespaces",
                &format!(
                    "Command: `./scripts/reliability.sh lan` (`tests/e2e/reliability/lan.rs`). Two network \
                 namespaces joined by a veth pair, {laptop}/24 the \"laptop\" running Gatehouse and {device} \
                 \"another device on the network\" running curl; nothing outside them is touched and \
                 no packet leaves them. {requests} requests from the other device, each with a 2 s \
                 connect timeout; `network.exposure` from `gatehouse check` on the laptop.\n\n\
                 | setting | the other device, plain HTTP | the other device, HTTPS, no or wrong key | the other device, HTTPS with a key | the checklist's `network.exposure` |\n\
                 |---|---|---|---|---|\n{rows}\n\n\
                 Over HTTPS, curl trusting only the system's CAs refuses the local CA's certificate (exit 60): \
                 the other device must be given `ca.pem`, as the README says. Found: nothing; each row is \
                 what the settings promise and what the checklist reports.\n",
                    device = lan.device,
                    rows = rows.join("\n"),
                ),
            );
        },
    );
}
