//! One operation, one place. Every change a person can make — a key created, revealed, revoked or
//! rotated, certificates made, issued, renewed or imported, settings changed — is one function
//! here that validates, acts and writes its audit event with who acted. The `gatehouse` CLI,
//! the panel's commands and the checklist's fixes are adapters that parse, call one of these and
//! render the result, so the three cannot drift apart.

use std::path::Path;

use crate::audit::{Actor, AuditLog};
use crate::certs::{self, Authority, CertError, CertFiles, CertInfo, CertRole, Initialised};
use crate::keys::{KeyError, KeyRecord, KeySpec, KeyStore, Keychain, NewKey, Storage};
use crate::paths::Paths;
use crate::sensitive::Sensitive;
use crate::settings::{self, SettingsError};

/// Where an operation acts and who acts.
pub struct Context<'a> {
    pub paths: &'a Paths,
    pub actor: Actor,
    audit: AuditLog,
}

impl<'a> Context<'a> {
    pub fn new(paths: &'a Paths, actor: Actor) -> Context<'a> {
        Context {
            paths,
            actor,
            audit: AuditLog::new(paths.audit_log()),
        }
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    fn keys(&self) -> KeyStore {
        KeyStore::new(self.paths.keys_file())
    }

    fn certs(&self) -> CertFiles {
        CertFiles::new(self.paths.certs_dir())
    }
}

/// What an operation did. The change is made either way; `unaudited` says when its audit line
/// could not be written, for the front end to warn about.
#[derive(Debug)]
pub struct Done<T> {
    pub value: T,
    pub unaudited: Option<std::io::Error>,
}

impl<T> Done<T> {
    fn new(value: T) -> Done<T> {
        Done {
            value,
            unaudited: None,
        }
    }

    fn noted(mut self, written: std::io::Result<()>) -> Done<T> {
        if let Err(error) = written {
            self.unaudited.get_or_insert(error);
        }
        self
    }

    fn key(self, ctx: &Context<'_>, event: &str, record: &KeyRecord) -> Done<T> {
        self.noted(ctx.audit.key_change(event, record, ctx.actor))
    }

    fn certificate(self, ctx: &Context<'_>, event: &str, info: &CertInfo) -> Done<T> {
        self.noted(ctx.audit.certificate_change(event, info, ctx.actor))
    }
}

// Keys. A key's text is in the keychain; `keys.toml` holds its record and hash.

/// The keychain for a key kept as `storage` says: none for a key of which only the hash is kept.
fn keychain_for(storage: Storage) -> Result<Option<Keychain>, KeyError> {
    match storage {
        Storage::Keychain => Keychain::connect().map(Some),
        Storage::HashOnly => Ok(None),
    }
}

/// A new key, its text in the keychain (or, `HashOnly`, only its hash kept), shown to the person once.
pub fn create_key(ctx: &Context<'_>, spec: &KeySpec<'_>, storage: Storage) -> Result<Done<NewKey>, KeyError> {
    let keychain = keychain_for(storage)?;
    let created = ctx.keys().create(keychain.as_ref(), spec)?;
    let record = created.record.clone();
    Ok(Done::new(created).key(ctx, "key_created", &record))
}

/// A key's text from the keychain; each reveal is audited.
pub fn reveal_key(ctx: &Context<'_>, id: &str) -> Result<Done<Sensitive<String>>, KeyError> {
    let store = ctx.keys();
    let key = store.reveal(id, Keychain::connect)?;
    let record = store.get(id)?;
    Ok(Done::new(key).key(ctx, "key_revealed", &record))
}

/// What revoking a key did.
pub struct Revoked {
    pub record: KeyRecord,
    /// Revoked, but its text could not be removed from the keychain: why.
    pub left_in_keychain: Option<KeyError>,
}

/// Revokes a key (servers refuse it within a second) and removes its text from the keychain.
/// A keychain that cannot be reached does not stop the revocation: the record is what servers read.
pub fn revoke_key(ctx: &Context<'_>, id: &str) -> Result<Done<Revoked>, KeyError> {
    let keychain = Keychain::connect().ok();
    let (record, left_in_keychain) = ctx.keys().revoke(keychain.as_ref(), id)?;
    let done = Done::new(Revoked {
        record: record.clone(),
        left_in_keychain,
    });
    Ok(done.key(ctx, "key_revoked", &record))
}

/// What rotating a key did.
pub struct Rotated {
    pub new: NewKey,
    /// The replaced key, which keeps working until its (shortened) expiry.
    pub old: KeyRecord,
}

/// A new key with the same name, scopes and models; the old one keeps working for `grace`.
pub fn rotate_key(
    ctx: &Context<'_>,
    id: &str,
    grace: time::Duration,
    lifetime: Option<time::Duration>,
    storage: Storage,
) -> Result<Done<Rotated>, KeyError> {
    let keychain = keychain_for(storage)?;
    let (new, old) = ctx.keys().rotate(keychain.as_ref(), id, grace, lifetime)?;
    let created = new.record.clone();
    let done = Done::new(Rotated {
        new,
        old: old.clone(),
    });
    Ok(done
        .key(ctx, "key_rotated", &old)
        .key(ctx, "key_created", &created))
}

// Certificates. The local CA's key is in the keychain; its certificate and the others are files.

/// The local CA (made when there is none, or anew with `new_ca`) and a server certificate for this
/// computer, `hosts` and the address the server is set to listen on — the same names whichever
/// front end asks, because they come from the effective settings.
pub fn init_certificates(
    ctx: &Context<'_>,
    hosts: &[String],
    new_ca: bool,
    lifetime: time::Duration,
) -> Result<Done<Initialised>, CertError> {
    let keychain = Keychain::connect()?;
    let names = certs::names_for_server(&ctx.paths.settings_file(), hosts);
    let made = certs::init(&ctx.certs(), &keychain, &names, new_ca, lifetime)?;
    let server = made.server.clone();
    Ok(Done::new(made).certificate(ctx, "certificates_initialised", &server))
}

/// A client certificate for mutual TLS from the local CA.
pub fn issue_client(
    ctx: &Context<'_>,
    name: &str,
    lifetime: time::Duration,
) -> Result<Done<CertInfo>, CertError> {
    let keychain = Keychain::connect()?;
    let files = ctx.certs();
    let info = Authority::load(&files, &keychain)?.issue_client(&files, name, lifetime)?;
    Ok(Done::new(info.clone()).certificate(ctx, "client_certificate_issued", &info))
}

/// A new server certificate from the local CA for the names the current one carries; refused,
/// with the way on, when the current one was imported.
pub fn renew_server(ctx: &Context<'_>, lifetime: time::Duration) -> Result<Done<CertInfo>, CertError> {
    let keychain = Keychain::connect()?;
    let info = certs::renew_server(&ctx.certs(), &keychain, lifetime)?;
    Ok(Done::new(info.clone()).certificate(ctx, "certificate_renewed", &info))
}

/// What renewing whatever is due did.
pub struct RenewedDue {
    pub renewed: Vec<CertInfo>,
    /// A server certificate that is due but was imported: its issuer's to renew.
    pub imported: Option<CertError>,
}

/// Renews every certificate of the local CA's that ends within [`certs::RENEW_WITHIN`] (all of
/// them with `force`): the server's and the clients'. CAs are not renewed here (a new local CA is
/// [`init_certificates`] with `new_ca`), and an imported server certificate is reported, not
/// replaced.
pub fn renew_due(
    ctx: &Context<'_>,
    force: bool,
    lifetime: time::Duration,
) -> Result<Done<RenewedDue>, CertError> {
    let files = ctx.certs();
    let (imported, ours): (Vec<_>, Vec<_>) = certs::list(&files)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|info| {
            !info.role.is_authority() && (force || info.days_left < certs::RENEW_WITHIN.whole_days())
        })
        .partition(|info| info.role == CertRole::Server && !certs::issued_by_local_ca(&files, &info.path));
    let imported = imported
        .into_iter()
        .next()
        .map(|info| CertError::Imported { path: info.path });
    let mut done = Done::new(RenewedDue {
        renewed: Vec::new(),
        imported,
    });
    if !ours.is_empty() {
        let keychain = Keychain::connect()?;
        let authority = Authority::load(&files, &keychain)?;
        for info in ours {
            let new = match info.role {
                CertRole::Server => authority.issue_server(&files, &info.names, lifetime)?,
                _ => {
                    let name = info
                        .path
                        .file_stem()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default()
                        .to_string();
                    authority.issue_client(&files, &name, lifetime)?
                }
            };
            done = done.certificate(ctx, "certificate_renewed", &new);
            done.value.renewed.push(new);
        }
    }
    Ok(done)
}

/// Existing certificate and key files (say, from a company CA) as the server's, with the CA that
/// issued them when given.
pub fn import_server(
    ctx: &Context<'_>,
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
) -> Result<Done<CertInfo>, CertError> {
    let info = certs::import_server(&ctx.certs(), cert, key, ca)?;
    Ok(Done::new(info.clone()).certificate(ctx, "certificate_imported", &info))
}

/// TLS on: the local CA and a server certificate when there are none yet (for the address the
/// server is set to listen on), then `tls.enabled = true`.
pub fn enable_tls(ctx: &Context<'_>) -> Result<Done<settings::Changed>, EnableTlsError> {
    let files = ctx.certs();
    let mut certificates_unaudited = None;
    if !files.server_cert().exists() || !files.server_key().exists() {
        certificates_unaudited = init_certificates(ctx, &[], false, certs::SERVER_LIFETIME)?.unaudited;
    }
    let changed = change_settings(ctx, &[("tls.enabled", "true")])?;
    Ok(Done {
        unaudited: certificates_unaudited.or(changed.unaudited),
        value: changed.value,
    })
}

/// Why TLS could not be turned on.
#[derive(Debug, thiserror::Error)]
pub enum EnableTlsError {
    #[error("{0}")]
    Certificates(#[from] CertError),
    #[error("{0}")]
    Settings(#[from] SettingsError),
}

// Settings.

/// One edit of `settings.toml`: every value parsed and the result validated before anything is
/// written (atomically, the previous version kept as `.bak`), each change audited with its
/// previous value.
pub fn change_settings(
    ctx: &Context<'_>,
    changes: &[(&str, &str)],
) -> Result<Done<settings::Changed>, SettingsError> {
    let mut changed = settings::change(&ctx.paths.settings_file(), &ctx.audit, changes, ctx.actor)?;
    let unaudited = changed.unaudited.take();
    Ok(Done {
        value: changed,
        unaudited,
    })
}
