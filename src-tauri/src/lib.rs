//! The Gatehouse panel's backend: glue between `gatehouse-core` and the web view. It runs the
//! supervisor (which runs `gatehouse serve`), re-runs the checklist while the server is up, pushes
//! every change to the window as `app://` events, keeps the tray icon in step, and answers the
//! window's commands with thin wrappers over core (`commands`), whose one error type the UI shows.

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

/// How often the checklist re-runs while the server is up; probes take a few milliseconds.
const CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Everything the commands share, managed once.
pub struct AppState {
    pub supervisor: Supervisor,
    pub paths: Paths,
    pub last_report: Mutex<Option<Report>>,
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
        .setup(|app| {
            let paths = Paths::from_env();
            let mut config = Config::new(server_binary(), vec![OsString::from("serve")]);
            config.settings_file = Some(paths.settings_file());
            config.identity = checklist::local_identity(&paths);
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
            }));
            tray::build(app.handle())?;
            events::forward(app.handle().clone(), supervisor.clone());
            let (handle, shared) = (app.handle().clone(), app.state::<Arc<AppState>>().inner().clone());
            tauri::async_runtime::spawn(gatehouse_core::supervisor::keep_checked(
                supervisor.clone(),
                shared.paths.clone(),
                CHECK_INTERVAL,
                move |report| publish(&handle, &shared, report),
            ));
            supervisor.start();
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window keeps Gatehouse in the tray; Quit in the tray menu ends it.
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::start,
            commands::stop,
            commands::restart,
            commands::checklist,
            commands::run_checklist,
            commands::apply_fix,
            commands::logs,
            commands::samples,
            commands::keys_list,
            commands::key_create,
            commands::key_revoke,
        ])
        .run(tauri::generate_context!())
        .unwrap_or_else(|error| {
            eprintln!("gatehouse-app: the window could not start: {error}");
            std::process::exit(1);
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
