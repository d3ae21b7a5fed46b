//! Gatehouse's core library: everything the server, the CLI and the desktop app share that is not
//! HTTP or a window. It owns where Gatehouse keeps its files ([`paths`]), the typed and validated
//! settings ([`settings`]), API keys and their verification ([`keys`]), certificates ([`certs`]),
//! the audit log ([`audit`]), the one way files are written ([`fsutil`]: atomic, private, backed
//! up), the live security checklist ([`checklist`], probing through [`probe`]) and the supervisor
//! that keeps `gatehouse serve` running ([`supervisor`]).
//!
//! Invariant: this crate never serves. It connects only as a client (the checklist's probes, the
//! supervisor's readiness and metrics polls) and spawns only the server it supervises; the async
//! parts run on the caller's tokio runtime.

pub mod audit;
pub mod certs;
pub mod checklist;
pub mod detect;
pub mod duration;
pub mod events;
pub mod explain;
pub mod export;
pub mod exposure;
pub mod fsutil;
pub mod guard;
pub mod keys;
pub mod net;
pub mod ops;
pub mod paths;
pub mod ports;
pub mod probe;
pub mod sensitive;
pub mod settings;
pub mod supervisor;
pub mod wire;

pub use sensitive::Sensitive;
pub use settings::{Settings, SettingsError};

/// The version of Gatehouse, shared by the server's `/info` and the CLI's `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
