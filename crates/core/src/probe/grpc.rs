//! One unary gRPC call the way a gRPC client makes it (HTTP/2, `application/grpc`, an empty
//! message), for the checklist to see what the gRPC port answers a caller without a key.

use bytes::Bytes;

use super::{Endpoint, ProbeError, Prober, within};

/// What a gRPC call came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcAnswer {
    /// The HTTP status of the response (200 for every gRPC answer, errors included).
    pub http_status: u16,
    /// `grpc-status`, from the headers of a trailers-only answer or from the trailers; 0 is OK,
    /// 16 UNAUTHENTICATED.
    pub status: Option<u32>,
    /// `grpc-message`, percent-decoded.
    pub message: String,
}

/// gRPC's code for a call refused for its missing or wrong credentials.
pub const UNAUTHENTICATED: u32 = 16;

impl Prober {
    /// Calls `method` (`/package.Service/Method`) with an empty message on `port` of the probed
    /// host; over TLS (offering `h2`, the certificate recorded rather than enforced, as
    /// [`Prober::request`] does) when `tls` is set.
    pub async fn grpc_call(
        &self,
        port: u16,
        method: &str,
        metadata: &[(&str, &str)],
        tls: bool,
    ) -> Result<GrpcAnswer, ProbeError> {
        let endpoint = Endpoint {
            tls,
            port,
            ..self.endpoint.clone()
        };
        let target = endpoint.authority();
        let prober = Prober::new(endpoint.clone(), self.identity.clone(), self.timeout);
        let call = async {
            let tcp = prober.connect_tcp().await?;
            if tls {
                let (config, _) = prober.client_config(rustls::ALL_VERSIONS, true);
                let mut config = (*config).clone();
                config.alpn_protocols = vec![b"h2".to_vec()];
                let stream = prober.tls_connect(tcp, std::sync::Arc::new(config)).await?;
                call(stream, &endpoint, method, metadata, &target).await
            } else {
                call(tcp, &endpoint, method, metadata, &target).await
            }
        };
        within(self.timeout, format!("gRPC {target}{method}"), call).await
    }
}

async fn call<S>(
    io: S,
    endpoint: &Endpoint,
    method: &str,
    metadata: &[(&str, &str)],
    target: &str,
) -> Result<GrpcAnswer, ProbeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let protocol = |reason: String| ProbeError::Protocol {
        target: target.to_string(),
        reason,
    };
    let (client, connection) = h2::client::handshake(io)
        .await
        .map_err(|e| protocol(format!("no HTTP/2 connection: {e}")))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client
        .ready()
        .await
        .map_err(|e| protocol(format!("the HTTP/2 connection closed: {e}")))?;
    let scheme = if endpoint.tls { "https" } else { "http" };
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("{scheme}://{}{method}", endpoint.authority()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", format!("gatehouse-check/{}", crate::VERSION));
    for (name, value) in metadata {
        request = request.header(*name, *value);
    }
    let request = request
        .body(())
        .map_err(|e| protocol(format!("the call could not be written: {e}")))?;
    let (response, mut body) = client
        .send_request(request, false)
        .map_err(|e| protocol(format!("the call was not sent: {e}")))?;
    // An empty message: no compression, length 0.
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .map_err(|e| protocol(format!("the message was not sent: {e}")))?;
    let response = response
        .await
        .map_err(|e| protocol(format!("no answer to the call: {e}")))?;
    let http_status = response.status().as_u16();
    let from = |headers: &http::HeaderMap| {
        let status = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let message = headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .map(percent_decoded)
            .unwrap_or_default();
        (status, message)
    };
    let (mut status, mut message) = from(response.headers());
    if status.is_none() {
        let mut received = response.into_body();
        // The message itself is of no interest; only the status that follows it.
        let mut read = 0usize;
        while let Some(chunk) = received.data().await {
            let chunk = chunk.map_err(|e| protocol(format!("the answer broke off: {e}")))?;
            read += chunk.len();
            let _ = received.flow_control().release_capacity(chunk.len());
            if read > 1 << 20 {
                break;
            }
        }
        if let Ok(Some(trailers)) = received.trailers().await {
            (status, message) = from(&trailers);
        }
    }
    Ok(GrpcAnswer {
        http_status,
        status,
        message,
    })
}

/// `grpc-message` is percent-encoded UTF-8.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(
            super::percent_decoded("needs an API key%3A send %60Bearer%60 %E2%9C%93"),
            "needs an API key: send `Bearer` ✓"
        );
        assert_eq!(super::percent_decoded("100%"), "100%");
    }
}
