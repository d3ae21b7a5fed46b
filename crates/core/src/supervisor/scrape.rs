//! Turns two scrapes of the server's `/metrics` into rates and latency quantiles for the charts.

use std::collections::BTreeMap;

/// The counters of one scrape that the charts use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    pub requests: f64,
    /// Responses with a 5xx status.
    pub server_errors: f64,
    pub auth_failures: f64,
    /// Cumulative latency histogram over every route: upper bound (seconds) → count.
    pub latency_buckets: BTreeMap<OrderedBound, f64>,
}

impl Scrape {
    /// These counters less `other`'s (never below zero): traffic that should not be charted.
    pub fn minus(&self, other: &Scrape) -> Scrape {
        Scrape {
            requests: (self.requests - other.requests).max(0.0),
            server_errors: (self.server_errors - other.server_errors).max(0.0),
            auth_failures: (self.auth_failures - other.auth_failures).max(0.0),
            latency_buckets: self
                .latency_buckets
                .iter()
                .map(|(bound, count)| {
                    let less = other.latency_buckets.get(bound).copied().unwrap_or(0.0);
                    (*bound, (count - less).max(0.0))
                })
                .collect(),
        }
    }

    /// Adds `other`'s counters to these.
    pub fn add(&mut self, other: &Scrape) {
        self.requests += other.requests;
        self.server_errors += other.server_errors;
        self.auth_failures += other.auth_failures;
        for (bound, count) in &other.latency_buckets {
            *self.latency_buckets.entry(*bound).or_default() += count;
        }
    }
}

/// A histogram bound that can key a map (`+Inf` sorts last).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderedBound(pub f64);

impl Eq for OrderedBound {}

impl PartialOrd for OrderedBound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedBound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Reads the Prometheus/OpenMetrics text Gatehouse serves.
pub fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        match name {
            "gatehouse_http_requests_total" => {
                scrape.requests += value;
                if label(labels, "status").is_some_and(|s| s.starts_with('5')) {
                    scrape.server_errors += value;
                }
            }
            "gatehouse_auth_failures_total" => scrape.auth_failures += value,
            "gatehouse_http_request_duration_seconds_bucket" => {
                let bound = match label(labels, "le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(le) => match le.parse() {
                        Ok(bound) => bound,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                *scrape.latency_buckets.entry(OrderedBound(bound)).or_default() += value;
            }
            _ => {}
        }
    }
    scrape
}

fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

/// The `quantile` (0–1) of the latencies observed between `before` and `after`, in milliseconds,
/// interpolated inside the bucket it falls in; `None` when no request finished in between.
pub fn latency_quantile(before: &Scrape, after: &Scrape, quantile: f64) -> Option<f64> {
    let deltas: Vec<(f64, f64)> = after
        .latency_buckets
        .iter()
        .map(|(bound, count)| {
            let earlier = before.latency_buckets.get(bound).copied().unwrap_or(0.0);
            (bound.0, (count - earlier).max(0.0))
        })
        .collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = quantile * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for (bound, count) in deltas {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower_bound * 1000.0);
            }
            let width = count - lower_count;
            let fraction = if width > 0.0 {
                (rank - lower_count) / width
            } else {
                1.0
            };
            return Some((lower_bound + (bound - lower_bound) * fraction) * 1000.0);
        }
        lower_bound = bound;
        lower_count = count;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP gatehouse_http_requests Requests
gatehouse_http_requests_total{route="/v2",method="GET",status="200"} 90
gatehouse_http_requests_total{route="/v2",method="GET",status="503"} 10
gatehouse_auth_failures_total{reason="unauthorized"} 4
gatehouse_http_request_duration_seconds_bucket{route="/v2",le="0.001"} 50
gatehouse_http_request_duration_seconds_bucket{route="/v2",le="0.002"} 100
gatehouse_http_request_duration_seconds_bucket{route="/v2",le="+Inf"} 100
gatehouse_http_request_duration_seconds_bucket{route="/x",le="0.001"} 0
gatehouse_http_request_duration_seconds_bucket{route="/x",le="0.002"} 0
gatehouse_http_request_duration_seconds_bucket{route="/x",le="+Inf"} 0
"#;

    #[test]
    fn counters_are_summed_across_labels() {
        let scrape = parse(TEXT);
        assert_eq!(scrape.requests, 100.0);
        assert_eq!(scrape.server_errors, 10.0);
        assert_eq!(scrape.auth_failures, 4.0);
        assert_eq!(scrape.latency_buckets.len(), 3);
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_of_the_interval() {
        let after = parse(TEXT);
        let before = Scrape::default();
        let p50 = latency_quantile(&before, &after, 0.5).unwrap();
        assert!((p50 - 1.0).abs() < 1e-9, "{p50}");
        let p99 = latency_quantile(&before, &after, 0.99).unwrap();
        assert!((p99 - 1.98).abs() < 1e-9, "{p99}");
        assert_eq!(
            latency_quantile(&after, &after, 0.5),
            None,
            "no requests in between"
        );
    }

    #[test]
    fn the_checklist_s_own_traffic_can_be_taken_out() {
        let before = parse(TEXT);
        let mut after = before.clone();
        after.requests += 20.0;
        after.auth_failures += 2.0;
        let mut own = Scrape::default();
        own.add(&after.minus(&before));
        assert_eq!(own.requests, 20.0);
        assert_eq!(own.auth_failures, 2.0);
        let charted = after.minus(&own);
        assert_eq!(charted.requests, before.requests);
        assert_eq!(charted.auth_failures, before.auth_failures);
        assert_eq!(charted.latency_buckets, before.latency_buckets);
    }
}
