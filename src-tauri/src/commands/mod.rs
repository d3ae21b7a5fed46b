//! The window's commands: each parses its input, calls core and maps the result. One module per
//! page of the panel; `bindings` declares every type they exchange for the TypeScript side.

pub mod certs;
pub mod keys;
pub mod models;
pub mod server;
pub mod settings;

use std::sync::Arc;

use tauri::State;

use crate::AppState;

pub type Shared<'a> = State<'a, Arc<AppState>>;
