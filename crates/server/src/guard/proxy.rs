//! The reverse proxy behind a guard's perimeter: one request in, the same request to the
//! upstream, the upstream's answer back as it is produced.
//!
//! What changes on the way: hop-by-hop headers go (RFC 9110 §7.6.1), the Gatehouse credential
//! the perimeter accepted goes (the upstream never sees a Gatehouse key), `X-Forwarded-*` are
//! written from what Gatehouse saw rather than trusted from the client, and `Host` becomes the
//! upstream's own address (a loopback server that checks its Host, as Ollama does, accepts it).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;
use crate::perimeter::Presentation;

/// Where requests go and how long the upstream may take to start answering.
pub struct Proxy {
    client: Client<HttpConnector, Body>,
    pub upstream: SocketAddr,
    /// The upstream's address as a `Host` header and as a URI authority, made once.
    authority: HeaderValue,
    uri_authority: axum::http::uri::Authority,
    /// Until the upstream's response headers; a body may stream for as long as it likes.
    timeout: Duration,
    max_body_bytes: usize,
    /// Whether clients reach Gatehouse over TLS, for `X-Forwarded-Proto`.
    tls: bool,
    metrics: Arc<Metrics>,
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the
/// forwarding headers Gatehouse writes itself and must not take from a client.
const HOP_BY_HOP: [&str; 12] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "forwarded",
    "x-forwarded-for",
    "x-real-ip",
];

impl Proxy {
    pub fn new(
        upstream: SocketAddr,
        timeout: Duration,
        max_body_bytes: usize,
        tls: bool,
        metrics: Arc<Metrics>,
    ) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Proxy {
            client,
            upstream,
            authority: HeaderValue::from_str(&upstream.to_string())
                .expect("a socket address is a valid header value"),
            uri_authority: upstream
                .to_string()
                .parse()
                .expect("a socket address is a valid authority"),
            timeout,
            max_body_bytes,
            tls,
            metrics,
        }
    }

    /// A GET to the upstream's `path`; its status, or why there was none.
    pub async fn status_of(&self, path: &str) -> Result<StatusCode, String> {
        let request = Request::builder()
            .uri(format!("http://{}{path}", self.upstream))
            .header(header::HOST, self.authority.clone())
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(5), self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response.status()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("no answer within 5 s".into()),
        }
    }

    /// Sends `request` on and returns the upstream's answer, or a JSON error naming why not.
    pub async fn forward(&self, request: Request) -> Response {
        let (mut parts, body) = request.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body_bytes as u64) {
            return too_large();
        }
        let presented = parts.extensions.get::<Presentation>().copied();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let client_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let upgrade = upgrade_protocol(&parts.headers);
        let original_host = parts.headers.get(header::HOST).cloned();

        strip_hop_by_hop(&mut parts.headers);
        let path_and_query = without_credential(&mut parts.headers, &parts.uri, presented);
        self.add_forwarding(&mut parts.headers, peer, original_host);
        if let Some(protocol) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol.clone());
        }
        parts.headers.insert(header::HOST, self.authority.clone());
        parts.uri = match Uri::builder()
            .scheme("http")
            .authority(self.uri_authority.clone())
            .path_and_query(path_and_query)
            .build()
        {
            Ok(uri) => uri,
            Err(error) => {
                return ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("the request's path cannot be passed on: {error}"),
                )
                .into_response();
            }
        };
        parts.extensions = Default::default();
        let body = Body::new(http_body_util::Limited::new(body, self.max_body_bytes));
        let outgoing = Request::from_parts(parts, body);

        let answer = tokio::time::timeout(self.timeout, self.client.request(outgoing)).await;
        let mut response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return self.failed(&error),
            Err(_) => {
                self.metrics.upstream_error("timeout");
                return ApiError::new(ErrorCode::UpstreamTimeout,
                    format!(
                        "the guarded server did not start answering within {} s; it may be loading a model: retry, or raise limits.request_timeout_seconds",
                        self.timeout.as_secs()
                    ),
                )
                .into_response();
            }
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS
            && let (Some(client), Some(_)) = (client_upgrade, &upgrade)
        {
            let upstream = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                let (Ok(client), Ok(upstream)) = (client.await, upstream.await) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(upstream))
                    .await;
            });
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, Body::empty());
        }
        strip_hop_by_hop(response.headers_mut());
        response.map(Body::new)
    }

    fn add_forwarding(&self, headers: &mut HeaderMap, peer: Option<IpAddr>, host: Option<HeaderValue>) {
        if let Some(peer) = peer
            && let Ok(value) = HeaderValue::from_str(&peer.to_canonical().to_string())
        {
            headers.insert(HeaderName::from_static("x-forwarded-for"), value);
        }
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static(if self.tls { "https" } else { "http" }),
        );
        match host {
            Some(host) => {
                headers.insert(HeaderName::from_static("x-forwarded-host"), host);
            }
            None => {
                headers.remove("x-forwarded-host");
            }
        }
    }

    fn failed(&self, error: &hyper_util::client::legacy::Error) -> Response {
        if limited(error) {
            return too_large();
        }
        if error.is_connect() {
            self.metrics.upstream_error("unavailable");
            return ApiError::new(ErrorCode::UpstreamUnavailable,
                format!(
                    "the guarded server on {} is not answering; start it, or check `gatehouse guard`'s log for why it stopped",
                    self.upstream
                ),
            )
            .into_response();
        }
        self.metrics.upstream_error("failed");
        tracing::warn!(event = "upstream_failed", error = %error, "the guarded server broke off the request");
        ApiError::new(
            ErrorCode::UpstreamFailed,
            "the guarded server closed the connection without a complete answer; its own log says why",
        )
        .into_response()
    }
}

fn too_large() -> Response {
    ApiError::new(ErrorCode::PayloadTooLarge,
        "the request body is larger than the server accepts; send a smaller one, or raise limits.max_body_bytes in the settings",
    )
    .into_response()
}

/// Whether the body limit is what stopped the request.
fn limited(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The protocol a request asks to switch to (`Connection: upgrade` and `Upgrade: …`).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned()).flatten()
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the Connection header names are hop-by-hop as well.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Whether a header value holds a Gatehouse key, plainly or as Basic credentials.
fn carries_gatehouse_key(value: &str) -> bool {
    use base64::Engine as _;
    let value = value.trim();
    if value.contains("gth_") {
        return true;
    }
    value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .is_some_and(|decoded| String::from_utf8_lossy(&decoded).contains("gth_"))
}

/// Removes the credential the perimeter accepted; returns the path and query to send on.
fn without_credential(headers: &mut HeaderMap, uri: &Uri, presented: Option<Presentation>) -> String {
    match presented {
        Some(Presentation::Bearer | Presentation::Basic) => {
            headers.remove(header::AUTHORIZATION);
        }
        Some(Presentation::Header) => {
            headers.remove("x-api-key");
        }
        Some(Presentation::Query | Presentation::Body) | None => {}
    }
    // Whatever else carries a Gatehouse key goes too: the copy the perimeter did not read (Prefect's
    // client sends the auth string as Basic and custom headers for its WebSockets), and one sent
    // to a public route, where no key is checked at all.
    for name in [header::AUTHORIZATION.as_str(), "x-api-key"] {
        if headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(carries_gatehouse_key)
        {
            headers.remove(name);
        }
    }
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_string();
    };
    // `api_key` goes when it was the key accepted, or holds a Gatehouse key; an upstream's own
    // `api_key` (Roboflow's account key) passes.
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            !pair.is_empty()
                && !(name == "api_key"
                    && (presented == Some(Presentation::Query) || value.starts_with("gth_")))
        })
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accepted_credential_is_removed_and_nothing_else() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer gth_x"));
        headers.insert("x-api-key", HeaderValue::from_static("upstream-own"));
        let uri: Uri = "/v1/x?a=1".parse().unwrap();
        let rest = without_credential(&mut headers, &uri, Some(Presentation::Bearer));
        assert_eq!(rest, "/v1/x?a=1");
        assert!(headers.get(header::AUTHORIZATION).is_none());
        assert_eq!(headers["x-api-key"], "upstream-own");

        // The same key twice: Basic from Prefect's auth string and X-API-Key from its custom
        // headers. Neither copy reaches the upstream.
        let mut headers = HeaderMap::new();
        let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "me:gth_x");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}")).unwrap(),
        );
        headers.insert("x-api-key", HeaderValue::from_static("gth_x"));
        without_credential(
            &mut headers,
            &"/api/x".parse().unwrap(),
            Some(Presentation::Header),
        );
        assert!(headers.is_empty(), "{headers:?}");

        // On a public route no key is read, and a Gatehouse key still does not pass.
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer gth_canary"),
        );
        headers.insert("x-api-key", HeaderValue::from_static("upstream-own"));
        without_credential(&mut headers, &"/health".parse().unwrap(), None);
        assert!(headers.get(header::AUTHORIZATION).is_none());
        assert_eq!(headers["x-api-key"], "upstream-own");
        let uri: Uri = "/infer/x?api_key=gth_canary&confidence=0.5".parse().unwrap();
        assert_eq!(
            without_credential(&mut HeaderMap::new(), &uri, None),
            "/infer/x?confidence=0.5"
        );
        let uri: Uri = "/infer/x?api_key=rf_account&confidence=0.5".parse().unwrap();
        assert_eq!(
            without_credential(&mut HeaderMap::new(), &uri, Some(Presentation::Bearer)),
            "/infer/x?api_key=rf_account&confidence=0.5",
            "the upstream's own api_key passes"
        );

        let uri: Uri = "/v1/x?a=1&api_key=gth_x&b=2".parse().unwrap();
        let rest = without_credential(&mut HeaderMap::new(), &uri, Some(Presentation::Query));
        assert_eq!(rest, "/v1/x?a=1&b=2");
        let uri: Uri = "/v1/x?api_key=gth_x".parse().unwrap();
        assert_eq!(
            without_credential(&mut HeaderMap::new(), &uri, Some(Presentation::Query)),
            "/v1/x"
        );
    }

    #[test]
    fn connection_scoped_and_client_forwarding_headers_do_not_pass() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.insert("forwarded", HeaderValue::from_static("for=10.0.0.1"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn an_upgrade_needs_both_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(upgrade_protocol(&headers).is_none());
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(upgrade_protocol(&headers).unwrap(), "websocket");
    }
}
