//! The Gatehouse panel's backend: glue between `gatehouse-core` and the web view. It runs the
//! supervisor (which runs `gatehouse serve`), re-runs the checklist while the server is up, pushes
//! every change to the window as `app://` events, keeps the tray icon in step, and answers the
//! window's commands with thin wrappers over core (`commands`), whose one error type the UI shows.

mod alerts;
#[cfg(test)]
mod bindings;
mod commands;
mod error;
mod events;
mod tray;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_core::checklist::{self, Report};
use gatehouse_core::paths::Paths;
use gatehouse_core::supervisor::{Config, Supervisor};
use tauri::Manager;
use tauri_plugin_window_state::StateFlags;

/// How often the checklist re-runs while the server is up (and at once after every start or
/// restart, which every settings change causes). Probes take a few milliseconds, but each run wakes
/// the server, the app and the page, which is most of what the panel costs at idle.
const CHECK_INTERVAL: Duration = Duration::from_secs(15);

/// One point of the charts every two seconds: finer than a person reads them, and half the
/// scrapes and page updates of one a second.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// Everything the commands share, managed once.
pub struct AppState {
    pub supervisor: Supervisor,
    pub paths: Paths,
    pub last_report: Mutex<Option<Report>>,
    /// The desktop notifications raised for security events, latest last.
    pub notifications: Mutex<Vec<alerts::Notification>>,
}

impl AppState {
    /// Where the panel's operations act, with the panel as the actor in their audit lines.
    pub fn panel(&self) -> gatehouse_core::ops::Context<'_> {
        gatehouse_core::ops::Context::new(&self.paths, gatehouse_core::audit::Actor::Panel)
    }
}

/// The `gatehouse` binary the panel supervises: `GATEHOUSE_BIN`, else the one next to the app.
fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GATEHOUSE_BIN") {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("gatehouse")))
        .unwrap_or_else(|| PathBuf::from("gatehouse"))
}

pub fn run() {
    tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            tray::show_window(app);
        }))
        .plugin(tauri_plugin_clipboard_manager::init())
        // Size, position and maximised state; not visibility: the window always opens shown.
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(StateFlags::SIZE | StateFlags::POSITION | StateFlags::MAXIMIZED)
                .build(),
        )
        .plugin(tauri_plugin_autostart::Builder::new().build())
        .setup(|app| {
            let paths = Paths::from_env();
            let mut config = Config::new(server_binary(), vec![OsString::from("serve")]);
            config.settings_file = Some(paths.settings_file());
            config.identity = checklist::local_identity_reader(&paths);
            config.sample_interval = SAMPLE_INTERVAL;
            // The supervisor lives on Tauri's tokio runtime.
            let supervisor = {
                let runtime = tauri::async_runtime::handle();
                let _entered = runtime.inner().enter();
                Supervisor::spawn(config)
            };
            app.manage(Arc::new(AppState {
                supervisor: supervisor.clone(),
                paths,
                last_report: Mutex::new(None),
                notifications: Mutex::new(Vec::new()),
            }));
            tray::build(app.handle())?;
            #[cfg(unix)]
            quit_on_signal(app.handle().clone());
            events::forward(app.handle().clone(), supervisor.clone());
            alerts::watch(app.handle().clone(), app.state::<Arc<AppState>>().inner().clone());
            let (handle, shared) = (app.handle().clone(), app.state::<Arc<AppState>>().inner().clone());
            tauri::async_runtime::spawn(gatehouse_core::supervisor::keep_checked(
                supervisor.clone(),
                shared.paths.clone(),
                CHECK_INTERVAL,
                move |report| publish(&handle, &shared, report),
            ));
            // On a first run the wizard starts the server once its choices are made.
            if commands::settings::wizard_progress(&app.state::<Arc<AppState>>()).completed {
                supervisor.start();
            }
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window keeps Gatehouse in the tray; Quit in the tray menu ends it. On a
            // desktop that shows no tray icons, closing quits (stopping the server gracefully).
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                api.prevent_close();
                if tray::host_present() {
                    let _ = window.hide();
                } else {
                    tray::quit(window.app_handle());
                }
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::server::status,
            commands::server::start,
            commands::server::stop,
            commands::server::restart,
            commands::server::checklist,
            commands::server::run_checklist,
            commands::server::apply_fix,
            commands::server::logs,
            commands::server::samples,
            commands::server::security_events,
            commands::server::notifications,
            commands::server::audit_view,
            commands::keys::keys_list,
            commands::keys::key_create,
            commands::keys::key_reveal,
            commands::keys::key_rotate,
            commands::keys::key_revoke,
            commands::certs::certs_list,
            commands::certs::certs_init,
            commands::certs::certs_renew_server,
            commands::certs::certs_issue_client,
            commands::certs::certs_import,
            commands::certs::certs_export_ca,
            commands::settings::settings_get,
            commands::settings::settings_change,
            commands::settings::network_choices,
            commands::settings::wizard_get,
            commands::settings::wizard_set,
            commands::settings::autostart_get,
            commands::settings::autostart_set,
            commands::settings::server_info,
            commands::settings::servers_detect,
            commands::settings::guard_presets,
            commands::settings::expose_start,
            commands::settings::expose_stop,
            commands::models::models_index,
            commands::models::model_try,
        ])
        .run(tauri::generate_context!())
        .unwrap_or_else(|error| {
            eprintln!("gatehouse-app: the window could not start: {error}");
            std::process::exit(1);
        });
}

/// SIGTERM (the desktop session ending, `kill`) and SIGINT (Ctrl-C where the app was started from
/// a terminal, as `scripts/run.sh` does) quit the way the tray's Quit does: the server stops
/// gracefully and the window's size and position are saved. A second signal while that runs ends
/// the process at once; the server then still gets SIGTERM from its parent-death signal.
#[cfg(unix)]
fn quit_on_signal(app: tauri::AppHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    tauri::async_runtime::spawn(async move {
        let (Ok(mut terminate), Ok(mut interrupt)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            return;
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tray::quit(&app);
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        std::process::exit(130);
    });
}

/// Stores a checklist report and shows it: in the window and in the tray.
fn publish(app: &tauri::AppHandle, state: &AppState, report: Report) {
    if let Ok(mut slot) = state.last_report.lock() {
        *slot = Some(report.clone());
    }
    events::emit_checklist(app, &report);
    tray::refresh(app);
}

/// One checklist run now (the window's "Check now", after a fix), published like the periodic ones.
pub async fn run_and_publish(app: &tauri::AppHandle, state: &AppState) -> Option<Report> {
    let report = gatehouse_core::supervisor::check_once(&state.supervisor, &state.paths).await?;
    publish(app, state, report.clone());
    Some(report)
}
