//! Triton's binary tensor extension over HTTP, which Triton's and KServe's clients use by
//! default: the body is a JSON header of `Inference-Header-Content-Length` bytes followed by the
//! tensors' raw little-endian bytes, each input saying how many are its own with
//! `parameters.binary_data_size`. Outputs come back the same way when the request asks
//! (`binary_data_output`, or `binary_data` on one output).
//!
//! The bytes are never copied on the way in: each input holds a slice of the one request buffer
//! until its elements are read into the tensor ONNX Runtime gets.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{DataType, Element, OutputTensor, TensorData};
use crate::api::{InferenceRequest, InferenceResponse};
use crate::error::{ApiError, ErrorCode};

/// The header that says how long the JSON part of a binary body is.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// An inference request body, JSON or binary. A JSON request takes the same path as any other
/// JSON body; only a request with the header is read as binary.
pub struct InferBody(pub InferenceRequest);

impl<S: Send + Sync> axum::extract::FromRequest<S> for InferBody {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        if !request.headers().contains_key(HEADER_LENGTH) {
            return <crate::json::JsonBody<InferenceRequest> as axum::extract::FromRequest<S>>::from_request(
                request, state,
            )
            .await
            .map(|crate::json::JsonBody(r)| InferBody(r));
        }
        let headers = request.headers().clone();
        let body = crate::json::read_body(request, state).await?;
        parse_request(&headers, body).map(InferBody)
    }
}

/// The request in `body`: plain JSON, or a JSON header with binary tensors after it.
pub fn parse_request(headers: &HeaderMap, body: Bytes) -> Result<InferenceRequest, ApiError> {
    let Some(declared) = headers.get(HEADER_LENGTH) else {
        crate::json::check_content_type(headers.get(header::CONTENT_TYPE))?;
        return crate::json::parse(&body);
    };
    let length = declared
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidBinaryRequest,
                "Inference-Header-Content-Length is not a number of bytes",
            )
        })?;
    if length > body.len() {
        return Err(ApiError::new(
            ErrorCode::InvalidBinaryRequest,
            format!(
                "Inference-Header-Content-Length says the JSON is {length} bytes, the body has {}",
                body.len()
            ),
        ));
    }
    let mut request: InferenceRequest = crate::json::parse(&body[..length]).map_err(|mut error| {
        // A header length that cuts the JSON short reads as broken JSON; say where the cut came from.
        error.message = format!(
            "the JSON header (the first {length} bytes, as Inference-Header-Content-Length says): {}",
            error.message
        );
        error
    })?;
    let mut offset = length;
    for input in &mut request.inputs {
        let Some(size) = binary_size(&input.parameters) else {
            continue;
        };
        let size = size.map_err(|()| {
            ApiError::new(
                ErrorCode::InvalidBinaryRequest,
                format!(
                    "input `{}`: binary_data_size is not a number of bytes",
                    input.name
                ),
            )
        })?;
        if input.data.is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidBinaryRequest,
                format!(
                    "input `{}` has both `data` and binary_data_size; send one",
                    input.name
                ),
            ));
        }
        let end = offset.checked_add(size).filter(|end| *end <= body.len()).ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidBinaryRequest,
                format!(
                    "input `{}` says it has {size} bytes of binary data, but only {} are left in the body",
                    input.name,
                    body.len() - offset
                ),
            )
        })?;
        input.binary = Some(body.slice(offset..end));
        offset = end;
    }
    if offset != body.len() {
        return Err(ApiError::new(
            ErrorCode::InvalidBinaryRequest,
            format!(
                "{} bytes after the JSON header belong to no input; each binary input needs parameters.binary_data_size",
                body.len() - offset
            ),
        ));
    }
    Ok(request)
}

/// `parameters.binary_data_size`: absent, a size, or not a size.
fn binary_size(parameters: &Option<Map<String, Value>>) -> Option<Result<usize, ()>> {
    let value = parameters.as_ref()?.get("binary_data_size")?;
    Some(value.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or(()))
}

/// `count` elements of `T` from little-endian `bytes`; the byte count when it does not fit.
pub(crate) fn elements<T: Element>(bytes: &[u8], count: usize) -> Result<Vec<T>, usize> {
    if count.checked_mul(T::SIZE) != Some(bytes.len()) {
        return Err(bytes.len());
    }
    Ok(bytes.chunks_exact(T::SIZE).map(T::from_le).collect())
}

/// Which outputs the request wants as binary data.
pub struct BinaryOutputs {
    all: bool,
    named: Vec<String>,
}

impl BinaryOutputs {
    pub fn of(request: &InferenceRequest) -> BinaryOutputs {
        let asks = |parameters: &Option<Map<String, Value>>, key: &str| {
            parameters
                .as_ref()
                .and_then(|p| p.get(key))
                .is_some_and(|v| v.as_bool() == Some(true))
        };
        BinaryOutputs {
            all: asks(&request.parameters, "binary_data_output"),
            named: request
                .outputs
                .iter()
                .flatten()
                .filter(|o| asks(&o.parameters, "binary_data"))
                .map(|o| o.name.clone())
                .collect(),
        }
    }

    pub fn any(&self) -> bool {
        self.all || !self.named.is_empty()
    }

    fn wants(&self, name: &str) -> bool {
        self.all || self.named.iter().any(|n| n == name)
    }
}

#[derive(Serialize)]
struct Header<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: &'a Option<String>,
    outputs: Vec<HeaderOutput<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum HeaderOutput<'a> {
    Json(&'a OutputTensor),
    Binary {
        name: &'a str,
        datatype: DataType,
        shape: &'a [i64],
        parameters: BinaryParameters,
    },
}

#[derive(Serialize)]
struct BinaryParameters {
    binary_data_size: usize,
}

/// The response with the outputs `binary` names as raw bytes after a JSON header.
pub fn response(response: &InferenceResponse, binary: &BinaryOutputs) -> Response {
    let mut tail = Vec::new();
    let outputs = response
        .outputs
        .iter()
        .map(|output| {
            if !binary.wants(&output.name) {
                return HeaderOutput::Json(output);
            }
            let before = tail.len();
            write_le(&output.data, &mut tail);
            HeaderOutput::Binary {
                name: &output.name,
                datatype: output.datatype,
                shape: &output.shape,
                parameters: BinaryParameters {
                    binary_data_size: tail.len() - before,
                },
            }
        })
        .collect();
    let header = Header {
        model_name: &response.model_name,
        model_version: &response.model_version,
        id: &response.id,
        outputs,
    };
    let mut body = match serde_json::to_vec(&header) {
        Ok(body) => body,
        Err(error) => {
            return ApiError::internal(format!("the response could not be written: {error}")).into_response();
        }
    };
    let length = body.len();
    body.extend_from_slice(&tail);
    let mut answer = Response::new(Body::from(body));
    *answer.status_mut() = StatusCode::OK;
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(HEADER_LENGTH, HeaderValue::from(length));
    answer
}

pub(crate) fn write_le(data: &TensorData, out: &mut Vec<u8>) {
    macro_rules! each {
        ($values:expr) => {
            for value in $values {
                out.extend_from_slice(&value.to_le_bytes());
            }
        };
    }
    match data {
        TensorData::Bool(values) => out.extend(values.iter().map(|b| u8::from(*b))),
        TensorData::Uint8(values) => out.extend_from_slice(values),
        TensorData::Uint16(values) => each!(values),
        TensorData::Uint32(values) => each!(values),
        TensorData::Uint64(values) => each!(values),
        TensorData::Int8(values) => each!(values),
        TensorData::Int16(values) => each!(values),
        TensorData::Int32(values) => each!(values),
        TensorData::Int64(values) => each!(values),
        TensorData::Fp32(values) => each!(values),
        TensorData::Fp64(values) => each!(values),
        TensorData::Bytes(values) => super::strings::write(values, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(length: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(length) = length {
            headers.insert(HEADER_LENGTH, HeaderValue::from_str(length).unwrap());
        }
        headers
    }

    fn body(json: &str, tail: &[u8]) -> Bytes {
        let mut bytes = json.as_bytes().to_vec();
        bytes.extend_from_slice(tail);
        Bytes::from(bytes)
    }

    const TWO_INPUTS: &str = r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},{"name":"b","shape":[1],"datatype":"INT64","data":[7]},{"name":"c","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":4}}]}"#;

    #[test]
    fn binary_inputs_take_their_bytes_in_order_and_json_inputs_keep_their_data() {
        let mut tail = Vec::new();
        tail.extend_from_slice(&1.5f32.to_le_bytes());
        tail.extend_from_slice(&(-2.0f32).to_le_bytes());
        tail.extend_from_slice(&9i32.to_le_bytes());
        let length = TWO_INPUTS.len().to_string();
        let request = parse_request(&headers(Some(&length)), body(TWO_INPUTS, &tail)).unwrap();
        let a = request.inputs[0].binary.as_ref().unwrap();
        assert_eq!(elements::<f32>(a, 2).unwrap(), [1.5, -2.0]);
        assert!(request.inputs[1].binary.is_none() && request.inputs[1].data.is_some());
        assert_eq!(
            elements::<i32>(request.inputs[2].binary.as_ref().unwrap(), 1).unwrap(),
            [9]
        );
    }

    #[test]
    fn lengths_that_do_not_add_up_are_refused_with_the_numbers() {
        let length = TWO_INPUTS.len().to_string();
        let short = parse_request(&headers(Some(&length)), body(TWO_INPUTS, &[0; 10])).unwrap_err();
        assert_eq!(short.code, "invalid_binary_request");
        assert!(
            short.message.contains("input `c`") && short.message.contains("only 2"),
            "{short}"
        );
        let long = parse_request(&headers(Some(&length)), body(TWO_INPUTS, &[0; 15])).unwrap_err();
        assert!(long.message.contains("3 bytes after the JSON header"), "{long}");
        let beyond = parse_request(&headers(Some("100000")), body(TWO_INPUTS, &[])).unwrap_err();
        assert!(beyond.message.contains("100000"), "{beyond}");
        let nonsense = parse_request(&headers(Some("many")), body(TWO_INPUTS, &[])).unwrap_err();
        assert_eq!(nonsense.code, "invalid_binary_request");
        assert_eq!(elements::<f32>(&[0; 7], 2), Err(7));
    }

    #[test]
    fn without_the_header_the_body_is_plain_json() {
        let mut plain = headers(None);
        plain.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let request = parse_request(
            &plain,
            body(
                r#"{"inputs":[{"name":"b","shape":[1],"datatype":"INT64","data":[7]}]}"#,
                &[],
            ),
        )
        .unwrap();
        assert!(request.inputs[0].data.is_some());
    }

    #[test]
    fn outputs_asked_for_as_binary_come_after_the_json_header() {
        let answered = InferenceResponse {
            model_name: "m".into(),
            model_version: "1".into(),
            id: Some("r1".into()),
            outputs: vec![
                OutputTensor {
                    name: "y".into(),
                    datatype: DataType::Fp32,
                    shape: vec![2],
                    data: TensorData::Fp32(vec![0.25, 4.0]),
                },
                OutputTensor {
                    name: "z".into(),
                    datatype: DataType::Bool,
                    shape: vec![1],
                    data: TensorData::Bool(vec![true]),
                },
            ],
        };
        let request: InferenceRequest = serde_json::from_str(
            r#"{"inputs":[],"outputs":[{"name":"y","parameters":{"binary_data":true}},{"name":"z"}]}"#,
        )
        .unwrap();
        let answer = response(&answered, &BinaryOutputs::of(&request));
        let length: usize = answer.headers()[HEADER_LENGTH].to_str().unwrap().parse().unwrap();
        let bytes = futures_bytes(answer);
        let header: Value = serde_json::from_slice(&bytes[..length]).unwrap();
        assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert!(header["outputs"][0].get("data").is_none());
        assert_eq!(header["outputs"][1]["data"], serde_json::json!([true]));
        assert_eq!(header["id"], "r1");
        assert_eq!(elements::<f32>(&bytes[length..], 2).unwrap(), [0.25, 4.0]);
    }

    fn futures_bytes(response: Response) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap()
            .to_vec()
    }
}
