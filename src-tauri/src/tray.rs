//! The tray: an icon coloured by the server's state and a menu to drive it. The menu's text and
//! icon come from [`TrayView::of`], a pure function of the state, so they are tested without a
//! desktop.

use std::sync::Arc;

use gatehouse_core::supervisor::{State, Status};
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};
use tauri_plugin_clipboard_manager::ClipboardExt;

use crate::AppState;

const TRAY_ID: &str = "gatehouse";

/// What the tray shows for a server status.
#[derive(Debug, PartialEq, Eq)]
pub struct TrayView {
    /// `stopped`, `starting`, `ready`, `warning` or `crashed`: the icon's name.
    pub icon: &'static str,
    /// The menu's first line, e.g. "Ready at http://127.0.0.1:9001".
    pub line: String,
    /// In guard mode, the server behind Gatehouse, e.g. "Guarding 127.0.0.1:11434 (ollama)".
    pub guarding: Option<String>,
    /// While the server is open to the network for a while, e.g. "Open to your network: 42 min
    /// left"; the menu then offers to end it, else to open it for 15 min or an hour.
    pub exposure: Option<String>,
    pub can_start: bool,
    pub can_stop: bool,
}

/// "42 min left", "1 h 5 min left"; `None` once the deadline has passed (the panel's words too).
pub fn time_left(until: time::OffsetDateTime, now: time::OffsetDateTime) -> Option<String> {
    let seconds = (until - now).whole_seconds();
    if seconds <= 0 {
        return None;
    }
    let minutes = (seconds + 59) / 60;
    Some(match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min left"),
        (h, 0) => format!("{h} h left"),
        (h, m) => format!("{h} h {m} min left"),
    })
}

impl TrayView {
    pub fn of(
        status: &Status,
        guard: &gatehouse_core::guard::GuardSettings,
        exposed_until: Option<time::OffsetDateTime>,
        now: time::OffsetDateTime,
    ) -> TrayView {
        let (icon, line) = match status.state {
            State::Stopped => ("stopped", "Stopped".to_string()),
            State::Starting => ("starting", "Starting…".to_string()),
            State::Ready => (
                "ready",
                match &status.grpc_address {
                    Some(grpc) => format!("Ready at {} (gRPC {grpc})", status.url.as_deref().unwrap_or("?")),
                    None => format!("Ready at {}", status.url.as_deref().unwrap_or("?")),
                },
            ),
            State::Degraded => ("warning", "Ready, with failing checks".to_string()),
            State::Crashed => ("crashed", "Crashed".to_string()),
            State::CrashLooping => ("crashed", "Crashed repeatedly: stopped".to_string()),
        };
        let running = matches!(status.state, State::Starting | State::Ready | State::Degraded);
        // Gatehouse's readiness waits for the upstream's health route, so "Ready" covers both.
        let guarding = match (&guard.upstream, guard.launch.first()) {
            (Some(upstream), _) => Some(format!(
                "Guarding {} ({})",
                upstream.trim_start_matches("http://"),
                guard.preset
            )),
            (None, Some(program)) => Some(format!(
                "Guarding {program}, started by Gatehouse ({})",
                guard.preset
            )),
            (None, None) => None,
        };
        let exposure = exposed_until
            .and_then(|until| time_left(until, now))
            .map(|left| format!("Open to your network: {left}"));
        TrayView {
            icon,
            line,
            guarding,
            exposure,
            can_start: !running,
            can_stop: running,
        }
    }
}

fn icon(name: &str) -> Option<Image<'static>> {
    let bytes: &'static [u8] = match name {
        "starting" => include_bytes!("../../icons/tray-starting.png"),
        "ready" => include_bytes!("../../icons/tray-ready.png"),
        "warning" => include_bytes!("../../icons/tray-warning.png"),
        "crashed" => include_bytes!("../../icons/tray-crashed.png"),
        _ => include_bytes!("../../icons/tray-stopped.png"),
    };
    Image::from_bytes(bytes).ok()
}

fn menu(app: &AppHandle, view: &TrayView) -> tauri::Result<Menu<tauri::Wry>> {
    let line = MenuItem::with_id(app, "state", &view.line, false, None::<&str>)?;
    let guarding = view
        .guarding
        .as_deref()
        .map(|text| MenuItem::with_id(app, "guarding", text, false, None::<&str>))
        .transpose()?;
    let exposure = match &view.exposure {
        Some(text) => vec![
            MenuItem::with_id(app, "exposure", text, false, None::<&str>)?,
            MenuItem::with_id(
                app,
                "expose_stop",
                "Back to this computer only",
                true,
                None::<&str>,
            )?,
        ],
        None => vec![
            MenuItem::with_id(
                app,
                "expose_15m",
                "Open to my network for 15 min",
                true,
                None::<&str>,
            )?,
            MenuItem::with_id(
                app,
                "expose_1h",
                "Open to my network for 1 hour",
                true,
                None::<&str>,
            )?,
        ],
    };
    let separator3 = PredefinedMenuItem::separator(app)?;
    let start = MenuItem::with_id(app, "start", "Start", view.can_start, None::<&str>)?;
    let stop = MenuItem::with_id(app, "stop", "Stop", view.can_stop, None::<&str>)?;
    let restart = MenuItem::with_id(app, "restart", "Restart", view.can_stop, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open Gatehouse", true, None::<&str>)?;
    let copy = MenuItem::with_id(app, "copy", "Copy endpoint", view.can_stop, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(app)?;
    let separator2 = PredefinedMenuItem::separator(app)?;
    let mut items: Vec<&dyn tauri::menu::IsMenuItem<tauri::Wry>> = vec![&line];
    if let Some(guarding) = &guarding {
        items.push(guarding);
    }
    items.extend([
        &separator as &dyn tauri::menu::IsMenuItem<tauri::Wry>,
        &start,
        &stop,
        &restart,
        &separator3,
    ]);
    items.extend(
        exposure
            .iter()
            .map(|item| item as &dyn tauri::menu::IsMenuItem<tauri::Wry>),
    );
    items.extend([
        &separator2 as &dyn tauri::menu::IsMenuItem<tauri::Wry>,
        &open,
        &copy,
        &quit,
    ]);
    Menu::with_items(app, &items)
}

pub fn build(app: &AppHandle) -> tauri::Result<()> {
    let state = app.state::<Arc<AppState>>();
    let view = view(&state);
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Gatehouse")
        .menu(&menu(app, &view)?)
        .on_menu_event(|app, event| handle(app, event.id().as_ref()));
    if let Some(image) = icon(view.icon) {
        builder = builder.icon(image);
    }
    builder.build(app)?;
    Ok(())
}

/// The tray's view of the settings the server runs with (defaults when the file cannot be read:
/// the server's own start reports that).
fn view(state: &AppState) -> TrayView {
    let settings = gatehouse_core::Settings::effective(&state.paths.settings_file()).unwrap_or_default();
    TrayView::of(
        &state.supervisor.status(),
        &settings.guard,
        gatehouse_core::exposure::deadline(&settings),
        time::OffsetDateTime::now_utc(),
    )
}

/// Brings the tray in line with the server's state.
pub fn refresh(app: &AppHandle) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let state = app.state::<Arc<AppState>>();
    let view = view(&state);
    let _ = tray.set_icon(icon(view.icon));
    if let Ok(menu) = menu(app, &view) {
        let _ = tray.set_menu(Some(menu));
    }
    let mut tooltip = format!("Gatehouse: {}", view.line);
    for extra in [&view.guarding, &view.exposure].into_iter().flatten() {
        tooltip.push_str("; ");
        tooltip.push_str(extra);
    }
    let _ = tray.set_tooltip(Some(tooltip));
}

fn handle(app: &AppHandle, id: &str) {
    let state = app.state::<Arc<AppState>>().inner().clone();
    match id {
        "start" => state.supervisor.start(),
        "restart" => state.supervisor.restart(),
        "stop" => {
            tauri::async_runtime::spawn(async move { state.supervisor.stop().await });
        }
        "open" => show_window(app),
        "copy" => {
            if let Some(url) = state.supervisor.status().url {
                let _ = app.clipboard().write_text(url);
            }
        }
        "quit" => quit(app),
        "expose_15m" | "expose_1h" | "expose_stop" => {
            let done = match id {
                "expose_15m" => crate::commands::settings::expose(&state, "15m").map(|_| ()),
                "expose_1h" => crate::commands::settings::expose(&state, "1h").map(|_| ()),
                _ => crate::commands::settings::end_exposure(&state).map(|_| ()),
            };
            // Refused (no TLS or no keys yet): say why and how to fix it where the click was.
            if let Err(error) = done {
                let state = state.clone();
                std::thread::spawn(move || {
                    crate::alerts::notify(&state, "Gatehouse could not change the exposure", &error.message);
                });
            }
            refresh(app);
        }
        _ => {}
    }
}

/// Stops the server gracefully, then ends the app.
pub fn quit(app: &AppHandle) {
    let state = app.state::<Arc<AppState>>().inner().clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        state.supervisor.stop().await;
        app.exit(0);
    });
}

/// Whether the desktop shows tray icons: a StatusNotifier host (KDE, most other desktops, GNOME
/// with the AppIndicator extension) owns its well-known name on the session bus. Without one, a
/// window hidden to the tray could not be brought back.
pub fn host_present() -> bool {
    let Ok(bus) = zbus::blocking::Connection::session() else {
        return false;
    };
    let Ok(dbus) = zbus::blocking::fdo::DBusProxy::new(&bus) else {
        return false;
    };
    zbus::names::BusName::try_from("org.kde.StatusNotifierWatcher")
        .ok()
        .and_then(|name| dbus.name_has_owner(name).ok())
        .unwrap_or(false)
}

pub fn show_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: State, url: Option<&str>) -> Status {
        Status {
            state,
            since: time::OffsetDateTime::UNIX_EPOCH,
            reason: None,
            url: url.map(str::to_string),
            grpc_address: None,
            pid: None,
            restarts: 0,
            next_restart_ms: None,
        }
    }

    #[test]
    fn each_state_has_its_icon_line_and_actions() {
        let own = gatehouse_core::guard::GuardSettings::default();
        let now = time::OffsetDateTime::now_utc();
        let ready = TrayView::of(
            &status(State::Ready, Some("http://127.0.0.1:9001")),
            &own,
            None,
            now,
        );
        assert_eq!(ready.guarding, None);
        assert_eq!(ready.icon, "ready");
        assert_eq!(ready.line, "Ready at http://127.0.0.1:9001");
        assert!(ready.can_stop && !ready.can_start);
        let with_grpc = Status {
            grpc_address: Some("127.0.0.1:9002".into()),
            ..status(State::Ready, Some("http://127.0.0.1:9001"))
        };
        assert_eq!(
            TrayView::of(&with_grpc, &own, None, now).line,
            "Ready at http://127.0.0.1:9001 (gRPC 127.0.0.1:9002)"
        );
        let degraded = TrayView::of(
            &status(State::Degraded, Some("http://127.0.0.1:9001")),
            &own,
            None,
            now,
        );
        assert_eq!(degraded.icon, "warning");
        let stopped = TrayView::of(&status(State::Stopped, None), &own, None, now);
        assert_eq!(
            (stopped.icon, stopped.can_start, stopped.can_stop),
            ("stopped", true, false)
        );
        let looping = TrayView::of(&status(State::CrashLooping, None), &own, None, now);
        assert_eq!(looping.icon, "crashed");
        assert!(looping.line.contains("stopped"));
        assert_eq!(
            TrayView::of(&status(State::Starting, None), &own, None, now).icon,
            "starting"
        );
        let guarded = gatehouse_core::guard::GuardSettings {
            upstream: Some("http://127.0.0.1:11434".into()),
            preset: "ollama".into(),
            ..Default::default()
        };
        let view = TrayView::of(
            &status(State::Ready, Some("http://127.0.0.1:9001")),
            &guarded,
            None,
            now,
        );
        assert_eq!(
            view.guarding.as_deref(),
            Some("Guarding 127.0.0.1:11434 (ollama)")
        );
        let launched = gatehouse_core::guard::GuardSettings {
            launch: vec!["ollama".into(), "serve".into()],
            preset: "ollama".into(),
            ..Default::default()
        };
        let view = TrayView::of(&status(State::Ready, None), &launched, None, now);
        assert_eq!(
            view.guarding.as_deref(),
            Some("Guarding ollama, started by Gatehouse (ollama)")
        );
        assert_eq!(ready.exposure, None);
        let open = TrayView::of(
            &status(State::Ready, Some("https://192.168.1.20:9001")),
            &own,
            Some(now + time::Duration::minutes(42)),
            now,
        );
        assert_eq!(
            open.exposure.as_deref(),
            Some("Open to your network: 42 min left")
        );
        let over = TrayView::of(
            &status(State::Ready, None),
            &own,
            Some(now - time::Duration::seconds(1)),
            now,
        );
        assert_eq!(over.exposure, None, "a deadline that passed is no exposure");
        assert_eq!(
            time_left(now + time::Duration::minutes(65), now).as_deref(),
            Some("1 h 5 min left")
        );
        assert_eq!(
            time_left(now + time::Duration::seconds(20), now).as_deref(),
            Some("1 min left")
        );
        assert_eq!(
            time_left(now + time::Duration::hours(2), now).as_deref(),
            Some("2 h left")
        );
        for name in ["stopped", "starting", "ready", "warning", "crashed"] {
            assert!(icon(name).is_some(), "{name} icon decodes");
        }
    }
}
