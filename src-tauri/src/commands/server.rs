//! The Dashboard's commands: the server's state, start and stop, the checklist and its fixes,
//! logs and metrics.

use gatehouse_core::checklist::{self, Report};
use gatehouse_core::supervisor::{LogLine, Sample, Status};
use serde::Serialize;

use super::Shared;
use crate::error::{Code, CommandError, CommandResult, internal};

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

#[derive(Serialize, ts_rs::TS)]
pub struct FixOutcome {
    pub message: String,
    /// A key the fix created, shown once.
    pub key: Option<String>,
}

/// Applies the fix the latest checklist offers for item `id`, restarting the server when the
/// change needs it (the supervisor would notice the settings file too, within a second).
#[tauri::command]
pub async fn apply_fix(
    app: tauri::AppHandle,
    state: Shared<'_>,
    id: checklist::ItemId,
) -> CommandResult<FixOutcome> {
    let fix = state
        .last_report
        .lock()
        .ok()
        .and_then(|report| report.as_ref()?.item(id)?.fix.clone())
        .ok_or_else(|| {
            CommandError::new(
                Code::NoFix,
                format!("the checklist offers no fix for `{id}`"),
                "run the checklist again",
            )
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

/// The latest security events, oldest first, after catching up on the audit log.
#[tauri::command]
pub async fn security_events(state: Shared<'_>) -> CommandResult<Vec<gatehouse_core::events::Event>> {
    let paths = state.paths.clone();
    let read = tokio::task::spawn_blocking(move || {
        gatehouse_core::events::catch_up(&paths, time::OffsetDateTime::now_utc())?;
        gatehouse_core::events::recent(&paths, 200)
    })
    .await
    .map_err(|e| internal("reading in the background", e))?;
    read.map_err(|e| {
        CommandError::new(
            Code::EventsUnreadable,
            format!("the security events could not be read: {e}"),
            format!(
                "check that {} is readable and writable",
                state.paths.config_dir.display()
            ),
        )
    })
}

/// The desktop notifications raised for security events.
#[tauri::command]
pub fn notifications(state: Shared<'_>) -> Vec<crate::alerts::Notification> {
    state.notifications.lock().map(|n| n.clone()).unwrap_or_default()
}

/// The audit log as the Logs page shows it: the latest lines, and whether the chain is whole.
#[derive(Serialize, ts_rs::TS)]
pub struct AuditView {
    /// The newest lines, oldest first, as written (JSON objects).
    #[ts(type = "Array<Record<string, unknown>>")]
    pub lines: Vec<serde_json::Value>,
    pub verdict: gatehouse_core::audit::chain::Verdict,
}

#[tauri::command]
pub async fn audit_view(state: Shared<'_>) -> CommandResult<AuditView> {
    let log = gatehouse_core::audit::AuditLog::new(state.paths.audit_log());
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<AuditView> {
        let verdict = log.verify()?;
        let text = match std::fs::read_to_string(log.path()) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(error),
        };
        let all: Vec<&str> = text.lines().collect();
        let lines = all[all.len().saturating_sub(300)..]
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        Ok(AuditView { lines, verdict })
    })
    .await
    .map_err(|e| internal("reading in the background", e))?;
    read.map_err(|e| {
        CommandError::new(
            Code::AuditUnreadable,
            format!("the audit log could not be read: {e}"),
            format!("check that {} is readable", state.paths.audit_log().display()),
        )
    })
}
