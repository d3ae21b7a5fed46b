//! The audit record of one request: who, what route, from where, and how it ended.

use super::*;

/// One audit record. Holds the route pattern, never the raw URI, so a key in `?api_key=` cannot
/// reach the file.
#[derive(serde::Serialize)]
pub(super) struct AuditLine {
    #[serde(with = "time::serde::rfc3339")]
    pub(super) time: OffsetDateTime,
    pub(super) event: &'static str,
    pub(super) request_id: Option<String>,
    pub(super) key_id: Option<String>,
    pub(super) address: IpAddr,
    #[serde(serialize_with = "serialize_method")]
    pub(super) method: Method,
    /// The pattern (`/v2/models/{model}/infer`); cloning it only bumps a reference count.
    #[serde(serialize_with = "serialize_route")]
    pub(super) route: Option<MatchedPath>,
    /// For a request no route of Gatehouse's matched (a guard's): its path, without the query
    /// (where a key may be) and cut to 256 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) model: Option<String>,
    pub(super) key_presented_as: Option<&'static str>,
    pub(super) outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reason: Option<&'static str>,
    pub(super) status: u16,
    pub(super) latency_us: u64,
}

impl AuditLine {
    pub(super) fn new(request: &Request, address: IpAddr) -> AuditLine {
        let model = request
            .uri()
            .path()
            .strip_prefix("/v2/models/")
            .and_then(|rest| rest.split('/').next())
            .filter(|name| !name.is_empty())
            .map(|name| name.chars().take(128).collect());
        AuditLine {
            time: OffsetDateTime::now_utc(),
            event: "request",
            request_id: request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(64).collect()),
            key_id: None,
            address,
            method: request.method().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
            path: request
                .extensions()
                .get::<MatchedPath>()
                .is_none()
                .then(|| request.uri().path().chars().take(256).collect()),
            model,
            key_presented_as: None,
            outcome: "allowed",
            reason: None,
            status: 0,
            latency_us: 0,
        }
    }

    pub(super) fn presented(&mut self, presentation: Presentation) {
        self.key_presented_as = Some(presentation.name());
    }

    /// Records `denial` in this line and in the metrics; gives it back for its error code.
    pub(super) fn deny(&mut self, denial: Denial, metrics: &Metrics) -> Denial {
        denial.count(metrics);
        self.outcome = "refused";
        self.reason = Some(denial.reason());
        denial
    }

    pub(super) fn finish(&mut self, status: StatusCode, latency: Duration) {
        self.status = status.as_u16();
        self.latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    }

    pub(super) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

pub(super) fn serialize_method<S: serde::Serializer>(
    method: &Method,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(method.as_str())
}

pub(super) fn serialize_route<S: serde::Serializer>(
    route: &Option<MatchedPath>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(route.as_ref().map_or("unmatched", MatchedPath::as_str))
}
