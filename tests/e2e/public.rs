//! The endpoints anyone may call, and what they may and may not reveal.

use crate::util::TestServer;

#[test]
fn public_endpoints_answer_without_a_key() {
    let server = TestServer::start_default();
    for path in [
        "/",
        "/healthz",
        "/readiness",
        "/info",
        "/v2/health/live",
        "/v2/health/ready",
        "/openapi.json",
    ] {
        let (status, body) = server.get_anonymous(path);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.is_object(), "{path} answers JSON: {body}");
    }
    let (status, info) = server.get("/info");
    assert_eq!(status, 200);
    assert_eq!(info["tls"], false);
    assert_eq!(info["loopback_only"], true);
    assert_eq!(info["address"], server.addr);
    assert_eq!(info["models_ready"], 2);
    let text = info.to_string();
    assert!(
        !text.contains(&crate::util::data_dir().display().to_string()),
        "/info leaks a path: {text}"
    );
}

#[test]
fn docs_render_offline_from_the_openapi_document() {
    let server = TestServer::start_default();
    let response = server.client.get(server.url("/docs")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().unwrap();
    assert!(
        html.contains("/v2/models/{model}/infer"),
        "docs list the inference route"
    );
    for external in ["http://", "https://", "<script", "<link"] {
        assert!(
            !html.contains(external),
            "docs page loads something from elsewhere: {external}"
        );
    }
    let (_, document) = server.get("/openapi.json");
    assert_eq!(document["info"]["title"], "Gatehouse");
    for path in [
        "/v2",
        "/v2/models/{model}",
        "/v2/models/{model}/versions/{version}/infer",
        "/v2/repository/index",
        "/metrics",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "{path} missing from /openapi.json"
        );
    }
}

#[test]
fn metrics_count_requests_inference_time_and_models() {
    let server = TestServer::start_default();
    let body = serde_json::json!({"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32", "data": vec![0.0; 60]}]});
    assert_eq!(server.post_json("/v2/models/sigmoid/infer", &body).0, 200);
    assert_eq!(server.get("/v2/models/nope").0, 404);
    // Methods are the client's to invent: each made-up one must not become a series of its own.
    for invented in ["BREW", "WHEN", "X-1"] {
        let method = reqwest::Method::from_bytes(invented.as_bytes()).unwrap();
        let response = server
            .client
            .request(method, server.url("/healthz"))
            .send()
            .unwrap();
        assert_eq!(response.status(), 405);
    }
    let response = server.client.get(server.url("/metrics")).send().unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().unwrap();
    for expected in [
        r#"gatehouse_http_requests_total{route="/v2/models/{model}/infer",method="POST",status="200"} 1"#,
        r#"gatehouse_http_requests_total{route="/v2/models/{model}",method="GET",status="404"} 1"#,
        r#"gatehouse_http_requests_total{route="/healthz",method="other",status="405"} 3"#,
        r#"gatehouse_inference_duration_seconds_count{model="sigmoid",version="1"} 1"#,
        r#"gatehouse_http_request_duration_seconds_bucket{le="#,
        "gatehouse_models_loaded 2",
        "gatehouse_http_requests_in_flight 1",
        r#"gatehouse_build_info{version=""#,
        "gatehouse_process_start_time_seconds ",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` missing from /metrics:\n{text}"
        );
    }
    for invented in ["BREW", "WHEN", "X-1"] {
        assert!(
            !text.contains(invented),
            "method {invented} became a label:\n{text}"
        );
    }
}

#[test]
fn every_log_line_is_json_and_request_lines_carry_the_request_id() {
    let server = TestServer::with_env(&[("GATEHOUSE_LOG", "debug")]);
    let response = server
        .client
        .get(server.url("/v2/models/magika"))
        .bearer_auth(&server.key)
        .header("x-request-id", "trace-me-42")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let generated = server.client.get(server.url("/healthz")).send().unwrap();
    assert_eq!(
        generated.headers()["x-request-id"].len(),
        36,
        "a request without an id gets a UUID"
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = server.log();
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
    }
    let tagged: Vec<_> = server
        .log_events()
        .into_iter()
        .filter(|e| e["span"]["request_id"] == "trace-me-42")
        .collect();
    assert!(!tagged.is_empty(), "no log line carries the request id:\n{log}");
}
