//! Authentication end to end: every way of presenting a key, against every kind of key, on every
//! group of endpoints; revocation within a second; limits; the audit trail; and that no key ever
//! reaches a log.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::util::{self, TestServer, create_key, split, wait_until};

#[derive(Clone, Copy, Debug)]
enum Presentation {
    Bearer,
    Header,
    Query,
    Basic,
    Body,
}

const ALL: [Presentation; 5] = [
    Presentation::Bearer,
    Presentation::Header,
    Presentation::Query,
    Presentation::Basic,
    Presentation::Body,
];

pub fn sigmoid_body() -> Value {
    json!({"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32", "data": vec![0.5; 60]}]})
}

/// Sends one request with `key` presented as `how` (or no key at all).
fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    key: Option<&str>,
    how: Presentation,
) -> (u16, Value, Option<String>) {
    let mut url = server.url(path);
    let mut body = if method == "POST" {
        Some(sigmoid_body())
    } else {
        None
    };
    let mut request = if method == "POST" {
        server.client.post(&url)
    } else {
        server.client.get(&url)
    };
    if let Some(key) = key {
        match how {
            Presentation::Bearer => request = request.bearer_auth(key),
            Presentation::Header => request = request.header("x-api-key", key),
            Presentation::Basic => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("gatehouse:{key}"));
                request = request.header("authorization", format!("Basic {encoded}"));
            }
            Presentation::Query => {
                url = format!("{url}?api_key={key}");
                request = if method == "POST" {
                    server.client.post(&url)
                } else {
                    server.client.get(&url)
                };
            }
            Presentation::Body => {
                if let Some(body) = body.as_mut() {
                    body["api_key"] = json!(key);
                }
            }
        }
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().expect("request succeeds");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, body) = split(response);
    (status, body, challenge)
}

/// A key with the same id as `key` and a valid checksum, but another secret.
fn forge_secret(key: &str) -> String {
    let id = &key[4..12];
    let body = format!("gth_{id}{}", "Z".repeat(32));
    gatehouse_core::keys::format::with_checksum(&body)
}

/// Moves one key's `expires` into the past in keys.toml, as a person with an editor would.
fn expire(server: &TestServer, id: &str) {
    let path = server.home.path().join("keys.toml");
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let start = lines
        .iter()
        .position(|l| l == &format!("id = \"{id}\""))
        .expect("key in file");
    let line = lines[start..]
        .iter()
        .position(|l| l.starts_with("expires = "))
        .expect("key has an expiry")
        + start;
    lines[line] = "expires = \"2020-01-01T00:00:00Z\"".to_string();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn every_presentation_of_every_kind_of_key_gets_the_right_answer() {
    let server = TestServer::with_env(&[
        ("GATEHOUSE_METRICS_ACCESS", "key"),
        ("GATEHOUSE_AUTH_FAILURES_BEFORE_SLOWDOWN", "1000"),
        ("GATEHOUSE_AUTH_FAILURES_BEFORE_LOCKOUT", "2000"),
    ]);
    let valid = server.key.clone();
    let metrics_key = server.create_key(&["--scope", "metrics"])["key"]
        .as_str()
        .unwrap()
        .to_string();
    let expired = server.create_key(&["--name", "old"]);
    let revoked = server.create_key(&["--name", "gone"]);
    assert!(
        server
            .keys(&["revoke", revoked["id"].as_str().unwrap()])
            .status
            .success()
    );
    expire(&server, expired["id"].as_str().unwrap());
    let stranger_home = tempfile::tempdir().unwrap();
    let unknown = create_key(stranger_home.path(), &[])["key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut typo = valid.clone().into_bytes();
    typo[20] = if typo[20] == b'q' { b'r' } else { b'q' };
    let typo = String::from_utf8(typo).unwrap();
    // Let the server pick up the revocation and the edited expiry.
    wait_until("the revoked key is refused", || {
        call(
            &server,
            "GET",
            "/v2/models/sigmoid",
            revoked["key"].as_str(),
            Presentation::Bearer,
        )
        .0 == 401
    });
    wait_until("the expired key is refused", || {
        call(
            &server,
            "GET",
            "/v2/models/sigmoid",
            expired["key"].as_str(),
            Presentation::Bearer,
        )
        .1["code"]
            == "expired_api_key"
    });

    let cases: Vec<(&str, Option<String>, u16, Option<&str>)> = vec![
        ("no key", None, 401, Some("unauthorized")),
        (
            "malformed",
            Some("not-a-gatehouse-key".into()),
            401,
            Some("unauthorized"),
        ),
        ("wrong checksum", Some(typo), 401, Some("unauthorized")),
        ("unknown id", Some(unknown), 401, Some("unauthorized")),
        (
            "wrong secret",
            Some(forge_secret(&valid)),
            401,
            Some("unauthorized"),
        ),
        (
            "expired",
            expired["key"].as_str().map(str::to_string),
            401,
            Some("expired_api_key"),
        ),
        (
            "revoked",
            revoked["key"].as_str().map(str::to_string),
            401,
            Some("revoked_api_key"),
        ),
        (
            "wrong scope",
            Some(metrics_key.clone()),
            403,
            Some("insufficient_scope"),
        ),
        ("valid", Some(valid.clone()), 200, None),
    ];
    let endpoints = [
        ("GET", "/v2/models/sigmoid"),
        ("POST", "/v2/models/sigmoid/infer"),
        ("POST", "/v2/repository/index"),
        ("GET", "/v2"),
    ];
    let mut checked = 0;
    for (label, key, status, code) in &cases {
        for (method, path) in endpoints {
            for how in ALL {
                if matches!(how, Presentation::Body) && method == "GET" {
                    continue;
                }
                let (got, body, challenge) = call(&server, method, path, key.as_deref(), how);
                assert_eq!(got, *status, "{label} as {how:?} on {method} {path}: {body}");
                if let Some(code) = code {
                    assert_eq!(body["code"], *code, "{label} as {how:?} on {method} {path}");
                }
                if got == 401 {
                    assert!(
                        challenge.as_deref().is_some_and(|c| c.starts_with("Bearer")),
                        "401 without WWW-Authenticate"
                    );
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, cases.len() * 18);

    // /metrics (and /docs, /openapi.json) need the `metrics` scope here; the infer key is not
    // enough, and the public endpoints need nothing.
    for how in [
        Presentation::Bearer,
        Presentation::Header,
        Presentation::Query,
        Presentation::Basic,
    ] {
        assert_eq!(
            call(&server, "GET", "/metrics", Some(&metrics_key), how).0,
            200,
            "{how:?}"
        );
        let (status, body, _) = call(&server, "GET", "/metrics", Some(&valid), how);
        assert_eq!((status, body["code"].as_str()), (403, Some("insufficient_scope")));
        assert_eq!(call(&server, "GET", "/metrics", None, how).0, 401);
    }
    for path in [
        "/",
        "/healthz",
        "/readiness",
        "/info",
        "/v2/health/live",
        "/v2/health/ready",
    ] {
        assert_eq!(server.get_anonymous(path).0, 200, "{path} must stay public");
    }
}

#[test]
fn a_revoked_key_is_refused_within_one_second_and_a_new_one_accepted() {
    let server = TestServer::start_default();
    let key = server.create_key(&["--name", "short-lived"]);
    let text = key["key"].as_str().unwrap();
    let accepted = wait_until("a key created while running is accepted", || {
        call(
            &server,
            "GET",
            "/v2/models/sigmoid",
            Some(text),
            Presentation::Bearer,
        )
        .0 == 200
    });
    assert!(accepted < Duration::from_secs(1), "new key took {accepted:?}");
    assert!(
        server
            .keys(&["revoke", key["id"].as_str().unwrap()])
            .status
            .success()
    );
    let refused = wait_until("the revoked key is refused", || {
        call(
            &server,
            "GET",
            "/v2/models/sigmoid",
            Some(text),
            Presentation::Bearer,
        )
        .0 == 401
    });
    assert!(refused < Duration::from_secs(1), "revocation took {refused:?}");
    assert_eq!(
        server.get("/v2/models/sigmoid").0,
        200,
        "other keys are unaffected"
    );
}

#[test]
fn a_broken_keys_file_keeps_the_last_good_keys() {
    let server = TestServer::start_default();
    let path = server.home.path().join("keys.toml");
    std::fs::write(&path, "[[key]]\nid = \"half-writ").unwrap();
    wait_until("the failed reload is logged", || {
        server.log().contains("keys_reload_failed")
    });
    assert_eq!(
        server.get("/v2/models/sigmoid").0,
        200,
        "access that existed is kept"
    );
    let body = server.get("/metrics").1;
    assert!(
        body.as_str()
            .unwrap_or("")
            .contains("gatehouse_api_key_reload_failures_total 1"),
        "{body}"
    );
}

#[test]
fn a_revocation_typed_into_keys_toml_beside_a_field_it_does_not_know_still_takes_effect() {
    let server = TestServer::start_default();
    assert_eq!(server.get("/v2/models/sigmoid").0, 200);
    let path = server.home.path().join("keys.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // What a person editing by hand might write: the revocation, and a note field of their own.
    let edited = text.replacen(
        "[[key]]\n",
        "[[key]]\nnote = \"leaked in a screenshot\"\nrevoked = 2026-12-01T00:00:00Z\n",
        1,
    );
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    wait_until("the failed reload is logged", || {
        server.log().contains("keys_reload_failed")
    });
    let (status, body) = server.get("/v2/models/sigmoid");
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("revoked_api_key")),
        "{body}"
    );
}

#[test]
fn guessing_is_slowed_then_locked_out() {
    let server = TestServer::with_env(&[
        ("GATEHOUSE_AUTH_FAILURES_BEFORE_SLOWDOWN", "2"),
        ("GATEHOUSE_AUTH_FAILURES_BEFORE_LOCKOUT", "4"),
        ("GATEHOUSE_AUTH_LOCKOUT_SECONDS", "60"),
    ]);
    let guess = forge_secret(&server.key);
    for _ in 0..2 {
        assert_eq!(
            call(
                &server,
                "GET",
                "/v2/models/sigmoid",
                Some(&guess),
                Presentation::Bearer
            )
            .0,
            401
        );
    }
    let started = Instant::now();
    assert_eq!(
        call(
            &server,
            "GET",
            "/v2/models/sigmoid",
            Some(&guess),
            Presentation::Bearer
        )
        .0,
        401
    );
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the third failure was not slowed"
    );
    let response = server
        .client
        .get(server.url("/v2/models/sigmoid"))
        .bearer_auth(&guess)
        .send()
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(split(response).1["code"], "too_many_auth_failures");
    let (status, body) = server.get("/v2/models/sigmoid");
    assert_eq!(
        status, 200,
        "the right key is never refused by the guessing guard, even while its id is locked: {body}"
    );
    assert_eq!(
        server.get_anonymous("/healthz").0,
        200,
        "public endpoints stay reachable"
    );
    let metrics = server.get_anonymous("/metrics").1;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(r#"gatehouse_rate_limited_total{limit="auth_guard"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gatehouse_auth_failures_total{reason="wrong_secret"} 4"#),
        "{text}"
    );
}

/// What about 30 `<img src="http://127.0.0.1:9001/v2?api_key=x">` tags on any web page do: a
/// stream of unusable keys from 127.0.0.1. It must not lock the owner's own clients out.
#[test]
fn a_web_pages_bad_keys_cannot_lock_out_the_owners_clients() {
    let server = TestServer::with_env(&[
        ("GATEHOUSE_AUTH_FAILURES_BEFORE_SLOWDOWN", "25"),
        ("GATEHOUSE_AUTH_FAILURES_BEFORE_LOCKOUT", "30"),
    ]);
    let mut codes = Vec::new();
    for _ in 0..31 {
        let (status, body) = split(server.client.get(server.url("/v2?api_key=x")).send().unwrap());
        codes.push((status, body["code"].as_str().unwrap_or("").to_string()));
    }
    assert_eq!(
        codes.last().map(|(s, c)| (*s, c.as_str())),
        Some((429, "too_many_auth_failures")),
        "the flood itself is refused outright once it passes the lockout: {codes:?}"
    );
    for (what, path) in [("inference", "/v2/models/sigmoid"), ("server metadata", "/v2")] {
        let (status, body) = server.get(path);
        assert_eq!(
            status, 200,
            "{what} with a valid key from the flooded address: {body}"
        );
    }
    let bearer = server
        .client
        .get(server.url("/v2"))
        .header("x-api-key", &server.key)
        .send()
        .unwrap();
    assert_eq!(bearer.status(), 200);
    // The checklist still judges authentication during the flood.
    let item = crate::util::check_item(&server, &server.url(""), "auth.required");
    assert_eq!(item["status"], "pass", "{item}");
}

#[test]
fn the_per_key_rate_limit_answers_429_with_retry_after() {
    let server = TestServer::with_env(&[("GATEHOUSE_KEY_RPS", "5")]);
    let mut limited = None;
    for _ in 0..30 {
        let response = server
            .client
            .get(server.url("/v2/models/sigmoid"))
            .bearer_auth(&server.key)
            .send()
            .unwrap();
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("30 requests at once must exceed 5 per second with a burst of 10");
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(split(response).1["code"], "rate_limited");
    let text = server.get_anonymous("/metrics").1;
    assert!(
        text.as_str()
            .unwrap()
            .contains(r#"gatehouse_rate_limited_total{limit="key"}"#)
    );
}

#[test]
fn basic_auth_form_posts_are_refused_as_cross_site() {
    let server = TestServer::start_default();
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("u:{}", server.key));
    let response = server
        .client
        .post(server.url("/v2/models/sigmoid/infer"))
        .header("authorization", format!("Basic {encoded}"))
        .header("content-type", "text/plain")
        .body(sigmoid_body().to_string())
        .send()
        .unwrap();
    let (status, body) = split(response);
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("cross_site_request_refused")),
        "{body}"
    );
}

#[test]
fn authentication_can_be_turned_off_and_it_says_so() {
    let server = TestServer::with_env(&[("GATEHOUSE_AUTH", "false")]);
    assert_eq!(server.listening["auth"], false);
    assert_eq!(server.get_anonymous("/v2/models/sigmoid").0, 200);
    assert!(server.log().contains("\"event\":\"auth_disabled\""));
}

#[test]
fn audit_lines_record_requests_and_key_changes_and_no_key_is_ever_logged() {
    let server = TestServer::with_env(&[("GATEHOUSE_LOG", "debug")]);
    let extra = server.create_key(&["--name", "audited"]);
    let extra_key = extra["key"].as_str().unwrap().to_string();
    wait_until("the new key is accepted", || {
        call(
            &server,
            "GET",
            "/v2/models/sigmoid",
            Some(&extra_key),
            Presentation::Bearer,
        )
        .0 == 200
    });
    for how in ALL {
        assert_eq!(
            call(
                &server,
                "POST",
                "/v2/models/sigmoid/infer",
                Some(&server.key),
                how
            )
            .0,
            200,
            "{how:?}"
        );
    }
    let forged = forge_secret(&extra_key);
    assert_eq!(
        call(
            &server,
            "GET",
            "/v2/models/magika",
            Some(&forged),
            Presentation::Query
        )
        .0,
        401
    );
    assert!(
        server
            .keys(&["revoke", extra["id"].as_str().unwrap()])
            .status
            .success()
    );
    let log_before_stop = server.log();
    let home = server.home.path().to_path_buf();
    let harness_key = server.key.clone();
    let mut server = server;
    let (code, log) = server.terminate();
    assert_eq!(code, Some(0));
    let audit = std::fs::read_to_string(home.join("audit/audit.jsonl")).unwrap();
    let lines: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let allowed: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "request" && l["outcome"] == "allowed")
        .collect();
    assert!(allowed.len() >= 6, "{audit}");
    for line in &allowed {
        for field in [
            "time",
            "key_id",
            "address",
            "route",
            "status",
            "latency_us",
            "request_id",
        ] {
            assert!(!line[field].is_null(), "{field} missing in {line}");
        }
    }
    assert!(allowed.iter().any(|l| l["model"] == "sigmoid"
        && l["route"] == "/v2/models/{model}/infer"
        && l["key_presented_as"] == "query"));
    let refused = lines
        .iter()
        .find(|l| l["reason"] == "wrong_secret")
        .expect("the forged key is audited");
    assert_eq!(refused["key_id"], extra["id"]);
    assert_eq!(refused["status"], 401);
    assert_eq!(refused["route"], "/v2/models/{model}");
    for event in ["key_created", "key_revoked"] {
        assert!(
            lines
                .iter()
                .any(|l| l["event"] == event && l["key_id"] == extra["id"]),
            "no {event} line"
        );
    }
    for secret in [&harness_key, &extra_key, &forged] {
        for (name, text) in [
            ("server log", &log),
            ("server log", &log_before_stop),
            ("audit log", &audit),
        ] {
            assert!(!text.contains(secret.as_str()), "a key appears in the {name}");
            assert!(
                !text.contains(&secret[12..44]),
                "a key's secret part appears in the {name}"
            );
        }
    }
    let keys = std::fs::read_to_string(home.join("keys.toml")).unwrap();
    assert!(
        !keys.contains(&harness_key) && !keys.contains(&extra_key),
        "keys.toml holds a key"
    );
    let listed = crate::util::keys_command(&home, &["list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let harness = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "harness")
        .unwrap();
    assert!(
        harness["last_used"].is_string(),
        "last use is written back at shutdown: {harness}"
    );
}

#[test]
fn a_key_that_names_its_models_runs_only_those_directly_and_through_a_workflow() {
    let server = TestServer::start_default();
    let created = server.create_key(&[
        "--name",
        "demo",
        "--scope",
        "infer",
        "--scope",
        "workflows",
        "--model",
        "sigmoid",
    ]);
    assert_eq!(created["models"], json!(["sigmoid"]), "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let post = |path: &str, body: &Value| {
        split(
            server
                .client
                .post(server.url(path))
                .bearer_auth(&key)
                .json(body)
                .send()
                .unwrap(),
        )
    };
    wait_until("the new key is accepted", || {
        post("/v2/models/sigmoid/infer", &sigmoid_body()).0 == 200
    });
    let (status, body) = post("/v2/models/sigmoid/versions/1/infer", &sigmoid_body());
    assert_eq!(status, 200, "{body}");
    // Another model, and one that does not exist, get the same answer: the key learns nothing of
    // what else is served.
    for model in ["magika", "no-such-model"] {
        let (status, body) = post(&format!("/v2/models/{model}/infer"), &sigmoid_body());
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("model_not_allowed")),
            "{body}"
        );
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains(&id) && message.contains("sigmoid") && message.contains(model),
            "{message}"
        );
    }
    let (status, body) = post("/v2/models/magika/versions/1/infer", &sigmoid_body());
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("model_not_allowed")),
        "{body}"
    );
    // Nor does it see the other models: metadata, readiness and the repository index alike.
    let get = |path: &str| {
        split(
            server
                .client
                .get(server.url(path))
                .bearer_auth(&key)
                .send()
                .unwrap(),
        )
    };
    for path in [
        "/v2/models/magika",
        "/v2/models/magika/ready",
        "/v2/models/magika/versions/1",
    ] {
        let (status, body) = get(path);
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("model_not_allowed")),
            "{path}: {body}"
        );
    }
    assert_eq!(get("/v2/models/sigmoid").0, 200);
    let (status, index) = post("/v2/repository/index", &json!({}));
    assert_eq!(status, 200, "{index}");
    let names: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sigmoid"], "{index}");
    let workflow = |model: &str| {
        json!({"workflow": {"steps": [{"name": "run", "kind": "model", "model": model, "inputs": {"x": "$inputs.x"}}],
                            "outputs": {"y": "$steps.run"}},
               "inputs": {"x": sigmoid_body()["inputs"][0].clone()}})
    };
    let (status, body) = post("/v1/workflows/validate", &workflow("sigmoid"));
    assert_eq!(status, 200, "{body}");
    for route in ["/v1/workflows/validate", "/v1/workflows/run"] {
        let (status, body) = post(route, &workflow("magika"));
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("model_not_allowed")),
            "{route}: {body}"
        );
        assert!(
            body["error"].as_str().unwrap().starts_with("step `run`"),
            "{body}"
        );
    }
    // A key without `--model` still runs every model.
    let (status, body) = split(
        server
            .client
            .post(server.url("/v2/models/magika/infer"))
            .bearer_auth(&server.key)
            .json(&json!({"inputs": [{"name": "bytes", "shape": [1, 2048], "datatype": "INT32", "data": vec![256; 2048]}]}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    // A name no model directory can have is refused when the key is made.
    let output = crate::util::keys_command(
        server.home.path(),
        &["create", "--no-keychain", "--model", "../magika"],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("`../magika` is not a model name"));
}

#[test]
fn a_demo_key_comes_with_a_card_to_share_and_stops_working_when_its_time_is_up() {
    let server = TestServer::start_default();
    let output = util::keys_command(
        server.home.path(),
        &[
            "create",
            "--no-keychain",
            "--name",
            "demo",
            "--model",
            "sigmoid",
            "--expires",
            "2s",
            "--share",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The key alone on stdout, for scripts; the card for people on stderr.
    let key = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("gth_") && !key.contains('\n'), "{key}");
    let card = String::from_utf8_lossy(&output.stderr);
    for part in [
        "Gatehouse endpoint: http://127.0.0.1:9001",
        "Valid until:",
        "Models: sigmoid",
        key.as_str(),
        "█",
    ] {
        assert!(card.contains(part), "`{part}` missing from the card: {card}");
    }
    let infer = || {
        split(
            server
                .client
                .post(server.url("/v2/models/sigmoid/infer"))
                .bearer_auth(&key)
                .json(&sigmoid_body())
                .send()
                .unwrap(),
        )
    };
    wait_until("the demo key is accepted", || infer().0 == 200);
    wait_until("the demo key has expired", || infer().0 == 401);
    let (_, body) = infer();
    assert_eq!(body["code"], "expired_api_key", "{body}");
}
