//! The perimeter: who may call what. One tower middleware ([`authenticate`]) in front of each
//! group of protected routes checks the API key (wherever the client put it), the scope, the
//! abuse limits and the guessing guard, and writes the audit line. It knows nothing of the routes
//! behind it, so the same stack can later guard a server Gatehouse did not write.
//!
//! The key set is hot-swapped: a watcher re-reads `keys.toml` when it changes and swaps the new
//! set in whole; a file that does not parse never removes access that existed.

pub mod audit;
mod credentials;
pub mod denial;
pub mod hosts;
pub mod limits;
mod record;
pub mod requests;
pub mod url_keys;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use gatehouse_core::keys::{Identity, KeyFile, KeySet, KeyStore, Refusal, Scope};
use gatehouse_core::{Sensitive, Settings};
use time::OffsetDateTime;

use crate::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;
use audit::AuditSink;
use credentials::*;
use denial::Denial;
use hosts::AllowedHosts;
use limits::{FailureGuard, Penalty, RateLimiter, Subject};
use record::*;

/// How often `keys.toml` is checked for changes; a change takes effect within about this long.
pub const RELOAD_INTERVAL: Duration = Duration::from_millis(200);
/// How often keys' last use is written back to `keys.toml`.
pub const USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(30);

/// Everything the authentication middleware needs, shared by every protected route group.
pub struct Perimeter {
    pub enabled: bool,
    keys: ArcSwap<KeySet>,
    /// The last `keys.toml` that parsed; revocations read from a broken file are applied to it.
    last_good: std::sync::Mutex<KeyFile>,
    store: KeyStore,
    key_limiter: RateLimiter<String>,
    address_limiter: RateLimiter<IpAddr>,
    failures: FailureGuard,
    hosts: Arc<AllowedHosts>,
    audit: Option<AuditSink>,
    metrics: Arc<Metrics>,
    max_body_bytes: usize,
    /// Valid keys seen in a URL in the last day, for `/info` and the checklist.
    pub url_keys: url_keys::UrlKeys,
    /// Bodies read before their sender is known, to find an `api_key` in them: at most this
    /// many at once, so clients without a key cannot make the server hold gigabytes.
    unauthenticated_bodies: tokio::sync::Semaphore,
}

/// Bodies read at once to look for an `api_key` field (each up to `limits.max_body_bytes`).
const UNAUTHENTICATED_BODIES: usize = 8;
/// How long a body waits for its turn to be read before its sender is known.
const UNAUTHENTICATED_WAIT: Duration = Duration::from_secs(5);

/// Where the client put its key; handlers find it in the request's extensions, so a proxy can
/// remove exactly that credential before passing the request on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presentation {
    Bearer,
    Header,
    Query,
    Basic,
    Body,
}

impl Presentation {
    pub fn name(self) -> &'static str {
        match self {
            Presentation::Bearer => "bearer",
            Presentation::Header => "x-api-key",
            Presentation::Query => "query",
            Presentation::Basic => "basic",
            Presentation::Body => "body",
        }
    }
}

impl Perimeter {
    pub fn new(
        settings: &Settings,
        keys_file: PathBuf,
        hosts: Arc<AllowedHosts>,
        audit: Option<AuditSink>,
        metrics: Arc<Metrics>,
    ) -> Perimeter {
        let store = KeyStore::new(keys_file);
        let initial = match store.load() {
            Ok(file) => file,
            Err(error) => {
                tracing::error!(event = "keys_unreadable", %error, "no API key will be accepted until keys.toml is fixed");
                KeyFile::default()
            }
        };
        let set = KeySet::from_file(&initial);
        metrics.keys_loaded.set(set.len() as i64);
        let last_good = std::sync::Mutex::new(initial);
        let limits = &settings.limits;
        Perimeter {
            enabled: settings.auth.enabled,
            keys: ArcSwap::from_pointee(set),
            last_good,
            store,
            key_limiter: RateLimiter::new(limits.key_requests_per_second),
            address_limiter: RateLimiter::new(limits.address_requests_per_second),
            failures: FailureGuard::new(
                limits.auth_failures_before_slowdown,
                limits.auth_failures_before_lockout,
                Duration::from_secs(u64::from(limits.auth_lockout_seconds)),
            ),
            hosts,
            audit,
            metrics,
            max_body_bytes: settings.limits.max_body_bytes,
            url_keys: url_keys::UrlKeys::default(),
            unauthenticated_bodies: tokio::sync::Semaphore::new(UNAUTHENTICATED_BODIES),
        }
    }

    pub fn audit(&self) -> Option<&AuditSink> {
        self.audit.as_ref()
    }

    /// Watches `keys.toml` and writes keys' last use back, until the process ends.
    pub fn spawn_watchers(self: &Arc<Self>) {
        let perimeter = self.clone();
        tokio::spawn(async move {
            let mut seen = signature(perimeter.store.path());
            let mut interval = tokio::time::interval(RELOAD_INTERVAL);
            loop {
                interval.tick().await;
                let now = signature(perimeter.store.path());
                if now == seen {
                    continue;
                }
                seen = now;
                let reloaded = perimeter.clone();
                let _ = tokio::task::spawn_blocking(move || reloaded.reload()).await;
            }
        });
        let perimeter = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(USAGE_FLUSH_INTERVAL);
            interval.tick().await;
            loop {
                interval.tick().await;
                let flushing = perimeter.clone();
                let _ = tokio::task::spawn_blocking(move || flushing.flush_usage()).await;
            }
        });
    }

    fn reload(&self) {
        match self.store.load() {
            Ok(file) => {
                let old = self.keys.swap(Arc::new(KeySet::from_file(&file)));
                *self
                    .last_good
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = file;
                let count = self.keys.load().len();
                self.metrics.keys_loaded.set(count as i64);
                tracing::info!(event = "keys_reloaded", keys = count, "API keys reloaded");
                self.write_usage(old.take_usage());
            }
            Err(error) => {
                self.metrics.key_reload_failures.inc();
                // Revocations fail closed: whatever the file marks revoked is refused from now
                // on, even though the rest of it cannot be applied.
                let text = std::fs::read_to_string(self.store.path()).unwrap_or_default();
                let revoked = KeyFile::revocations_in(&text);
                let mut last_good = self
                    .last_good
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = OffsetDateTime::now_utc();
                let mut applied = Vec::new();
                for record in &mut last_good.keys {
                    if record.revoked.is_none() && revoked.contains(&record.id) {
                        record.revoked = Some(now);
                        applied.push(record.id.clone());
                    }
                }
                if !applied.is_empty() {
                    let old = self.keys.swap(Arc::new(KeySet::from_file(&last_good)));
                    drop(last_good);
                    self.write_usage(old.take_usage());
                }
                tracing::error!(event = "keys_reload_failed", %error, revocations_applied = %applied.join(","),
                    "keys.toml changed but cannot be read; the previous keys stay in force, except those it marks revoked");
            }
        }
    }

    /// Writes keys' last use to `keys.toml`; also called at shutdown.
    pub fn flush_usage(&self) {
        self.write_usage(self.keys.load().take_usage());
    }

    fn write_usage(&self, uses: Vec<(String, OffsetDateTime)>) {
        if let Err(error) = self.store.record_use(&uses) {
            tracing::warn!(event = "key_usage_not_saved", %error, "keys' last-used times could not be saved");
        }
    }
}

fn signature(path: &std::path::Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// The state one protected route group's middleware runs with.
#[derive(Clone)]
pub struct Gate {
    pub perimeter: Arc<Perimeter>,
    pub scope: Scope,
    /// Whether to read a JSON body for an `api_key` field. A guard streams bodies through and
    /// takes keys from headers and the query only.
    pub body_keys: bool,
}

impl Gate {
    pub fn new(perimeter: Arc<Perimeter>, scope: Scope) -> Gate {
        Gate {
            perimeter,
            scope,
            body_keys: true,
        }
    }

    /// A gate that takes keys from headers and the query only (a guard's).
    pub fn headers_only(perimeter: Arc<Perimeter>, scope: Scope) -> Gate {
        Gate {
            body_keys: false,
            ..Gate::new(perimeter, scope)
        }
    }
}

/// The key a request was authenticated with, for handlers and the audit line.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Identity>);

/// Authenticates a request to a protected route group, or refuses it.
pub async fn authenticate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    authenticate_as(&gate, request, next).await
}

/// [`authenticate`] for a gate chosen per request (a guard's route table).
pub async fn authenticate_as(gate: &Gate, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let perimeter = &gate.perimeter;
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let mut line = AuditLine::new(&request, address);
    let named = ModelNamed::default();
    if line.model.is_none() {
        request.extensions_mut().insert(named.clone());
    }

    let outcome = admit(gate, request, address, &mut line).await;
    let response = match outcome {
        Ok(request) => next.run(request).await,
        Err(response) => response,
    };
    line.finish(response.status(), started.elapsed());
    if line.model.is_none() {
        line.model = named.0.get().map(|name| name.chars().take(128).collect());
    }
    if let Some(sink) = perimeter.audit() {
        sink.send(line.to_json());
    }
    response
}

/// Every check before the handler runs; `Err` is the refusal to send instead.
async fn admit(
    gate: &Gate,
    request: Request,
    address: IpAddr,
    line: &mut AuditLine,
) -> Result<Request, Response> {
    let perimeter = &gate.perimeter;
    let metrics = &perimeter.metrics;
    let now = Instant::now();
    if let Err(wait) = perimeter
        .address_limiter
        .check(&limits::address_group(address), now)
    {
        let denial = line.deny(Denial::AddressRate, metrics);
        return Err(refuse_for(
            denial.code(),
            "too many requests from this address; slow down",
            wait,
        ));
    }
    if !perimeter.enabled {
        return Ok(request);
    }

    let (request, presented) = find_key(request, perimeter, gate.body_keys).await?;
    let Some((presentation, key)) = presented else {
        let denial = line.deny(Denial::MissingKey, metrics);
        return Err(unauthorized(
            denial.code(),
            "this endpoint needs an API key: send `Authorization: Bearer <key>` (or X-API-Key); \
             create one with `gatehouse keys create`",
        ));
    };
    line.presented(presentation);
    if presentation == Presentation::Query {
        metrics.key_in_url.inc();
    }
    let keys = perimeter.keys.load();
    let identity = match keys.verify(key.expose(), OffsetDateTime::now_utc()) {
        Ok(identity) => Arc::clone(identity),
        Err((refusal, key_id)) => {
            // An id that names no key is recorded too (ids are public): the security events tell
            // the checklist's own probe from a guess by it.
            let presented_id = (refusal == Refusal::UnknownId)
                .then(|| gatehouse_core::keys::format::parse(key.expose()).ok())
                .flatten();
            line.key_id = key_id.or(presented_id).map(str::to_string);
            line.deny(Denial::Key(refusal), metrics);
            // A known key id is guessed at by its secret: its failures count together from
            // anywhere. Keys that name nothing count by where they come from.
            let subject = match (refusal, key_id) {
                (Refusal::WrongSecret | Refusal::Revoked | Refusal::Expired, Some(id)) => {
                    Subject::Key(id.to_string())
                }
                _ => Subject::address(address),
            };
            if let Some(left) = perimeter.failures.locked(&subject, now) {
                line.deny(Denial::LockedOut, metrics);
                return Err(locked_out(&subject, left));
            }
            let penalty = perimeter.failures.record_failure(subject.clone(), now);
            if let Penalty::Delay(delay) = penalty {
                tokio::time::sleep(delay).await;
            }
            if let Penalty::Lockout(left) = penalty {
                // The failure that tripped the guard stays this line's reason.
                Denial::LockedOut.count(metrics);
                return Err(locked_out(&subject, left));
            }
            return Err(refusal_response(refusal, key_id));
        }
    };
    line.key_id = Some(identity.key_id.clone());
    if presentation == Presentation::Query {
        perimeter
            .url_keys
            .record(&identity.key_id, address, OffsetDateTime::now_utc());
    }
    tracing::Span::current().record("key_id", identity.key_id.as_str());

    if presentation == Presentation::Basic && forgeable(&request, &perimeter.hosts) {
        let denial = line.deny(Denial::CrossSite, metrics);
        return Err(ApiError::new(
            denial.code(),
            "a browser could have sent this Basic-authenticated request on its own; send it with \
             Content-Type: application/json, or use a Bearer or X-API-Key header",
        )
        .into_response());
    }
    if !identity.scopes.contains(&gate.scope) {
        let denial = line.deny(Denial::InsufficientScope, metrics);
        return Err(ApiError::new(
            denial.code(),
            format!(
                "key {} does not have the `{}` scope this endpoint needs; create a key with --scope {}",
                identity.key_id, gate.scope, gate.scope
            ),
        )
        .into_response());
    }
    if let Err(wait) = perimeter.key_limiter.check(&identity.key_id, now) {
        let denial = line.deny(Denial::KeyRate, metrics);
        return Err(refuse_for(
            denial.code(),
            "too many requests with this key; slow down",
            wait,
        ));
    }
    let mut request = request;
    request.extensions_mut().insert(Caller(identity));
    request.extensions_mut().insert(presentation);
    Ok(request)
}

/// A state-changing request a browser could send cross-site without the page reading anything:
/// a "simple" content type and no Origin of our own.
fn forgeable(request: &Request, hosts: &AllowedHosts) -> bool {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    if json {
        return false;
    }
    // The Origin is compared with the server's own names, never with `Host`, which a page
    // reached through a rebound name chooses.
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let connection = request.extensions().get::<crate::connections::Connection>();
    origin.is_none_or(|origin| !hosts.is_own_origin(origin, connection))
}

fn refusal_response(refusal: Refusal, key_id: Option<&str>) -> Response {
    let id = key_id.unwrap_or("?");
    let message = match refusal {
        Refusal::Expired => format!("key {id} has expired; rotate it with `gatehouse keys rotate {id}`"),
        Refusal::Revoked => format!("key {id} was revoked; use another key"),
        Refusal::Malformed => {
            "that is not a Gatehouse API key (they start with gth_ and are 50 characters long)".into()
        }
        Refusal::BadChecksum => "the API key is mistyped (its checksum does not match); copy it again".into(),
        Refusal::UnknownId | Refusal::WrongSecret => "the API key is not valid".into(),
    };
    unauthorized(Denial::Key(refusal).code(), &message)
}

fn unauthorized(code: ErrorCode, message: &str) -> Response {
    let mut response = ApiError::new(code, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"gatehouse\", charset=\"UTF-8\""),
    );
    response
}

/// The guessing guard's refusal. Only failing requests get it: a valid key still passes.
fn locked_out(subject: &Subject, left: Duration) -> Response {
    let message = match subject {
        Subject::Key(id) => format!(
            "too many wrong secrets for key {id} in the last minute; this one was not checked. \
             Copy the key again (`gatehouse keys reveal {id}`); the right key is never refused"
        ),
        Subject::Address(_) => "too many unusable API keys from this address in the last minute; \
             this one was not checked. Use a valid key: it is never refused"
            .to_string(),
    };
    refuse_for(ErrorCode::TooManyAuthFailures, &message, left)
}

fn refuse_for(code: ErrorCode, message: &str, wait: Duration) -> Response {
    let mut response = ApiError::new(code, message).into_response();
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Where a handler names the model a request is for when its path does not (a gRPC call
/// carries it in the message), so the audit line names it too, refused or not.
#[derive(Clone, Default)]
pub struct ModelNamed(Arc<std::sync::OnceLock<String>>);

impl ModelNamed {
    pub fn name(&self, model: &str) {
        let _ = self.0.set(model.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn keys_are_found_in_each_header_form() {
        let bearer = key_from_headers(&headers(&[("authorization", "Bearer gth_abc")])).unwrap();
        assert_eq!(
            (bearer.0, bearer.1.expose().as_str()),
            (Presentation::Bearer, "gth_abc")
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("me:gth_pw");
        let found = key_from_headers(&headers(&[("authorization", &format!("Basic {basic}"))])).unwrap();
        assert_eq!(
            (found.0, found.1.expose().as_str()),
            (Presentation::Basic, "gth_pw")
        );
        let user_only = base64::engine::general_purpose::STANDARD.encode("gth_user:");
        assert_eq!(
            key_from_headers(&headers(&[("authorization", &format!("Basic {user_only}"))]))
                .unwrap()
                .1
                .expose(),
            "gth_user"
        );
        let header = key_from_headers(&headers(&[("x-api-key", "gth_h")])).unwrap();
        assert_eq!(
            (header.0, header.1.expose().as_str()),
            (Presentation::Header, "gth_h")
        );
        assert!(key_from_headers(&headers(&[])).is_none());
        assert_eq!(key_from_query("a=1&api_key=gth_q&b=2").unwrap().expose(), "gth_q");
    }

    #[test]
    fn form_posts_with_basic_auth_are_forgeable_json_is_not() {
        let build = |content_type: Option<&str>, origin: Option<&str>| {
            let mut builder = Request::builder()
                .method("POST")
                .uri("/v2/models/m/infer")
                .header("host", "127.0.0.1:9001");
            if let Some(c) = content_type {
                builder = builder.header("content-type", c);
            }
            if let Some(o) = origin {
                builder = builder.header("origin", o);
            }
            builder.body(Body::empty()).unwrap()
        };
        let hosts = AllowedHosts::new(Vec::new(), &[], Arc::new(Metrics::new("test")));
        assert!(forgeable(&build(Some("text/plain"), None), &hosts));
        assert!(forgeable(
            &build(
                Some("application/x-www-form-urlencoded"),
                Some("https://evil.example")
            ),
            &hosts
        ));
        assert!(!forgeable(&build(Some("application/json"), None), &hosts));
        assert!(!forgeable(
            &build(Some("text/plain"), Some("http://127.0.0.1:9001")),
            &hosts
        ));
    }

    #[test]
    fn an_origin_matching_a_rebound_host_is_still_forgeable() {
        // A page on evil.example, rebound to 127.0.0.1: its Host and Origin agree with each other.
        let request = Request::builder()
            .method("POST")
            .uri("/v2/models/m/infer")
            .header("host", "evil.example:9001")
            .header("origin", "http://evil.example:9001")
            .header("content-type", "text/plain")
            .body(Body::empty())
            .unwrap();
        let hosts = AllowedHosts::new(Vec::new(), &[], Arc::new(Metrics::new("test")));
        assert!(forgeable(&request, &hosts));
    }
}
