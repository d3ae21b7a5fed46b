//! The network perimeter: request limits (413, 414, 431, 503, 504), CORS allowlists, what
//! `/metrics` and `/docs` demand, and where the server listens (loopback aliases only).

use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{TestServer, default_models, split, wait_until_within};

/// A magika batch big enough to keep the model busy for a while (~8 ms per row here).
fn magika_batch(rows: usize) -> Value {
    json!({"inputs": [{"name": "bytes", "shape": [rows, 2048], "datatype": "INT32", "data": vec![65; rows * 2048]}]})
}

#[test]
fn limits_answer_with_their_own_status_and_are_counted() {
    let server = TestServer::with_env(&[
        ("GATEHOUSE_MAX_CONCURRENT", "1"),
        ("GATEHOUSE_REQUEST_TIMEOUT", "1"),
        ("GATEHOUSE_MAX_URI_BYTES", "512"),
        ("GATEHOUSE_MAX_HEADER_BYTES", "2048"),
        ("GATEHOUSE_MAX_BODY_BYTES", "16777216"),
    ]);

    let long = format!("/v2/models/sigmoid?pad={}", "x".repeat(600));
    let (status, body) = server.get(&long);
    assert_eq!(
        (status, body["code"].as_str()),
        (414, Some("uri_too_long")),
        "{body}"
    );
    let response = server
        .client
        .get(server.url("/healthz"))
        .header("x-padding", "y".repeat(3000))
        .send()
        .unwrap();
    let (status, body) = split(response);
    assert_eq!(
        (status, body["code"].as_str()),
        (431, Some("headers_too_large")),
        "{body}"
    );

    // A batch that takes longer than the 1 s deadline gets 504; while it runs, the one request
    // slot is taken and a second request gets 503 at once.
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| server.post_json("/v2/models/magika/infer", &magika_batch(400)));
        std::thread::sleep(Duration::from_millis(300));
        let response = server.client.get(server.url("/healthz")).send().unwrap();
        assert!(response.headers().contains_key("retry-after"));
        let (status, body) = split(response);
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("overloaded")),
            "{body}"
        );
        let (status, body) = slow.join().unwrap();
        assert_eq!((status, body["code"].as_str()), (504, Some("timeout")), "{body}");
    });
    assert_eq!(server.get("/healthz").0, 200, "the slot is free again");

    let metrics = server.get_anonymous("/metrics").1;
    let text = metrics.as_str().unwrap();
    for limit in ["uri_size", "header_size", "concurrency", "timeout"] {
        assert!(
            text.contains(&format!(r#"gatehouse_rate_limited_total{{limit="{limit}"}} 1"#)),
            "{limit} not counted:\n{text}"
        );
    }
}

#[test]
fn cors_preflights_are_answered_for_allowed_origins_only() {
    let server = TestServer::with_env(&[("GATEHOUSE_CORS_ORIGINS", "http://localhost:5173")]);
    let preflight = |origin: &str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, server.url("/v2/models/sigmoid/infer"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
            .unwrap()
    };
    let allowed = preflight("http://localhost:5173");
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let allowed_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed_headers.contains("authorization"), "{allowed_headers}");
    assert!(!allowed.headers().contains_key("access-control-allow-credentials"));
    let refused = preflight("https://evil.example");
    assert!(
        !refused.headers().contains_key("access-control-allow-origin"),
        "a refused origin was allowed"
    );

    let actual = server
        .client
        .get(server.url("/v2/models/sigmoid"))
        .bearer_auth(&server.key)
        .header("origin", "http://localhost:5173")
        .send()
        .unwrap();
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let other = server
        .client
        .get(server.url("/v2/models/sigmoid"))
        .bearer_auth(&server.key)
        .header("origin", "https://evil.example")
        .send()
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[test]
fn by_default_no_origin_is_allowed() {
    let server = TestServer::start_default();
    let response = server
        .client
        .request(reqwest::Method::OPTIONS, server.url("/v2/models/sigmoid/infer"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .send()
        .unwrap();
    assert!(!response.headers().contains_key("access-control-allow-origin"));
}

#[test]
fn metrics_and_docs_can_require_a_metrics_key() {
    let server = TestServer::with_env(&[("GATEHOUSE_METRICS_ACCESS", "key")]);
    for path in ["/metrics", "/docs", "/openapi.json"] {
        assert_eq!(server.get_anonymous(path).0, 401, "{path}");
    }
    let metrics_key = server.create_key(&["--scope", "metrics"])["key"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until_within("the metrics key being accepted", Duration::from_secs(3), || {
        let request = server.client.get(server.url("/docs")).bearer_auth(&metrics_key);
        request.send().unwrap().status() == 200
    });
    assert_eq!(server.get_anonymous("/healthz").0, 200);
}

#[test]
fn listening_on_one_loopback_address_does_not_answer_on_another() {
    let server = TestServer::builder()
        .models(&default_models())
        .arg("--host")
        .arg("127.0.0.1")
        .start();
    let port = server.addr.rsplit_once(':').unwrap().1;
    assert!(
        TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_secs(2)
        )
        .is_ok()
    );
    let other = TcpStream::connect_timeout(
        &format!("127.0.0.2:{port}").parse().unwrap(),
        Duration::from_secs(2),
    );
    assert!(
        other.is_err(),
        "127.0.0.2 answered although the server listens on 127.0.0.1 only"
    );
}

#[test]
fn an_open_network_without_keys_is_refused_at_start_with_the_override_named() {
    let (output, _) = TestServer::builder()
        .models(&default_models())
        .arg("--host")
        .arg("0.0.0.0")
        .env("GATEHOUSE_AUTH", "false")
        .run_to_exit();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("anyone on the network") && stderr.contains("auth.allow_open_network"),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_names_the_process_holding_it() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let (output, _) = TestServer::builder()
        .models(&default_models())
        .arg("--port")
        .arg(&port)
        .run_to_exit();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("(pid {})", std::process::id())),
        "{stderr}"
    );
}
