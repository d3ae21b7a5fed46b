//! `keys.toml` and the operations on it. Every change takes an exclusive lock on `keys.toml.lock`,
//! reads the file, changes it and writes it atomically (0600, `.bak` kept), so the CLI, the app and
//! the server's last-used updates never lose each other's writes. The keychain is written before
//! the file on create (a key never appears in the file without its secret stored) and cleaned up
//! if the file cannot be written.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::{KeyError, KeyFile, KeyRecord, KeyState, Keychain, Scope, Storage, format};
use crate::fsutil;
use crate::sensitive::Sensitive;

/// How long a rotated key keeps working beside its replacement, so clients can switch over.
pub const ROTATION_GRACE: time::Duration = time::Duration::hours(24);
/// Lifetime of a key created without `--expires`: every key expires unless told otherwise.
pub const DEFAULT_LIFETIME: time::Duration = time::Duration::days(90);

/// A key just created: its record and, once only, its text.
#[derive(Debug)]
pub struct NewKey {
    pub record: KeyRecord,
    pub key: Sensitive<String>,
}

pub struct KeyStore {
    path: PathBuf,
}

/// What a new key is: its label, what it may do, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec<'a> {
    pub name: &'a str,
    /// Infer when empty.
    pub scopes: &'a [Scope],
    /// The only models it may run; any when empty.
    pub models: &'a [String],
    /// Never expires when `None`.
    pub lifetime: Option<time::Duration>,
}

impl KeyStore {
    pub fn new(path: PathBuf) -> KeyStore {
        KeyStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads `keys.toml`; a missing file means no keys.
    pub fn load(&self) -> Result<KeyFile, KeyError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => KeyFile::parse(&text).map_err(|message| KeyError::Malformed {
                path: self.path.clone(),
                message,
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
            Err(source) => Err(KeyError::Io {
                action: "read",
                path: self.path.clone(),
                source,
            }),
        }
    }

    pub fn get(&self, id: &str) -> Result<KeyRecord, KeyError> {
        self.load()?
            .keys
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| KeyError::UnknownKey { id: id.to_string() })
    }

    /// Creates the key `spec` describes. With a keychain the key is stored there; without, only
    /// its hash is kept.
    pub fn create(&self, keychain: Option<&Keychain>, spec: &KeySpec<'_>) -> Result<NewKey, KeyError> {
        let KeySpec {
            name,
            scopes,
            models,
            lifetime,
        } = *spec;
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(KeyError::InvalidName);
        }
        // The names a model directory can have: nothing a path or a glob could be read into.
        if let Some(model) = models.iter().find(|m| {
            m.is_empty()
                || m.len() > 64
                || !m
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                || m.starts_with('.')
        }) {
            return Err(KeyError::InvalidModel { given: model.clone() });
        }
        let mut models = models.to_vec();
        models.sort();
        models.dedup();
        let mut scopes = if scopes.is_empty() {
            vec![Scope::Infer]
        } else {
            scopes.to_vec()
        };
        scopes.sort();
        scopes.dedup();
        let (id, key) = format::generate().map_err(|e| KeyError::Random(e.to_string()))?;
        let key = Sensitive::new(key);
        let now = now();
        let record = KeyRecord {
            id: id.clone(),
            name: name.to_string(),
            scopes,
            created: now,
            expires: lifetime.map(|l| now + l),
            revoked: None,
            last_used: None,
            rotated_to: None,
            hash: format::hash_text(key.expose()),
            models,
            storage: if keychain.is_some() {
                Storage::Keychain
            } else {
                Storage::HashOnly
            },
        };
        if let Some(keychain) = keychain {
            keychain.store(&id, name, &key)?;
        }
        let written = self.update(|file| {
            file.keys.push(record.clone());
            Ok(())
        });
        if let Err(error) = written {
            if let Some(keychain) = keychain {
                let _ = keychain.delete(&id);
            }
            return Err(error);
        }
        Ok(NewKey { record, key })
    }

    /// The key's text, from the keychain. `connect` is called only for keys that are there.
    pub fn reveal(
        &self,
        id: &str,
        connect: impl FnOnce() -> Result<Keychain, KeyError>,
    ) -> Result<Sensitive<String>, KeyError> {
        let record = self.get(id)?;
        if record.revoked.is_some() {
            return Err(KeyError::RevokedNotRevealable { id: id.to_string() });
        }
        if record.storage == Storage::HashOnly {
            return Err(KeyError::HashOnly { id: id.to_string() });
        }
        connect()?.get(id)
    }

    /// Revokes the key (servers refuse it within a second) and removes its text from the keychain.
    /// Returns the record and, when the keychain could not be cleaned, why.
    pub fn revoke(
        &self,
        keychain: Option<&Keychain>,
        id: &str,
    ) -> Result<(KeyRecord, Option<KeyError>), KeyError> {
        let record = self.update(|file| {
            let record = find(file, id)?;
            if record.revoked.is_some() {
                return Err(KeyError::AlreadyRevoked { id: id.to_string() });
            }
            record.revoked = Some(now());
            Ok(record.clone())
        })?;
        let cleanup = match (record.storage, keychain) {
            (Storage::Keychain, Some(keychain)) => keychain.delete(id).err(),
            _ => None,
        };
        Ok((record, cleanup))
    }

    /// Replaces a key with a new one of the same name and scopes; the old one keeps working for
    /// `grace` (or until its own expiry, if sooner), then expires.
    pub fn rotate(
        &self,
        keychain: Option<&Keychain>,
        id: &str,
        grace: time::Duration,
        lifetime: Option<time::Duration>,
    ) -> Result<(NewKey, KeyRecord), KeyError> {
        let old = self.get(id)?;
        if old.state(now()) == KeyState::Revoked {
            return Err(KeyError::AlreadyRevoked { id: id.to_string() });
        }
        let new = self.create(
            keychain,
            &KeySpec {
                name: &old.name,
                scopes: &old.scopes,
                models: &old.models,
                lifetime,
            },
        )?;
        let old = self.update(|file| {
            let record = find(file, id)?;
            let end = now() + grace;
            record.expires = Some(record.expires.map_or(end, |e| e.min(end)));
            record.rotated_to = Some(new.record.id.clone());
            Ok(record.clone())
        })?;
        Ok((new, old))
    }

    /// Records when keys were last used (called by the server, a few times a minute at most).
    pub fn record_use(&self, uses: &[(String, OffsetDateTime)]) -> Result<(), KeyError> {
        if uses.is_empty() {
            return Ok(());
        }
        self.update(|file| {
            for (id, at) in uses {
                if let Some(record) = file.keys.iter_mut().find(|k| &k.id == id) {
                    record.last_used = Some(record.last_used.map_or(*at, |l| l.max(*at)));
                }
            }
            Ok(())
        })
    }

    fn update<T>(&self, change: impl FnOnce(&mut KeyFile) -> Result<T, KeyError>) -> Result<T, KeyError> {
        let _lock = self.lock()?;
        let mut file = self.load()?;
        let result = change(&mut file)?;
        let text = toml::to_string_pretty(&file).map_err(|e| KeyError::Malformed {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let header = "# Gatehouse API keys: ids, names, scopes, dates and SHA-256 hashes. The keys themselves are\n\
                      # in the OS keychain (service `gatehouse`), never here. Manage with `gatehouse keys`.\n\n";
        fsutil::write_atomic(&self.path, format!("{header}{text}").as_bytes()).map_err(|source| {
            KeyError::Io {
                action: "write",
                path: self.path.clone(),
                source,
            }
        })?;
        Ok(result)
    }

    fn lock(&self) -> Result<File, KeyError> {
        let mut name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".lock");
        let path = self.path.with_file_name(name);
        let io = |source| KeyError::Io {
            action: "lock",
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            fsutil::ensure_private_dir(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        Ok(file)
    }
}

fn find<'a>(file: &'a mut KeyFile, id: &str) -> Result<&'a mut KeyRecord, KeyError> {
    file.keys
        .iter_mut()
        .find(|k| k.id == id)
        .ok_or_else(|| KeyError::UnknownKey { id: id.to_string() })
}

fn now() -> OffsetDateTime {
    // Whole seconds: the file is for people, and RFC 3339 with nanoseconds reads badly.
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn store() -> (tempfile::TempDir, KeyStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path().join("keys.toml"));
        (dir, store)
    }

    #[test]
    fn hash_only_keys_are_created_listed_and_never_written() {
        let (_dir, store) = store();
        let new = store
            .create(
                None,
                &KeySpec {
                    name: "ci",
                    scopes: &[Scope::Metrics, Scope::Infer, Scope::Infer],
                    models: &[],
                    lifetime: Some(DEFAULT_LIFETIME),
                },
            )
            .unwrap();
        assert_eq!(new.record.scopes, vec![Scope::Infer, Scope::Metrics]);
        assert_eq!(new.record.storage, Storage::HashOnly);
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(new.key.expose()), "keys.toml holds the key itself");
        assert!(text.contains(&format::hash_text(new.key.expose())));
        assert_eq!(
            std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(store.load().unwrap().keys, vec![new.record.clone()]);
        let expires = new.record.expires.unwrap() - new.record.created;
        assert_eq!(expires, DEFAULT_LIFETIME);
    }

    #[test]
    fn revoke_and_rotate_change_the_records() {
        let (_dir, store) = store();
        let first = store
            .create(
                None,
                &KeySpec {
                    name: "laptop",
                    scopes: &[Scope::Infer],
                    models: &[],
                    lifetime: None,
                },
            )
            .unwrap();
        let (new, old) = store
            .rotate(None, &first.record.id, ROTATION_GRACE, Some(DEFAULT_LIFETIME))
            .unwrap();
        assert_eq!(old.rotated_to.as_deref(), Some(new.record.id.as_str()));
        let left = old.expires.unwrap() - OffsetDateTime::now_utc();
        assert!(left <= ROTATION_GRACE && left > ROTATION_GRACE - time::Duration::minutes(1));
        assert_eq!(new.record.name, "laptop");
        let (revoked, cleanup) = store.revoke(None, &new.record.id).unwrap();
        assert!(revoked.revoked.is_some() && cleanup.is_none());
        assert!(matches!(
            store.revoke(None, &new.record.id),
            Err(KeyError::AlreadyRevoked { .. })
        ));
        assert!(matches!(
            store.revoke(None, "nope"),
            Err(KeyError::UnknownKey { .. })
        ));
        let never = || -> Result<Keychain, KeyError> { panic!("a hash-only key needs no keychain") };
        assert!(matches!(
            store.reveal(&first.record.id, never),
            Err(KeyError::HashOnly { .. })
        ));
    }

    #[test]
    fn a_broken_file_is_reported_and_not_overwritten() {
        let (_dir, store) = store();
        std::fs::write(store.path(), "[[key]]\nid = 3\n").unwrap();
        let error = store
            .create(
                None,
                &KeySpec {
                    name: "x",
                    scopes: &[],
                    models: &[],
                    lifetime: None,
                },
            )
            .unwrap_err();
        assert!(matches!(error, KeyError::Malformed { .. }), "{error}");
        assert_eq!(
            std::fs::read_to_string(store.path()).unwrap(),
            "[[key]]\nid = 3\n"
        );
    }

    #[test]
    fn names_are_checked() {
        let (_dir, store) = store();
        assert!(matches!(
            store.create(
                None,
                &KeySpec {
                    name: "",
                    scopes: &[],
                    models: &[],
                    lifetime: None
                }
            ),
            Err(KeyError::InvalidName)
        ));
        assert!(matches!(
            store.create(
                None,
                &KeySpec {
                    name: "a\nb",
                    scopes: &[],
                    models: &[],
                    lifetime: None
                }
            ),
            Err(KeyError::InvalidName)
        ));
    }

    #[test]
    fn model_names_are_checked_kept_sorted_and_survive_rotation() {
        let (_dir, store) = store();
        for bad in ["", "../magika", ".hidden", "a b", "mag*", "é"] {
            let error = store
                .create(
                    None,
                    &KeySpec {
                        name: "demo",
                        scopes: &[],
                        models: &[bad.to_string()],
                        lifetime: None,
                    },
                )
                .unwrap_err();
            assert!(
                matches!(&error, KeyError::InvalidModel { given } if given == bad),
                "{bad:?}: {error}"
            );
        }
        let models = ["tiny".to_string(), "magika".to_string(), "tiny".to_string()];
        let created = store
            .create(
                None,
                &KeySpec {
                    name: "demo",
                    scopes: &[],
                    models: &models,
                    lifetime: None,
                },
            )
            .unwrap();
        assert_eq!(created.record.models, ["magika", "tiny"]);
        let (new, _old) = store
            .rotate(None, &created.record.id, ROTATION_GRACE, None)
            .unwrap();
        assert_eq!(new.record.models, ["magika", "tiny"]);
        let reread = store.load().unwrap();
        assert!(
            reread
                .keys
                .iter()
                .all(|record| record.models == ["magika", "tiny"])
        );
    }
}
