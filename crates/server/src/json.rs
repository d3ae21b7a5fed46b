//! Our own JSON body extractor, so that a malformed, oversize or mistyped body gets the same
//! `{"error", "code"}` shape as every other error instead of axum's plain-text rejection.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_content_type(request.headers().get(header::CONTENT_TYPE))?;
        let bytes = read_body(request, state).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// The whole body, within `limits.max_body_bytes`; too large or unreadable is a JSON error.
pub async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    {
        Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "the request body is larger than the server accepts; send a smaller batch, or raise \
                     limits.max_body_bytes in the settings",
                )
            } else {
                ApiError::new(
                    ErrorCode::UnreadableBody,
                    format!("the request body could not be read: {rejection}"),
                )
            }
        })
    }
}

/// Parses a JSON body, naming the line and column of the first problem.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let (code, what) = if error.is_syntax() || error.is_eof() {
            (ErrorCode::MalformedJson, "the body is not valid JSON")
        } else {
            (
                ErrorCode::InvalidRequest,
                "the body does not have the expected shape",
            )
        };
        ApiError::new(code, format!("{what}: {error}"))
    })
}

pub fn check_content_type(value: Option<&header::HeaderValue>) -> Result<(), ApiError> {
    // OIP clients differ: some send no Content-Type at all for JSON bodies, so absence is accepted.
    let Some(value) = value else { return Ok(()) };
    let media_type = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type == "application/json" || media_type.ends_with("+json") {
        return Ok(());
    }
    let hint = if media_type == "application/octet-stream" {
        " (a binary body needs the Inference-Header-Content-Length header of Triton's binary \
         tensor extension, saying how long its JSON part is)"
    } else {
        ""
    };
    Err(ApiError::new(
        ErrorCode::UnsupportedMediaType,
        format!(
            "Content-Type `{media_type}` is not accepted; send application/json (with curl: -H 'Content-Type: application/json'){hint}"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_missing_content_types_are_accepted() {
        assert!(check_content_type(None).is_ok());
        assert!(check_content_type(Some(&"application/json; charset=utf-8".parse().unwrap())).is_ok());
        let error = check_content_type(Some(&"text/plain".parse().unwrap())).unwrap_err();
        assert_eq!(error.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(error.message.contains("text/plain"));
    }

    #[test]
    fn syntax_errors_name_the_position() {
        let error = parse::<serde_json::Value>(b"{\"inputs\": [}").unwrap_err();
        assert_eq!(error.code, "malformed_json");
        assert!(error.message.contains("column"), "{}", error.message);
    }
}
