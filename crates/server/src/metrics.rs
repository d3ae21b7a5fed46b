//! Prometheus metrics for `/metrics`: requests by route, method and status, latency histograms,
//! inference time per model, in-flight requests, models loaded, build info and start time.
//!
//! Routes are labelled by their pattern (`/v2/models/{model}/infer`), never the raw path, so a
//! caller cannot grow the label space by inventing URLs.

use std::sync::atomic::AtomicU64;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use std::sync::Arc;

use crate::models::LoadedModel;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
    version: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
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
    auth_failures: Family<ReasonLabels, Counter>,
    rate_limited: Family<LimitLabels, Counter>,
    /// Audit lines lost because the writer could not keep up.
    pub audit_dropped: Counter,
    /// Audit lines lost because the file could not be written (a full disk, say).
    pub audit_write_errors: Counter,
    pub keys_loaded: Gauge,
    pub key_reload_failures: Counter,
    /// Requests that presented their key in the URL, where proxies and histories keep it.
    pub key_in_url: Counter,
    tls_handshakes: Family<ResultLabels, Counter>,
    upstream_errors: Family<ReasonLabels, Counter>,
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
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Refused authentications by reason",
            auth_failures.clone(),
        );
        let rate_limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests and connections refused by a limit, the guessing guard or the Host check",
            rate_limited.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "audit_dropped",
            "Audit lines dropped because the writer fell behind",
            audit_dropped.clone(),
        );
        let audit_write_errors = Counter::default();
        registry.register(
            "audit_write_errors",
            "Audit lines that could not be written to disk",
            audit_write_errors.clone(),
        );
        let keys_loaded = Gauge::default();
        registry.register(
            "api_keys_loaded",
            "API keys in the current key set",
            keys_loaded.clone(),
        );
        let key_reload_failures = Counter::default();
        registry.register(
            "api_key_reload_failures",
            "Changes to keys.toml that could not be read",
            key_reload_failures.clone(),
        );
        let key_in_url = Counter::default();
        registry.register(
            "api_key_in_url",
            "Requests that sent their API key in the URL",
            key_in_url.clone(),
        );
        let tls_handshakes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes by result (ok, failed, plaintext, timeout)",
            tls_handshakes.clone(),
        );
        let upstream_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Guarded requests the upstream did not answer, by reason (unavailable, timeout, failed)",
            upstream_errors.clone(),
        );
        Metrics {
            upstream_errors,
            tls_handshakes,
            registry,
            requests,
            request_duration,
            inference_duration,
            in_flight,
            models_loaded,
            auth_failures,
            rate_limited,
            audit_dropped,
            audit_write_errors,
            keys_loaded,
            key_reload_failures,
            key_in_url,
        }
    }

    pub fn upstream_error(&self, reason: &'static str) {
        self.upstream_errors.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn tls_handshake(&self, result: &'static str) {
        self.tls_handshakes.get_or_create(&ResultLabels { result }).inc();
    }

    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited.get_or_create(&LimitLabels { limit }).inc();
    }

    pub fn set_models_loaded(&self, count: usize) {
        self.models_loaded.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn observe_inference(&self, model: &LoadedModel, elapsed: Duration) {
        // Looked up once per loaded model, not once per request.
        model
            .inference_histogram
            .get_or_init(|| {
                self.inference_duration.get_or_create_owned(&ModelLabels {
                    model: model.name.clone(),
                    version: model.version,
                })
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

/// What [`track`] runs with: the metrics, and the route label of requests no route matched (a
/// guard's proxied requests, which would otherwise each be a label of their own).
#[derive(Clone)]
pub struct Tracker {
    metrics: Arc<Metrics>,
    unmatched: &'static str,
}

impl Tracker {
    pub fn new(metrics: Arc<Metrics>, unmatched: &'static str) -> Tracker {
        Tracker { metrics, unmatched }
    }
}

/// Middleware that counts and times every request.
pub async fn track(State(tracker): State<Tracker>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(tracker.unmatched, |p| route_label(p.as_str()));
    let method = method_label(request.method());
    let metrics = &tracker.metrics;
    let in_flight = InFlight::enter(&metrics.in_flight);
    let started = Instant::now();
    let response = next.run(request).await;
    drop(in_flight);
    let elapsed = started.elapsed().as_secs_f64();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .request_duration
        .get_or_create(&RouteLabels { route, method })
        .observe(elapsed);
    response
}

/// The label for a request's method. A client can send any token as a method, so only the
/// standard ones are labels of their own: the rest would let it add series without end.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    STANDARD
        .iter()
        .find(|m| *m == method)
        .map_or("other", |m| m.as_str())
}

/// The route pattern as a `&'static str`, so that counting a request allocates nothing. Patterns
/// come from the router, never from the request, so the set is small and fixed; each is leaked once.
fn route_label(pattern: &str) -> &'static str {
    static ROUTES: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());
    let known = |routes: &[&'static str]| routes.iter().copied().find(|r| *r == pattern);
    if let Some(route) = known(&ROUTES.read().unwrap_or_else(PoisonError::into_inner)) {
        return route;
    }
    let mut routes = ROUTES.write().unwrap_or_else(PoisonError::into_inner);
    known(&routes).unwrap_or_else(|| {
        let route: &'static str = Box::leak(pattern.to_owned().into_boxed_str());
        routes.push(route);
        route
    })
}

/// Counts a request as in flight until dropped, also when the client goes away mid-request.
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a Gauge) -> InFlight<'a> {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
