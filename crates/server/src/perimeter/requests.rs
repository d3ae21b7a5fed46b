//! Limits on every request, before any work: request-target and header sizes (414, 431), requests
//! in flight (503 + `Retry-After`, refused at once rather than queued) and a deadline (504). Each
//! refusal is counted in `/metrics`.
//!
//! A request that times out stops being waited for; an inference already running in ONNX Runtime
//! finishes on its blocking thread and its result is dropped.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::settings::LimitSettings;
use tokio::sync::Semaphore;

use crate::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct RequestLimits {
    in_flight: Arc<Semaphore>,
    timeout: Duration,
    max_uri_bytes: usize,
    max_header_bytes: usize,
    metrics: Arc<Metrics>,
}

impl RequestLimits {
    pub fn new(limits: &LimitSettings, metrics: Arc<Metrics>) -> RequestLimits {
        RequestLimits {
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent_requests as usize)),
            timeout: Duration::from_secs(u64::from(limits.request_timeout_seconds)),
            max_uri_bytes: limits.max_uri_bytes as usize,
            max_header_bytes: limits.max_header_bytes as usize,
            metrics,
        }
    }
}

pub async fn enforce(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    let uri_bytes = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_bytes > limits.max_uri_bytes {
        limits.metrics.rate_limited("uri_size");
        return ApiError::new(
            ErrorCode::UriTooLong,
            format!(
                "the request target is {uri_bytes} bytes, more than the {} accepted; send data in the body",
                limits.max_uri_bytes
            ),
        )
        .into_response();
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        limits.metrics.rate_limited("header_size");
        return ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "the request headers are {header_bytes} bytes, more than the {} accepted",
                limits.max_header_bytes
            ),
        )
        .into_response();
    }
    let Ok(_permit) = limits.in_flight.clone().try_acquire_owned() else {
        limits.metrics.rate_limited("concurrency");
        return ApiError::new(
            ErrorCode::Overloaded,
            "the server is handling as many requests as it allows; retry in a moment",
        )
        .into_response();
    };
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            limits.metrics.rate_limited("timeout");
            ApiError::new(ErrorCode::Timeout,
                format!("the request took longer than {} s; send a smaller batch, or raise limits.request_timeout_seconds", limits.timeout.as_secs()),
            )
            .into_response()
        }
    }
}
