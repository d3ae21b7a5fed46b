//! Fixes as data: what the app applies in one click and `gatehouse check --fix ID` applies from a
//! terminal. Each fix changes files through the same code as the CLI commands (settings written
//! atomically with a backup, certificates through the local CA, keys into the keychain) and is
//! recorded in the audit log.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::audit::Actor;
use crate::certs::{self, CertFiles};
use crate::keys::{Scope, Storage};
use crate::ops::{self, Context};
use crate::paths::Paths;
use crate::sensitive::Sensitive;

/// A change that puts a checklist item right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Fix {
    /// Change one setting (`gatehouse settings set KEY VALUE`).
    SetSetting { key: String, value: String },
    /// Create a key in the keychain.
    CreateKey {
        name: String,
        scopes: Vec<Scope>,
        expires: String,
    },
    /// Make the local CA and a server certificate if there are none, and turn TLS on.
    EnableTls,
    /// Issue the server certificate again from the local CA, same names.
    RenewCertificates,
    /// `chmod 600` these files.
    RestrictFileModes { paths: Vec<PathBuf> },
}

impl Fix {
    /// What the fix does, in words for a button or a terminal.
    pub fn label(&self) -> String {
        match self {
            Fix::SetSetting { key, value } if value.is_empty() => format!("clear {key}"),
            Fix::SetSetting { key, value } => format!("set {key} to {value}"),
            Fix::CreateKey { scopes, expires, .. } => format!(
                "create a key with scope {} that expires in {expires}",
                scopes.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
            ),
            Fix::EnableTls => "create the local CA and a server certificate, then turn TLS on".into(),
            Fix::RenewCertificates => "issue a new server certificate from the local CA".into(),
            Fix::RestrictFileModes { paths } => format!("make {} file(s) readable by you alone", paths.len()),
        }
    }
}

/// What applying a fix did.
#[derive(Debug, Serialize)]
pub struct Applied {
    pub message: String,
    /// The server must restart to pick the change up (the supervisor does so by itself).
    pub restart_needed: bool,
    /// A created key's text, to be shown once; never serialized by accident.
    #[serde(skip)]
    pub key: Option<Sensitive<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FixError {
    #[error("{0}")]
    Settings(#[from] crate::settings::SettingsError),
    #[error("{0}")]
    Tls(#[from] crate::ops::EnableTlsError),
    #[error("{0}")]
    Keys(#[from] crate::keys::KeyError),
    #[error("{0}")]
    Certificates(#[from] crate::certs::CertError),
    #[error("cannot change the mode of {path}: {source}; fix: run `chmod 600 {path}` yourself")]
    Mode { path: PathBuf, source: std::io::Error },
}

pub fn apply(fix: &Fix, paths: &Paths) -> Result<Applied, FixError> {
    // The same operations as the CLI and the panel, with the checklist as the actor: a key the fix
    // creates gets its `key_created` line, a certificate its certificate line. An audit line that
    // cannot be written does not undo a change that is made.
    let ctx = Context::new(paths, Actor::Checklist);
    let applied = match fix {
        Fix::SetSetting { key, value } => {
            ops::change_settings(&ctx, &[(key, value)])?;
            Applied {
                message: format!("set {key} = {value} in {}", paths.settings_file().display()),
                restart_needed: true,
                key: None,
            }
        }
        Fix::CreateKey {
            name,
            scopes,
            expires,
        } => {
            let lifetime = crate::keys::parse_duration(expires)?;
            let spec = crate::keys::KeySpec {
                name,
                scopes,
                models: &[],
                lifetime,
            };
            let created = ops::create_key(&ctx, &spec, Storage::Keychain)?.value;
            Applied {
                message: format!(
                    "created key {} ({}); it is in your keychain",
                    created.record.id, created.record.name
                ),
                restart_needed: false,
                key: Some(created.key),
            }
        }
        Fix::EnableTls => {
            // The server may already listen beyond loopback (this item warns exactly then): the
            // certificate names the address clients there use, as the CLI's and the panel's do.
            ops::enable_tls(&ctx)?;
            let files = CertFiles::new(paths.certs_dir());
            Applied {
                message: format!(
                    "TLS is on with {}; clients trust {}",
                    files.server_cert().display(),
                    files.ca().display()
                ),
                restart_needed: true,
                key: None,
            }
        }
        Fix::RenewCertificates => {
            let info = ops::renew_server(&ctx, certs::SERVER_LIFETIME)?.value;
            Applied {
                message: format!(
                    "issued a new server certificate valid for {} days; the server picks it up without a restart",
                    info.days_left
                ),
                restart_needed: false,
                key: None,
            }
        }
        Fix::RestrictFileModes { paths: files } => {
            for path in files {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
                    FixError::Mode {
                        path: path.clone(),
                        source,
                    }
                })?;
            }
            Applied {
                message: format!("{} file(s) are now mode 0600", files.len()),
                restart_needed: false,
                key: None,
            }
        }
    };
    let mut event = serde_json::Map::new();
    event.insert("event".into(), "checklist_fix_applied".into());
    event.insert("fix".into(), fix.label().into());
    // The audit line is best effort: the change itself has been made and reported.
    let _ = ctx.audit().record(event);
    Ok(applied)
}
