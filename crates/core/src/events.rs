//! Security events: what in the audit chain a person should hear about, said in words, with the
//! evidence. Derived, never recorded separately: [`catch_up`] reads the audit lines written since
//! it last ran (by `seq`) and turns them into events — bursts of failed authentications and
//! lockouts, a key used from a new address or from two addresses within a minute, a revoked or
//! expired key still being tried, an exposure opened and closed, custom Python turned on, a
//! guarded server found listening beyond loopback — plus a certificate that expires within 14
//! days. The server runs it every second; `gatehouse events`
//! and the panel run it before they read, so nothing is missed while no server runs.
//!
//! Kept in `events/events.jsonl` beside the audit log (0600, rotated at 1 MiB, one old file kept),
//! with the detector's memory in `events/state.json`. Each event is said once: a burst is one event
//! however many attempts it holds, and the same finding is not repeated within its quiet period.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fsutil;
use crate::paths::Paths;

/// Failed authentications from one address within [`WINDOW`] that make a burst.
pub const BURST: usize = 10;
const WINDOW: i64 = 60;
const ROTATE_BYTES: u64 = 1024 * 1024;
/// How long the same finding stays quiet after it was said.
const QUIET: i64 = 600;
/// The id in the checklist's never-issued probe key (`gth_probe000…`).
pub(crate) const CHECKLIST_PROBE_KEY_ID: &str = "probe000";
/// Addresses remembered per key, keys remembered.
const MAX_ADDRESSES: usize = 64;
const MAX_KEYS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct Event {
    /// RFC 3339, from the audit line that gave rise to it.
    pub time: String,
    pub severity: Severity,
    /// `auth_burst`, `lockout`, `new_address`, `two_addresses`, `revoked_key_used`,
    /// `expired_key_used`, `exposure_opened`, `exposure_closed`, `custom_python_on`,
    /// `certificate_expiring`, `upstream_exposed`.
    pub kind: String,
    /// What happened, in words.
    pub summary: String,
    /// The facts it rests on: addresses, key ids, counts, audit `seq` numbers.
    #[cfg_attr(feature = "bindings", ts(type = "Record<string, unknown>"))]
    pub evidence: Value,
}

/// What the detector remembers between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct State {
    /// The last audit line read: its `seq`, and where the file it was in ends.
    seq: u64,
    offset: u64,
    inode: u64,
    /// Unix times of recent failures, per address.
    failures: BTreeMap<String, Vec<i64>>,
    /// Addresses each key has been used from, with when they were last used.
    key_addresses: BTreeMap<String, BTreeMap<String, i64>>,
    /// When each finding (kind + subject) was last said.
    said: BTreeMap<String, i64>,
}

struct Files {
    audit: PathBuf,
    dir: PathBuf,
}

impl Files {
    fn new(paths: &Paths) -> Files {
        let audit = paths.audit_log();
        let dir = paths.config_dir.join("events");
        Files { audit, dir }
    }
    fn events(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }
    fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
}

/// The fields of an audit line the detector reads. The server calls [`catch_up`] every second
/// and writes a line per request, so a line is read into borrowed fields and the rest of it
/// (hashes, paths, ids) is skipped without being built into a tree.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Line<'a> {
    #[serde(borrow)]
    time: Field<'a>,
    #[serde(borrow)]
    event: Field<'a>,
    #[serde(borrow)]
    seq: Field<'a>,
    #[serde(borrow)]
    address: Field<'a>,
    #[serde(borrow)]
    key_id: Field<'a>,
    #[serde(borrow)]
    reason: Field<'a>,
    #[serde(borrow)]
    status: Field<'a>,
    #[serde(borrow)]
    port: Field<'a>,
    #[serde(borrow)]
    addresses: Field<'a>,
    #[serde(borrow)]
    key: Field<'a>,
    #[serde(borrow)]
    value: Field<'a>,
    #[serde(borrow)]
    actor: Field<'a>,
}

/// One field of a line, whatever JSON it holds: a field of an unexpected type reads as absent
/// instead of making the whole line unreadable.
#[derive(Debug, Default, PartialEq)]
enum Field<'a> {
    #[default]
    Absent,
    Text(std::borrow::Cow<'a, str>),
    Number(u64),
    Texts(Vec<std::borrow::Cow<'a, str>>),
}

impl Field<'_> {
    fn as_text(&self) -> Option<&str> {
        match self {
            Field::Text(text) => Some(text),
            _ => None,
        }
    }
    fn text(&self) -> &str {
        self.as_text().unwrap_or("")
    }
    fn number(&self) -> Option<u64> {
        match self {
            Field::Number(number) => Some(*number),
            _ => None,
        }
    }
    fn texts(&self) -> &[std::borrow::Cow<'_, str>] {
        match self {
            Field::Texts(texts) => texts,
            _ => &[],
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        use std::borrow::Cow;
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Field<'de>, E> {
                Ok(Field::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Field<'de>, E> {
                Ok(Field::Text(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Field<'de>, E> {
                Ok(Field::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Field<'de>, E> {
                Ok(u64::try_from(v).map_or(Field::Absent, Field::Number))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Field<'de>, E> {
                Ok(Field::Absent)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Field<'de>, E> {
                Ok(Field::Absent)
            }
            fn visit_unit<E>(self) -> Result<Field<'de>, E> {
                Ok(Field::Absent)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<'de>, A::Error> {
                let mut texts = Vec::new();
                while let Some(element) = seq.next_element::<Field<'de>>()? {
                    if let Field::Text(text) = element {
                        texts.push(text);
                    }
                }
                Ok(Field::Texts(texts))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Absent)
            }
        }
        deserializer.deserialize_any(FieldVisitor)
    }
}

fn unix(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

fn is_loopback(address: &str) -> bool {
    address
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

impl State {
    /// Says a finding unless it was said within the quiet period.
    fn fresh(&mut self, finding: &str, now: i64) -> bool {
        match self.said.get(finding) {
            Some(&at) if now - at < QUIET => false,
            _ => {
                self.said.insert(finding.to_string(), now);
                true
            }
        }
    }

    fn forget_old(&mut self, now: i64) {
        self.said.retain(|_, at| now - *at < QUIET);
        self.failures.retain(|_, times| {
            times.retain(|t| now - t < WINDOW);
            !times.is_empty()
        });
        if self.key_addresses.len() > MAX_KEYS {
            let excess = self.key_addresses.len() - MAX_KEYS;
            let oldest: Vec<String> = self.key_addresses.keys().take(excess).cloned().collect();
            for key in oldest {
                self.key_addresses.remove(&key);
            }
        }
    }

    /// The events one audit line gives rise to.
    fn observe(&mut self, line: &Line, out: &mut Vec<Event>) {
        let time = line.time.text().to_string();
        let Some(now) = unix(&time) else { return };
        let seq = line.seq.number();
        let mut say = |severity, kind: &str, summary: String, evidence: Value| {
            let mut evidence = evidence;
            if let (Some(seq), Some(map)) = (seq, evidence.as_object_mut()) {
                map.insert("audit_seq".into(), seq.into());
            }
            out.push(Event {
                time: time.clone(),
                severity,
                kind: kind.into(),
                summary,
                evidence,
            });
        };
        match line.event.text() {
            "request" => {
                let address = line.address.text().to_string();
                let key = line.key_id.as_text().map(str::to_string);
                let status = line.status.number().unwrap_or(0);
                match line.reason.text() {
                    "locked_out" => {
                        if self.fresh(&format!("lockout {address}"), now) {
                            say(
                                Severity::Warning,
                                "lockout",
                                format!("{address} is locked out after too many failed authentications"),
                                json!({"address": address}),
                            );
                        }
                        return;
                    }
                    reason @ ("revoked" | "expired") => {
                        let key = key.clone().unwrap_or_default();
                        if self.fresh(&format!("{reason} {key} {address}"), now) {
                            say(
                                Severity::Warning,
                                &format!("{reason}_key_used"),
                                format!("the {reason} key {key} is still being tried, from {address}"),
                                json!({"key_id": key, "address": address}),
                            );
                        }
                    }
                    _ => {}
                }
                if status == 401 {
                    // A request without a key is a client not configured yet, not a guess; the
                    // checklist's own probe key is well known and tried on every run.
                    if line.reason.text() == "missing_key" || key.as_deref() == Some(CHECKLIST_PROBE_KEY_ID) {
                        return;
                    }
                    let times = self.failures.entry(address.clone()).or_default();
                    times.push(now);
                    times.retain(|t| now - t < WINDOW);
                    let count = times.len();
                    if count >= BURST && self.fresh(&format!("burst {address}"), now) {
                        say(
                            Severity::Warning,
                            "auth_burst",
                            format!("{count} failed authentications from {address} within a minute"),
                            json!({"address": address, "failures": count, "window_seconds": WINDOW}),
                        );
                    }
                    return;
                }
                let Some(key) = key.filter(|_| status < 400 || status == 403 || status == 404) else {
                    return;
                };
                let seen = self.key_addresses.entry(key.clone()).or_default();
                let first_use = seen.is_empty();
                let new_address = !seen.contains_key(&address);
                let recent_other = seen
                    .iter()
                    .find(|(other, at)| **other != address && now - **at < WINDOW)
                    .map(|(other, _)| other.clone());
                seen.insert(address.clone(), now);
                if seen.len() > MAX_ADDRESSES
                    && let Some(oldest) = seen.iter().min_by_key(|(_, at)| **at).map(|(a, _)| a.clone())
                {
                    seen.remove(&oldest);
                }
                if let Some(other) = recent_other
                    && self.fresh(&format!("two {key}"), now)
                {
                    say(
                        Severity::Warning,
                        "two_addresses",
                        format!(
                            "key {key} was used from {other} and {address} within a minute: is it shared, or copied?"
                        ),
                        json!({"key_id": key, "addresses": [other, address]}),
                    );
                } else if new_address && !first_use {
                    say(
                        if is_loopback(&address) {
                            Severity::Info
                        } else {
                            Severity::Warning
                        },
                        "new_address",
                        format!("key {key} is used from a new address, {address}"),
                        json!({"key_id": key, "address": address}),
                    );
                }
            }
            "upstream_exposed" => {
                let port = line.port.number().unwrap_or(0);
                let addresses: Vec<String> = line.addresses.texts().iter().map(|a| a.to_string()).collect();
                if self.fresh(&format!("upstream {port}"), now) {
                    say(
                        Severity::Critical,
                        "upstream_exposed",
                        format!(
                            "the guarded server listens on {} port {port}, beyond this computer: it can be reached around Gatehouse, so Gatehouse refused to guard it",
                            addresses.join(", ")
                        ),
                        json!({"port": port, "addresses": addresses}),
                    );
                }
            }
            "setting_changed" => {
                let (key, value, actor) = (line.key.text(), line.value.text(), line.actor.text());
                match key {
                    "server.exposed_until" if !value.is_empty() => say(
                        Severity::Warning,
                        "exposure_opened",
                        format!("the server is open to the network until {value} ({actor})"),
                        json!({"until": value, "actor": actor}),
                    ),
                    "server.exposed_until" => say(
                        Severity::Info,
                        "exposure_closed",
                        format!("the exposure ended: back to this computer only ({actor})"),
                        json!({"actor": actor}),
                    ),
                    "workflows.allow_custom_python" if value == "true" => say(
                        Severity::Critical,
                        "custom_python_on",
                        format!(
                            "custom Python in workflows was turned on ({actor}): anyone with a workflows key can run code here"
                        ),
                        json!({"actor": actor}),
                    ),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// Observes the audit lines after `state`'s place, oldest first, moving the place on.
fn observe_new_lines(files: &Files, state: &mut State, events: &mut Vec<Event>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(&files.audit) else {
        return Ok(());
    };
    let mut sources = Vec::new();
    if meta.ino() != state.inode || meta.len() < state.offset {
        // Rotated since the last run: the rest of the old file first, by `seq`.
        let rotated = crate::audit::chain::files(&files.audit, 1);
        if let Some(old) = rotated.first().filter(|p| **p != files.audit) {
            sources.push((old.clone(), 0));
        }
        sources.push((files.audit.clone(), 0));
    } else {
        sources.push((files.audit.clone(), state.offset));
    }
    for (path, from) in sources {
        let mut file = std::fs::File::open(&path)?;
        file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        // Only whole lines: one being written is read next time.
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for text in bytes[..whole].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(line) = serde_json::from_slice::<Line>(text) else {
                continue;
            };
            let seq = line.seq.number();
            if seq.is_some_and(|s| s <= state.seq) {
                continue;
            }
            if let Some(seq) = seq {
                state.seq = seq;
            }
            state.observe(&line, events);
        }
        if path == files.audit {
            state.offset = from + whole as u64;
            state.inode = std::fs::metadata(&path)?.ino();
        }
    }
    Ok(())
}

fn certificate_events(paths: &Paths, state: &mut State, now: OffsetDateTime, out: &mut Vec<Event>) {
    let files = crate::certs::CertFiles::new(paths.certs_dir());
    for info in crate::certs::list(&files).into_iter().flatten() {
        if info.days_left > 14 {
            continue;
        }
        let not_after = info.not_after.format(&Rfc3339).unwrap_or_default();
        let finding = format!("certificate {} {not_after}", info.path.display());
        // Once per certificate: a renewed one has another end date and is said again if due.
        if state.said.contains_key(&finding) {
            continue;
        }
        state.said.insert(finding, i64::MAX / 2);
        let (severity, when) = if info.days_left < 0 {
            (Severity::Critical, "expired".to_string())
        } else {
            (Severity::Warning, format!("expires in {} day(s)", info.days_left))
        };
        out.push(Event {
            time: now.format(&Rfc3339).unwrap_or_default(),
            severity,
            kind: "certificate_expiring".into(),
            summary: format!(
                "the {} certificate {when}; fix: `gatehouse certs renew`",
                info.role
            ),
            evidence: json!({"certificate": crate::paths::display(&info.path), "not_after": not_after, "days_left": info.days_left}),
        });
    }
}

/// Reads the audit lines written since the last run, records the events they give rise to and
/// returns them. Several processes may call it at once: they take turns.
pub fn catch_up(paths: &Paths, now: OffsetDateTime) -> std::io::Result<Vec<Event>> {
    let files = Files::new(paths);
    fsutil::ensure_private_dir(&files.dir)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(files.dir.join(".lock"))?;
    lock.lock()?;
    let before = std::fs::read(files.state()).unwrap_or_default();
    let mut state: State = serde_json::from_slice(&before).unwrap_or_default();
    let mut events = Vec::new();
    observe_new_lines(&files, &mut state, &mut events)?;
    certificate_events(paths, &mut state, now, &mut events);
    state.forget_old(now.unix_timestamp());
    if !events.is_empty() {
        let _ = rotate(&files.events());
        let mut lines = Vec::new();
        for event in &events {
            lines.extend(serde_json::to_vec(event).map_err(std::io::Error::other)?);
            lines.push(b'\n');
        }
        append_plain(&files.events(), &lines)?;
    }
    // Written only when it changed: the server calls this every second.
    let after = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
    if after != before {
        fsutil::write_atomic(&files.state(), &after)?;
    }
    Ok(events)
}

fn append_plain(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(fsutil::PRIVATE_FILE_MODE)
        .open(path)?;
    file.write_all(bytes)
}

fn rotate(path: &Path) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= ROTATE_BYTES) {
        let mut old = path.as_os_str().to_os_string();
        old.push(".1");
        std::fs::rename(path, old)?;
    }
    Ok(())
}

/// Follows the events file from wherever it ends now: [`Follow::recorded`] returns what was
/// recorded since, by any process.
pub struct Follow {
    file: PathBuf,
    offset: u64,
}

impl Follow {
    pub fn from_now(paths: &Paths) -> Follow {
        let file = Files::new(paths).events();
        let offset = std::fs::metadata(&file).map_or(0, |m| m.len());
        Follow { file, offset }
    }

    pub fn recorded(&mut self) -> Vec<Event> {
        let Ok(text) = std::fs::read(&self.file) else {
            return Vec::new();
        };
        if (text.len() as u64) < self.offset {
            self.offset = 0; // rotated
        }
        let fresh = &text[self.offset as usize..];
        let whole = fresh.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.offset += whole as u64;
        fresh[..whole]
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice(line).ok())
            .collect()
    }
}

/// The recorded events, oldest first, at most `limit` of the latest.
pub fn recent(paths: &Paths, limit: usize) -> std::io::Result<Vec<Event>> {
    let files = Files::new(paths);
    let mut old = files.events().into_os_string();
    old.push(".1");
    let mut events = Vec::new();
    for path in [PathBuf::from(old), files.events()] {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        events.extend(text.lines().filter_map(|l| serde_json::from_str::<Event>(l).ok()));
    }
    let skip = events.len().saturating_sub(limit);
    Ok(events.split_off(skip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(time: &str, address: &str, key: Option<&str>, status: u16, reason: Option<&str>) -> Value {
        json!({"time": time, "event": "request", "address": address, "key_id": key, "status": status, "reason": reason})
    }

    fn run(lines: &[Value]) -> Vec<Event> {
        let mut state = State::default();
        let mut out = Vec::new();
        for line in lines {
            let text = line.to_string();
            let line: Line = serde_json::from_str(&text).expect("a test line reads");
            state.observe(&line, &mut out);
        }
        out
    }

    #[test]
    fn a_line_is_read_field_by_field_whatever_the_fields_hold() {
        let text = r#"{"time":"2026-12-03T10:00:00Z","event":"re\u0071uest","seq":7,"status":-1,"key_id":null,
            "value":true,"addresses":["10.0.0.1",3,"::1"],"detail":{"nested":[1,{"a":"b"}]},"port":8.5}"#;
        let line: Line = serde_json::from_str(text).unwrap();
        assert_eq!(line.event.text(), "request", "an escaped string is decoded");
        assert_eq!(line.seq.number(), Some(7));
        assert_eq!(line.status.number(), None);
        assert_eq!(line.key_id.as_text(), None);
        assert_eq!(line.value.text(), "");
        assert_eq!(line.port, Field::Absent);
        assert_eq!(line.addresses.texts(), ["10.0.0.1", "::1"]);
        assert!(serde_json::from_str::<Line>(r#"{"time": "#).is_err());
    }

    #[test]
    fn forty_bad_keys_make_one_burst_and_a_lockout_one_event() {
        let mut lines: Vec<Value> = (0..40)
            .map(|i| {
                request(
                    &format!("2026-12-03T10:00:{i:02}Z"),
                    "10.0.0.9",
                    Some("abc"),
                    401,
                    Some("wrong_secret"),
                )
            })
            .collect();
        lines.extend((0..5).map(|i| {
            request(
                &format!("2026-12-03T10:00:{:02}Z", 40 + i),
                "10.0.0.9",
                None,
                429,
                Some("locked_out"),
            )
        }));
        let events = run(&lines);
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["auth_burst", "lockout"]);
        assert!(
            events[0]
                .summary
                .contains("10 failed authentications from 10.0.0.9"),
            "{}",
            events[0].summary
        );
    }

    #[test]
    fn the_checklists_probes_and_requests_without_a_key_are_no_burst() {
        let lines: Vec<Value> = (0..30)
            .flat_map(|i| {
                let time = format!("2026-12-03T10:00:{i:02}Z");
                [
                    request(&time, "127.0.0.1", None, 401, Some("missing_key")),
                    request(&time, "127.0.0.1", Some("probe000"), 401, Some("unknown_id")),
                ]
            })
            .collect();
        assert_eq!(run(&lines), []);
    }

    #[test]
    fn a_key_from_two_addresses_within_a_minute_and_a_revoked_key_tried() {
        let events = run(&[
            request("2026-12-03T10:00:00Z", "127.0.0.2", Some("k1"), 200, None),
            request("2026-12-03T10:00:20Z", "127.0.0.3", Some("k1"), 200, None),
            request("2026-12-03T10:00:30Z", "127.0.0.3", Some("k1"), 200, None),
            request("2026-12-03T10:05:00Z", "192.168.1.7", Some("k2"), 200, None),
            request("2026-12-03T10:30:00Z", "192.168.1.8", Some("k2"), 200, None),
            request(
                "2026-12-03T10:31:00Z",
                "192.168.1.8",
                Some("k3"),
                401,
                Some("revoked"),
            ),
        ]);
        let kinds: Vec<(&str, Severity)> = events.iter().map(|e| (e.kind.as_str(), e.severity)).collect();
        assert_eq!(
            kinds,
            [
                ("two_addresses", Severity::Warning),
                ("new_address", Severity::Warning),
                ("revoked_key_used", Severity::Warning)
            ]
        );
        assert_eq!(events[0].evidence["addresses"], json!(["127.0.0.2", "127.0.0.3"]));
    }

    #[test]
    fn exposure_and_custom_python_are_said() {
        let change = |key: &str, value: &str| json!({"time": "2026-12-03T10:00:00Z", "event": "setting_changed", "key": key, "value": value, "actor": "cli"});
        let events = run(&[
            change("server.exposed_until", "2026-12-03T11:00:00Z"),
            change("server.exposed_until", ""),
            change("workflows.allow_custom_python", "true"),
            change("workflows.allow_custom_python", "false"),
        ]);
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["exposure_opened", "exposure_closed", "custom_python_on"]);
        assert_eq!(events[2].severity, Severity::Critical);
        let exposed = run(&[
            json!({"time": "2026-12-03T10:00:00Z", "event": "upstream_exposed", "port": 11434, "addresses": ["0.0.0.0"]}),
        ]);
        assert_eq!(exposed[0].kind, "upstream_exposed");
        assert!(
            exposed[0].summary.contains("0.0.0.0 port 11434"),
            "{}",
            exposed[0].summary
        );
    }
}
