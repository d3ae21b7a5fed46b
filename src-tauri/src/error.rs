//! The one error the window sees: a stable code to branch on, what went wrong, and how to fix it
//! in the panel's own words (never a CLI command the person would have to type).

use gatehouse_core::explain::{Explain, Explained};
use serde::Serialize;

#[derive(Debug, Serialize, ts_rs::TS)]
pub struct CommandError {
    pub code: String,
    pub message: String,
    pub fix: Option<String>,
}

/// The panel's own failures, beside the codes core errors carry ([`Explain::code`]).
#[derive(Debug, Clone, Copy)]
pub enum Code {
    ServerNotRunning,
    ServerNotVerified,
    ServerRefused,
    WriteFailed,
    NoFix,
    EventsUnreadable,
    AuditUnreadable,
    NoNetworkAddress,
    Autostart,
    /// A bug in Gatehouse: a task that panicked, a type that would not serialise.
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ServerNotRunning => "server_not_running",
            Code::ServerNotVerified => "server_not_verified",
            Code::ServerRefused => "server_refused",
            Code::WriteFailed => "write_failed",
            Code::NoFix => "no_fix",
            Code::EventsUnreadable => "events_unreadable",
            Code::AuditUnreadable => "audit_unreadable",
            Code::NoNetworkAddress => "no_network_address",
            Code::Autostart => "autostart_failed",
            Code::Internal => "internal",
        }
    }
}

impl CommandError {
    pub fn new(code: Code, message: impl Into<String>, fix: impl Into<String>) -> CommandError {
        CommandError {
            code: code.as_str().into(),
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

impl<E: Explain> From<E> for CommandError {
    fn from(error: E) -> Self {
        let Explained { code, message, fix } = Explained::for_panel(&error);
        CommandError {
            code: code.into(),
            message,
            fix,
        }
    }
}

/// For failures that are Gatehouse's own bug: said as such, with what failed.
pub fn internal(what: &str, error: impl std::fmt::Display) -> CommandError {
    CommandError::new(
        Code::Internal,
        format!("{what} failed: {error}"),
        "this is a bug in Gatehouse; the Logs page has the details",
    )
}

pub type CommandResult<T> = Result<T, CommandError>;
