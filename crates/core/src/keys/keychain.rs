//! The OS keychain (Secret Service on Linux) through `keyring-core`. Each key's full text is one
//! item: service `gatehouse`, user = the key's id. Every failure says which part refused and how to
//! fix it; there is no fallback to a file.

use std::sync::Arc;

use keyring_core::{CredentialStore, Error as KeyringError};

use super::KeyError;
use crate::sensitive::Sensitive;

/// The keychain service name every Gatehouse secret is filed under.
pub const SERVICE: &str = "gatehouse";

pub struct Keychain {
    store: Arc<CredentialStore>,
}

impl Keychain {
    /// Connects to the platform's keychain.
    pub fn connect() -> Result<Keychain, KeyError> {
        #[cfg(target_os = "linux")]
        {
            let store =
                zbus_secret_service_keyring_store::Store::new().map_err(|error| unavailable(&error))?;
            Ok(Keychain { store })
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(KeyError::KeychainUnavailable {
                detail: "this build of Gatehouse only knows the Linux Secret Service".into(),
            })
        }
    }

    /// Stores `secret` under `account` (user-visible label `Gatehouse <label>`).
    pub fn store(&self, account: &str, label: &str, secret: &Sensitive<String>) -> Result<(), KeyError> {
        let label = format!("Gatehouse {label}");
        let modifiers = std::collections::HashMap::from([("label", label.as_str())]);
        let entry = self
            .store
            .build(SERVICE, account, Some(&modifiers))
            .map_err(|e| classify(&e))?;
        entry.set_password(secret.expose()).map_err(|e| classify(&e))
    }

    pub fn get(&self, account: &str) -> Result<Sensitive<String>, KeyError> {
        let entry = self
            .store
            .build(SERVICE, account, None)
            .map_err(|e| classify(&e))?;
        match entry.get_password() {
            Ok(secret) => Ok(Sensitive::new(secret)),
            Err(KeyringError::NoEntry) => Err(KeyError::NotInKeychain {
                id: account.to_string(),
            }),
            Err(error) => Err(classify(&error)),
        }
    }

    /// Removes the item; a missing item is not an error (the goal is that it is gone).
    pub fn delete(&self, account: &str) -> Result<(), KeyError> {
        let entry = self
            .store
            .build(SERVICE, account, None)
            .map_err(|e| classify(&e))?;
        match entry.delete_credential() {
            Ok(()) | Err(KeyringError::NoEntry) => Ok(()),
            Err(error) => Err(classify(&error)),
        }
    }
}

fn unavailable(error: &KeyringError) -> KeyError {
    KeyError::KeychainUnavailable {
        detail: describe(error),
    }
}

fn classify(error: &KeyringError) -> KeyError {
    match error {
        KeyringError::NoStorageAccess(_) => KeyError::KeychainLocked {
            detail: describe(error),
        },
        KeyringError::PlatformFailure(_) => KeyError::KeychainUnavailable {
            detail: describe(error),
        },
        other => KeyError::KeychainRefused {
            detail: describe(other),
        },
    }
}

fn describe(error: &KeyringError) -> String {
    let text = error.to_string();
    // Secret Service errors can be long D-Bus dumps; the first line is the useful one.
    text.lines().next().unwrap_or("").chars().take(300).collect()
}
