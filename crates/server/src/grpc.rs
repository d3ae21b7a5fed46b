//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`), on a port of its own
//! (`grpc.port`, 9002 by default) beside the HTTP port and behind the same perimeter: the key in
//! `authorization: Bearer` or `x-api-key` metadata, the same scopes and per-model lists, rate
//! limits, brute-force guard, Host check, audit lines and metrics. Every refusal, the perimeter's
//! or a handler's, is a gRPC status whose message is the one HTTP clients get, with the error
//! code as a `google.rpc.ErrorInfo` reason in the details and in `gatehouse-code` metadata.
//!
//! Requests become the same [`InferenceRequest`] the HTTP routes build, with each input's
//! elements as little-endian bytes, so a tensor is checked by the same code whichever way it came;
//! `raw_input_contents` are slices of the received message, not copies.

use std::collections::HashMap;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use gatehouse_core::keys::Scope;
use serde_json::{Map, Value};
use tonic::Code;
use tower::ServiceExt;

use crate::api::{self, InferenceRequest, RequestedOutput};
use crate::error::{ApiError, ErrorCode};
use crate::perimeter::{self, Caller, Gate};
use crate::tensor::InputTensor;
use crate::{AppState, Common};

#[allow(clippy::all, clippy::pedantic, missing_docs, unused_qualifications)]
pub mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::infer_parameter::ParameterChoice;
use proto::{InferParameter, InferTensorContents};

/// The service's path prefix; a method's route is this and its name.
pub const SERVICE: &str = "/inference.GRPCInferenceService/";
/// Answered without a key, like `/v2/health/live` and `/v2/health/ready`.
const PUBLIC: [&str; 2] = ["ServerLive", "ServerReady"];
/// Need a key with the `infer` scope, like their HTTP routes.
const PROTECTED: [&str; 6] = [
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelConfig",
    "ModelInfer",
    "RepositoryIndex",
];

/// The gRPC port's whole surface: the service's methods, the perimeter in front of the protected
/// ones, the layers every Gatehouse request passes, and the refusals turned into gRPC statuses.
pub fn router(state: &AppState) -> Router {
    let service = GrpcInferenceServiceServer::new(Service { state: state.clone() })
        .max_decoding_message_size(state.max_body_bytes)
        .max_encoding_message_size(usize::MAX);
    let service = service.map_request(|request: Request| request.map(tonic::body::Body::new));
    let mut public = Router::new();
    for method in PUBLIC {
        public = public.route_service(&format!("{SERVICE}{method}"), service.clone());
    }
    let mut protected = Router::new();
    for method in PROTECTED {
        protected = protected.route_service(&format!("{SERVICE}{method}"), service.clone());
    }
    let protected = protected.route_layer(axum::middleware::from_fn_with_state(
        // Metadata only: a gRPC message has no `api_key` field to look in.
        Gate::headers_only(state.perimeter.clone(), Scope::Infer),
        perimeter::authenticate,
    ));
    let routes = public.merge(protected).fallback(unimplemented);
    let routes = crate::with_common_layers(routes, &Common::of(state, "grpc_unmatched"));
    routes.layer(axum::middleware::from_fn(as_grpc_status))
}

async fn unimplemented(request: Request) -> Response {
    let method = request.uri().path().to_string();
    let status = tonic::Status::unimplemented(format!(
        "Gatehouse does not serve {method}; it serves the Open Inference Protocol's inference.GRPCInferenceService"
    ));
    status.into_http::<axum::body::Body>()
}

/// The layers in front of the service answer in HTTP terms (a JSON body and a status); a gRPC
/// client reads neither, so each such answer becomes the gRPC status with the same message.
async fn as_grpc_status(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let grpc = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc"));
    // Only refusals are translated; anything else (a CORS preflight's answer) goes as it is.
    if grpc || response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let error = match serde_json::from_slice::<crate::error::ErrorBody>(&body) {
        Ok(refusal) => ApiError {
            status: parts.status,
            code: ErrorCode::from_wire(&refusal.code).unwrap_or(ErrorCode::Internal),
            message: refusal.error,
        },
        Err(_) => ApiError {
            status: parts.status,
            code: ErrorCode::Internal,
            message: format!("the request was refused with HTTP status {}", parts.status),
        },
    };
    let mut answer = status(&error).into_http::<axum::body::Body>();
    if let Some(wait) = parts.headers.get(header::RETRY_AFTER) {
        answer.headers_mut().insert(header::RETRY_AFTER, wait.clone());
    }
    answer
}

/// The gRPC code for what HTTP says with `status`, as gRPC's own HTTP mapping reads it.
fn code_for(status: StatusCode) -> Code {
    match status.as_u16() {
        400 | 414 | 415 | 431 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 | 421 => Code::PermissionDenied,
        404 => Code::NotFound,
        408 | 504 => Code::DeadlineExceeded,
        413 | 429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        502 | 503 => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// `google.rpc.Status`, the message gRPC's rich error details are (`grpc-status-details-bin`).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.ErrorInfo`: the error code as `reason`, in the `gatehouse` domain.
#[derive(Clone, PartialEq, prost::Message)]
struct ErrorInfo {
    #[prost(string, tag = "1")]
    reason: String,
    #[prost(string, tag = "2")]
    domain: String,
}

/// The gRPC status for `error`: its message, its code in the details and in `gatehouse-code`.
pub fn status(error: &ApiError) -> tonic::Status {
    use prost::Message;
    let code = code_for(error.status);
    let info = ErrorInfo {
        reason: error.code.wire().to_string(),
        domain: "gatehouse".into(),
    };
    let details = RpcStatus {
        code: code as i32,
        message: error.message.clone(),
        details: vec![Any {
            type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
            value: info.encode_to_vec(),
        }],
    };
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert(
        "gatehouse-code",
        tonic::metadata::MetadataValue::from_static(error.code.wire()),
    );
    tonic::Status::with_details_and_metadata(
        code,
        error.message.clone(),
        Bytes::from(details.encode_to_vec()),
        metadata,
    )
}

struct Service {
    state: AppState,
}

type Answer<T> = Result<tonic::Response<T>, tonic::Status>;

fn refused(error: ApiError) -> tonic::Status {
    status(&error)
}

fn version(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// Refuses a key held to other models, as the HTTP routes do, before the model is looked up.
fn may_run<T>(request: &tonic::Request<T>, model: &str) -> Result<(), tonic::Status> {
    if let Some(named) = request.extensions().get::<crate::perimeter::ModelNamed>() {
        named.name(model);
    }
    api::may_run(request.extensions().get::<Caller>(), model).map_err(refused)
}

#[tonic::async_trait]
impl GrpcInferenceService for Service {
    async fn server_live(
        &self,
        _: tonic::Request<proto::ServerLiveRequest>,
    ) -> Answer<proto::ServerLiveResponse> {
        Ok(tonic::Response::new(proto::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: tonic::Request<proto::ServerReadyRequest>,
    ) -> Answer<proto::ServerReadyResponse> {
        Ok(tonic::Response::new(proto::ServerReadyResponse {
            ready: self.state.repository.get().is_some(),
        }))
    }

    /// A model that is not there, or did not load, is not ready: Triton's clients ask this
    /// before anything else and expect `false`, not an error. A key held to other models is
    /// refused instead, so the answer does not tell it which models exist.
    async fn model_ready(
        &self,
        request: tonic::Request<proto::ModelReadyRequest>,
    ) -> Answer<proto::ModelReadyResponse> {
        may_run(&request, &request.get_ref().name)?;
        let asked = request.into_inner();
        let ready = api::loaded(&self.state)
            .and_then(|repository| repository.get(&asked.name, version(&asked.version)))
            .is_ok();
        Ok(tonic::Response::new(proto::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: tonic::Request<proto::ServerMetadataRequest>,
    ) -> Answer<proto::ServerMetadataResponse> {
        Ok(tonic::Response::new(proto::ServerMetadataResponse {
            name: "gatehouse".into(),
            version: gatehouse_core::VERSION.into(),
            extensions: api::EXTENSIONS.iter().map(|e| e.to_string()).collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: tonic::Request<proto::ModelMetadataRequest>,
    ) -> Answer<proto::ModelMetadataResponse> {
        may_run(&request, &request.get_ref().name)?;
        let asked = request.into_inner();
        let metadata =
            api::metadata_of(&self.state, &asked.name, version(&asked.version)).map_err(refused)?;
        let tensors = |specs: Vec<crate::tensor::TensorSpec>| {
            specs
                .into_iter()
                .map(|spec| proto::model_metadata_response::TensorMetadata {
                    name: spec.name,
                    datatype: spec.datatype.name().into(),
                    shape: spec.shape,
                })
                .collect()
        };
        Ok(tonic::Response::new(proto::ModelMetadataResponse {
            name: metadata.name,
            versions: metadata.versions,
            platform: metadata.platform,
            inputs: tensors(metadata.inputs),
            outputs: tensors(metadata.outputs),
        }))
    }

    async fn model_config(
        &self,
        request: tonic::Request<proto::ModelConfigRequest>,
    ) -> Answer<proto::ModelConfigResponse> {
        may_run(&request, &request.get_ref().name)?;
        let asked = request.into_inner();
        let config = api::config_of(&self.state, &asked.name, version(&asked.version)).map_err(refused)?;
        let kind =
            |name: &str| proto::DataType::from_str_name(name).unwrap_or(proto::DataType::TypeInvalid) as i32;
        Ok(tonic::Response::new(proto::ModelConfigResponse {
            config: Some(proto::ModelConfig {
                name: config.name,
                platform: config.platform,
                max_batch_size: config.max_batch_size as i32,
                input: config
                    .input
                    .into_iter()
                    .map(|tensor| proto::ModelInput {
                        data_type: kind(&tensor.data_type),
                        name: tensor.name,
                        dims: tensor.dims,
                    })
                    .collect(),
                output: config
                    .output
                    .into_iter()
                    .map(|tensor| proto::ModelOutput {
                        data_type: kind(&tensor.data_type),
                        name: tensor.name,
                        dims: tensor.dims,
                    })
                    .collect(),
                backend: config.backend,
            }),
        }))
    }

    async fn model_infer(
        &self,
        request: tonic::Request<proto::ModelInferRequest>,
    ) -> Answer<proto::ModelInferResponse> {
        may_run(&request, &request.get_ref().model_name)?;
        let asked = request.into_inner();
        let model_name = asked.model_name.clone();
        let model_version = asked.model_version.clone();
        let request = inference_request(asked).map_err(refused)?;
        let response = api::infer_response(&self.state, &model_name, version(&model_version), request)
            .await
            .map_err(refused)?;
        let mut raw_output_contents = Vec::with_capacity(response.outputs.len());
        let outputs = response
            .outputs
            .into_iter()
            .map(|output| {
                let mut raw = Vec::new();
                crate::tensor::binary::write_le(&output.data, &mut raw);
                raw_output_contents.push(Bytes::from(raw));
                proto::model_infer_response::InferOutputTensor {
                    name: output.name,
                    datatype: output.datatype.name().into(),
                    shape: output.shape,
                    parameters: HashMap::new(),
                    contents: None,
                }
            })
            .collect();
        Ok(tonic::Response::new(proto::ModelInferResponse {
            model_name: response.model_name,
            model_version: response.model_version,
            id: response.id.unwrap_or_default(),
            parameters: HashMap::new(),
            outputs,
            raw_output_contents,
        }))
    }

    async fn repository_index(
        &self,
        request: tonic::Request<proto::RepositoryIndexRequest>,
    ) -> Answer<proto::RepositoryIndexResponse> {
        let caller = request.extensions().get::<Caller>().cloned();
        let asked = request.into_inner();
        let mut rows = api::loaded(&self.state).map_err(refused)?.index();
        if asked.ready {
            rows.retain(|row| row.state == crate::models::ModelState::Ready);
        }
        if let Some(Caller(identity)) = &caller {
            rows.retain(|row| identity.may_run(&row.name));
        }
        let models = rows
            .into_iter()
            .map(|row| proto::repository_index_response::ModelIndex {
                name: row.name,
                version: row.version,
                state: row.state.as_str().into(),
                reason: row.reason,
            })
            .collect();
        Ok(tonic::Response::new(proto::RepositoryIndexResponse { models }))
    }
}

/// A gRPC inference request as the HTTP routes' request: each input's elements as little-endian
/// bytes (the raw entry itself, or the typed contents written out), parameters as JSON values.
fn inference_request(request: proto::ModelInferRequest) -> Result<InferenceRequest, ApiError> {
    let raw = request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(ApiError::new(
            ErrorCode::InvalidBinaryRequest,
            format!(
                "raw_input_contents has {} entries for {} inputs; send one per input, in the order of `inputs`",
                raw.len(),
                request.inputs.len()
            ),
        ));
    }
    let mut raw = raw.into_iter();
    let inputs = request
        .inputs
        .into_iter()
        .map(|input| {
            let binary = match (raw.next(), &input.contents) {
                (Some(_), Some(contents)) if !is_empty(contents) => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "input `{}` has both contents and raw_input_contents; send its elements in one of them",
                            input.name
                        ),
                    ));
                }
                (Some(bytes), _) => bytes,
                (None, Some(contents)) => contents_as_bytes(&input.name, &input.datatype, contents)?,
                (None, None) => Bytes::new(),
            };
            Ok(InputTensor {
                name: input.name,
                shape: input.shape,
                datatype: input.datatype,
                parameters: parameters(input.parameters),
                data: None,
                binary: Some(binary),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let outputs = (!request.outputs.is_empty()).then(|| {
        request
            .outputs
            .into_iter()
            .map(|output| RequestedOutput {
                name: output.name,
                parameters: parameters(output.parameters),
            })
            .collect()
    });
    Ok(InferenceRequest {
        id: version(&request.id).map(str::to_string),
        parameters: parameters(request.parameters),
        inputs,
        outputs,
    })
}

fn parameters(parameters: HashMap<String, InferParameter>) -> Option<Map<String, Value>> {
    if parameters.is_empty() {
        return None;
    }
    Some(
        parameters
            .into_iter()
            .filter_map(|(name, parameter)| {
                let value = match parameter.parameter_choice? {
                    ParameterChoice::BoolParam(b) => Value::from(b),
                    ParameterChoice::Int64Param(i) => Value::from(i),
                    ParameterChoice::StringParam(s) => Value::from(s),
                    ParameterChoice::DoubleParam(d) => Value::from(d),
                    ParameterChoice::Uint64Param(u) => Value::from(u),
                };
                Some((name, value))
            })
            .collect(),
    )
}

fn is_empty(contents: &InferTensorContents) -> bool {
    filled(contents).is_empty()
}

/// The contents fields that hold elements, by name.
fn filled(contents: &InferTensorContents) -> Vec<&'static str> {
    [
        ("bool_contents", contents.bool_contents.is_empty()),
        ("int_contents", contents.int_contents.is_empty()),
        ("int64_contents", contents.int64_contents.is_empty()),
        ("uint_contents", contents.uint_contents.is_empty()),
        ("uint64_contents", contents.uint64_contents.is_empty()),
        ("fp32_contents", contents.fp32_contents.is_empty()),
        ("fp64_contents", contents.fp64_contents.is_empty()),
        ("bytes_contents", contents.bytes_contents.is_empty()),
    ]
    .into_iter()
    .filter(|(_, empty)| !empty)
    .map(|(name, _)| name)
    .collect()
}

/// The contents field the protocol puts `datatype`'s elements in.
fn field_for(datatype: &str) -> Option<&'static str> {
    Some(match datatype {
        "BOOL" => "bool_contents",
        "INT8" | "INT16" | "INT32" => "int_contents",
        "INT64" => "int64_contents",
        "UINT8" | "UINT16" | "UINT32" => "uint_contents",
        "UINT64" => "uint64_contents",
        "FP32" => "fp32_contents",
        "FP64" => "fp64_contents",
        "BYTES" => "bytes_contents",
        _ => return None,
    })
}

/// Typed contents as the little-endian bytes of `datatype`. An element that does not fit the
/// datatype (300 as INT8) is refused rather than cut to fit.
fn contents_as_bytes(name: &str, datatype: &str, contents: &InferTensorContents) -> Result<Bytes, ApiError> {
    // An unknown datatype is refused with the protocol's list by the tensor checks that follow.
    let Some(field) = field_for(datatype) else {
        return Ok(Bytes::new());
    };
    if let Some(other) = filled(contents).into_iter().find(|f| *f != field) {
        return Err(ApiError::new(
            ErrorCode::WrongData,
            format!("input `{name}` is {datatype}, so its elements go in {field}, not {other}"),
        ));
    }
    let too_big = |value: &dyn std::fmt::Display| {
        ApiError::new(
            ErrorCode::WrongData,
            format!("input `{name}` holds {value}, which is not a {datatype} value"),
        )
    };
    let mut out = Vec::new();
    macro_rules! narrow {
        ($values:expr, $to:ty) => {
            for value in $values {
                let narrowed = <$to>::try_from(*value).map_err(|_| too_big(value))?;
                out.extend_from_slice(&narrowed.to_le_bytes());
            }
        };
    }
    match datatype {
        "BOOL" => out.extend(contents.bool_contents.iter().map(|b| u8::from(*b))),
        "INT8" => narrow!(&contents.int_contents, i8),
        "INT16" => narrow!(&contents.int_contents, i16),
        "INT32" => narrow!(&contents.int_contents, i32),
        "INT64" => narrow!(&contents.int64_contents, i64),
        "UINT8" => narrow!(&contents.uint_contents, u8),
        "UINT16" => narrow!(&contents.uint_contents, u16),
        "UINT32" => narrow!(&contents.uint_contents, u32),
        "UINT64" => narrow!(&contents.uint64_contents, u64),
        "FP32" => narrow!(&contents.fp32_contents, f32),
        "FP64" => narrow!(&contents.fp64_contents, f64),
        _ => {
            if contents
                .bytes_contents
                .iter()
                .any(|v| u32::try_from(v.len()).is_err())
            {
                return Err(too_big(&"an element over 4 GiB"));
            }
            crate::tensor::strings::write(&contents.bytes_contents, &mut out);
        }
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp32_input(values: Vec<f32>) -> proto::model_infer_request::InferInputTensor {
        proto::model_infer_request::InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![values.len() as i64],
            parameters: HashMap::new(),
            contents: Some(InferTensorContents {
                fp32_contents: values,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn typed_contents_become_the_bytes_raw_contents_would_be() {
        let request = inference_request(proto::ModelInferRequest {
            inputs: vec![fp32_input(vec![1.5, -2.0])],
            id: "r1".into(),
            ..Default::default()
        })
        .unwrap();
        let mut expected = 1.5f32.to_le_bytes().to_vec();
        expected.extend_from_slice(&(-2.0f32).to_le_bytes());
        assert_eq!(request.inputs[0].binary.as_deref(), Some(&expected[..]));
        assert_eq!(request.id.as_deref(), Some("r1"));
        assert!(request.outputs.is_none());
    }

    #[test]
    fn strings_in_contents_are_length_prefixed() {
        let bytes = contents_as_bytes(
            "s",
            "BYTES",
            &InferTensorContents {
                bytes_contents: vec![Bytes::from_static(b"ab"), Bytes::new()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(&bytes[..], &[2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]);
    }

    #[test]
    fn elements_in_the_wrong_field_or_out_of_range_are_refused_by_name() {
        let error = contents_as_bytes(
            "x",
            "FP32",
            &InferTensorContents {
                int_contents: vec![1],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(error.code, ErrorCode::WrongData);
        assert!(
            error.message.contains("fp32_contents, not int_contents"),
            "{}",
            error.message
        );
        let error = contents_as_bytes(
            "x",
            "INT8",
            &InferTensorContents {
                int_contents: vec![300],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            error.message.contains("300") && error.message.contains("INT8"),
            "{}",
            error.message
        );
    }

    #[test]
    fn raw_contents_must_match_the_inputs_one_for_one() {
        let mut input = fp32_input(vec![]);
        input.contents = None;
        let error = inference_request(proto::ModelInferRequest {
            inputs: vec![input.clone(), input],
            raw_input_contents: vec![Bytes::from_static(&[0; 4])],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            error.message.contains("1 entries for 2 inputs"),
            "{}",
            error.message
        );
        let error = inference_request(proto::ModelInferRequest {
            inputs: vec![fp32_input(vec![1.0])],
            raw_input_contents: vec![Bytes::from_static(&[0; 4])],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            error.message.contains("both contents and raw_input_contents"),
            "{}",
            error.message
        );
    }

    #[test]
    fn refusals_keep_their_message_and_code() {
        let error = ApiError::new(
            ErrorCode::InsufficientScope,
            "key k does not have the `infer` scope",
        );
        let status = status(&error);
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(status.message(), error.message);
        assert_eq!(
            status.metadata().get("gatehouse-code").unwrap(),
            "insufficient_scope"
        );
        use prost::Message;
        let details = RpcStatus::decode(status.details()).unwrap();
        let info = ErrorInfo::decode(&details.details[0].value[..]).unwrap();
        assert_eq!(info.reason, "insufficient_scope");
        assert_eq!(details.code, Code::PermissionDenied as i32);
        for (http, grpc) in [
            (401, Code::Unauthenticated),
            (429, Code::ResourceExhausted),
            (503, Code::Unavailable),
            (404, Code::NotFound),
            (400, Code::InvalidArgument),
        ] {
            assert_eq!(code_for(StatusCode::from_u16(http).unwrap()), grpc);
        }
    }
}
