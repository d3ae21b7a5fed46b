//! The inference servers already running on this computer: which ports answer, what each server
//! looks like, and its posture as an outsider sees it. The wizard's "Which server?" step and
//! `gatehouse guard --detect` show the same list.

use std::io::Read;
use std::net::IpAddr;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;

use crate::probe::{Endpoint, HttpResponse, Prober, TlsIdentity};
use crate::wire::ServerInfo;

/// The ports the servers guard mode knows listen on by default: Ollama, llama.cpp and LocalAI
/// (and MLServer), vLLM, Triton and KServe, LM Studio, TF Serving, Roboflow Inference, Prefect.
pub const COMMON_PORTS: &[u16] = &[11434, 8080, 8000, 1234, 8501, 9001, 4200];

/// One server found listening.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct Detected {
    pub port: u16,
    /// The URL to guard it at (`http://127.0.0.1:PORT`).
    pub url: String,
    /// What it looks like, in words: "Ollama", "an OpenAI-compatible server", …
    pub looks_like: String,
    /// The preset that fits; none for a Gatehouse server, which needs no guard.
    pub preset: Option<String>,
    /// Requests it answered without any credential, e.g. `GET /api/tags`.
    pub open: Vec<String>,
    /// Addresses beyond loopback it listens on: reachable around any guard until rebound.
    pub beyond_loopback: Vec<String>,
}

/// Probes `ports` on 127.0.0.1; the servers that answered, in port order.
pub async fn detect(ports: &[u16], timeout: Duration) -> Vec<Detected> {
    let found = join_all(ports.iter().map(|port| one(*port, timeout))).await;
    found.into_iter().flatten().collect()
}

/// The ports to look at: `GATEHOUSE_DETECT_PORTS` (comma-separated) when set — tests point it at
/// the servers they started —, else [`COMMON_PORTS`].
pub fn ports_to_try() -> Vec<u16> {
    match std::env::var("GATEHOUSE_DETECT_PORTS") {
        Ok(list) => list.split(',').filter_map(|p| p.trim().parse().ok()).collect(),
        Err(_) => COMMON_PORTS.to_vec(),
    }
}

async fn one(port: u16, timeout: Duration) -> Option<Detected> {
    crate::probe::connect("127.0.0.1", port, timeout).await.ok()?;
    let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}")).ok()?;
    let prober = Prober::new(endpoint, TlsIdentity::default(), timeout);
    let paths = [
        "/",
        "/_gatehouse/info",
        "/info",
        "/v2",
        "/v1/models",
        "/health",
        "/api/tags",
        "/v1/models/gatehouse-probe",
        "/api/health",
    ];
    let answers: Vec<(&str, Option<HttpResponse>)> = join_all(
        paths
            .iter()
            .map(|path| async { (*path, prober.request("GET", path, &[], &[]).await.ok()) }),
    )
    .await;
    if answers.iter().all(|(_, answer)| answer.is_none()) {
        return None;
    }
    let (looks_like, preset) = fingerprint(&answers);
    let open = answers
        .iter()
        .filter(|(path, answer)| {
            *path != "/v1/models/gatehouse-probe"
                && answer.as_ref().is_some_and(|r| (200..300).contains(&r.status))
        })
        .map(|(path, _)| format!("GET {path}"))
        .collect();
    let beyond_loopback = crate::ports::listening_addresses(port)
        .into_iter()
        .filter(|ip: &IpAddr| !ip.is_loopback())
        .map(|ip| ip.to_string())
        .collect();
    Some(Detected {
        port,
        url: format!("http://127.0.0.1:{port}"),
        looks_like,
        preset,
        open,
        beyond_loopback,
    })
}

/// A preset as the "Which server?" step shows it: what it is for, and whether its server is
/// installed on this computer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct PresetChoice {
    pub name: String,
    /// The servers it fits, in words.
    pub servers: String,
    /// One line on what it is and why it needs guarding.
    pub description: String,
    /// Where its program was found on PATH.
    pub installed: Option<String>,
    /// The one command that installs it, when it was not found.
    pub install: Option<String>,
    /// What to put in the launch command: `{preset}` when Gatehouse knows how to start it.
    pub launch: String,
    /// What `{preset}` runs, in words, when it is offered.
    pub launches: Option<String>,
}

/// Every preset, with its program looked for on PATH.
pub fn preset_choices() -> Vec<PresetChoice> {
    crate::guard::PRESETS
        .iter()
        .map(|preset| {
            let installed = preset.program.and_then(find_program);
            let builtin = preset.launch.iter().any(|word| word.contains('\n'));
            PresetChoice {
                name: preset.name.into(),
                servers: preset.servers.into(),
                description: preset.description.into(),
                install: if installed.is_none() {
                    preset.install.map(str::to_string)
                } else {
                    None
                },
                installed: installed.map(|p| p.display().to_string()),
                launch: if builtin {
                    crate::guard::PRESET_LAUNCH.into()
                } else {
                    preset.launch.join(" ")
                },
                launches: builtin.then(|| {
                    format!(
                        "{}'s HTTP app under the Python the `{}` command runs with",
                        preset.servers,
                        preset.program.unwrap_or("python3")
                    )
                }),
            }
        })
        .collect()
}

/// `program` on PATH, as the shell would find it.
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The interpreter a script names on its `#!` line (a pip-installed command names the Python
/// of its environment).
pub fn interpreter_of(script: &std::path::Path) -> Option<String> {
    use std::io::BufRead;
    let file = std::fs::File::open(script).ok()?;
    let mut first = String::new();
    std::io::BufReader::new(file)
        .take(4096)
        .read_line(&mut first)
        .ok()?;
    let line = first.strip_prefix("#!")?.trim();
    let interpreter = line.split_whitespace().next()?;
    interpreter.contains("python").then(|| interpreter.to_string())
}

/// What the answers say the server is, and the preset for it.
fn fingerprint(answers: &[(&str, Option<HttpResponse>)]) -> (String, Option<String>) {
    let ok = |path: &str| {
        answers
            .iter()
            .find(|(p, _)| *p == path)
            .and_then(|(_, r)| r.as_ref())
            .filter(|r| (200..300).contains(&r.status))
    };
    let any = |path: &str| {
        answers
            .iter()
            .find(|(p, _)| *p == path)
            .and_then(|(_, r)| r.as_ref())
    };
    let json = |response: &HttpResponse| serde_json::from_slice::<serde_json::Value>(&response.body).ok();
    let gatehouse = ["/_gatehouse/info", "/info"].iter().any(|path| {
        ok(path).is_some_and(|r| {
            serde_json::from_slice::<ServerInfo>(&r.body).is_ok_and(|i| i.name == "gatehouse")
        })
    });
    if gatehouse {
        return ("Gatehouse".into(), None);
    }
    let preset = |name: &str| Some(name.to_string());
    if ok("/").is_some_and(|r| r.text().contains("Ollama is running")) {
        return ("Ollama".into(), preset("ollama"));
    }
    if let Some(info) = ok("/info").and_then(json)
        && info["name"].as_str().is_some_and(|n| n.contains("Roboflow"))
    {
        return ("Roboflow Inference".into(), preset("roboflow"));
    }
    if ok("/api/health").is_some_and(|r| r.text().trim() == "true") {
        return ("a Prefect server".into(), preset("prefect"));
    }
    if let Some(metadata) = ok("/v2").and_then(json)
        && (metadata.get("extensions").is_some() || metadata.get("version").is_some())
    {
        let name = metadata["name"]
            .as_str()
            .unwrap_or("an Open Inference Protocol server");
        return (format!("{name} (Open Inference Protocol)"), preset("oip"));
    }
    if any("/v1/models/gatehouse-probe").is_some_and(|r| r.text().contains("Servable")) {
        return ("TensorFlow Serving".into(), preset("tfserving"));
    }
    if ok("/v1/models")
        .and_then(json)
        .is_some_and(|models| models["object"] == "list" || models.get("data").is_some())
    {
        return ("an OpenAI-compatible server".into(), preset("openai"));
    }
    ("an HTTP server".into(), preset("generic"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Option<HttpResponse> {
        Some(HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn looks(answers: &[(&str, Option<HttpResponse>)]) -> (String, Option<String>) {
        fingerprint(answers)
    }

    #[test]
    fn each_known_server_is_told_apart() {
        assert_eq!(
            looks(&[("/", answer(200, "Ollama is running"))]),
            ("Ollama".into(), Some("ollama".into()))
        );
        assert_eq!(
            looks(&[(
                "/v2",
                answer(200, r#"{"name":"mlserver","version":"1.7.1","extensions":[]}"#)
            )])
            .1,
            Some("oip".into())
        );
        assert_eq!(
            looks(&[("/v1/models", answer(200, r#"{"object":"list","data":[]}"#))]).1,
            Some("openai".into())
        );
        assert_eq!(
            looks(&[(
                "/v1/models/gatehouse-probe",
                answer(404, r#"{"error":"Servable not found"}"#)
            )])
            .1,
            Some("tfserving".into())
        );
        assert_eq!(
            looks(&[("/info", answer(200, r#"{"name":"gatehouse","version":"0.1.0"}"#))]),
            ("Gatehouse".into(), None)
        );
        assert_eq!(
            looks(&[(
                "/info",
                answer(200, r#"{"name":"Roboflow Inference Server","version":"1.8.3"}"#)
            )])
            .1,
            Some("roboflow".into())
        );
        assert_eq!(
            looks(&[("/api/health", answer(200, "true"))]).1,
            Some("prefect".into())
        );
        assert_eq!(looks(&[("/", answer(404, "nope"))]).1, Some("generic".into()));
    }
}
