//! Inference over the Open Inference Protocol, checked against ONNX Runtime's own results.

use serde_json::{Value, json};

use crate::util::{ModelDir, TestServer, default_models, reference_outputs};

/// Magika's input for a file: the first 1024 bytes (leading whitespace stripped) padded at the end
/// with 256, then the last 1024 (trailing whitespace stripped) padded at the front.
fn magika_features(content: &[u8]) -> Vec<i32> {
    const SIZE: usize = 1024;
    const BLOCK: usize = 4096;
    const PADDING: i32 = 256;
    let head = &content[..content.len().min(BLOCK)];
    let head = &head[head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len())..];
    let tail = &content[content.len().saturating_sub(BLOCK)..];
    let tail = &tail[..tail
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1)];
    let mut features: Vec<i32> = head.iter().take(SIZE).map(|&b| i32::from(b)).collect();
    features.resize(SIZE, PADDING);
    let end: Vec<i32> = tail[tail.len().saturating_sub(SIZE)..]
        .iter()
        .map(|&b| i32::from(b))
        .collect();
    features.extend(std::iter::repeat_n(PADDING, SIZE - end.len()));
    features.extend(end);
    features
}

fn argmax(values: &[f64]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

#[test]
fn model_metadata_comes_from_the_onnx_file() {
    let server = TestServer::start_default();
    let (status, metadata) = server.get("/v2/models/magika");
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["platform"], "onnxruntime_onnx");
    assert_eq!(metadata["versions"], json!(["1"]));
    assert_eq!(
        metadata["inputs"],
        json!([{"name": "bytes", "datatype": "INT32", "shape": [-1, 2048]}])
    );
    assert_eq!(
        metadata["outputs"],
        json!([{"name": "target_label", "datatype": "FP32", "shape": [-1, 214]}])
    );
    assert_eq!(metadata["labels"].as_array().unwrap().len(), 214);
    assert_eq!(server.get("/v2/models/magika/versions/1").1, metadata);
    let (status, ready) = server.get("/v2/models/magika/ready");
    assert_eq!((status, ready["ready"].clone()), (200, json!(true)));
    assert_eq!(server.get("/v2/models/magika/versions/1/ready").0, 200);
    let (status, server_metadata) = server.get("/v2");
    assert_eq!(status, 200);
    assert_eq!(server_metadata["name"], "gatehouse");
}

#[test]
fn magika_classifies_a_rust_file_exactly_as_onnx_runtime_does() {
    let server = TestServer::start_default();
    let source = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/server/src/tensor.rs"
    ))
    .unwrap();
    let readme =
        b"# Notes\n\nThis is a *short* markdown file.\n\n- one\n- two\n\n[a link](https://example.org)\n"
            .to_vec();
    let batch: Vec<i32> = [magika_features(&source), magika_features(&readme)].concat();
    let request = json!({
        "id": "classify-1",
        "inputs": [{"name": "bytes", "shape": [2, 2048], "datatype": "INT32", "data": batch}],
    });
    let (status, response) = server.post_json("/v2/models/magika/infer", &request);
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["id"], "classify-1");
    assert_eq!(response["model_name"], "magika");
    assert_eq!(response["model_version"], "1");
    let output = &response["outputs"][0];
    assert_eq!(output["name"], "target_label");
    assert_eq!(output["datatype"], "FP32");
    assert_eq!(output["shape"], json!([2, 214]));

    let model = default_models().join("magika/1/model.onnx");
    let reference = reference_outputs(
        &model,
        json!({"bytes": {"datatype": "INT32", "shape": [2, 2048], "data": batch}}),
    );
    let ours = floats(&output["data"]);
    let theirs = floats(&reference["target_label"]["data"]);
    assert_eq!(ours.len(), theirs.len());
    for (index, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6,
            "score {index}: server {a}, ONNX Runtime {b}"
        );
    }
    let (_, metadata) = server.get("/v2/models/magika");
    let labels = metadata["labels"].as_array().unwrap();
    assert_eq!(labels[argmax(&ours[..214])], "rust");
    assert_eq!(labels[argmax(&ours[214..])], "markdown");
}

#[test]
fn nested_data_requested_outputs_and_versions_work_like_flat_data() {
    let server = TestServer::start_default();
    let flat: Vec<f64> = (0..60).map(|i| f64::from(i) / 10.0 - 3.0).collect();
    let nested: Vec<Vec<Vec<f64>>> = flat
        .chunks(20)
        .map(|plane| plane.chunks(5).map(<[f64]>::to_vec).collect())
        .collect();
    let (status, a) = server.post_json(
        "/v2/models/sigmoid/infer",
        &json!({"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32", "data": flat}]}),
    );
    assert_eq!(status, 200, "{a}");
    let (status, b) = server.post_json(
        "/v2/models/sigmoid/versions/1/infer",
        &json!({"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32", "data": nested}],
                "outputs": [{"name": "y"}]}),
    );
    assert_eq!(status, 200, "{b}");
    assert_eq!(a["outputs"], b["outputs"]);
    assert!(a.get("id").is_none(), "no id is invented when none was sent");
    let reference = reference_outputs(
        &default_models().join("sigmoid/1/model.onnx"),
        json!({"x": {"datatype": "FP32", "shape": [3, 4, 5], "data": flat}}),
    );
    let ours = floats(&a["outputs"][0]["data"]);
    let theirs = floats(&reference["y"]["data"]);
    assert_eq!(a["outputs"][0]["shape"], json!([3, 4, 5]));
    assert_eq!((ours.len(), theirs.len()), (60, 60));
    for (a, b) in ours.iter().zip(&theirs) {
        assert!((a - b).abs() <= 1e-7, "server {a}, ONNX Runtime {b}");
    }
}

#[test]
fn every_served_datatype_round_trips_through_onnx_runtime() {
    let models = ModelDir::new();
    models.generate();
    let server = TestServer::builder().models(models.path()).start();
    server.wait_ready();
    let samples: [(&str, Value); 12] = [
        ("BOOL", json!([true, false, false, true])),
        ("UINT8", json!([0, 1, 200, 255])),
        ("UINT16", json!([0, 1, 60000, 65535])),
        ("UINT32", json!([0, 1, 4_000_000_000u32, 4_294_967_295u32])),
        (
            "UINT64",
            json!([0, 1, 9_007_199_254_740_993u64, 18_446_744_073_709_551_615u64]),
        ),
        ("INT8", json!([-128, -1, 0, 127])),
        ("INT16", json!([-32768, -1, 0, 32767])),
        ("INT32", json!([-2_147_483_648, -1, 0, 2_147_483_647])),
        (
            "INT64",
            json!([-9_223_372_036_854_775_808i64, -1, 0, 9_223_372_036_854_775_807i64]),
        ),
        ("FP32", json!([-1.5, 0.0, 0.1, 3.4e38])),
        ("FP64", json!([-1.5, 0.0, 0.1, 1.7e308])),
        ("BYTES", json!(["", "hello", "ünïcödé ✓", "a \"quoted\" line\n"])),
    ];
    let inputs: Vec<Value> = samples
        .iter()
        .map(|(datatype, data)| json!({"name": format!("in_{datatype}"), "shape": [2, 2], "datatype": datatype, "data": data}))
        .collect();
    let (status, response) = server.post_json("/v2/models/identity/infer", &json!({"inputs": inputs}));
    assert_eq!(status, 200, "{response}");
    let outputs = response["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 12);
    for (datatype, data) in &samples {
        let output = outputs
            .iter()
            .find(|o| o["name"] == format!("out_{datatype}"))
            .unwrap();
        assert_eq!(output["datatype"], *datatype);
        assert_eq!(output["shape"], json!([2, 2]));
        assert_eq!(output["data"], *data, "{datatype} did not round-trip exactly");
    }
}

#[test]
fn a_broken_model_is_reported_and_the_others_still_serve() {
    let models = ModelDir::new();
    models
        .copy_installed("sigmoid")
        .generate()
        .write("garbage/1/model.onnx", b"this is not an ONNX file")
        .write("empty/README", b"no versions here")
        .write("badconfig/config.toml", b"labels = 3\n")
        .write(
            "badconfig/1/model.onnx",
            &std::fs::read(default_models().join("sigmoid/1/model.onnx")).unwrap(),
        );
    let server = TestServer::builder().models(models.path()).start();
    server.wait_ready();
    let (status, index) = server.post_json("/v2/repository/index", &json!({}));
    assert_eq!(status, 200);
    let row = |name: &str| {
        index
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {index}"))
    };
    assert_eq!(row("sigmoid")["state"], "READY");
    assert_eq!(row("identity")["state"], "READY");
    for (name, reason) in [
        ("garbage", "cannot load"),
        ("empty", "no version"),
        ("badconfig", "config.toml"),
        ("sequence", "not a tensor"),
    ] {
        let row = row(name);
        assert_eq!(row["state"], "UNAVAILABLE", "{row}");
        assert!(row["reason"].as_str().unwrap().contains(reason), "{name}: {row}");
    }
    let (_, ready_only) = server.post_json("/v2/repository/index", &json!({"ready": true}));
    // sigmoid, and the generated identity, upper and image.
    assert_eq!(ready_only.as_array().unwrap().len(), 4, "{ready_only}");
    let (status, body) = server.get("/v2/models/garbage");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "model_unavailable");
    let (status, _) = server.post_json(
        "/v2/models/sigmoid/infer",
        &json!({"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32", "data": vec![1.0; 60]}]}),
    );
    assert_eq!(status, 200);
    let unavailable: Vec<_> = server
        .log_events()
        .into_iter()
        .filter(|e| e["event"] == "model_unavailable")
        .collect();
    assert_eq!(
        unavailable.len(),
        4,
        "each broken model is logged once:\n{}",
        server.log()
    );
}

#[test]
fn concurrent_requests_to_one_model_all_get_their_own_answer() {
    let server = TestServer::with_env(&[("GATEHOUSE_SESSIONS_PER_MODEL", "2")]);
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let server = &server;
            scope.spawn(move || {
                for round in 0..10 {
                    let value = f64::from(worker * 10 + round) / 10.0 - 2.0;
                    let (status, response) = server.post_json(
                        "/v2/models/sigmoid/infer",
                        &json!({"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32", "data": vec![value; 60]}]}),
                    );
                    assert_eq!(status, 200, "{response}");
                    let got = response["outputs"][0]["data"][0].as_f64().unwrap();
                    let want = 1.0 / (1.0 + (-value).exp());
                    assert!((got - want).abs() < 1e-6, "request {worker}/{round}: {got} != {want}");
                }
            });
        }
    });
}

#[test]
fn triton_s_client_with_its_defaults_gets_onnx_runtime_s_answer_in_binary() {
    let server = TestServer::start_default();
    let script = format!(
        "{}/e2e/upstreams/kserve/triton_client.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let run = |key: Option<&str>| {
        let mut command = std::process::Command::new(crate::util::kserve_python());
        command.arg(&script).arg(&server.addr);
        if let Some(key) = key {
            command.arg(key);
        }
        command.output().unwrap()
    };
    let output = run(Some(&server.key));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ours: Vec<f64> = serde_json::from_slice(&output.stdout).unwrap();
    // The client's inputs, computed in f32 as numpy does, so ONNX Runtime sees the same floats.
    let flat: Vec<f64> = (0..60u8).map(|i| f64::from(f32::from(i) / 10.0 - 3.0)).collect();
    let reference = reference_outputs(
        &default_models().join("sigmoid/1/model.onnx"),
        json!({"x": {"datatype": "FP32", "shape": [3, 4, 5], "data": flat}}),
    );
    let theirs = floats(&reference["y"]["data"]);
    assert_eq!((ours.len(), theirs.len()), (60, 60));
    for (a, b) in ours.iter().zip(&theirs) {
        // Binary both ways: the very float ONNX Runtime computed.
        assert_eq!(*a as f32, *b as f32, "server {a}, ONNX Runtime {b}");
    }
    let refused = run(None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
}

/// A binary request body: the JSON header, then `tail`.
fn binary_request(server: &TestServer, header: &Value, tail: &[u8]) -> reqwest::blocking::Response {
    let json = header.to_string();
    let mut body = json.clone().into_bytes();
    body.extend_from_slice(tail);
    server
        .client
        .post(server.url("/v2/models/sigmoid/infer"))
        .bearer_auth(&server.key)
        .header("content-type", "application/octet-stream")
        .header("inference-header-content-length", json.len().to_string())
        .body(body)
        .send()
        .unwrap()
}

#[test]
fn binary_tensors_in_and_out_agree_with_json_and_wrong_lengths_are_named() {
    let server = TestServer::start_default();
    let flat: Vec<f32> = (0..60).map(|i| i as f32 / 10.0 - 3.0).collect();
    let tail: Vec<u8> = flat.iter().flat_map(|f| f.to_le_bytes()).collect();
    let (status, by_json) = server.post_json(
        "/v2/models/sigmoid/infer",
        &json!({"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32", "data": flat}]}),
    );
    assert_eq!(status, 200, "{by_json}");
    let expected: Vec<f32> = floats(&by_json["outputs"][0]["data"])
        .iter()
        .map(|f| *f as f32)
        .collect();

    // Binary in, JSON out.
    let header = json!({"id": "b1", "inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32",
                                               "parameters": {"binary_data_size": 240}}]});
    let response = binary_request(&server, &header, &tail);
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().unwrap();
    assert_eq!(answer["id"], "b1");
    assert_eq!(answer["outputs"], by_json["outputs"]);

    // Binary in, binary out.
    let mut header = header;
    header["outputs"] = json!([{"name": "y", "parameters": {"binary_data": true}}]);
    let response = binary_request(&server, &header, &tail);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/octet-stream");
    let length: usize = response.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().unwrap();
    let head: Value = serde_json::from_slice(&bytes[..length]).unwrap();
    assert_eq!(
        head["outputs"][0]["parameters"]["binary_data_size"], 240,
        "{head}"
    );
    assert!(head["outputs"][0].get("data").is_none(), "{head}");
    let values: Vec<f32> = bytes[length..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(values, expected);

    // Lengths that do not add up are refused, each with the numbers.
    let (status, body) = crate::util::split(binary_request(&server, &header, &tail[..200]));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_binary_request")),
        "{body}"
    );
    assert!(body["error"].as_str().unwrap().contains("240 bytes"), "{body}");
    let mut short = header.clone();
    short["inputs"][0]["parameters"]["binary_data_size"] = json!(200);
    let (status, body) = crate::util::split(binary_request(&server, &short, &tail[..200]));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("wrong_data")),
        "{body}"
    );
    assert!(body["error"].as_str().unwrap().contains("200 bytes"), "{body}");
    let (status, body) = crate::util::split(binary_request(
        &server,
        &header,
        &[tail.clone(), vec![0; 4]].concat(),
    ));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_binary_request")),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("4 bytes after the JSON header"),
        "{body}"
    );
}

#[test]
fn strings_go_through_onnx_runtime_from_triton_s_client_in_binary_and_as_json() {
    let models = ModelDir::new();
    models.generate();
    let server = TestServer::builder().models(models.path()).start();
    server.wait_ready();
    let (_, metadata) = server.get("/v2/models/upper");
    assert_eq!(metadata["inputs"][0]["datatype"], "BYTES", "{metadata}");
    let (_, server_metadata) = server.get("/v2");
    assert!(
        server_metadata["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("binary_tensor_data"))
    );
    let script = format!(
        "{}/e2e/upstreams/kserve/triton_strings.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = std::process::Command::new(crate::util::kserve_python())
        .arg(&script)
        .arg(&server.addr)
        .arg(&server.key)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Value = serde_json::from_slice(&output.stdout).unwrap();
    // StringNormalizer upper-cases; what ONNX Runtime itself answers is the reference.
    let reference = reference_outputs(
        &models.path().join("upper/1/model.onnx"),
        json!({"text": {"datatype": "BYTES", "shape": [4], "data": ["hello", "ünïcödé", "", "Gatehouse ✓"]}}),
    );
    assert_eq!(reference["upper"]["data"][0], "HELLO", "{reference}");
    assert_eq!(answers[0], reference["upper"]["data"], "binary data both ways");
    assert_eq!(answers[1], reference["upper"]["data"], "JSON both ways");

    // Binary BYTES that do not add up: each refused with the element and the numbers.
    let send = |elements: &[u8], shape: usize| {
        let header = json!({"inputs": [{"name": "text", "shape": [shape], "datatype": "BYTES",
            "parameters": {"binary_data_size": elements.len()}}]})
        .to_string();
        let response = server
            .client
            .post(server.url("/v2/models/upper/infer"))
            .bearer_auth(&server.key)
            .header("content-type", "application/octet-stream")
            .header("inference-header-content-length", header.len().to_string())
            .body([header.as_bytes(), elements].concat())
            .send()
            .unwrap();
        crate::util::split(response)
    };
    let prefixed = |text: &[u8]| [&(text.len() as u32).to_le_bytes()[..], text].concat();
    assert_eq!(send(&prefixed(b"ok"), 1).0, 200);
    for (elements, shape, fragment) in [
        (
            [prefixed(b"ab"), vec![9, 0, 0, 0, b'x']].concat(),
            2,
            "element 1's length prefix says 9 bytes, 1 remain",
        ),
        ([prefixed(b"ab"), vec![1, 0]].concat(), 2, "cut short"),
        (prefixed(b"ab"), 2, "holds 1 elements; the shape takes 2"),
        (
            [prefixed(b"ab"), prefixed(b"cd")].concat(),
            1,
            "goes on for 6 bytes",
        ),
        (prefixed(&[0xc3, 0x28]), 1, "element 0 is not UTF-8"),
    ] {
        crate::util::assert_error(send(&elements, shape), 400, "wrong_data", &[fragment]);
    }
    assert_eq!(server.get("/healthz").0, 200, "the server is fine after each");
}
