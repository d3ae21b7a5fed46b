//! API keys: their format, their records in `keys.toml`, their secrets in the OS keychain, and the
//! check a server runs on every presented key.
//!
//! `keys.toml` (0600, written atomically under a lock) holds each key's id, name, scopes, dates and
//! the SHA-256 of the key, never the key. The key itself lives only in the keychain, or nowhere at
//! all for `--no-keychain` keys, whose text is shown once.

pub mod format;
pub mod keychain;
pub mod share;
pub mod store;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

pub use keychain::Keychain;
pub use store::{KeySpec, KeyStore, NewKey};

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Model metadata, inference, the repository index.
    Infer,
    /// Running workflows.
    Workflows,
    /// `/metrics` and `/docs` when they are protected.
    Metrics,
    /// Changing the server: settings, keys, certificates.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Infer, Scope::Workflows, Scope::Metrics, Scope::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Infer => "infer",
            Scope::Workflows => "workflows",
            Scope::Metrics => "metrics",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scope {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Scope, KeyError> {
        Scope::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| KeyError::InvalidScope {
                given: text.to_string(),
            })
    }
}

/// Where a key's text is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "kebab-case")]
pub enum Storage {
    /// In the OS keychain; `keys reveal` can show it again.
    Keychain,
    /// Nowhere: only the hash was kept and the key was shown once.
    HashOnly,
}

/// One key as `keys.toml` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "bindings", ts(type = "string"))]
    pub created: OffsetDateTime,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "bindings", ts(optional, as = "Option<String>"))]
    pub expires: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "bindings", ts(optional, as = "Option<String>"))]
    pub revoked: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "bindings", ts(optional, as = "Option<String>"))]
    pub last_used: Option<OffsetDateTime>,
    /// The id of the key that replaced this one, when it was rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_to: Option<String>,
    /// `sha256:<hex>` of the whole key.
    pub hash: String,
    pub storage: Storage,
    /// The only models this key may run (inference and workflow model steps); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "bindings", ts(optional, as = "Option<Vec<String>>"))]
    pub models: Vec<String>,
}

impl KeyRecord {
    pub fn state(&self, now: OffsetDateTime) -> KeyState {
        if self.revoked.is_some() {
            KeyState::Revoked
        } else if self.expires.is_some_and(|e| e <= now) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Active,
    Expired,
    Revoked,
}

/// The whole of `keys.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    #[serde(default, rename = "key")]
    pub keys: Vec<KeyRecord>,
}

impl KeyFile {
    pub fn parse(text: &str) -> Result<KeyFile, String> {
        let file: KeyFile = toml::from_str(text).map_err(|e| crate::fsutil::toml_error(text, &e))?;
        for record in &file.keys {
            if format::parse_hash_text(&record.hash).is_none() {
                return Err(format!("key {} has a malformed hash", record.id));
            }
        }
        Ok(file)
    }

    /// The ids of the keys `text` marks revoked, read as leniently as TOML allows: from a file
    /// that [`KeyFile::parse`] refuses (a hand-edited field it does not know, a bad date
    /// elsewhere), so that a revocation takes effect even when the rest of the file cannot.
    pub fn revocations_in(text: &str) -> Vec<String> {
        let Ok(table) = text.parse::<toml::Table>() else {
            return Vec::new();
        };
        let Some(toml::Value::Array(records)) = table.get("key") else {
            return Vec::new();
        };
        records
            .iter()
            .filter_map(toml::Value::as_table)
            .filter(|record| {
                record
                    .get("revoked")
                    .is_some_and(|r| !matches!(r, toml::Value::Boolean(false)))
            })
            .filter_map(|record| record.get("id").and_then(toml::Value::as_str).map(str::to_string))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no keychain is reachable ({detail}); fix: start a Secret Service (gnome-keyring or KeePassXC) in \
         your desktop session, or on a headless machine use --no-keychain to keep only the key's hash"
    )]
    KeychainUnavailable { detail: String },
    #[error(
        "the keychain is locked or refused access ({detail}); fix: unlock it (log in to your desktop \
         session, or run `gnome-keyring-daemon --unlock`) and try again"
    )]
    KeychainLocked { detail: String },
    #[error(
        "the keychain refused the request ({detail}); fix: check the keychain application for a prompt or an error"
    )]
    KeychainRefused { detail: String },
    #[error(
        "key {id} is not in the keychain; fix: if it was deleted there, rotate the key (`gatehouse keys rotate {id}`) to get a new one"
    )]
    NotInKeychain { id: String },
    #[error(
        "key {id} was created with --no-keychain: its text was shown once and is not stored anywhere; fix: rotate it to get a new key"
    )]
    HashOnly { id: String },
    #[error("there is no key {id}; fix: see `gatehouse keys list` for the ids")]
    UnknownKey { id: String },
    #[error("key {id} is already revoked")]
    AlreadyRevoked { id: String },
    #[error(
        "key {id} is revoked, and its text was removed from the keychain; fix: use another key, or create one"
    )]
    RevokedNotRevealable { id: String },
    #[error("`{given}` is not a scope; fix: use infer, workflows, metrics or admin")]
    InvalidScope { given: String },
    #[error(
        "`{given}` is not a duration; fix: use a number with d, h, m or s (e.g. 90d, 12h, 30m), or `never`"
    )]
    InvalidDuration { given: String },
    #[error(
        "the key name must be 1–64 printable characters; fix: give --name a short label such as `laptop`"
    )]
    InvalidName,
    #[error(
        "`{given}` is not a model name; fix: give --model the name of a model directory, such as `magika`"
    )]
    InvalidModel { given: String },
    #[error(
        "{path} is not a valid key file: {message}; fix: correct it, or restore {path}.bak (keys in the \
         keychain are unaffected)"
    )]
    Malformed { path: PathBuf, message: String },
    #[error(
        "cannot {action} {path}: {source}; fix: check free disk space and permissions; the previous file is unchanged"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
}

/// Parses `90d`, `12h`, `30m`, `45s` or `never` (`None`). Seconds are for demo keys handed out
/// for a moment, and for tests.
pub fn parse_duration(text: &str) -> Result<Option<time::Duration>, KeyError> {
    let invalid = || KeyError::InvalidDuration {
        given: text.to_string(),
    };
    if text == "never" {
        return Ok(None);
    }
    let (count, unit) = crate::duration::count_and_unit(text).ok_or_else(invalid)?;
    if count <= 0 || count > 3650 * 24 * 60 || !matches!(unit, 'd' | 'h' | 'm' | 's') {
        return Err(invalid());
    }
    crate::duration::span(count, unit).map(Some).ok_or_else(invalid)
}

/// Why a presented key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not the shape of a Gatehouse key.
    Malformed,
    /// The shape is right but the checksum is not: a typo or a made-up key.
    BadChecksum,
    /// Well-formed, but no key has this id.
    UnknownId,
    /// The id is known, the rest is wrong.
    WrongSecret,
    Expired,
    Revoked,
}

impl Refusal {
    /// The label used in metrics and the audit log.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::BadChecksum => "bad_checksum",
            Refusal::UnknownId => "unknown_id",
            Refusal::WrongSecret => "wrong_secret",
            Refusal::Expired => "expired",
            Refusal::Revoked => "revoked",
        }
    }
}

/// Who a verified key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub key_id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// The only models the key may run; empty: any.
    pub models: Vec<String>,
}

impl Identity {
    pub fn may_run(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }
}

struct Verifier {
    hash: [u8; 32],
    identity: Arc<Identity>,
    expires: Option<OffsetDateTime>,
    revoked: bool,
    /// Unix time of the last successful use not yet reported by [`KeySet::take_usage`]; 0 if none.
    last_used: AtomicI64,
}

/// The keys a server accepts, built from `keys.toml`; cheap to check against, swapped whole on reload.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, Verifier>,
}

impl KeySet {
    pub fn from_file(file: &KeyFile) -> KeySet {
        let keys = file
            .keys
            .iter()
            .filter_map(|record| {
                let hash = format::parse_hash_text(&record.hash)?;
                let identity = Arc::new(Identity {
                    key_id: record.id.clone(),
                    name: record.name.clone(),
                    scopes: record.scopes.clone(),
                    models: record.models.clone(),
                });
                Some((
                    record.id.clone(),
                    Verifier {
                        hash,
                        identity,
                        expires: record.expires,
                        revoked: record.revoked.is_some(),
                        last_used: AtomicI64::new(0),
                    },
                ))
            })
            .collect();
        KeySet { keys }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a presented key: shape and checksum first (no lookup), then the id, then the hash in
    /// constant time, then revocation and expiry. Returns the key id with the refusal when the id
    /// was known, so the caller can audit it.
    pub fn verify(
        &self,
        presented: &str,
        now: OffsetDateTime,
    ) -> Result<&Arc<Identity>, (Refusal, Option<&str>)> {
        let id = format::parse(presented).map_err(|e| match e {
            format::FormatError::NotAKey => (Refusal::Malformed, None),
            format::FormatError::BadChecksum => (Refusal::BadChecksum, None),
        })?;
        let verifier = self.keys.get(id).ok_or((Refusal::UnknownId, None))?;
        let key_id = Some(verifier.identity.key_id.as_str());
        if !bool::from(format::hash(presented).ct_eq(&verifier.hash)) {
            return Err((Refusal::WrongSecret, key_id));
        }
        if verifier.revoked {
            return Err((Refusal::Revoked, key_id));
        }
        if verifier.expires.is_some_and(|e| e <= now) {
            return Err((Refusal::Expired, key_id));
        }
        verifier.last_used.store(now.unix_timestamp(), Ordering::Relaxed);
        Ok(&verifier.identity)
    }

    /// The keys used since the last call, with when; for writing `last_used` back to `keys.toml`.
    pub fn take_usage(&self) -> Vec<(String, OffsetDateTime)> {
        self.keys
            .iter()
            .filter_map(|(id, verifier)| {
                let at = verifier.last_used.swap(0, Ordering::Relaxed);
                let at = OffsetDateTime::from_unix_timestamp(at).ok().filter(|_| at != 0)?;
                Some((id.clone(), at))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, id: &str) -> KeyRecord {
        KeyRecord {
            id: id.to_string(),
            name: "test".into(),
            scopes: vec![Scope::Infer],
            created: OffsetDateTime::now_utc(),
            expires: None,
            revoked: None,
            last_used: None,
            rotated_to: None,
            hash: format::hash_text(key),
            storage: Storage::HashOnly,
            models: Vec::new(),
        }
    }

    #[test]
    fn verification_refuses_each_way_a_key_can_be_wrong() {
        let (id, key) = format::generate().unwrap();
        let (other_id, other) = format::generate().unwrap();
        let now = OffsetDateTime::now_utc();
        let mut expired = record(&other, &other_id);
        expired.expires = Some(now - time::Duration::seconds(1));
        let set = KeySet::from_file(&KeyFile {
            keys: vec![record(&key, &id), expired],
        });
        assert!(set.take_usage().is_empty());
        assert_eq!(set.verify(&key, now).unwrap().key_id, id);
        assert_eq!(
            set.take_usage(),
            vec![(id.clone(), now.replace_nanosecond(0).unwrap())]
        );
        assert!(set.take_usage().is_empty(), "usage is reported once");
        assert_eq!(set.verify("nonsense", now).unwrap_err().0, Refusal::Malformed);
        let mut typo = key.clone().into_bytes();
        typo[30] = if typo[30] == b'x' { b'y' } else { b'x' };
        assert_eq!(
            set.verify(std::str::from_utf8(&typo).unwrap(), now)
                .unwrap_err()
                .0,
            Refusal::BadChecksum
        );
        let (_, stranger) = format::generate().unwrap();
        assert_eq!(set.verify(&stranger, now).unwrap_err().0, Refusal::UnknownId);
        assert_eq!(
            set.verify(&other, now).unwrap_err(),
            (Refusal::Expired, Some(other_id.as_str()))
        );

        // Same id, different secret, valid checksum: only the hash comparison can tell.
        let forged = format::with_checksum(&format!("gth_{id}{}", format::random_base62(32).unwrap()));
        assert_eq!(
            set.verify(&forged, now).unwrap_err(),
            (Refusal::WrongSecret, Some(id.as_str()))
        );

        let mut revoked = KeyFile {
            keys: vec![record(&key, &id)],
        };
        revoked.keys[0].revoked = Some(now);
        assert_eq!(
            KeySet::from_file(&revoked).verify(&key, now).unwrap_err().0,
            Refusal::Revoked
        );
    }

    #[test]
    fn durations_parse_with_units_and_never() {
        assert_eq!(parse_duration("90d").unwrap(), Some(time::Duration::days(90)));
        assert_eq!(parse_duration("12h").unwrap(), Some(time::Duration::hours(12)));
        assert_eq!(parse_duration("30m").unwrap(), Some(time::Duration::minutes(30)));
        assert_eq!(parse_duration("2s").unwrap(), Some(time::Duration::seconds(2)));
        assert_eq!(parse_duration("never").unwrap(), None);
        for bad in ["", "d", "0d", "-3d", "0s", "5w", "tomorrow"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_parse_by_name_only() {
        assert_eq!("admin".parse::<Scope>().unwrap(), Scope::Admin);
        assert!("root".parse::<Scope>().is_err());
    }

    #[test]
    fn a_key_file_round_trips_and_rejects_bad_hashes() {
        let (id, key) = format::generate().unwrap();
        let file = KeyFile {
            keys: vec![record(&key, &id)],
        };
        let text = toml::to_string_pretty(&file).unwrap();
        assert_eq!(KeyFile::parse(&text).unwrap(), file);
        assert!(!text.contains(&key), "the key itself must never be written");
        let broken = text.replace("sha256:", "sha1:");
        assert!(KeyFile::parse(&broken).unwrap_err().contains("malformed hash"));
    }

    #[test]
    fn revocations_are_read_from_a_file_the_strict_parser_refuses() {
        let text = "[[key]]\nid = \"aaaa1111\"\nnote = \"mine\"\nrevoked = 2026-12-01T00:00:00Z\n\n[[key]]\nid = \"bbbb2222\"\n";
        assert!(KeyFile::parse(text).is_err());
        assert_eq!(KeyFile::revocations_in(text), ["aaaa1111"]);
        assert!(KeyFile::revocations_in("[[key]\nbroken").is_empty());
    }
}
