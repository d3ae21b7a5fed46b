//! Errors as data for the front ends. Every core error says what went wrong and how to fix it
//! in one sentence (`…; fix: …`), which is what the CLI prints; the panel also needs a stable code
//! to branch on and the fix apart from the message, in its own words where the sentence names a
//! CLI command the panel's user never types.

use std::fmt;

/// An error a front end can show.
pub trait Explain: fmt::Display {
    /// A stable snake_case name, the same for every front end.
    fn code(&self) -> &'static str;

    /// The fix in the panel's words, where the error's own fix is a CLI command.
    fn panel_fix(&self) -> Option<String> {
        None
    }

    /// What went wrong, where the text holds more than one `…; fix: …` sentence.
    fn panel_message(&self) -> Option<String> {
        None
    }
}

/// An error taken apart for the panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    pub code: &'static str,
    pub message: String,
    pub fix: Option<String>,
}

impl Explained {
    pub fn for_panel(error: &(impl Explain + ?Sized)) -> Explained {
        let (message, fix) = split(&error.to_string());
        Explained {
            code: error.code(),
            message: error.panel_message().unwrap_or(message),
            fix: error.panel_fix().or(fix),
        }
    }
}

/// `what; fix: how` → (`what`, `how`); a text without a fix is all message.
pub fn split(text: &str) -> (String, Option<String>) {
    match text.split_once("; fix: ") {
        Some((message, fix)) => (message.to_string(), Some(fix.to_string())),
        None => (text.to_string(), None),
    }
}

/// Whether a fix tells the person to type a command, which the panel must never show.
pub fn names_a_command(fix: &str) -> bool {
    fix.contains("`gatehouse ") || fix.contains("`chmod ")
}

impl Explain for crate::keys::KeyError {
    fn code(&self) -> &'static str {
        use crate::keys::KeyError::*;
        match self {
            KeychainUnavailable { .. } => "keychain_unavailable",
            KeychainLocked { .. } => "keychain_locked",
            KeychainRefused { .. } => "keychain_refused",
            NotInKeychain { .. } => "key_not_in_keychain",
            HashOnly { .. } => "key_hash_only",
            UnknownKey { .. } => "unknown_key",
            AlreadyRevoked { .. } => "key_already_revoked",
            RevokedNotRevealable { .. } => "key_revoked",
            InvalidScope { .. } => "invalid_scope",
            InvalidDuration { .. } => "invalid_duration",
            InvalidName => "invalid_key_name",
            InvalidModel { .. } => "invalid_model",
            Malformed { .. } => "keys_file_malformed",
            Io { .. } => "keys_file_io",
            Random(_) => "random_failed",
        }
    }

    fn panel_fix(&self) -> Option<String> {
        use crate::keys::KeyError::*;
        match self {
            NotInKeychain { .. } => Some(
                "if it was deleted there, choose Rotate beside the key on the Keys page to get a new one"
                    .into(),
            ),
            UnknownKey { .. } => Some("the Keys page lists the keys there are".into()),
            _ => None,
        }
    }
}

impl Explain for crate::certs::CertError {
    fn code(&self) -> &'static str {
        use crate::certs::CertError::*;
        match self {
            Keychain(error) => error.code(),
            NoAuthority => "no_local_ca",
            AuthorityKeyMissing => "local_ca_key_missing",
            Invalid { .. } => "invalid_certificate_input",
            Unreadable { .. } => "certificate_unreadable",
            Write { .. } => "certificate_write_failed",
            Mismatch { .. } => "certificate_mismatch",
            Imported { .. } => "certificate_imported",
            OutsideAuthority { .. } => "outside_local_ca",
            Lifetime { .. } => "certificate_lifetime",
            Generation(_) => "certificate_generation_failed",
        }
    }

    fn panel_fix(&self) -> Option<String> {
        use crate::certs::CertError::*;
        match self {
            Keychain(error) => error.panel_fix(),
            NoAuthority => Some("turn TLS on on the Certificates page first: it creates the local CA".into()),
            AuthorityKeyMissing | OutsideAuthority { .. } => Some(
                "make a new local CA on the Certificates page (clients must then trust the new CA certificate)".into(),
            ),
            Imported { .. } => Some(
                "import a renewed certificate from its issuer, or choose “Use a local-CA certificate instead” on the \
                 Certificates page"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl Explain for crate::settings::SettingsError {
    fn code(&self) -> &'static str {
        use crate::settings::SettingsError::*;
        match self {
            Unreadable { .. } => "settings_unreadable",
            Malformed { .. } => "settings_malformed",
            Invalid(_) => "invalid_settings",
            Write { .. } => "settings_write_failed",
        }
    }

    fn panel_message(&self) -> Option<String> {
        let crate::settings::SettingsError::Invalid(problems) = self else {
            return None;
        };
        let each: Vec<String> = problems
            .iter()
            .map(|problem| match &problem.source {
                Some(source) => format!("{} (from {source}): {}", problem.field, problem.message),
                None => format!("{}: {}", problem.field, problem.message),
            })
            .collect();
        Some(format!("invalid settings: {}", each.join("; ")))
    }

    fn panel_fix(&self) -> Option<String> {
        let crate::settings::SettingsError::Invalid(problems) = self else {
            return None;
        };
        let fixes: Vec<String> = problems
            .iter()
            .map(|problem| {
                let fix = crate::settings::panel_fix(&problem.field)
                    .map_or_else(|| problem.fix.clone(), str::to_string);
                format!("{}: {fix}", problem.field)
            })
            .collect();
        Some(fixes.join("; "))
    }
}

impl Explain for crate::checklist::FixError {
    fn panel_message(&self) -> Option<String> {
        use crate::checklist::FixError::*;
        match self {
            Settings(error) => error.panel_message(),
            Tls(error) => error.panel_message(),
            _ => None,
        }
    }

    fn code(&self) -> &'static str {
        use crate::checklist::FixError::*;
        match self {
            Settings(error) => error.code(),
            Tls(error) => error.code(),
            Keys(error) => error.code(),
            Certificates(error) => error.code(),
            Mode { .. } => "file_mode",
        }
    }

    fn panel_fix(&self) -> Option<String> {
        use crate::checklist::FixError::*;
        match self {
            Keys(error) => error.panel_fix(),
            Certificates(error) => error.panel_fix(),
            Mode { path, .. } => Some(format!(
                "make {} readable and writable by you alone (mode 0600) in your file manager's permissions",
                path.display()
            )),
            Settings(error) => error.panel_fix(),
            Tls(error) => error.panel_fix(),
        }
    }
}

impl Explain for crate::exposure::ExposeError {
    fn panel_message(&self) -> Option<String> {
        match self {
            crate::exposure::ExposeError::Settings(error) => error.panel_message(),
            _ => None,
        }
    }

    fn code(&self) -> &'static str {
        use crate::exposure::ExposeError::*;
        match self {
            Duration(_) => "invalid_duration",
            NoTls => "exposure_needs_tls",
            NoAuth => "exposure_needs_auth",
            Loopback(_) => "exposure_on_loopback",
            Settings(error) => error.code(),
        }
    }

    fn panel_fix(&self) -> Option<String> {
        use crate::exposure::ExposeError::*;
        match self {
            NoTls => Some("turn TLS on on the Certificates page, then open the exposure again".into()),
            NoAuth => Some("turn authentication on on the Network page".into()),
            Settings(error) => error.panel_fix(),
            _ => None,
        }
    }
}

impl Explain for crate::ops::EnableTlsError {
    fn panel_message(&self) -> Option<String> {
        match self {
            crate::ops::EnableTlsError::Settings(error) => error.panel_message(),
            crate::ops::EnableTlsError::Certificates(_) => None,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            crate::ops::EnableTlsError::Certificates(error) => error.code(),
            crate::ops::EnableTlsError::Settings(error) => error.code(),
        }
    }

    fn panel_fix(&self) -> Option<String> {
        match self {
            crate::ops::EnableTlsError::Certificates(error) => error.panel_fix(),
            crate::ops::EnableTlsError::Settings(error) => error.panel_fix(),
        }
    }
}

impl Explain for crate::export::ExportError {
    fn code(&self) -> &'static str {
        use crate::export::ExportError::*;
        match self {
            InvalidName { .. } => "invalid_name",
            NoModels { .. } => "no_models",
            UnknownModel { .. } => "unknown_model",
            Io { .. } => "export_io",
            Settings(error) => error.code(),
            Foreign { .. } => "foreign_file",
        }
    }
}

impl Explain for crate::probe::ProbeError {
    fn code(&self) -> &'static str {
        use crate::probe::ProbeError::*;
        match self {
            Timeout { .. } => "probe_timeout",
            Connect { .. } => "probe_connect",
            Handshake { .. } => "probe_handshake",
            Protocol { .. } => "probe_protocol",
            Url { .. } => "probe_url",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::certs::CertError;
    use crate::exposure::ExposeError;
    use crate::keys::KeyError;
    use crate::settings::{Settings, SettingsError};

    #[test]
    fn the_message_and_the_fix_come_apart() {
        let explained = Explained::for_panel(&KeyError::InvalidScope { given: "root".into() });
        assert_eq!(explained.code, "invalid_scope");
        assert_eq!(explained.message, "`root` is not a scope");
        assert_eq!(
            explained.fix.as_deref(),
            Some("use infer, workflows, metrics or admin")
        );
    }

    #[test]
    fn no_error_whose_fix_is_a_cli_command_shows_it_in_the_panel() {
        let mut invalid = Settings::default();
        invalid.set("server.host", "0.0.0.0").unwrap();
        invalid.set("grpc.port", "9001").unwrap();
        invalid.set("server.exposed_until", "soon").unwrap();
        let Err(settings) = invalid.validate() else {
            panic!("these settings are invalid");
        };
        let errors: Vec<Box<dyn Explain>> = vec![
            Box::new(CertError::NoAuthority),
            Box::new(CertError::AuthorityKeyMissing),
            Box::new(CertError::Imported {
                path: PathBuf::from("/x/server.pem"),
            }),
            Box::new(CertError::OutsideAuthority {
                names: vec!["gatehouse.lan".into()],
            }),
            Box::new(CertError::Keychain(KeyError::NotInKeychain { id: "k1".into() })),
            Box::new(KeyError::UnknownKey { id: "k1".into() }),
            Box::new(ExposeError::NoTls),
            Box::new(ExposeError::NoAuth),
            Box::new(crate::checklist::FixError::Mode {
                path: PathBuf::from("/x/keys.toml"),
                source: std::io::Error::other("denied"),
            }),
            Box::new(settings),
        ];
        for error in errors {
            let cli = error.to_string();
            let explained = Explained::for_panel(error.as_ref());
            let fix = explained.fix.unwrap_or_default();
            assert!(!fix.is_empty(), "{cli}: no fix for the panel");
            assert!(
                !names_a_command(&fix),
                "{}: the panel would show `{fix}`",
                explained.code
            );
            assert!(!names_a_command(&explained.message), "{}", explained.message);
        }
    }

    #[test]
    fn a_settings_error_keeps_every_problem_for_the_panel() {
        let Err(error) = Settings::parse("[limits]\nmax_body_bytes = 10\n")
            .unwrap()
            .validate()
        else {
            panic!("10 bytes is too small a body limit");
        };
        assert!(matches!(error, SettingsError::Invalid(_)));
        let explained = Explained::for_panel(&error);
        assert_eq!(explained.code, "invalid_settings");
        assert!(explained.fix.unwrap().starts_with("limits.max_body_bytes: "));
        // Every problem is in the message, not only the first sentence's.
        let Err(two) = Settings::parse("[limits]\nmax_body_bytes = 10\n[inference]\nintra_threads = 0\n")
            .unwrap()
            .validate()
        else {
            panic!("both values are out of range");
        };
        let explained = Explained::for_panel(&two);
        assert!(
            explained.message.contains("inference.intra_threads")
                && explained.message.contains("limits.max_body_bytes"),
            "{}",
            explained.message
        );
    }
}
