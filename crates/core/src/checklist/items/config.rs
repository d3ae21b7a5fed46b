//! What is read from files rather than probed: keys, file modes, the audit log.

use super::*;

/// The items read from files rather than probed.
pub(in crate::checklist) fn configuration_items(paths: &Paths, settings: &Settings) -> Vec<Item> {
    let mut items = keys(paths, settings);
    items.push(file_permissions(paths, settings));
    items.push(audit(paths, settings));
    items
}

pub(in crate::checklist) fn keys(paths: &Paths, settings: &Settings) -> Vec<Item> {
    let file = paths.keys_file();
    let source = format!("read {}", file.display());
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return vec![item(
                ItemId::KeysExist,
                Status::Unknown,
                "keys.toml cannot be read",
                vec![evidence(source, error.to_string())],
                None,
            )];
        }
    };
    let parsed = match KeyFile::parse(&text) {
        Ok(parsed) => parsed,
        Err(error) => {
            return vec![item(
                ItemId::KeysExist,
                Status::Fail,
                "keys.toml is broken; the server keeps the last good set",
                vec![evidence(source, error)],
                None,
            )];
        }
    };
    let now = OffsetDateTime::now_utc();
    let active: Vec<_> = parsed
        .keys
        .iter()
        .filter(|k| k.state(now) == KeyState::Active)
        .collect();
    let ids = |keys: &[&&crate::keys::KeyRecord]| {
        keys.iter()
            .map(|k| format!("{} ({})", k.id, k.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut items = Vec::new();
    let count = evidence(
        &source,
        format!("{} active of {} keys", active.len(), parsed.keys.len()),
    );
    items.push(if !active.is_empty() {
        item(
            ItemId::KeysExist,
            Status::Pass,
            format!("{} active key(s)", active.len()),
            vec![count],
            None,
        )
    } else if settings.auth.enabled {
        item(
            ItemId::KeysExist,
            Status::Warn,
            "no active key: every protected request is refused",
            vec![count],
            Some(Fix::CreateKey {
                name: "first key".into(),
                scopes: vec![Scope::Infer],
                expires: "90d".into(),
            }),
        )
    } else {
        item(
            ItemId::KeysExist,
            Status::Warn,
            "no active key",
            vec![count],
            None,
        )
    });
    let forever: Vec<_> = active.iter().filter(|k| k.expires.is_none()).collect();
    items.push(if forever.is_empty() {
        item(
            ItemId::KeysExpiry,
            Status::Pass,
            "every active key has an expiry",
            vec![evidence(&source, "all active keys have `expires`")],
            None,
        )
    } else {
        item(
            ItemId::KeysExpiry,
            Status::Warn,
            format!("{} key(s) never expire", forever.len()),
            vec![evidence(&source, format!("no expiry: {}", ids(&forever)))],
            None,
        )
    });
    let old: Vec<_> = active
        .iter()
        .filter(|k| (now - k.created).whole_days() > ROTATION_DAYS)
        .collect();
    items.push(if old.is_empty() {
        item(
            ItemId::KeysAge,
            Status::Pass,
            format!("no active key is older than {ROTATION_DAYS} days"),
            vec![evidence(&source, "creation dates checked")],
            None,
        )
    } else {
        item(
            ItemId::KeysAge,
            Status::Warn,
            format!(
                "{} key(s) older than {ROTATION_DAYS} days; rotate them",
                old.len()
            ),
            vec![evidence(
                &source,
                format!("older than {ROTATION_DAYS} days: {}", ids(&old)),
            )],
            None,
        )
    });
    let mixed: Vec<_> = active
        .iter()
        .filter(|k| {
            k.scopes.contains(&Scope::Admin)
                && (k.scopes.contains(&Scope::Infer) || k.scopes.contains(&Scope::Workflows))
        })
        .collect();
    items.push(if mixed.is_empty() {
        item(
            ItemId::KeysSeparation,
            Status::Pass,
            "no key both administers and runs models",
            vec![evidence(&source, "scopes checked")],
            None,
        )
    } else {
        item(
            ItemId::KeysSeparation,
            Status::Warn,
            format!("{} key(s) combine admin with inference", mixed.len()),
            vec![evidence(
                &source,
                format!("admin and infer/workflows: {}", ids(&mixed)),
            )],
            None,
        )
    });
    let in_keychain = parsed
        .keys
        .iter()
        .filter(|k| k.storage == Storage::Keychain)
        .count();
    let leaked = secret_in(&text) == Some("an API key");
    items.push(if leaked {
        item(
            ItemId::KeysStorage,
            Status::Fail,
            "keys.toml contains key text",
            vec![evidence(&source, "a full API key appears in the file")],
            None,
        )
    } else {
        item(
            ItemId::KeysStorage,
            Status::Pass,
            "keys.toml holds hashes only",
            vec![evidence(
                &source,
                format!(
                    "no key text in the file; {in_keychain} key(s) in the keychain, {} hash-only",
                    parsed.keys.len() - in_keychain
                ),
            )],
            None,
        )
    });
    items
}

pub(in crate::checklist) fn file_permissions(paths: &Paths, settings: &Settings) -> Item {
    let files = CertFiles::new(paths.certs_dir());
    let mut candidates: Vec<PathBuf> = vec![paths.settings_file(), paths.keys_file(), paths.audit_log()];
    candidates.push(settings.tls.key.clone().unwrap_or_else(|| files.server_key()));
    if let Ok(entries) = std::fs::read_dir(paths.certs_dir().join("clients")) {
        candidates.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with("-key.pem")),
        );
    }
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let mut found = Vec::new();
    let mut loose = Vec::new();
    for path in candidates {
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        let mode = metadata.mode() & 0o777;
        let owner_ok = me.is_none_or(|uid| uid == metadata.uid());
        let private = mode & 0o077 == 0;
        found.push(evidence(
            format!("stat {}", path.display()),
            format!(
                "mode {mode:04o}, owner uid {}{}",
                metadata.uid(),
                if owner_ok { "" } else { " (not you)" }
            ),
        ));
        if !private || !owner_ok {
            loose.push(path);
        }
    }
    if loose.is_empty() {
        item(
            ItemId::FilesPermissions,
            Status::Pass,
            format!("{} private file(s), all mode 0600 and yours", found.len()),
            found,
            None,
        )
    } else {
        item(
            ItemId::FilesPermissions,
            Status::Fail,
            format!(
                "readable by others: {}",
                loose
                    .iter()
                    .map(|p| display_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            found,
            Some(Fix::RestrictFileModes { paths: loose }),
        )
    }
}

pub(in crate::checklist) fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

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
