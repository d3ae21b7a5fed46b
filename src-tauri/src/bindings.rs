//! The TypeScript declarations of everything the window receives and sends, generated from the
//! Rust definitions so the two sides cannot drift apart. `ui/src/lib/bindings.ts` is this output;
//! a test fails when it is stale (`GATEHOUSE_WRITE_BINDINGS=1 cargo test -p gatehouse-app bindings`
//! rewrites it).

use gatehouse_core::{certs, checklist, keys, settings, supervisor};
use ts_rs::{Config, TS};

use crate::commands::{certs as certs_page, keys as keys_page, models, server, settings as settings_page};

const HEADER: &str =
    "// Generated from the Rust types by src-tauri/src/bindings.rs; do not edit by hand.\n\n";

pub fn typescript() -> String {
    // Counters and sizes fit a JavaScript number; `bigint` would not survive JSON anyway.
    let config = Config::new().with_large_int("number");
    let mut out = String::from(HEADER);
    macro_rules! declare {
        ($($ty:ty),* $(,)?) => {$(
            out.push_str("export ");
            out.push_str(&<$ty as TS>::decl(&config));
            out.push_str("\n\n");
        )*};
    }
    declare!(
        supervisor::State,
        supervisor::Status,
        supervisor::LogLine,
        supervisor::Sample,
        checklist::Status,
        checklist::Evidence,
        checklist::Fix,
        checklist::ItemId,
        checklist::Item,
        checklist::ReportKind,
        checklist::Summary,
        checklist::Report,
        keys::Scope,
        keys::Storage,
        keys::KeyRecord,
        certs::CertRole,
        certs::CertInfo,
        certs::Initialised,
        settings::Settings,
        settings::ServerSettings,
        settings::MetricsAccess,
        settings::GrpcSettings,
        settings::TlsSettings,
        settings::CorsSettings,
        settings::AuthSettings,
        settings::InferenceSettings,
        settings::LimitSettings,
        settings::AuditSettings,
        settings::LogSettings,
        settings::WorkflowSettings,
        gatehouse_core::guard::GuardSettings,
        gatehouse_core::detect::Detected,
        gatehouse_core::detect::PresetChoice,
        gatehouse_core::wire::ServerInfo,
        gatehouse_core::wire::Guarding,
        gatehouse_core::wire::UpstreamOutput,
        gatehouse_core::wire::CanarySeen,
        gatehouse_core::wire::PythonSandbox,
        gatehouse_core::wire::KeyInUrl,
        crate::error::CommandError,
        server::FixOutcome,
        keys_page::CreatedKey,
        keys_page::Share,
        certs_page::CertRow,
        certs_page::IssuedClient,
        certs_page::ExportedCa,
        settings_page::SettingChange,
        settings_page::NetworkChoices,
        settings_page::WizardStep,
        settings_page::WizardProgress,
        gatehouse_core::wire::ModelState,
        gatehouse_core::wire::IndexEntry,
        models::Guess,
        models::TryResult,
        gatehouse_core::events::Severity,
        gatehouse_core::events::Event,
        crate::alerts::Notification,
        gatehouse_core::audit::chain::Tamper,
        gatehouse_core::audit::chain::Finding,
        gatehouse_core::audit::chain::Verdict,
        server::AuditView,
    );
    format!("{}\n", out.trim_end())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bindings_file_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/src/lib/bindings.ts");
        let generated = super::typescript();
        if std::env::var_os("GATEHOUSE_WRITE_BINDINGS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "ui/src/lib/bindings.ts is stale: a Rust type the window uses changed. Regenerate it with \
             `GATEHOUSE_WRITE_BINDINGS=1 cargo test -p gatehouse-app bindings`"
        );
    }
}
