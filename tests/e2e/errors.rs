//! Bad input: every case gets a JSON `{"error", "code"}` that says exactly what is wrong, and none
//! of them hurts the server.

use serde_json::json;

use crate::util::{TestServer, assert_error};

fn sigmoid_input(shape: serde_json::Value, datatype: &str, data: serde_json::Value) -> serde_json::Value {
    json!({"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]})
}

#[test]
fn each_kind_of_bad_inference_request_gets_a_precise_error() {
    let server = TestServer::start_default();
    let infer = |body: serde_json::Value| server.post_json("/v2/models/sigmoid/infer", &body);
    let sixty = json!(vec![0.5; 60]);

    assert_error(
        server.post_raw(
            "/v2/models/sigmoid/infer",
            "application/json",
            b"{\"inputs\": [".to_vec(),
        ),
        400,
        "malformed_json",
        &["not valid JSON", "column"],
    );
    assert_error(infer(json!({"input": []})), 400, "invalid_request", &["inputs"]);
    assert_error(
        server.post_json(
            "/v2/models/nope/infer",
            &sigmoid_input(json!([3, 4, 5]), "FP32", sixty.clone()),
        ),
        404,
        "model_not_found",
        &["nope", "magika", "sigmoid"],
    );
    assert_error(
        server.post_json(
            "/v2/models/sigmoid/versions/7/infer",
            &sigmoid_input(json!([3, 4, 5]), "FP32", sixty.clone()),
        ),
        404,
        "version_not_found",
        &["no version 7", "1"],
    );
    assert_error(
        server.get("/v2/models/sigmoid/versions/latest"),
        404,
        "version_not_found",
        &["latest"],
    );
    assert_error(
        infer(json!({"inputs": []})),
        400,
        "missing_input",
        &["`x`", "FP32"],
    );
    assert_error(
        infer(
            json!({"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32", "data": sixty},
                                {"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]}),
        ),
        400,
        "unknown_input",
        &["no input `z`", "`x`"],
    );
    assert_error(
        infer(sigmoid_input(json!([3, 4, 5]), "FP64", sixty.clone())),
        400,
        "wrong_datatype",
        &["expects FP32", "has FP64"],
    );
    assert_error(
        infer(sigmoid_input(json!([3, 4, 5]), "FLOAT", sixty.clone())),
        400,
        "unknown_datatype",
        &["FLOAT", "FP32"],
    );
    assert_error(
        infer(sigmoid_input(json!([3, 4]), "FP32", sixty.clone())),
        400,
        "wrong_shape",
        &["3 dimensions", "[3, 4, 5]"],
    );
    assert_error(
        infer(sigmoid_input(json!([3, 4, 6]), "FP32", json!(vec![0.5; 72]))),
        400,
        "wrong_shape",
        &["dimension 2 must be 5"],
    );
    assert_error(
        infer(sigmoid_input(json!([3, 4, 5]), "FP32", json!(vec![0.5; 59]))),
        400,
        "wrong_element_count",
        &["needs 60", "has 59"],
    );
    let mut bad = vec![json!(0.5); 60];
    bad[7] = json!("high");
    assert_error(
        infer(sigmoid_input(json!([3, 4, 5]), "FP32", json!(bad))),
        400,
        "wrong_data",
        &["element 7", "\"high\"", "FP32"],
    );
    assert_error(
        infer(sigmoid_input(json!([3, 4, 5]), "FP32", json!({"values": 1}))),
        400,
        "wrong_data",
        &["JSON array"],
    );
    assert_error(
        infer(
            json!({"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32", "data": sixty}], "outputs": [{"name": "probabilities"}]}),
        ),
        400,
        "unknown_output",
        &["no output `probabilities`", "`y`"],
    );
    assert_error(
        server.post_raw(
            "/v2/models/sigmoid/infer",
            "application/octet-stream",
            b"{}".to_vec(),
        ),
        415,
        "unsupported_media_type",
        &["Inference-Header-Content-Length"],
    );
    assert_error(
        server.post_raw("/v2/models/sigmoid/infer", "text/plain", b"{}".to_vec()),
        415,
        "unsupported_media_type",
        &["text/plain", "application/json"],
    );
    assert_error(server.get("/v2/no/such/thing"), 404, "not_found", &["/docs"]);
    // The repository index takes an object, `null` or nothing; an array is not read as one.
    assert_error(
        server.post_raw("/v2/repository/index", "application/json", b"[]".to_vec()),
        400,
        "invalid_request",
        &["object"],
    );
    let (status, index) = server.post_raw("/v2/repository/index", "application/json", b"null".to_vec());
    assert_eq!(status, 200, "{index}");
    assert_eq!(index.as_array().map(Vec::len), Some(2), "{index}");

    // Magika's input is INT32: a float or an out-of-range integer is refused, not truncated.
    let mut features = vec![json!(1); 2048];
    features[3] = json!(1.5);
    assert_error(server.post_json("/v2/models/magika/infer", &json!({"inputs": [{"name": "bytes", "shape": [1, 2048], "datatype": "INT32", "data": features}]})), 400, "wrong_data", &["element 3", "INT32"]);
    features[3] = json!(3_000_000_000u64);
    assert_error(server.post_json("/v2/models/magika/infer", &json!({"inputs": [{"name": "bytes", "shape": [1, 2048], "datatype": "INT32", "data": features}]})), 400, "wrong_data", &["element 3"]);

    assert_eq!(
        server.get("/healthz").0,
        200,
        "the server is still healthy after every bad request"
    );
}

#[test]
fn an_oversize_body_gets_413_and_the_server_keeps_serving() {
    let server = TestServer::with_env(&[("GATEHOUSE_MAX_BODY_BYTES", "4096")]);
    let big = sigmoid_input(json!([3, 4, 5]), "FP32", json!(vec![0.123_456_789; 600]));
    assert_error(
        server.post_json("/v2/models/sigmoid/infer", &big),
        413,
        "payload_too_large",
        &["limits.max_body_bytes"],
    );
    let fits = sigmoid_input(json!([3, 4, 5]), "FP32", json!(vec![0.5; 60]));
    assert_eq!(server.post_json("/v2/models/sigmoid/infer", &fits).0, 200);
}

#[test]
fn garbage_bodies_never_crash_the_server() {
    let server = TestServer::start_default();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let fragments: [&[u8]; 8] = [
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"inputs\":",
        b"\"shape\":[1e999]",
        b"-1,",
        b"\xff\xfe",
    ];
    for _ in 0..200 {
        let mut body = Vec::new();
        for _ in 0..(next() % 12) {
            body.extend_from_slice(fragments[(next() % 8) as usize]);
        }
        let (status, response) = server.post_raw("/v2/models/magika/infer", "application/json", body);
        assert!((400..500).contains(&status), "status {status}: {response}");
        assert!(response["code"].is_string(), "{response}");
    }
    for shape in [
        json!([-1, 2048]),
        json!([0, 2048]),
        json!([1_000_000_000_000u64, 2048]),
    ] {
        let (status, response) = server.post_json(
            "/v2/models/magika/infer",
            &json!({"inputs": [{"name": "bytes", "shape": shape, "datatype": "INT32", "data": []}]}),
        );
        assert!(
            (200..500).contains(&status) && status != 500,
            "{shape}: {status} {response}"
        );
    }
    assert_eq!(server.get("/healthz").0, 200);
}
