//! What makes settings usable: every value passes its row's check in the settings table, and no
//! combination is one the table's rules refuse as insecure (the network without TLS or keys)
//! unless the person said they mean it.

use super::table::{ROWS, RULES};
use super::*;

impl Settings {
    /// Checks the whole struct and returns every problem found, in the table's order.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let tree = toml::Table::try_from(self).unwrap_or_default();
        let problems: Vec<Problem> = ROWS
            .iter()
            .flat_map(|row| row.problems(self, &tree))
            .chain(RULES.iter().flat_map(|rule| rule(self)))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::Invalid(problems))
        }
    }
}
