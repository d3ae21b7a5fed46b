//! Gatehouse's core library: everything the server, the CLI and the desktop app share that is not
//! HTTP or a window. It owns where Gatehouse keeps its files ([`paths`]), the typed and validated
//! settings ([`settings`]), API keys and their verification ([`keys`]), the audit log ([`audit`])
//! and the one way files are written ([`fsutil`]: atomic, private, backed up).
//!
//! Invariant: nothing in this crate opens a socket or spawns a thread on its own.

pub mod audit;
pub mod certs;
pub mod fsutil;
pub mod keys;
pub mod paths;
pub mod ports;
pub mod sensitive;
pub mod settings;

pub use sensitive::Sensitive;
pub use settings::{Settings, SettingsError};

/// The version of Gatehouse, shared by the server's `/info` and the CLI's `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
