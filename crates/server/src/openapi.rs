//! The OpenAPI document, generated from the handlers' annotations, and `/docs`: a page rendered
//! from that same document on the server, with no script or asset from anywhere else, so it works
//! offline and under a strict Content-Security-Policy.

use std::fmt::Write;
use std::sync::OnceLock;

use utoipa::OpenApi;

use crate::{api, error, models, tensor, workflows};

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse", description = "A local ONNX inference server speaking the Open Inference Protocol v2, secure by default."),
    paths(
        api::root, api::healthz, api::readiness, api::info, api::metrics,
        api::server_metadata, api::live, api::ready,
        api::model_metadata, api::model_version_metadata, api::model_ready, api::model_version_ready,
        api::model_config, api::infer, api::infer_version, api::repository_index,
        workflows::run, workflows::validate,
    ),
    components(schemas(
        error::ErrorBody, api::ServerMetadata, api::ModelMetadata, api::InferenceRequest, api::RequestedOutput,
        api::InferenceResponse, api::ModelReady, api::ModelConfig, api::ConfigTensor, api::ServerInfo, api::PythonSandbox, api::IndexRequest, models::IndexEntry, models::ModelState,
        tensor::TensorSpec, tensor::InputTensor, tensor::OutputTensor,
    )),
    tags((name = "public", description = "Health, readiness and server information"),
         (name = "inference", description = "Open Inference Protocol v2 (KServe, Triton)"),
         (name = "workflows", description = "Steps chained in one request; python steps only when allowed, sandboxed")),
    modifiers(&Perimeter, &Examples),
)]
struct ApiDoc;

/// Whether a route needs a key, as the routers in `lib.rs` decide; the API fuzzing part of the
/// reliability suite (`tests/e2e/reliability/api.rs`) calls every protected operation without a key.
#[derive(Debug, PartialEq)]
enum Protection {
    Public,
    /// Open to this computer unless `metrics_access` says otherwise; a `metrics` key beyond it.
    Metrics,
    Key,
}

fn protection(path: &str) -> Protection {
    if path == "/metrics" {
        Protection::Metrics
    } else if path.starts_with("/v2/health/") {
        Protection::Public
    } else if path.starts_with("/v2") || path.starts_with("/v1/workflows/") {
        Protection::Key
    } else {
        Protection::Public
    }
}

/// The perimeter's part of the document: how a key is sent, which operations need one, and the
/// refusals the perimeter itself answers with before any handler runs.
struct Perimeter;

impl utoipa::Modify for Perimeter {
    fn modify(&self, document: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer gth_…`, a key from `gatehouse keys create`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The same key in `X-API-Key`, for clients that cannot set `Authorization`",
            ))),
        );
        let refusal = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in document.paths.paths.iter_mut() {
            let protection = protection(path);
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let mut requirements = vec![
                    SecurityRequirement::new::<_, [&str; 0], &str>("bearer", []),
                    SecurityRequirement::new::<_, [&str; 0], &str>("api_key", []),
                ];
                match protection {
                    Protection::Public => continue,
                    // An empty requirement: no key is also accepted (on this computer, by default).
                    Protection::Metrics => requirements.push(SecurityRequirement::default()),
                    Protection::Key => {}
                }
                operation.security = Some(requirements);
                let responses = &mut operation.responses.responses;
                for (status, description) in [
                    (
                        "401",
                        "missing_api_key, invalid_api_key, expired_api_key, revoked_api_key",
                    ),
                    ("403", "insufficient_scope, model_not_allowed"),
                    (
                        "429",
                        "too_many_failures: this address failed too often; Retry-After says when to try again",
                    ),
                ] {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| refusal(description));
                }
            }
        }
    }
}

/// Request examples that the server accepts as they are, so a reader (or a fuzzer's examples
/// phase) can send them unchanged.
struct Examples;

impl utoipa::Modify for Examples {
    fn modify(&self, document: &mut utoipa::openapi::OpenApi) {
        let Some(body) = document
            .paths
            .paths
            .get_mut("/v1/workflows/run")
            .and_then(|item| item.post.as_mut())
            .and_then(|operation| operation.request_body.as_mut())
            .and_then(|body| body.content.get_mut("application/json"))
        else {
            return;
        };
        body.example = Some(workflow_example());
    }
}

/// A shell script's content type by magika, top three: the first and last 1024 bytes of the
/// file as INT32 values, padded with 256.
fn workflow_example() -> serde_json::Value {
    let file = b"#!/bin/sh\necho \"hello from a shell script\"\n";
    let padding = 1024 - file.len();
    let bytes: Vec<i32> = file
        .iter()
        .map(|&b| i32::from(b))
        .chain(std::iter::repeat_n(256, padding * 2))
        .chain(file.iter().map(|&b| i32::from(b)))
        .collect();
    serde_json::json!({
        "workflow": {
            "steps": [
                {"name": "classify", "kind": "model", "model": "magika", "inputs": {"bytes": "$inputs.file"}},
                {"name": "scores", "kind": "softmax", "inputs": {"x": "$steps.classify.target_label"}},
                {"name": "best", "kind": "top_k", "k": 3, "inputs": {"x": "$steps.scores.y"}},
                {"name": "names", "kind": "labels", "model": "magika", "inputs": {"indices": "$steps.best.indices"}}
            ],
            "outputs": {"labels": "$steps.names.labels", "scores": "$steps.best.values"}
        },
        "inputs": {"file": {"shape": [1, 2048], "datatype": "INT32", "data": bytes}}
    })
}

fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = ApiDoc::openapi();
        document.info.version = gatehouse_core::VERSION.to_string();
        document
    })
}

/// `/openapi.json`.
pub fn document_json() -> String {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}"))
    })
    .clone()
}

/// `/docs`.
pub fn docs_html() -> String {
    static HTML: OnceLock<String> = OnceLock::new();
    HTML.get_or_init(render).clone()
}

fn render() -> String {
    let document = document();
    let mut body = String::new();
    for (path, item) in &document.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let _ = write!(
                body,
                "<section><h3><span class=\"method {m}\">{method}</span> <code>{path}</code></h3>",
                m = method.to_ascii_lowercase(),
                path = escape(path)
            );
            if let Some(summary) = operation.summary.as_ref().or(operation.description.as_ref()) {
                let _ = write!(body, "<p>{}</p>", escape(summary));
            }
            if let Some(body_schema) = &operation.request_body {
                let text = serde_json::to_string_pretty(body_schema).unwrap_or_default();
                let _ = write!(
                    body,
                    "<details><summary>Request body</summary><pre>{}</pre></details>",
                    escape(&text)
                );
            }
            body.push_str("<table><tr><th>Status</th><th>Meaning</th></tr>");
            for (status, response) in &operation.responses.responses {
                let description = match response {
                    utoipa::openapi::RefOr::T(response) => response.description.clone(),
                    utoipa::openapi::RefOr::Ref(reference) => reference.ref_location.clone(),
                };
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    escape(status),
                    escape(&description)
                );
            }
            body.push_str("</table></section>");
        }
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Gatehouse API</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{STYLE}</style></head>\
         <body><header><h1>Gatehouse API <small>{version}</small></h1><p>{description}</p>\
         <p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>. Errors are \
         <code>{{\"error\": \"…\", \"code\": \"…\"}}</code>.</p></header><main>{body}</main></body></html>",
        version = escape(&document.info.version),
        description = escape(document.info.description.as_deref().unwrap_or_default()),
    )
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#1b1f24;background:#fff}\
h1 small{font-size:.5em;color:#57606a}section{border:1px solid #d0d7de;border-radius:6px;padding:.2rem 1rem;margin:.8rem 0}\
h3{font-size:1rem}.method{display:inline-block;min-width:3.5rem;padding:.1rem .4rem;border-radius:4px;color:#fff;text-align:center}\
.get{background:#0969da}.post{background:#1a7f37}table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d0d7de;padding:.2rem .6rem;text-align:left}\
pre{background:#f6f8fa;padding:.6rem;overflow:auto}@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}\
section,td,th{border-color:#30363d}pre{background:#161b22}}";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_oip_route_is_documented() {
        let json: serde_json::Value = serde_json::from_str(&document_json()).unwrap();
        let paths = json["paths"].as_object().unwrap();
        for path in [
            "/v2",
            "/v2/models/{model}/infer",
            "/v2/repository/index",
            "/readiness",
            "/info",
        ] {
            assert!(
                paths.contains_key(path),
                "{path} missing from the OpenAPI document"
            );
        }
    }

    #[test]
    fn docs_page_needs_nothing_from_the_network() {
        let html = docs_html();
        assert!(html.contains("/v2/models/{model}/infer"));
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
    }
}
