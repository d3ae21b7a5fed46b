//! The server's one error type and the one place it becomes an HTTP response:
//! `{"error": "<what is wrong and how to fix it>", "code": "<machine_code>"}`. The `error` string is
//! what Open Inference Protocol clients show; `code` is what scripts match on. Messages never carry
//! a path on disk, a stack trace or a secret.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Every error code Gatehouse answers with: its wire name, its HTTP status and what it means, in
/// one table ([`error_codes!`]), so a code cannot be misspelt at a call site or answer with two
/// statuses, and the OpenAPI document lists them all.
macro_rules! error_codes {
    ($($variant:ident => ($wire:literal, $status:ident, $meaning:literal),)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The `code` field's text.
            pub fn wire(self) -> &'static str {
                match self { $(ErrorCode::$variant => $wire,)* }
            }

            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)* }
            }

            pub fn meaning(self) -> &'static str {
                match self { $(ErrorCode::$variant => $meaning,)* }
            }

            /// The code whose wire name is `name`.
            pub fn from_wire(name: &str) -> Option<ErrorCode> {
                match name { $($wire => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    MalformedJson => ("malformed_json", BAD_REQUEST, "the body is not valid JSON"),
    InvalidRequest => ("invalid_request", BAD_REQUEST, "the body is JSON of the wrong shape"),
    UnreadableBody => ("unreadable_body", BAD_REQUEST, "the body could not be read"),
    UnsupportedMediaType => ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "the body is not JSON (or binary tensors with their header)"),
    PayloadTooLarge => ("payload_too_large", PAYLOAD_TOO_LARGE, "the body is larger than limits.max_body_bytes"),
    InvalidBinaryRequest => ("invalid_binary_request", BAD_REQUEST, "a binary tensor body whose lengths do not add up"),
    UnknownDatatype => ("unknown_datatype", BAD_REQUEST, "a tensor datatype Gatehouse does not serve"),
    WrongDatatype => ("wrong_datatype", BAD_REQUEST, "a tensor of another datatype than the model's input"),
    WrongShape => ("wrong_shape", BAD_REQUEST, "a tensor shape the model's input does not take"),
    WrongElementCount => ("wrong_element_count", BAD_REQUEST, "a tensor with more or fewer elements than its shape"),
    WrongData => ("wrong_data", BAD_REQUEST, "tensor elements that are not of the datatype or do not fit the shape"),
    MissingData => ("missing_data", BAD_REQUEST, "an input with neither data nor binary data"),
    InvalidTensor => ("invalid_tensor", BAD_REQUEST, "a tensor ONNX Runtime would not take"),
    MissingInput => ("missing_input", BAD_REQUEST, "a model input the request did not send"),
    UnknownInput => ("unknown_input", BAD_REQUEST, "an input the model does not have"),
    DuplicateInput => ("duplicate_input", BAD_REQUEST, "an input sent twice"),
    UnknownOutput => ("unknown_output", BAD_REQUEST, "an output the model does not have"),
    InferenceFailed => ("inference_failed", BAD_REQUEST, "ONNX Runtime refused the inputs"),
    ModelNotFound => ("model_not_found", NOT_FOUND, "no model of that name"),
    VersionNotFound => ("version_not_found", NOT_FOUND, "no such version of the model"),
    ModelUnavailable => ("model_unavailable", SERVICE_UNAVAILABLE, "the model could not be loaded"),
    SessionUnavailable => ("session_unavailable", SERVICE_UNAVAILABLE, "no inference session came free in time"),
    NotReady => ("not_ready", SERVICE_UNAVAILABLE, "the models are still loading"),
    ShuttingDown => ("shutting_down", SERVICE_UNAVAILABLE, "the server is stopping"),
    NotFound => ("not_found", NOT_FOUND, "no such endpoint"),
    Unauthorized => ("unauthorized", UNAUTHORIZED, "no key, or a key that is not valid"),
    ExpiredApiKey => ("expired_api_key", UNAUTHORIZED, "the key has expired"),
    RevokedApiKey => ("revoked_api_key", UNAUTHORIZED, "the key was revoked"),
    InsufficientScope => ("insufficient_scope", FORBIDDEN, "the key lacks the scope the endpoint needs"),
    ModelNotAllowed => ("model_not_allowed", FORBIDDEN, "the key may run only the models it names, and not this one"),
    CrossSiteRequestRefused => ("cross_site_request_refused", FORBIDDEN, "a Basic-authenticated request a browser could have forged"),
    TooManyAuthFailures => ("too_many_auth_failures", TOO_MANY_REQUESTS, "locked out after repeated authentication failures"),
    RateLimited => ("rate_limited", TOO_MANY_REQUESTS, "over the key's or the address's request rate"),
    Busy => ("busy", SERVICE_UNAVAILABLE, "too many bodies with a key inside being read at once"),
    Overloaded => ("overloaded", SERVICE_UNAVAILABLE, "as many requests in flight as the server allows"),
    Timeout => ("timeout", GATEWAY_TIMEOUT, "the request took longer than limits.request_timeout_seconds"),
    UriTooLong => ("uri_too_long", URI_TOO_LONG, "the URI is longer than limits.max_uri_bytes"),
    HeadersTooLarge => ("headers_too_large", REQUEST_HEADER_FIELDS_TOO_LARGE, "the headers are larger than limits.max_header_bytes"),
    UnknownHost => ("unknown_host", MISDIRECTED_REQUEST, "a Host that is not one of the server's names (DNS rebinding)"),
    InvalidWorkflow => ("invalid_workflow", BAD_REQUEST, "a workflow that does not validate"),
    CustomPythonDisabled => ("custom_python_disabled", FORBIDDEN, "a python step while custom Python is off"),
    StepFailed => ("step_failed", UNPROCESSABLE_ENTITY, "a workflow step that failed"),
    WorkflowTooLarge => ("workflow_too_large", PAYLOAD_TOO_LARGE, "step results over limits.workflow_memory_mb"),
    PythonError => ("python_error", UNPROCESSABLE_ENTITY, "a python step that raised an error"),
    PythonTimeout => ("python_timeout", UNPROCESSABLE_ENTITY, "a python step that ran past workflows.python_timeout_seconds"),
    PythonLimit => ("python_limit", UNPROCESSABLE_ENTITY, "a python step over its CPU, memory or output limit"),
    PythonForbidden => ("python_forbidden", UNPROCESSABLE_ENTITY, "a python step that tried what the sandbox forbids"),
    SandboxIncomplete => ("sandbox_incomplete", SERVICE_UNAVAILABLE, "a sandbox layer is missing and a weaker sandbox is not accepted"),
    SandboxUnavailable => ("sandbox_unavailable", INTERNAL_SERVER_ERROR, "the sandbox could not be set up"),
    AmbiguousPath => ("ambiguous_path", BAD_REQUEST, "a path a guarded server could read as another route"),
    UpstreamUnavailable => ("upstream_unavailable", BAD_GATEWAY, "the guarded server is not answering"),
    UpstreamFailed => ("upstream_failed", BAD_GATEWAY, "the guarded server broke off its answer"),
    UpstreamTimeout => ("upstream_timeout", GATEWAY_TIMEOUT, "the guarded server did not start answering in time"),
    UpstreamNotReady => ("upstream_not_ready", SERVICE_UNAVAILABLE, "the guarded server is not ready"),
    Internal => ("internal", INTERNAL_SERVER_ERROR, "a bug in Gatehouse; logged with the request's id"),
}

/// The `code` field's schema: every code, and in the description what each means and its status.
fn code_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let meanings: Vec<String> = ErrorCode::ALL
        .iter()
        .map(|code| {
            format!(
                "`{}` ({}): {}",
                code.wire(),
                code.status().as_u16(),
                code.meaning()
            )
        })
        .collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ErrorCode::ALL.iter().map(|code| code.wire())))
        .description(Some(format!(
            "A stable machine-readable code. {}",
            meanings.join("; ")
        )))
        .build()
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.wire())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.wire() == *other
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong and how to fix it, for a person.
    pub error: String,
    /// A stable machine-readable code, e.g. `wrong_shape`; every one is listed with its meaning.
    #[schema(schema_with = code_schema)]
    pub code: String,
}

impl ApiError {
    /// An error with `code`'s status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status: code.status(),
            code,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::Internal, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            code: self.code.to_string(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE || self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod code_tests {
    use super::*;

    #[test]
    fn every_code_has_one_wire_name_and_a_meaning() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.wire()).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "two codes share a wire name");
        for code in ErrorCode::ALL {
            assert!(
                code.wire().chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
            assert!(!code.meaning().is_empty(), "{code}");
            assert!(
                code.status().is_client_error() || code.status().is_server_error(),
                "{code}"
            );
        }
    }

    #[test]
    fn the_openapi_document_lists_every_code() {
        let document = crate::openapi::document_json();
        for code in ErrorCode::ALL {
            assert!(
                document.contains(&format!("\"{}\"", code.wire())),
                "{code} missing"
            );
        }
    }
}
