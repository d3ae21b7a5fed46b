//! The window's commands: each parses its input, calls one core function and maps the result.

use std::sync::Arc;

use gatehouse_core::audit::AuditLog;
use gatehouse_core::checklist::{self, Report};
use gatehouse_core::keys::{self, KeyRecord, KeyStore, Keychain, Scope};
use gatehouse_core::supervisor::{LogLine, Sample, Status};
use serde::Serialize;
use tauri::State;

use crate::AppState;
use crate::error::{CommandError, CommandResult};

type Shared<'a> = State<'a, Arc<AppState>>;

#[tauri::command]
pub fn status(state: Shared<'_>) -> Status {
    state.supervisor.status()
}

#[tauri::command]
pub fn start(state: Shared<'_>) {
    state.supervisor.start();
}

#[tauri::command]
pub async fn stop(state: Shared<'_>) -> CommandResult<()> {
    state.supervisor.stop().await;
    Ok(())
}

#[tauri::command]
pub fn restart(state: Shared<'_>) {
    state.supervisor.restart();
}

/// The latest checklist report, if one has run.
#[tauri::command]
pub fn checklist(state: Shared<'_>) -> Option<Report> {
    state.last_report.lock().ok().and_then(|r| r.clone())
}

#[tauri::command]
pub async fn run_checklist(app: tauri::AppHandle, state: Shared<'_>) -> CommandResult<Option<Report>> {
    Ok(crate::run_and_publish(&app, &state).await)
}

#[derive(Serialize)]
pub struct FixOutcome {
    pub message: String,
    /// A key the fix created, shown once.
    pub key: Option<String>,
}

/// Applies the fix the latest checklist offers for item `id`, restarting the server when the
/// change needs it (the supervisor would notice the settings file too, within a second).
#[tauri::command]
pub async fn apply_fix(app: tauri::AppHandle, state: Shared<'_>, id: String) -> CommandResult<FixOutcome> {
    let fix = state
        .last_report
        .lock()
        .ok()
        .and_then(|report| report.as_ref()?.item(&id)?.fix.clone())
        .ok_or_else(|| CommandError {
            message: format!("the checklist offers no fix for `{id}`; run the checklist again"),
        })?;
    let applied = checklist::apply(&fix, &state.paths)?;
    if applied.restart_needed {
        state.supervisor.restart();
    } else {
        crate::run_and_publish(&app, &state).await;
    }
    Ok(FixOutcome {
        message: applied.message,
        key: applied.key.map(|k| k.expose().clone()),
    })
}

#[tauri::command]
pub fn logs(state: Shared<'_>) -> Vec<LogLine> {
    state.supervisor.logs()
}

#[tauri::command]
pub fn samples(state: Shared<'_>) -> Vec<Sample> {
    state.supervisor.samples()
}

#[tauri::command]
pub fn keys_list(state: Shared<'_>) -> CommandResult<Vec<KeyRecord>> {
    Ok(KeyStore::new(state.paths.keys_file()).load()?.keys)
}

#[derive(Serialize)]
pub struct CreatedKey {
    pub id: String,
    /// The key's text: shown once, kept in the keychain.
    pub key: String,
}

#[tauri::command]
pub fn key_create(
    state: Shared<'_>,
    name: String,
    scopes: Vec<String>,
    expires: String,
) -> CommandResult<CreatedKey> {
    let scopes = scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()?;
    let lifetime = keys::parse_duration(&expires)?;
    let keychain = Keychain::connect()?;
    let created = KeyStore::new(state.paths.keys_file()).create(Some(&keychain), &name, &scopes, lifetime)?;
    let _ = AuditLog::new(state.paths.audit_log()).key_change("key_created", &created.record, "panel");
    Ok(CreatedKey {
        id: created.record.id,
        key: created.key.expose().clone(),
    })
}

#[tauri::command]
pub fn key_revoke(state: Shared<'_>, id: String) -> CommandResult<()> {
    let keychain = Keychain::connect().ok();
    let (record, _) = KeyStore::new(state.paths.keys_file()).revoke(keychain.as_ref(), &id)?;
    let _ = AuditLog::new(state.paths.audit_log()).key_change("key_revoked", &record, "panel");
    Ok(())
}
