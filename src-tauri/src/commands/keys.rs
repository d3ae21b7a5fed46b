//! The Keys page: create, reveal, rotate and revoke API keys. Their text lives in the keychain;
//! every change is audited with the panel as its actor.

use gatehouse_core::keys::store::ROTATION_GRACE;
use gatehouse_core::keys::{self, KeyRecord, KeyStore, Scope, Storage};
use gatehouse_core::ops;
use serde::Serialize;

use super::Shared;
use crate::error::CommandResult;

#[tauri::command]
pub fn keys_list(state: Shared<'_>) -> CommandResult<Vec<KeyRecord>> {
    Ok(KeyStore::new(state.paths.keys_file()).load()?.keys)
}

/// A key just made: its text is shown once and kept in the keychain.
#[derive(Serialize, ts_rs::TS)]
pub struct CreatedKey {
    pub id: String,
    pub key: String,
    /// For a rotation: until when the replaced key keeps working.
    pub replaces_until: Option<String>,
    /// For a key that ends within a day (a demo key): the card to hand it over with.
    pub share: Option<Share>,
}

/// The endpoint, the CA, the key, its deadline and models, as text and as a QR code.
#[derive(Serialize, ts_rs::TS)]
pub struct Share {
    pub url: String,
    pub ca: Option<String>,
    pub expires: Option<String>,
    pub models: Vec<String>,
    pub text: String,
    /// The text as a QR code (SVG markup).
    pub qr_svg: String,
}

/// Keys that end this soon are handed out, so they come with a share card.
const DEMO_LIFETIME: time::Duration = time::Duration::hours(24);

fn share(state: &Shared<'_>, record: &KeyRecord, key: &str) -> Option<Share> {
    let expires = record.expires?;
    if expires - record.created > DEMO_LIFETIME {
        return None;
    }
    let card = keys::share::ShareCard::for_key(&state.paths, record, key);
    Some(Share {
        url: card.url.clone(),
        ca: card.ca.as_ref().map(|p| p.display().to_string()),
        expires: card.expires.clone(),
        models: card.models.clone(),
        text: card.text(),
        qr_svg: card.qr_svg(),
    })
}

#[tauri::command]
pub fn key_create(
    state: Shared<'_>,
    name: String,
    scopes: Vec<String>,
    models: Vec<String>,
    expires: String,
) -> CommandResult<CreatedKey> {
    let scopes = scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()?;
    let lifetime = keys::parse_duration(&expires)?;
    // The key exists whether or not its audit line could be written.
    let created = ops::create_key(
        &state.panel(),
        &keys::KeySpec {
            name: &name,
            scopes: &scopes,
            models: &models,
            lifetime,
        },
        Storage::Keychain,
    )?
    .value;
    Ok(CreatedKey {
        share: share(&state, &created.record, created.key.expose()),
        id: created.record.id,
        key: created.key.expose().clone(),
        replaces_until: None,
    })
}

/// The key's text from the keychain, for the Reveal button.
#[tauri::command]
pub fn key_reveal(state: Shared<'_>, id: String) -> CommandResult<String> {
    Ok(ops::reveal_key(&state.panel(), &id)?.value.expose().clone())
}

/// A new key with the same name and scopes; the old one keeps working for a day, so clients
/// can move over.
#[tauri::command]
pub fn key_rotate(state: Shared<'_>, id: String, expires: String) -> CommandResult<CreatedKey> {
    let lifetime = keys::parse_duration(&expires)?;
    let ops::Rotated { new, old } =
        ops::rotate_key(&state.panel(), &id, ROTATION_GRACE, lifetime, Storage::Keychain)?.value;
    Ok(CreatedKey {
        share: share(&state, &new.record, new.key.expose()),
        id: new.record.id,
        key: new.key.expose().clone(),
        replaces_until: old
            .expires
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
    })
}

#[tauri::command]
pub fn key_revoke(state: Shared<'_>, id: String) -> CommandResult<()> {
    ops::revoke_key(&state.panel(), &id)?;
    Ok(())
}
