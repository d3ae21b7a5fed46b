//! The one way Gatehouse writes a file that matters: to a temporary file in the same directory,
//! fsynced, with mode 0600, then renamed over the target, with the previous version kept as
//! `<name>.bak`. A crash or a full disk at any point leaves either the old file or the new one,
//! never half of each.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode for every file Gatehouse writes: the owner may read and write it, nobody else may look.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode for the directories that hold those files.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Creates `dir` (and its parents) with mode 0700 if it does not exist yet.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
}

/// The path of the backup kept beside `path`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".bak");
    path.with_file_name(name)
}

/// Replaces `path` with `contents` atomically, keeping the previous version as `<path>.bak`.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    ensure_private_dir(dir)?;
    let mut temporary = tempfile::Builder::new()
        .prefix(".gatehouse-")
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(PRIVATE_FILE_MODE))
        .tempfile_in(dir)?;
    temporary.write_all(contents)?;
    temporary.as_file().sync_all()?;
    if path.exists() {
        // A hard link would be cheaper, but a copy keeps the backup's mode under our control.
        let backup = backup_path(path);
        fs::copy(path, &backup)?;
        fs::set_permissions(&backup, fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
    }
    temporary.persist(path).map_err(|error| error.error)?;
    // The rename is durable only once the directory entry is on disk.
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// A TOML file's parse error as Gatehouse reports it: what is wrong, and on which line, so a
/// person editing the file by hand can go straight to it.
pub fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let position = error.span().map(|span| {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        format!(" (line {line})")
    });
    format!("{}{}", error.message().trim_end(), position.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_private_files_and_keeps_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/settings.toml");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::read(backup_path(&path)).unwrap(), b"first");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, PRIVATE_FILE_MODE);
        let dir_mode = fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, PRIVATE_DIR_MODE);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.toml");
        write_atomic(&path, b"good").unwrap();
        // A directory where the target should be makes the final rename fail.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"").unwrap();
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"good");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
    }
}
