//! Gatehouse's core library: everything the server, the CLI and the desktop app share that is not
//! HTTP or a window. It owns where Gatehouse keeps its files ([`paths`]), the typed and validated
//! settings ([`settings`]) and the one way files are written ([`fsutil`]: atomic, private, backed up).
//!
//! Invariant: nothing in this crate opens a socket or spawns a thread on its own.

pub mod fsutil;
pub mod paths;
pub mod settings;

pub use settings::{Settings, SettingsError};

/// The version of Gatehouse, shared by the server's `/info` and the CLI's `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
