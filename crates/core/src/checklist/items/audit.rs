//! The audit log: on, and written where it should be.

use super::*;

pub(in crate::checklist) fn audit(paths: &Paths, settings: &Settings) -> Item {
    let log = paths.audit_log();
    if settings.audit.enabled {
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        item(
            ItemId::AuditEnabled,
            Status::Pass,
            "requests and key changes are written to the audit log",
            vec![evidence(
                "settings audit.enabled",
                format!("true; {} holds {size} bytes", log.display()),
            )],
            None,
        )
    } else {
        item(
            ItemId::AuditEnabled,
            Status::Warn,
            "the audit log is off",
            vec![evidence("settings audit.enabled", "false")],
            set("audit.enabled", "true"),
        )
    }
}
