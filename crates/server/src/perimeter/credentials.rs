//! Where a request's key is found, in the places clients put one, and how it was presented.

use super::*;

/// Looks for a key in the places clients put one: Authorization (Bearer, or Basic's password),
/// X-API-Key, `?api_key=`, then an `api_key` field of a JSON body.
pub(super) async fn find_key(
    request: Request,
    perimeter: &Perimeter,
    body_keys: bool,
) -> Result<(Request, Option<(Presentation, Sensitive<String>)>), Response> {
    if let Some(found) = key_from_headers(request.headers()) {
        return Ok((request, Some(found)));
    }
    if let Some(key) = request.uri().query().and_then(key_from_query) {
        return Ok((request, Some((Presentation::Query, key))));
    }
    // Only a JSON body can carry `api_key`; anything else is refused for its missing key without
    // being read.
    if !body_keys || request.method() != Method::POST || !json_body(request.headers()) {
        return Ok((request, None));
    }
    let Ok(Ok(_turn)) =
        tokio::time::timeout(UNAUTHENTICATED_WAIT, perimeter.unauthenticated_bodies.acquire()).await
    else {
        Denial::UnauthenticatedBodies.count(&perimeter.metrics);
        return Err(refuse_for(
            ErrorCode::Busy,
            "too many requests with the key inside the body are being read at once; send the key \
             in an `Authorization: Bearer` or `X-API-Key` header instead",
            Duration::from_secs(1),
        ));
    };
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, perimeter.max_body_bytes).await.map_err(|_| {
        ApiError::new(ErrorCode::PayloadTooLarge,
            "the request body is larger than the server accepts; send a smaller batch, or raise limits.max_body_bytes in the settings",
        )
        .into_response()
    })?;
    #[derive(serde::Deserialize)]
    struct WithKey {
        api_key: Option<String>,
    }
    let key = serde_json::from_slice::<WithKey>(&bytes)
        .ok()
        .and_then(|b| b.api_key)
        .map(Sensitive::new);
    Ok((
        Request::from_parts(parts, Body::from(bytes)),
        key.map(|k| (Presentation::Body, k)),
    ))
}

pub(super) fn key_from_headers(headers: &HeaderMap) -> Option<(Presentation, Sensitive<String>)> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some((Presentation::Bearer, Sensitive::new(rest.trim().to_string())));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (user, password) = text.split_once(':').unwrap_or((&text, ""));
            // Some clients put a token in the user name and leave the password empty.
            let key = if password.is_empty() { user } else { password };
            return Some((Presentation::Basic, Sensitive::new(key.to_string())));
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| (Presentation::Header, Sensitive::new(v.trim().to_string())))
}

/// What the handlers would read as JSON (a JSON media type, or none, as OIP clients send).
pub(super) fn json_body(headers: &HeaderMap) -> bool {
    crate::json::check_content_type(headers.get(header::CONTENT_TYPE)).is_ok()
}

pub(super) fn key_from_query(query: &str) -> Option<Sensitive<String>> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("api_key="))
        .map(|v| Sensitive::new(v.to_string()))
}
