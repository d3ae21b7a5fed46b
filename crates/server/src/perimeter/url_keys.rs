//! Keys sent in a URL (`?api_key=`): accepted for Roboflow-style clients, but a URL ends up in
//! shell history, proxy logs and browser history, so the checklist warns while any valid key came
//! that way in the last 24 hours (ASVS 5.0 V14.2.1). The record is kept per key, bounded, and
//! seeded at start from the audit log, so a restart does not hide a leak from the last day.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

use serde::Deserialize;
use time::OffsetDateTime;

/// How long a key sent in a URL keeps the checklist warning.
pub const WINDOW: time::Duration = time::Duration::hours(24);
/// Keys remembered at most; past it the oldest sighting goes.
const MAX_KEYS: usize = 256;

pub use gatehouse_core::wire::KeyInUrl;

#[derive(Default)]
pub struct UrlKeys {
    seen: Mutex<HashMap<String, KeyInUrl>>,
}

impl UrlKeys {
    pub fn record(&self, key_id: &str, address: IpAddr, at: OffsetDateTime) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = seen.get_mut(key_id) {
            entry.address = address;
            entry.last_seen = entry.last_seen.max(at);
            entry.count += 1;
            return;
        }
        if seen.len() >= MAX_KEYS {
            seen.retain(|_, entry| at - entry.last_seen < WINDOW);
            if seen.len() >= MAX_KEYS
                && let Some(oldest) = seen
                    .values()
                    .min_by_key(|entry| entry.last_seen)
                    .map(|entry| entry.key_id.clone())
            {
                seen.remove(&oldest);
            }
        }
        seen.insert(
            key_id.to_string(),
            KeyInUrl {
                key_id: key_id.to_string(),
                address,
                last_seen: at,
                count: 1,
            },
        );
    }

    /// The keys seen in a URL within the window before `now`, most recent first.
    pub fn recent(&self, now: OffsetDateTime) -> Vec<KeyInUrl> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut recent: Vec<KeyInUrl> = seen
            .values()
            .filter(|entry| now - entry.last_seen < WINDOW)
            .cloned()
            .collect();
        recent.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.key_id.cmp(&b.key_id)));
        recent
    }

    /// Reads the audit log (and its first rotation) for valid keys sent in a URL within the
    /// window. Lines are skipped cheaply unless they say so; an unreadable log is no sighting.
    pub fn seed_from_audit(&self, log: &Path, now: OffsetDateTime) {
        #[derive(Deserialize)]
        struct Line {
            #[serde(with = "time::serde::rfc3339")]
            time: OffsetDateTime,
            key_id: Option<String>,
            address: IpAddr,
            status: u16,
        }
        let rotated = log.with_extension("jsonl.1");
        for path in [rotated.as_path(), log] {
            let Ok(file) = std::fs::File::open(path) else {
                continue;
            };
            for line in std::io::BufReader::new(file).split(b'\n').map_while(Result::ok) {
                if !contains(&line, br#""key_presented_as":"query""#) {
                    continue;
                }
                let Ok(parsed) = serde_json::from_slice::<Line>(&line) else {
                    continue;
                };
                // 401 and 429 are keys that did not verify (or were never checked): nothing
                // of the person's leaked.
                if parsed.status == 401 || parsed.status == 429 || now - parsed.time >= WINDOW {
                    continue;
                }
                if let Some(key_id) = parsed.key_id {
                    self.record(&key_id, parsed.address, parsed.time);
                }
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sightings_count_per_key_and_leave_the_window_after_a_day() {
        let keys = UrlKeys::default();
        let now = OffsetDateTime::now_utc();
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        keys.record("a", here, now - time::Duration::hours(25));
        keys.record("b", here, now - time::Duration::hours(1));
        keys.record("b", here, now);
        let recent = keys.recent(now);
        assert_eq!(recent.len(), 1);
        assert_eq!((recent[0].key_id.as_str(), recent[0].count), ("b", 2));
    }

    #[test]
    fn the_record_stays_bounded() {
        let keys = UrlKeys::default();
        let now = OffsetDateTime::now_utc();
        for i in 0..(MAX_KEYS + 10) {
            keys.record(
                &format!("k{i}"),
                "::1".parse().unwrap(),
                now + time::Duration::seconds(i as i64),
            );
        }
        let recent = keys.recent(now + time::Duration::hours(1));
        assert_eq!(recent.len(), MAX_KEYS);
        assert!(recent.iter().all(|entry| entry.key_id != "k0"));
    }

    #[test]
    fn the_audit_log_seeds_only_verified_keys_of_the_last_day() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        let now = OffsetDateTime::now_utc();
        let line = |at: OffsetDateTime, key: &str, status: u16, presented: &str| {
            format!(
                r#"{{"time":"{}","event":"request","key_id":"{key}","address":"127.0.0.1","key_presented_as":"{presented}","status":{status}}}"#,
                at.format(&time::format_description::well_known::Rfc3339).unwrap()
            )
        };
        let text = [
            line(now - time::Duration::hours(2), "kept", 200, "query"),
            line(now - time::Duration::hours(30), "old", 200, "query"),
            line(now - time::Duration::hours(1), "wrong", 401, "query"),
            line(now - time::Duration::hours(1), "header", 200, "bearer"),
            "not json".to_string(),
        ]
        .join("\n");
        std::fs::write(&log, text).unwrap();
        let keys = UrlKeys::default();
        keys.seed_from_audit(&log, now);
        let recent = keys.recent(now);
        assert_eq!(
            recent.iter().map(|e| e.key_id.as_str()).collect::<Vec<_>>(),
            ["kept"]
        );
    }
}
