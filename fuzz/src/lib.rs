//! What each fuzz target does with its input. Besides "no panic, no hang, no unbounded memory"
//! (libFuzzer's own checks), each target asserts a property the rest of Gatehouse relies on.
//!
//! The targets that need ONNX Runtime or models find them where `./scripts/test.sh` installs them
//! (`$GATEHOUSE_DATA`, default `~/.local/share/gatehouse`).

use std::path::PathBuf;
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use gatehouse_core::keys::{KeyFile, format};
use gatehouse_core::probe;
use gatehouse_core::settings::Settings;
use gatehouse_core::supervisor::scrape;
use gatehouse_server::models::{LoadOptions, Repository, Runtime};
use gatehouse_server::tensor::{self, DataType, TensorSpec, binary};
use serde_json::Value;

fn data_dir() -> PathBuf {
    std::env::var_os("GATEHOUSE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".local/share/gatehouse")
        })
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::load(&data_dir().join("runtime/libonnxruntime.so")).expect("ONNX Runtime loads")
    })
}

fn repository() -> &'static Repository {
    static REPOSITORY: OnceLock<Repository> = OnceLock::new();
    REPOSITORY.get_or_init(|| {
        let options = LoadOptions {
            intra_threads: 1,
            sessions_per_model: 1,
            allow_symlinks: false,
        };
        let repository = Repository::load(runtime(), &data_dir().join("models"), &options);
        assert!(
            repository.ready_count() > 0,
            "no model loaded from {}",
            data_dir().display()
        );
        repository
    })
}

/// An inference request body, as JSON or (first byte odd) as Triton's binary extension with the
/// JSON header's length in the next two bytes; each input then read against a model input of
/// its own declared datatype and shape, some dimensions dynamic.
pub fn tensor_request(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = if mode & 1 == 1 && rest.len() >= 2 {
        let length = u16::from_le_bytes([rest[0], rest[1]]);
        headers.insert(binary::HEADER_LENGTH, HeaderValue::from(length));
        Bytes::copy_from_slice(&rest[2..])
    } else {
        Bytes::copy_from_slice(rest)
    };
    let Ok(request) = binary::parse_request(&headers, body) else {
        return;
    };
    runtime();
    for (index, input) in request.inputs.iter().enumerate() {
        let Some(datatype) = DataType::parse(&input.datatype) else {
            continue;
        };
        let shape = input
            .shape
            .iter()
            .enumerate()
            .map(|(axis, &d)| {
                if (mode >> 1) as usize & (1 << (axis % 7)) != 0 {
                    -1
                } else {
                    d
                }
            })
            .collect();
        let spec = TensorSpec {
            name: format!("input{index}"),
            datatype,
            shape,
        };
        if let Err(error) = tensor::to_ort_value(&spec, input) {
            // Every refusal says which input it was about.
            assert!(
                error.message.starts_with(&format!("input `input{index}`")),
                "{}",
                error.message
            );
        }
    }
}

/// A `settings.toml`: read, validated, written back and read again to the same settings.
pub fn settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(settings) = Settings::parse(text) else {
        return;
    };
    let _ = settings.validate();
    let written = settings.to_toml();
    let again = Settings::parse(&written)
        .unwrap_or_else(|e| panic!("written settings do not read back: {e}\n{written}"));
    assert_eq!(again, settings, "settings changed on the way through the file");
}

/// A presented API key, a key's or an exposure's duration, and a `keys.toml`. A key that parses has the id it starts with; every key
/// the file marks revoked is also found revoked by the lenient reader the server falls back to.
pub fn api_key(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = format::parse(text) {
        assert!(text.starts_with(id), "id {id} is not the start of the key");
    }
    let _ = format::parse_hash_text(text);
    let _ = gatehouse_core::keys::parse_duration(text);
    let _ = gatehouse_core::exposure::parse_window(text);
    let lenient = KeyFile::revocations_in(text);
    if let Ok(file) = KeyFile::parse(text) {
        for record in file.keys.iter().filter(|r| r.revoked.is_some()) {
            assert!(
                lenient.contains(&record.id),
                "{} is revoked but the lenient reader missed it",
                record.id
            );
        }
    }
}

/// A workflow request planned against the default models, custom Python off and on. Off must
/// refuse every workflow with a python step.
pub fn workflow(data: &[u8]) {
    let Ok(request) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let repository = repository();
    let has_python = request["workflow"]["steps"]
        .as_array()
        .is_some_and(|steps| steps.iter().any(|s| s["kind"] == "python"));
    let off = gatehouse_server::workflows::order_of(&request, repository, false, None);
    if has_python {
        assert!(off.is_err(), "a python step was planned with custom Python off");
    }
    if let Ok(order) = gatehouse_server::workflows::order_of(&request, repository, true, None) {
        let steps = request["workflow"]["steps"].as_array().map_or(0, Vec::len);
        assert_eq!(order.len(), steps, "the plan lost or added a step");
    }
}

/// What a server sent back to the checklist's probe.
pub fn probe_response(data: &[u8]) {
    if let Ok(response) = probe::parse_response(data) {
        let _ = response.header("content-type");
    }
}

/// A `/metrics` page as the supervisor scrapes it for the charts.
pub fn metrics_scrape(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = scrape::parse(text);
    }
}
