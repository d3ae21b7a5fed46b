//! The Gatehouse inference server: axum around `gatehouse-core`, serving ONNX models over the Open
//! Inference Protocol v2. [`router`] lists every route and layer; [`serve`] binds, announces the
//! address with one `listening` log line, loads the models and shuts down gracefully.

pub mod api;
pub mod error;
pub mod json;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod serve;
pub mod telemetry;
pub mod tensor;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Level;

pub use api::ServerInfo;
use metrics::Metrics;
use models::Repository;

/// Everything a handler may need, built once and cloned cheaply.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    /// Empty until the models have loaded; `/readiness` answers 503 until then.
    pub repository: Arc<OnceLock<Repository>>,
    pub info: Arc<ServerInfo>,
    pub max_body_bytes: usize,
}

/// The whole HTTP surface: every route, then the layers every request passes through.
pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.max_body_bytes;
    Router::new()
        // Public: no key will ever be needed for these.
        .route("/", get(api::root))
        .route("/healthz", get(api::healthz))
        .route("/readiness", get(api::readiness))
        .route("/info", get(api::info))
        .route("/openapi.json", get(api::openapi_json))
        .route("/docs", get(api::docs))
        .route("/metrics", get(api::metrics))
        .route("/v2/health/live", get(api::live))
        .route("/v2/health/ready", get(api::ready))
        // Open Inference Protocol v2.
        .route("/v2", get(api::server_metadata))
        .route("/v2/models/{model}", get(api::model_metadata))
        .route("/v2/models/{model}/ready", get(api::model_ready))
        .route("/v2/models/{model}/infer", post(api::infer))
        .route("/v2/models/{model}/versions/{version}", get(api::model_version_metadata))
        .route("/v2/models/{model}/versions/{version}/ready", get(api::model_version_ready))
        .route("/v2/models/{model}/versions/{version}/infer", post(api::infer_version))
        .route("/v2/repository/index", post(api::repository_index))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(api::panic_response))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
                })
                .on_request(())
                .on_response(tower_http::trace::DefaultOnResponse::new().level(Level::DEBUG).latency_unit(tower_http::LatencyUnit::Micros))
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// How long in-flight requests may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
