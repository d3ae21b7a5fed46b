//! API fuzzing: schemathesis generates requests for every operation of `/openapi.json` — valid
//! ones, invalid ones, each protected operation without a key — and checks every answer against
//! the document: no 5xx, every status and body as documented (errors are `{"error","code"}`),
//! invalid data refused, keys not ignored.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use super::{budget, section, tool, version_of};
use crate::util::{TestServer, default_models};

/// The operations whose accepted data depends on the model or the workflow itself, which no JSON
/// Schema can say (a model's input names and shapes, a step's reference to another step): a 400
/// there answers a schema-valid request correctly. Everywhere else schemathesis's defaults hold.
const CONFIG: &str = r#"
headers = { Authorization = "Bearer ${GATEHOUSE_SCHEMATHESIS_KEY}" }

[parameters]
"path.model" = "sigmoid"
"path.version" = "1"

[[operations]]
include-path-regex = "/infer$|^/v1/workflows/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "413", "429"]
"#;

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let examples = budget(10, 100);
    let server = TestServer::builder().models(&default_models()).start();
    server.wait_ready();
    let key = server.create_key(&[
        "--scope",
        "infer",
        "--scope",
        "workflows",
        "--scope",
        "metrics",
        "--name",
        "schemathesis",
    ])["key"]
        .as_str()
        .unwrap()
        .to_string();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let report = work.path().join("report.json");
    let command = format!(
        "st run {url} --checks all --max-examples {examples} --seed 1",
        url = server.url("/openapi.json")
    );
    let output = Command::new(tool("st"))
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .args([
            "run",
            &server.url("/openapi.json"),
            "--checks",
            "all",
            "--seed",
            "1",
        ])
        .args(["--max-examples", &examples.to_string()])
        .args(["--report", "json", "--report-json-path"])
        .arg(&report)
        .env("GATEHOUSE_SCHEMATHESIS_KEY", &key)
        .current_dir(work.path())
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_else(|_| {
        panic!(
            "schemathesis wrote no report:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    }))
    .unwrap();
    assert!(
        output.status.success()
            && result["failures"].as_array().is_some_and(Vec::is_empty)
            && result["errors"].as_array().is_some_and(Vec::is_empty),
        "schemathesis found failures:\n{stdout}"
    );
    let cases = &result["test_cases"];
    let operations = &result["operations"];
    assert_eq!(operations["tested"], operations["total"], "{result}");
    assert!(
        cases["generated"].as_u64().unwrap() >= 17 * examples as u64 / 2,
        "{result}"
    );

    // What the server itself recorded: every request schemathesis sent, by status.
    let mut statuses = BTreeMap::<u64, u64>::new();
    for file in std::fs::read_dir(server.home.path().join("audit")).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let event: Value = serde_json::from_str(line).unwrap();
                if event["event"] == "request" {
                    *statuses.entry(event["status"].as_u64().unwrap()).or_default() += 1;
                }
            }
        }
    }
    let server_errors: u64 = statuses.range(500..).map(|(_, n)| n).sum();
    assert_eq!(
        server_errors, 0,
        "the audit log records 5xx answers: {statuses:?}"
    );
    assert!(
        statuses.get(&401).is_some_and(|&n| n > 0),
        "no request went without a key: {statuses:?}"
    );
    let by_status = statuses
        .iter()
        .map(|(status, n)| format!("{status}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let phases = result["phases"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(phase, p)| format!("{phase} {}", p["status"].as_str().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(", ");
    section(
        "api",
        "API fuzzing",
        &format!(
            "Tool: schemathesis {version} against `/openapi.json` (OpenAPI 3.1, generated from the handlers), \
             with a key holding the infer, workflows and metrics scopes.\n\
             Command: `{command}` (`tests/e2e/reliability/api.rs`; its configuration names the test models \
             and the key's header).\n\n\
             | operations tested | test cases | failures | errors | phases | requests the server audited | 5xx |\n\
             |---|---|---|---|---|---|---|\n\
             | {tested}/{total} | {generated} | {failures} | {errors} | {phases} | {audited} | {server_errors} |\n\n\
             Answers by status, from the server's audit log: {by_status}.\n\n\
             Checks: all of schemathesis's (`--checks all`): no server error, status codes, content types, \
             headers and bodies as documented (every error body is `ErrorBody`, `{{\"error\",\"code\"}}`), \
             invalid data refused, valid data accepted, each protected operation refused without a key \
             (`ignored_auth`; the document declares the `bearer` and `X-API-Key` schemes). One setting \
             differs from the defaults: on the two `infer` operations and the two workflow operations a 400 counts as a right answer to a schema-valid \
             request, because what those accept depends on the model (its inputs' names, shapes and \
             datatypes) or on the workflow's own references, which the document cannot state.\n\n\
             Found and fixed: the document described the workflow body as any object and shape \
             dimensions as any number, and its workflow example was not a request the server accepts; \
             now the body is typed step by step (`workflows/schema.rs`), dimensions are whole numbers \
             ≥ 0, datatypes are listed, and the example runs as it is. A labels step naming a model \
             that does not exist said the model \"has no labels\"; it now says there is no such model.\n",
            version = version_of("schemathesis"),
            tested = operations["tested"],
            total = operations["total"],
            generated = cases["generated"],
            failures = result["failures"].as_array().map_or(0, Vec::len),
            errors = result["errors"].as_array().map_or(0, Vec::len),
            audited = statuses.values().sum::<u64>(),
        ),
    );
}
