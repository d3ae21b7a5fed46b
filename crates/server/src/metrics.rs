//! Prometheus metrics for `/metrics`: requests by route, method and status, latency histograms,
//! inference time per model, in-flight requests, models loaded, build info and start time.
//!
//! Routes are labelled by their pattern (`/v2/models/{model}/infer`), never the raw path, so a
//! caller cannot grow the label space by inventing URLs.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    onnxruntime: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The server's metrics, registered once at start.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    inference_duration: HistogramFamily<ModelLabels>,
    in_flight: Gauge,
    models_loaded: Gauge,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 26 s: covers a tiny model's overhead and a slow model alike.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

impl Metrics {
    pub fn new(onnxruntime_version: &str) -> Metrics {
        let mut registry = Registry::with_prefix("gatehouse");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let request_duration: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            request_duration.clone(),
        );
        let inference_duration: HistogramFamily<ModelLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "inference_duration_seconds",
            "Time spent inside ONNX Runtime per model version",
            inference_duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being handled now",
            in_flight.clone(),
        );
        let models_loaded = Gauge::default();
        registry.register(
            "models_loaded",
            "Model versions ready to serve",
            models_loaded.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: gatehouse_core::VERSION.to_string(),
                onnxruntime: onnxruntime_version.to_string(),
            })
            .set(1);
        registry.register("build_info", "Gatehouse and ONNX Runtime versions", build);
        let start = Gauge::<f64, AtomicU64>::default();
        start.set(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        );
        registry.register(
            "process_start_time_seconds",
            "Start time of the server, seconds since the epoch",
            start,
        );
        Metrics {
            registry,
            requests,
            request_duration,
            inference_duration,
            in_flight,
            models_loaded,
        }
    }

    pub fn set_models_loaded(&self, count: usize) {
        self.models_loaded.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn observe_inference(&self, model: &str, version: u64, elapsed: Duration) {
        self.inference_duration
            .get_or_create(&ModelLabels {
                model: model.to_string(),
                version: version.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The metrics in the Prometheus / OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Middleware that counts and times every request.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let metrics = &state.metrics;
    metrics.in_flight.inc();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.in_flight.dec();
    let elapsed = started.elapsed().as_secs_f64();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method: method.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .request_duration
        .get_or_create(&RouteLabels { route, method })
        .observe(elapsed);
    response
}
