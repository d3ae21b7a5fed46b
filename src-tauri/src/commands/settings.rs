//! Settings the panel's pages and wizard change (Network, Workflows, TLS), the wizard's progress
//! and the panel's own preferences (start at login).

use gatehouse_core::Settings;
use gatehouse_core::audit::{Actor, AuditLog};
use gatehouse_core::fsutil;
use gatehouse_core::supervisor::State as ServerState;
use serde::{Deserialize, Serialize};
use tauri_plugin_autostart::ManagerExt;

use super::Shared;
use crate::error::{Code, CommandError, CommandResult, internal};

/// What `settings.toml` says (the environment of `gatehouse serve` may still override it).
#[tauri::command]
pub fn settings_get(state: Shared<'_>) -> CommandResult<Settings> {
    Ok(Settings::load(&state.paths.settings_file())?)
}

/// One `key = value` change, as `gatehouse settings set` takes it.
#[derive(Deserialize, ts_rs::TS)]
pub struct SettingChange {
    pub key: String,
    pub value: String,
}

/// Applies the changes as one edit (all or none) and restarts a running server to pick them up.
#[tauri::command]
pub fn settings_change(state: Shared<'_>, changes: Vec<SettingChange>) -> CommandResult<Settings> {
    let pairs: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c.key.as_str(), c.value.as_str()))
        .collect();
    let changed = gatehouse_core::ops::change_settings(&state.panel(), &pairs)?;
    restart_if_running(&state);
    Ok(changed.value.settings)
}

/// Opens the server to this computer's network address for `window` (`15m`, `1h`, …): TLS and
/// keys required, back on loopback by itself at the deadline. Restarts a running server.
#[tauri::command]
pub fn expose_start(state: Shared<'_>, window: String) -> CommandResult<Settings> {
    expose(&state, &window)
}

/// Ends an exposure now: back to this computer only.
#[tauri::command]
pub fn expose_stop(state: Shared<'_>) -> CommandResult<Settings> {
    end_exposure(&state)
}

/// Opens the server to this computer's network address for `window` (`15m`, `1h`), from the
/// panel or the tray, and restarts a running server on it.
pub fn expose(state: &crate::AppState, window: &str) -> CommandResult<Settings> {
    use gatehouse_core::exposure;
    let window = exposure::parse_window(window)?;
    let host = gatehouse_core::net::network_address().ok_or_else(|| {
        CommandError::new(
            Code::NoNetworkAddress,
            "this computer has no network address (no interface with a route is up), so there is nothing to open it to",
            "connect to a network, then open it again",
        )
    })?;
    let audit = AuditLog::new(state.paths.audit_log());
    let now = time::OffsetDateTime::now_utc();
    let (changed, _) = exposure::start(
        &state.paths.settings_file(),
        &audit,
        &host.to_string(),
        window,
        now,
        Actor::Panel,
    )?;
    restart_if_running(state);
    Ok(changed.settings)
}

pub fn end_exposure(state: &crate::AppState) -> CommandResult<Settings> {
    let audit = AuditLog::new(state.paths.audit_log());
    let changed = gatehouse_core::exposure::stop(&state.paths.settings_file(), &audit, Actor::Panel)?;
    restart_if_running(state);
    Ok(changed.settings)
}

fn restart_if_running(state: &crate::AppState) {
    if !matches!(
        state.supervisor.status().state,
        ServerState::Stopped | ServerState::CrashLooping
    ) {
        state.supervisor.restart();
    }
}

/// What the Network page offers besides "this computer only" and "all interfaces".
#[derive(Serialize, ts_rs::TS)]
pub struct NetworkChoices {
    /// This computer's address on the network it routes through, if it has one.
    pub lan_address: Option<String>,
    pub host_name: Option<String>,
}

#[tauri::command]
pub fn network_choices() -> NetworkChoices {
    NetworkChoices {
        lan_address: gatehouse_core::net::network_address().map(|ip| ip.to_string()),
        host_name: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
    }
}

/// How far the setup wizard got, kept across quits in `panel.json` beside the settings.
#[derive(Serialize, Deserialize, Clone, Default, ts_rs::TS)]
pub struct WizardProgress {
    /// The step to show next.
    pub step: WizardStep,
    pub completed: bool,
}

/// The setup wizard's steps, in order.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum WizardStep {
    /// Which server: the built-in one or one already running.
    #[default]
    Server,
    Network,
    Key,
    Tls,
    Python,
    Review,
}

impl<'de> Deserialize<'de> for WizardStep {
    /// A step this version does not know (written by another) starts the wizard at its first
    /// step, rather than making the whole file unreadable and losing whether it was completed.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<WizardStep, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match text.as_str() {
            "network" => WizardStep::Network,
            "key" => WizardStep::Key,
            "tls" => WizardStep::Tls,
            "python" => WizardStep::Python,
            "review" => WizardStep::Review,
            _ => WizardStep::Server,
        })
    }
}

#[derive(Serialize, Deserialize, Default)]
struct PanelFile {
    #[serde(default)]
    wizard: WizardProgress,
}

fn panel_file(state: &crate::AppState) -> std::path::PathBuf {
    state.paths.settings_file().with_file_name("panel.json")
}

/// The wizard's progress; a missing or unreadable file means a first run.
pub fn wizard_progress(state: &crate::AppState) -> WizardProgress {
    std::fs::read(panel_file(state))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<PanelFile>(&bytes).ok())
        .map(|file| file.wizard)
        .unwrap_or_default()
}

#[tauri::command]
pub fn wizard_get(state: Shared<'_>) -> WizardProgress {
    wizard_progress(&state)
}

#[tauri::command]
pub fn wizard_set(state: Shared<'_>, progress: WizardProgress) -> CommandResult<()> {
    let path = panel_file(&state);
    let text = serde_json::to_vec_pretty(&PanelFile { wizard: progress })
        .map_err(|e| internal("writing the wizard's progress", e))?;
    fsutil::write_atomic(&path, &text).map_err(|error| {
        CommandError::new(
            Code::WriteFailed,
            format!("cannot save the wizard's progress to {}: {error}", path.display()),
            "check free disk space",
        )
    })
}

#[tauri::command]
pub fn autostart_get(app: tauri::AppHandle) -> CommandResult<bool> {
    app.autolaunch().is_enabled().map_err(autostart)
}

fn autostart(error: tauri_plugin_autostart::Error) -> CommandError {
    CommandError::new(
        Code::Autostart,
        format!("the login item could not be read or changed: {error}"),
        "check that ~/.config/autostart is yours and writable",
    )
}

/// Starts Gatehouse when the user logs in (an XDG autostart entry on Linux).
#[tauri::command]
pub fn autostart_set(app: tauri::AppHandle, on: bool) -> CommandResult<()> {
    let launcher = app.autolaunch();
    if on { launcher.enable() } else { launcher.disable() }.map_err(autostart)
}

/// The inference servers already running on this computer, for the wizard's "Which server?".
#[tauri::command]
pub async fn servers_detect() -> Vec<gatehouse_core::detect::Detected> {
    let ports = gatehouse_core::detect::ports_to_try();
    gatehouse_core::detect::detect(&ports, std::time::Duration::from_secs(1)).await
}

/// Every guard preset, with whether its server is installed here and how to install it.
#[tauri::command]
pub fn guard_presets() -> Vec<gatehouse_core::detect::PresetChoice> {
    gatehouse_core::detect::preset_choices()
}

/// The running server's public `/info`: TLS, the custom-Python switch and the sandbox layers.
#[tauri::command]
pub async fn server_info(state: Shared<'_>) -> CommandResult<gatehouse_core::wire::ServerInfo> {
    let response =
        super::models::request(&state, "GET", gatehouse_core::wire::routes::INFO, None, &[]).await?;
    serde_json::from_slice(&response.body).map_err(|e| internal("reading the server's /info", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wizard_s_step_round_trips_and_an_unknown_one_starts_it_over() {
        for step in [
            WizardStep::Server,
            WizardStep::Network,
            WizardStep::Key,
            WizardStep::Tls,
            WizardStep::Python,
            WizardStep::Review,
        ] {
            let text = serde_json::to_string(&step).unwrap();
            assert_eq!(serde_json::from_str::<WizardStep>(&text).unwrap(), step, "{text}");
        }
        let file: PanelFile =
            serde_json::from_str(r#"{"wizard": {"step": "models", "completed": true}}"#).unwrap();
        assert_eq!(file.wizard.step, WizardStep::Server);
        assert!(file.wizard.completed, "the rest of the progress is kept");
    }
}
