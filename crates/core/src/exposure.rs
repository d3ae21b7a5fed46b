//! Time-limited exposure: the server listens beyond this computer until a deadline stored in
//! `settings.toml` (`server.exposed_until`), then goes back to loopback by itself. The deadline is
//! data, not a timer in one process: every front end that reads the settings through
//! [`crate::Settings::effective`] sees a lapsed exposure as loopback, so a restart of the panel,
//! the supervisor or the machine in between cannot keep the server open.

use std::path::Path;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Settings;
use crate::audit::AuditLog;
use crate::settings::{Changed, SettingsError};

/// The longest exposure `gatehouse expose` opens: beyond it, it is a setting, not a window.
pub const LONGEST: time::Duration = time::Duration::days(7);

/// Why an exposure cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ExposeError {
    #[error("`{0}` is not a duration; give e.g. 15m, 1h or 8h (at most 7 days)")]
    Duration(String),
    #[error(
        "exposure needs TLS, which is off: keys and data would cross the network in plain text; fix: run `gatehouse certs init --host ADDRESS` and `gatehouse settings set tls.enabled true`, then expose again"
    )]
    NoTls,
    #[error("exposure needs authentication, which is off; fix: `gatehouse settings set auth.enabled true`")]
    NoAuth,
    #[error(
        "`{0}` is a loopback address: nothing beyond this computer could connect; give this computer's network address, or leave --host out"
    )]
    Loopback(String),
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

/// `15m`, `1h`, `90s`, `2d`: a window of at most [`LONGEST`].
pub fn parse_window(text: &str) -> Result<time::Duration, ExposeError> {
    let invalid = || ExposeError::Duration(text.to_string());
    let text = text.trim();
    let (count, unit) = crate::duration::count_and_unit(text).ok_or_else(invalid)?;
    let window = crate::duration::span(count, unit).ok_or_else(invalid)?;
    if count <= 0 || window > LONGEST {
        return Err(invalid());
    }
    Ok(window)
}

/// The stored deadline, if the settings have one that reads.
pub fn deadline(settings: &Settings) -> Option<OffsetDateTime> {
    settings
        .server
        .exposed_until
        .as_deref()
        .and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok())
}

/// Puts a lapsed exposure back on loopback; returns the deadline that lapsed.
pub fn apply(settings: &mut Settings, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let deadline = deadline(settings)?;
    if deadline > now {
        return None;
    }
    settings.server.host = "127.0.0.1".into();
    settings.server.exposed_until = None;
    Some(deadline)
}

/// Opens the server to `host` until `now + window`, audited, after checking TLS and keys are on
/// (the rules the wizard applies to any exposure).
pub fn start(
    file: &Path,
    audit: &AuditLog,
    host: &str,
    window: time::Duration,
    now: OffsetDateTime,
    actor: crate::audit::Actor,
) -> Result<(Changed, OffsetDateTime), ExposeError> {
    let settings = Settings::effective(file)?;
    if !settings.tls.enabled {
        return Err(ExposeError::NoTls);
    }
    if !settings.auth.enabled {
        return Err(ExposeError::NoAuth);
    }
    if host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return Err(ExposeError::Loopback(host.to_string()));
    }
    let until = (now + window).replace_nanosecond(0).unwrap_or(now + window);
    let text = until.format(&Rfc3339).unwrap_or_default();
    let changed = crate::settings::change(
        file,
        audit,
        &[("server.host", host), ("server.exposed_until", &text)],
        actor,
    )?;
    Ok((changed, until))
}

/// Ends an exposure now (or when its deadline passed): back to loopback, audited.
pub fn stop(file: &Path, audit: &AuditLog, actor: crate::audit::Actor) -> Result<Changed, SettingsError> {
    crate::settings::change(
        file,
        audit,
        &[("server.host", "127.0.0.1"), ("server.exposed_until", "")],
        actor,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_have_a_unit_and_an_end() {
        assert_eq!(parse_window("15m").unwrap(), time::Duration::minutes(15));
        assert_eq!(parse_window("90s").unwrap(), time::Duration::seconds(90));
        assert_eq!(parse_window("7d").unwrap(), LONGEST);
        for wrong in ["8d", "0m", "-1h", "1w", "h", "", "forever"] {
            assert!(parse_window(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn a_lapsed_deadline_is_loopback_and_a_future_one_stays() {
        let now = OffsetDateTime::now_utc();
        let mut settings = Settings::default();
        settings.server.host = "0.0.0.0".into();
        settings.server.exposed_until = Some((now + time::Duration::hours(1)).format(&Rfc3339).unwrap());
        assert_eq!(apply(&mut settings, now), None);
        assert_eq!(settings.server.host, "0.0.0.0");
        let later = now + time::Duration::hours(2);
        assert!(apply(&mut settings, later).is_some());
        assert_eq!(settings.server.host, "127.0.0.1");
        assert_eq!(settings.server.exposed_until, None);
        // No deadline: a deliberate setting, left as it is.
        let mut open = Settings::default();
        open.server.host = "0.0.0.0".into();
        assert_eq!(apply(&mut open, later), None);
        assert_eq!(open.server.host, "0.0.0.0");
    }
}
