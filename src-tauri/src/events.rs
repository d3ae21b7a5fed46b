//! The one emitter of `app://` events: supervisor states, log lines and metrics samples as they
//! happen, checklist reports after each run. The window listens; it never polls.

use gatehouse_core::checklist::Report;
use gatehouse_core::supervisor::{Event, Supervisor};
use tauri::Emitter;

pub const STATE: &str = "app://state";
pub const LOG: &str = "app://log";
pub const SAMPLE: &str = "app://sample";
pub const CHECKLIST: &str = "app://checklist";

pub fn forward(app: tauri::AppHandle, supervisor: Supervisor) {
    let mut events = supervisor.subscribe();
    tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::State(status)) => {
                    let _ = app.emit(STATE, &status);
                    crate::tray::refresh(&app);
                }
                Ok(Event::Log(line)) => {
                    let _ = app.emit(LOG, &line);
                }
                Ok(Event::Sample(sample)) => {
                    let _ = app.emit(SAMPLE, &sample);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    });
}

pub fn emit_checklist(app: &tauri::AppHandle, report: &Report) {
    let _ = app.emit(CHECKLIST, report);
}
