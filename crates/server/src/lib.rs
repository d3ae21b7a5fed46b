//! The Gatehouse inference server: axum around `gatehouse-core`, serving ONNX models over the Open
//! Inference Protocol v2. [`router`] lists every route and layer; [`serve`] binds, announces the
//! address with one `listening` log line, loads the models and shuts down gracefully.

pub mod api;
pub mod connections;
pub mod error;
pub mod grpc;
pub mod guard;
pub mod json;
pub mod listen;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod perimeter;
pub mod serve;
pub mod telemetry;
pub mod tensor;
pub mod tls;
pub mod workflows;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Level;

pub use api::ServerInfo;
use gatehouse_core::keys::Scope;
use gatehouse_core::wire::routes;
use metrics::Metrics;
use models::Repository;
use perimeter::requests::RequestLimits;
use perimeter::{Gate, Perimeter};

/// Everything a handler may need, built once. axum clones the state for every extractor and
/// middleware of every request, so it is one reference count rather than a struct whose settings
/// (origin lists, sandbox paths) would be copied each time.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl From<Shared> for AppState {
    fn from(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    /// Empty until the models have loaded; `/readiness` answers 503 until then.
    pub repository: Arc<OnceLock<Repository>>,
    pub info: Arc<ServerInfo>,
    pub max_body_bytes: usize,
    /// What one workflow's step results may hold at once (`limits.workflow_memory_mb`).
    pub workflow_memory_bytes: usize,
    pub perimeter: Arc<Perimeter>,
    /// The names requests may be addressed to (the DNS-rebinding defence).
    pub hosts: Arc<perimeter::hosts::AllowedHosts>,
    /// `/metrics` and `/docs` need a key with the `metrics` scope.
    pub metrics_protected: bool,
    pub request_limits: RequestLimits,
    /// Browser origins allowed to call the server; empty means none.
    pub cors: gatehouse_core::settings::CorsSettings,
    /// Whether workflows may have python steps.
    pub allow_custom_python: bool,
    pub sandbox: workflows::sandbox::SandboxConfig,
}

/// The whole HTTP surface: every route, then the layers every request passes through.
pub fn router(state: AppState) -> Router {
    let routes = routes(&state);
    with_layers(routes, state)
}

fn routes(state: &AppState) -> Router<AppState> {
    let gate = |scope| {
        axum::middleware::from_fn_with_state(
            Gate::new(state.perimeter.clone(), scope),
            perimeter::authenticate,
        )
    };
    // Public: no key will ever be needed for these.
    let public = Router::new()
        .route("/", get(api::root))
        .route("/healthz", get(api::healthz))
        .route("/readiness", get(api::readiness))
        .route("/info", get(api::info))
        .route(routes::HEALTHZ, get(api::healthz))
        .route(routes::READINESS, get(api::readiness))
        .route(routes::INFO, get(api::info))
        .route("/v2/health/live", get(api::live))
        .route("/v2/health/ready", get(api::ready));
    // Public while only this computer can connect; a `metrics` key beyond it (or as set).
    let metrics = Router::new()
        .route("/metrics", get(api::metrics))
        .route(routes::METRICS, get(api::metrics))
        .route("/openapi.json", get(api::openapi_json))
        .route("/docs", get(api::docs));
    let metrics = if state.metrics_protected {
        metrics.route_layer(gate(Scope::Metrics))
    } else {
        metrics
    };
    // Open Inference Protocol v2: the `infer` scope.
    let inference = Router::new()
        .route("/v2", get(api::server_metadata))
        .route("/v2/models/{model}", get(api::model_metadata))
        .route("/v2/models/{model}/ready", get(api::model_ready))
        .route("/v2/models/{model}/config", get(api::model_config))
        .route("/v2/models/{model}/infer", post(api::infer))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(api::model_version_metadata),
        )
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(api::model_version_ready),
        )
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(api::infer_version),
        )
        .route("/v2/repository/index", post(api::repository_index))
        .route_layer(gate(Scope::Infer));
    // Workflows: the `workflows` scope.
    let workflows = Router::new()
        .route("/v1/workflows/run", post(workflows::run))
        .route("/v1/workflows/validate", post(workflows::validate))
        .route_layer(gate(Scope::Workflows));
    public
        .merge(metrics)
        .merge(inference)
        .merge(workflows)
        .fallback(api::not_found)
}

/// The layers every request passes through, outermost last: request id, tracing span, metrics,
/// panic containment, body limit.
fn with_layers(routes: Router<AppState>, state: AppState) -> Router {
    let routes = routes
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state.clone());
    with_common_layers(routes, &Common::of(&state, "unmatched"))
}

/// What the layers every kind of Gatehouse server shares are made from.
pub struct Common {
    pub hosts: Arc<perimeter::hosts::AllowedHosts>,
    pub request_limits: RequestLimits,
    pub cors: gatehouse_core::settings::CorsSettings,
    pub metrics: Arc<Metrics>,
    /// The metrics' route label for requests no route matched.
    pub unmatched: &'static str,
}

impl Common {
    /// The common layers' parts of the built-in server's state (its HTTP and gRPC ports);
    /// `unmatched` labels requests no route matched.
    pub fn of(state: &Shared, unmatched: &'static str) -> Common {
        Common {
            hosts: state.hosts.clone(),
            request_limits: state.request_limits.clone(),
            cors: state.cors.clone(),
            metrics: state.metrics.clone(),
            unmatched,
        }
    }
}

/// The layers in front of any routes, outermost last: panic containment, metrics, tracing
/// span, request limits, request id, CORS, and the Host check outermost.
pub fn with_common_layers(routes: Router, common: &Common) -> Router {
    let routes = routes
        .layer(CatchPanicLayer::custom(api::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            metrics::Tracker::new(common.metrics.clone(), common.unmatched),
            metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("");
                    // The path only: a key sent as `?api_key=` must not reach the log.
                    tracing::info_span!(
                        "request",
                        request_id = %id,
                        method = %request.method(),
                        path = %request.uri().path(),
                        key_id = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(Level::DEBUG)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                )
                .on_failure(()),
        )
        .layer(axum::middleware::from_fn_with_state(
            common.request_limits.clone(),
            perimeter::requests::enforce,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(telemetry::RequestIds));
    // Preflights are answered before authentication: a browser sends them without credentials.
    let routes = match cors_layer(&common.cors) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    // Outermost: a request addressed to a name that is not the server's gets nothing else.
    routes.layer(axum::middleware::from_fn_with_state(
        common.hosts.clone(),
        perimeter::hosts::enforce,
    ))
}

/// The CORS layer for the allowed origins, or none at all (no cross-origin access) by default.
/// Credentials are never allowed: keys travel in headers a page must set on purpose.
fn cors_layer(settings: &gatehouse_core::settings::CorsSettings) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if settings.allowed_origins.is_empty() {
        return None;
    }
    let origin = if settings.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(settings.allowed_origins.iter().filter_map(|o| o.parse().ok()))
    };
    let methods: Vec<axum::http::Method> = settings
        .allowed_methods
        .iter()
        .filter_map(|m| m.parse().ok())
        .collect();
    let headers: Vec<axum::http::HeaderName> = settings
        .allowed_headers
        .iter()
        .filter_map(|h| h.parse().ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods(methods)
            .allow_headers(headers)
            .allow_credentials(false)
            .max_age(Duration::from_secs(600)),
    )
}

/// How long in-flight requests may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn state() -> AppState {
        let metrics = Arc::new(Metrics::new("test"));
        let keys = std::env::temp_dir().join("gatehouse-unit-tests-no-keys.toml");
        let hosts = Arc::new(perimeter::hosts::AllowedHosts::new(
            Vec::new(),
            &[],
            metrics.clone(),
        ));
        let perimeter = Arc::new(Perimeter::new(
            &gatehouse_core::Settings::default(),
            keys,
            hosts.clone(),
            None,
            metrics.clone(),
        ));
        AppState::from(Shared {
            hosts,
            request_limits: RequestLimits::new(&gatehouse_core::Settings::default().limits, metrics.clone()),
            cors: Default::default(),
            metrics,
            perimeter,
            metrics_protected: false,
            repository: Arc::new(OnceLock::new()),
            info: Arc::new(ServerInfo {
                name: "gatehouse".into(),
                version: "test".into(),
                onnxruntime: "test".into(),
                address: "127.0.0.1:9001".into(),
                loopback_only: true,
                tls: false,
                auth: Some(true),
                custom_python: Some(false),
                python_sandbox: None,
                keys_in_url: None,
                mtls: false,
                models_ready: 0,
                grpc_address: None,
                guarding: None,
            }),
            max_body_bytes: 1024,
            workflow_memory_bytes: 1 << 20,
            allow_custom_python: false,
            sandbox: workflows::sandbox::SandboxConfig::new(&Default::default(), Vec::new()),
        })
    }

    async fn call(app: Router, request: Request<Body>) -> (u16, serde_json::Value) {
        let response = app.oneshot(request).await.expect("the router answers");
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    fn get_request(path: &str) -> Request<Body> {
        Request::builder()
            .uri(path)
            .header("host", "127.0.0.1:9001")
            .body(Body::empty())
            .expect("valid request")
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_500_with_code_internal() {
        // A handler with an indexing bug, the kind of panic a real handler could have.
        async fn buggy() -> axum::http::StatusCode {
            let empty: Vec<u16> = Vec::new();
            axum::http::StatusCode::from_u16(empty[0]).unwrap_or(axum::http::StatusCode::OK)
        }
        let state = state();
        let routes = routes(&state).route("/boom", get(buggy));
        let app = with_layers(routes, state);
        let (status, body) = call(app.clone(), get_request("/boom")).await;
        assert_eq!(status, 500);
        assert_eq!(body["code"], "internal");
        assert!(
            !body["error"].as_str().unwrap_or("").contains("handler bug"),
            "panic text leaked: {body}"
        );
        assert_eq!(call(app, get_request("/healthz")).await.0, 200);
    }

    #[tokio::test]
    async fn model_endpoints_answer_503_until_the_models_have_loaded() {
        let app = router(state());
        let (status, body) = call(app.clone(), get_request("/readiness")).await;
        assert_eq!((status, body["code"].as_str()), (503, Some("not_ready")));
        assert_eq!(call(app.clone(), get_request("/v2/health/ready")).await.0, 503);
        assert_eq!(
            call(app.clone(), get_request("/v2/models/magika")).await.0,
            401,
            "keys come before readiness"
        );
        assert_eq!(call(app, get_request("/v2/health/live")).await.0, 200);
    }

    #[tokio::test]
    async fn a_foreign_host_gets_421_on_public_routes_too() {
        let app = router(state());
        for path in ["/", "/info", "/healthz", "/metrics", "/v2/health/ready", "/nope"] {
            let request = Request::builder()
                .uri(path)
                .header("host", "evil.example:9001")
                .body(Body::empty())
                .expect("valid request");
            let (status, body) = call(app.clone(), request).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (421, Some("unknown_host")),
                "{path}: {body}"
            );
        }
        let no_host = Request::builder()
            .uri("/")
            .body(Body::empty())
            .expect("valid request");
        assert_eq!(call(app, no_host).await.0, 421);
    }

    #[tokio::test]
    async fn unknown_routes_get_json_not_plain_text() {
        let (status, body) = call(router(state()), get_request("/nope")).await;
        assert_eq!(status, 404);
        assert_eq!(body["code"], "not_found");
    }
}
