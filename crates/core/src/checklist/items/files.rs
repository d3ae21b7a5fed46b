//! File modes: secrets readable by their owner alone.

use super::*;

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
