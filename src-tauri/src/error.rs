//! The one error the window sees: what went wrong and, when known, how to fix it.

use serde::Serialize;

#[derive(Debug, Serialize, ts_rs::TS)]
pub struct CommandError {
    pub message: String,
}

impl<E: std::fmt::Display> From<E> for CommandError {
    fn from(error: E) -> Self {
        // Core errors already say what and how to fix it in one sentence.
        CommandError {
            message: error.to_string(),
        }
    }
}

pub type CommandResult<T> = Result<T, CommandError>;
