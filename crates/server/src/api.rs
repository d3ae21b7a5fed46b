//! Handlers for the public endpoints and the Open Inference Protocol v2 REST API. Each one parses,
//! calls the repository or the metrics, and shapes the answer; checks live in `tensor` and
//! `models`, cross-cutting concerns in the router's layers.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::AppState;
use crate::connections::Connection;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::models::{IndexEntry, LoadedModel, Repository};
use crate::perimeter::Caller;
use crate::tensor::binary::{BinaryOutputs, InferBody};
use crate::tensor::{InputTensor, OutputTensor, TensorSpec};

/// Server metadata (`GET /v2`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

/// Model metadata (`GET /v2/models/{model}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Gatehouse extension: what the model is, from its `config.toml`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Gatehouse extension: class names for the output scores, from its `config.toml`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// Triton's model configuration, the part Gatehouse can fill in truthfully: the model's tensors
/// (`GET /v2/models/{model}/config`, gRPC's ModelConfig). perf_analyzer and Triton's clients read
/// it to learn what to send. Gatehouse does not batch requests itself: `max_batch_size` is 0 and
/// `dims` are the whole shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelConfig {
    pub name: String,
    pub platform: String,
    pub backend: String,
    pub max_batch_size: u32,
    pub input: Vec<ConfigTensor>,
    pub output: Vec<ConfigTensor>,
}

/// One tensor of a [`ModelConfig`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfigTensor {
    pub name: String,
    /// Triton's name for the datatype: `TYPE_FP32`, `TYPE_STRING` for BYTES, …
    pub data_type: String,
    /// -1 marks a dimension the model leaves open.
    pub dims: Vec<i64>,
}

/// An inference request (OIP v2).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InferenceRequest {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    pub inputs: Vec<InputTensor>,
    /// Outputs to return; all of them when absent.
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RequestedOutput {
    pub name: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
}

/// An inference response (OIP v2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InferenceResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<OutputTensor>,
}

/// Readiness of one model (`GET /v2/models/{model}/ready`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelReady {
    pub name: String,
    pub version: String,
    pub ready: bool,
}

pub use gatehouse_core::wire::{PythonSandbox, ServerInfo};

#[utoipa::path(get, path = "/", tag = "public", responses((status = 200, description = "Where to go next")))]
pub async fn root() -> Json<Value> {
    Json(serde_json::json!({
        "name": "Gatehouse",
        "version": gatehouse_core::VERSION,
        "docs": "/docs",
        "openapi": "/openapi.json",
        "health": "/healthz",
        "readiness": "/readiness",
        "inference": "/v2",
    }))
}

#[utoipa::path(get, path = "/healthz", tag = "public", responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readiness", tag = "public", responses(
    (status = 200, description = "Models are loaded"),
    (status = 503, description = "Models are still loading", body = ErrorBody)))]
pub async fn readiness(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let repository = loaded(&state)?;
    Ok(Json(
        serde_json::json!({"ready": true, "models_ready": repository.ready_count()}),
    ))
}

/// A client on this computer: on loopback, or reaching the server's own address from that same
/// address (a server bound to its LAN address, probed by its own supervisor). No connection
/// record means an in-process call (unit tests).
pub fn is_local(connection: Option<&Connection>) -> bool {
    connection.is_none_or(|c| {
        let peer = c.peer.ip().to_canonical();
        peer.is_loopback() || peer == c.local.ip().to_canonical()
    })
}

#[utoipa::path(get, path = "/info", tag = "public", responses((status = 200, body = ServerInfo)))]
pub async fn info(
    State(state): State<AppState>,
    connection: Option<Extension<Connection>>,
) -> Json<ServerInfo> {
    let mut info = (*state.info).clone();
    info.models_ready = state.repository.get().map(Repository::ready_count).unwrap_or(0);
    if !is_local(connection.as_ref().map(|c| &c.0)) {
        info.auth = None;
        info.custom_python = None;
        return Json(info);
    }
    if info.custom_python == Some(true) {
        let (layers, missing) = crate::workflows::sandbox::layers(&state.sandbox);
        info.python_sandbox = Some(PythonSandbox {
            layers: layers.into_iter().map(String::from).collect(),
            missing: missing.into_iter().map(String::from).collect(),
            weaker_accepted: state.sandbox.allow_weaker,
        });
    }
    info.keys_in_url = Some(state.perimeter.url_keys.recent(time::OffsetDateTime::now_utc()));
    Json(info)
}

#[utoipa::path(get, path = "/metrics", tag = "public", responses((status = 200, description = "OpenMetrics text format", content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The protocol extensions `GET /v2` and gRPC's ServerMetadata name. Triton's names: its clients
/// look for them before using the binary form.
pub const EXTENSIONS: [&str; 2] = ["model_repository", "binary_tensor_data"];

#[utoipa::path(get, path = "/v2", tag = "inference", responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "gatehouse".into(),
        version: gatehouse_core::VERSION.into(),
        extensions: EXTENSIONS.iter().map(|e| e.to_string()).collect(),
    })
}

#[utoipa::path(get, path = "/v2/health/live", tag = "inference", responses((status = 200, description = "Live")))]
pub async fn live() -> Json<Value> {
    Json(serde_json::json!({"live": true}))
}

#[utoipa::path(get, path = "/v2/health/ready", tag = "inference", responses(
    (status = 200, description = "Ready"), (status = 503, description = "Loading", body = ErrorBody)))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    loaded(&state)?;
    Ok(Json(serde_json::json!({"ready": true})))
}

#[utoipa::path(get, path = "/v2/models/{model}", tag = "inference",
    params(("model" = String, Path, description = "Model name")),
    responses((status = 200, body = ModelMetadata), (status = 404, body = ErrorBody)))]
pub async fn model_metadata(
    State(state): State<AppState>,
    Path(model): Path<String>,
    caller: Option<Extension<Caller>>,
) -> Result<Json<ModelMetadata>, ApiError> {
    may_run(caller.as_deref(), &model)?;
    metadata(&state, &model, None)
}

#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}", tag = "inference",
    params(("model" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = ModelMetadata), (status = 404, body = ErrorBody)))]
pub async fn model_version_metadata(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    caller: Option<Extension<Caller>>,
) -> Result<Json<ModelMetadata>, ApiError> {
    may_run(caller.as_deref(), &model)?;
    metadata(&state, &model, Some(&version))
}

#[utoipa::path(get, path = "/v2/models/{model}/config", tag = "inference",
    params(("model" = String, Path, description = "Model name")),
    responses((status = 200, body = ModelConfig), (status = 404, body = ErrorBody)))]
pub async fn model_config(
    State(state): State<AppState>,
    Path(model): Path<String>,
    caller: Option<Extension<Caller>>,
) -> Result<Json<ModelConfig>, ApiError> {
    may_run(caller.as_deref(), &model)?;
    config_of(&state, &model, None).map(Json)
}

/// A model version's [`ModelConfig`], for HTTP and gRPC.
pub(crate) fn config_of(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<ModelConfig, ApiError> {
    let metadata = metadata_of(state, name, version)?;
    let tensors = |specs: Vec<TensorSpec>| {
        specs
            .into_iter()
            .map(|spec| ConfigTensor {
                name: spec.name,
                data_type: match spec.datatype {
                    crate::tensor::DataType::Bytes => "TYPE_STRING".into(),
                    other => format!("TYPE_{}", other.name()),
                },
                dims: spec.shape,
            })
            .collect()
    };
    Ok(ModelConfig {
        name: metadata.name,
        platform: metadata.platform,
        backend: "onnxruntime".into(),
        max_batch_size: 0,
        input: tensors(metadata.inputs),
        output: tensors(metadata.outputs),
    })
}

#[utoipa::path(get, path = "/v2/models/{model}/ready", tag = "inference",
    params(("model" = String, Path)),
    responses((status = 200, body = ModelReady), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn model_ready(
    State(state): State<AppState>,
    Path(model): Path<String>,
    caller: Option<Extension<Caller>>,
) -> Result<Json<ModelReady>, ApiError> {
    may_run(caller.as_deref(), &model)?;
    readiness_of(&state, &model, None)
}

#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/ready", tag = "inference",
    params(("model" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = ModelReady), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn model_version_ready(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    caller: Option<Extension<Caller>>,
) -> Result<Json<ModelReady>, ApiError> {
    may_run(caller.as_deref(), &model)?;
    readiness_of(&state, &model, Some(&version))
}

#[utoipa::path(post, path = "/v2/models/{model}/infer", tag = "inference",
    params(("model" = String, Path)), request_body = InferenceRequest,
    responses((status = 200, body = InferenceResponse), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn infer(
    State(state): State<AppState>,
    Path(model): Path<String>,
    caller: Option<Extension<Caller>>,
    InferBody(request): InferBody,
) -> Result<Response, ApiError> {
    may_run(caller.as_deref(), &model)?;
    run_inference(&state, &model, None, request).await
}

#[utoipa::path(post, path = "/v2/models/{model}/versions/{version}/infer", tag = "inference",
    params(("model" = String, Path), ("version" = String, Path)), request_body = InferenceRequest,
    responses((status = 200, body = InferenceResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn infer_version(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    caller: Option<Extension<Caller>>,
    InferBody(request): InferBody,
) -> Result<Response, ApiError> {
    may_run(caller.as_deref(), &model)?;
    run_inference(&state, &model, Some(&version), request).await
}

/// Optional body of the repository index request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct IndexRequest {
    /// Only list versions that are ready.
    #[serde(default)]
    pub ready: bool,
}

#[utoipa::path(post, path = "/v2/repository/index", tag = "inference",
    request_body(content = Option<IndexRequest>),
    responses((status = 200, body = Vec<IndexEntry>), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn repository_index(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Vec<IndexEntry>>, ApiError> {
    // Triton's clients send an empty body with no type; any body that is sent is JSON.
    crate::json::check_content_type(headers.get(header::CONTENT_TYPE))?;
    // An empty body, or `null`, asks for every model.
    let text = body.trim_ascii();
    let request: IndexRequest = if text.is_empty() || text == b"null" {
        IndexRequest::default()
    } else if text.starts_with(b"{") {
        crate::json::parse(&body)?
    } else {
        // serde would read a struct from an array too; the body is an object or nothing.
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "the body is an object such as {\"ready\": true}, or empty",
        ));
    };
    let mut rows = loaded(&state)?.index();
    if request.ready {
        rows.retain(|row| row.state == crate::models::ModelState::Ready);
    }
    // A key held to some models sees only those.
    if let Some(Caller(identity)) = caller.as_deref() {
        rows.retain(|row| identity.may_run(&row.name));
    }
    Ok(Json(rows))
}

pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}

pub async fn docs() -> Html<String> {
    Html(crate::openapi::docs_html())
}

pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint; see /docs for the API")
}

pub(crate) fn loaded(state: &AppState) -> Result<&Repository, ApiError> {
    state
        .repository
        .get()
        .ok_or_else(|| ApiError::new(ErrorCode::NotReady, "models are still loading; retry in a moment"))
}

fn metadata(state: &AppState, name: &str, version: Option<&str>) -> Result<Json<ModelMetadata>, ApiError> {
    metadata_of(state, name, version).map(Json)
}

/// One model version's metadata, for `GET /v2/models/{model}` and gRPC's ModelMetadata.
pub(crate) fn metadata_of(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<ModelMetadata, ApiError> {
    let repository = loaded(state)?;
    let model = repository.get(name, version)?;
    let entry = &repository.models[name];
    let versions = entry.versions.keys().map(u64::to_string).collect();
    Ok(ModelMetadata {
        name: model.name.clone(),
        versions,
        platform: "onnxruntime_onnx".into(),
        inputs: model.inputs.clone(),
        outputs: model.outputs.clone(),
        description: entry.config.description.clone(),
        labels: entry.config.labels.clone(),
    })
}

fn readiness_of(state: &AppState, name: &str, version: Option<&str>) -> Result<Json<ModelReady>, ApiError> {
    let model: Arc<LoadedModel> = loaded(state)?.get(name, version)?;
    Ok(Json(ModelReady {
        name: model.name.clone(),
        version: model.version.to_string(),
        ready: true,
    }))
}

/// Refuses a key that names its models when `model` is not one of them. Checked before the model
/// is looked up, so the answer does not tell such a key which other models exist.
pub fn may_run(caller: Option<&Caller>, model: &str) -> Result<(), ApiError> {
    match caller {
        Some(Caller(identity)) if !identity.may_run(model) => Err(ApiError::new(
            ErrorCode::ModelNotAllowed,
            format!(
                "key {} may run only {}, not `{model}`; create a key with --model {model} for it",
                identity.key_id,
                identity.models.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

async fn run_inference(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    request: InferenceRequest,
) -> Result<Response, ApiError> {
    let binary = BinaryOutputs::of(&request);
    let response = infer_response(state, name, version, request).await?;
    if binary.any() {
        return Ok(crate::tensor::binary::response(&response, &binary));
    }
    Ok(Json(response).into_response())
}

/// Runs one inference request on a model version, however it arrived (JSON, binary, gRPC).
pub(crate) async fn infer_response(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    request: InferenceRequest,
) -> Result<InferenceResponse, ApiError> {
    let model = loaded(state)?.get(name, version)?;
    let requested: Vec<String> = request.outputs.iter().flatten().map(|o| o.name.clone()).collect();
    let (outputs, elapsed) = model.infer(&request.inputs, &requested).await?;
    state.metrics.observe_inference(&model, elapsed);
    Ok(InferenceResponse {
        model_name: model.name.clone(),
        model_version: model.version.to_string(),
        id: request.id,
        outputs,
    })
}

/// Answers a panic inside a handler: the process keeps serving, the caller gets a plain 500.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!(
        event = "handler_panic",
        "a request handler panicked; the request was answered with 500"
    );
    let mut response =
        ApiError::internal("internal error; the server logged it with this request's id").into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
