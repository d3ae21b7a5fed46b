//! Security events in the panel: every two seconds the panel catches up on the audit log (so the
//! feed is current even while no server runs), sends each new event to the window, and raises a
//! desktop notification for warnings and worse — at most one every 30 seconds, the ones held back
//! counted in the next. A notification says what happened in words; events never hold a key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_core::events::{self, Event, Severity};
use serde::Serialize;
use tauri::Emitter;

use crate::AppState;

pub const SECURITY_EVENT: &str = "app://security-event";
const POLL: Duration = Duration::from_secs(2);
const QUIET: Duration = Duration::from_secs(30);
/// Notifications remembered for the window (and the tests).
const KEEP: usize = 20;

/// A notification the panel raised.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct Notification {
    pub title: String,
    pub body: String,
    /// The desktop took it (a notification service answered); false where none runs.
    pub delivered: bool,
}

/// Decides which events become notifications, and when.
#[derive(Debug, Default)]
pub struct Notifier {
    last: Option<Instant>,
    held: Vec<Event>,
}

impl Notifier {
    /// The notification to raise now, if any, for `new` events at `now`.
    pub fn offer(&mut self, new: &[Event], now: Instant) -> Option<(String, String)> {
        self.held
            .extend(new.iter().filter(|e| e.severity >= Severity::Warning).cloned());
        if self.held.is_empty() || self.last.is_some_and(|t| now.duration_since(t) < QUIET) {
            return None;
        }
        self.last = Some(now);
        let held = std::mem::take(&mut self.held);
        let worst = held.iter().map(|e| e.severity).max().unwrap_or(Severity::Warning);
        let title = match worst {
            Severity::Critical => "Gatehouse: critical security event",
            _ => "Gatehouse: security warning",
        };
        let latest = &held[held.len() - 1];
        let body = match held.len() {
            1 => latest.summary.clone(),
            n => format!("{} (and {} more; see Events in the panel)", latest.summary, n - 1),
        };
        Some((title.to_string(), body))
    }
}

/// Shows a notification through the desktop's notification service (freedesktop.org's, which
/// GNOME, KDE and the others run), on the session bus the tray already uses.
fn show(title: &str, body: &str) -> bool {
    let Ok(bus) = zbus::blocking::Connection::session() else {
        return false;
    };
    let hints: HashMap<&str, zbus::zvariant::Value<'_>> =
        HashMap::from([("urgency", zbus::zvariant::Value::U8(1))]);
    bus.call_method(
        Some("org.freedesktop.Notifications"),
        "/org/freedesktop/Notifications",
        Some("org.freedesktop.Notifications"),
        "Notify",
        &(
            "Gatehouse",
            0u32,
            "dialog-warning",
            title,
            body,
            Vec::<&str>::new(),
            hints,
            -1i32,
        ),
    )
    .is_ok()
}

/// Raises a desktop notification and remembers it for the window. Blocking (a D-Bus call).
pub fn notify(state: &AppState, title: &str, body: &str) {
    let delivered = show(title, body);
    if let Ok(mut shown) = state.notifications.lock() {
        shown.push(Notification {
            title: title.to_string(),
            body: body.to_string(),
            delivered,
        });
        let excess = shown.len().saturating_sub(KEEP);
        shown.drain(..excess);
    }
}

pub fn watch(app: tauri::AppHandle, state: Arc<AppState>) {
    tauri::async_runtime::spawn(async move {
        let mut follow = events::Follow::from_now(&state.paths);
        let mut notifier = Notifier::default();
        let mut ticks = 0u32;
        loop {
            tokio::time::sleep(POLL).await;
            let paths = state.paths.clone();
            let caught_up = tokio::task::spawn_blocking(move || {
                events::catch_up(&paths, time::OffsetDateTime::now_utc())
            })
            .await;
            if !matches!(caught_up, Ok(Ok(_))) {
                continue;
            }
            let new = follow.recorded();
            for event in &new {
                let _ = app.emit(SECURITY_EVENT, event);
            }
            if let Some((title, body)) = notifier.offer(&new, Instant::now()) {
                let state = state.clone();
                let _ = tokio::task::spawn_blocking(move || notify(&state, &title, &body)).await;
            }
            // The tray's exposure countdown moves on even when nothing else changes.
            ticks += 1;
            if ticks.is_multiple_of(15) {
                crate::tray::refresh(&app);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(severity: Severity, summary: &str) -> Event {
        Event {
            time: "2026-12-03T10:00:00Z".into(),
            severity,
            kind: "auth_burst".into(),
            summary: summary.into(),
            evidence: serde_json::json!({}),
        }
    }

    #[test]
    fn warnings_are_notified_at_most_every_thirty_seconds_with_the_rest_counted() {
        let mut notifier = Notifier::default();
        let start = Instant::now();
        assert_eq!(
            notifier.offer(&[event(Severity::Info, "new address")], start),
            None
        );
        let (title, body) = notifier
            .offer(&[event(Severity::Warning, "10 failed")], start)
            .unwrap();
        assert_eq!(
            (title.as_str(), body.as_str()),
            ("Gatehouse: security warning", "10 failed")
        );
        let later = start + Duration::from_secs(5);
        assert_eq!(
            notifier.offer(&[event(Severity::Warning, "lockout")], later),
            None
        );
        assert_eq!(
            notifier.offer(&[event(Severity::Critical, "custom Python on")], later),
            None
        );
        let (title, body) = notifier.offer(&[], start + Duration::from_secs(31)).unwrap();
        assert_eq!(title, "Gatehouse: critical security event");
        assert_eq!(body, "custom Python on (and 1 more; see Events in the panel)");
        assert_eq!(notifier.offer(&[], start + Duration::from_secs(70)), None);
    }
}
