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
        api::infer, api::infer_version, api::repository_index,
        workflows::run, workflows::validate,
    ),
    components(schemas(
        error::ErrorBody, api::ServerMetadata, api::ModelMetadata, api::InferenceRequest, api::RequestedOutput,
        api::InferenceResponse, api::ModelReady, api::ServerInfo, api::PythonSandbox, api::IndexRequest, models::IndexEntry,
        tensor::TensorSpec, tensor::InputTensor, tensor::OutputTensor,
    )),
    tags((name = "public", description = "Health, readiness and server information"),
         (name = "inference", description = "Open Inference Protocol v2 (KServe, Triton)"),
         (name = "workflows", description = "Steps chained in one request; python steps only when allowed, sandboxed")),
)]
struct ApiDoc;

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
