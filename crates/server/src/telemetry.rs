//! Logging: JSON lines on stdout, one object per event with its fields at the top level and the
//! current request's span (so its request id) on every line logged while handling it.

use std::fmt::Write as _;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing_subscriber::EnvFilter;

/// The target of the lines a supervisor relies on (the `listening` line); shown at every level.
pub const ANNOUNCE: &str = "gatehouse_announce";

/// Installs the JSON logger with a tracing filter such as `info` or `gatehouse_server=debug`.
pub fn init(filter: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter).map_err(|error| {
        format!("log.level `{filter}` is not a valid filter ({error}); use info, debug or warn")
    })?;
    let filter = filter.add_directive(
        format!("{ANNOUNCE}=info")
            .parse()
            .map_err(|error| format!("the announcement filter is invalid: {error}"))?,
    );
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init()
        .map_err(|error| format!("logging was already set up: {error}"))
}

/// Request ids for requests that bring none: random-looking UUIDs (version 4 layout), made
/// without a system call each. A counter is hashed with two SipHash keys drawn from the OS once
/// per process, so ids never repeat within a run and cannot be guessed from one another; they
/// name requests in logs and are not secrets.
#[derive(Clone, Copy, Default)]
pub struct RequestIds;

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&next_request_id()).ok().map(RequestId::new)
    }
}

fn next_request_id() -> String {
    static KEYS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (high, low) = KEYS.get_or_init(|| (RandomState::new(), RandomState::new()));
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.hash_one(count).to_be_bytes());
    bytes[8..].copy_from_slice(&low.hash_one(count).to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        let _ = write!(text, "{byte:02x}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_version_4_uuids_and_do_not_repeat() {
        let ids: Vec<String> = (0..1000).map(|_| next_request_id()).collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(groups[2].starts_with('4'), "{id}");
            assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"), "{id}");
            assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{id}");
        }
        // Consecutive counters must not give ids that share their leading digits.
        assert_ne!(ids[0][..8], ids[1][..8]);
    }
}
