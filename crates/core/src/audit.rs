//! The audit log: one JSON object per line, appended, never rewritten, each line chained to the
//! one before by its hash ([`chain`]). Writers (the server, the CLI, the panel) take a lock on
//! `audit/.lock`, read where the chain stands from the end of the file, and append their lines
//! with one `write`, so lines from several processes interleave whole and in chain order.
//! Rotation renames `audit.jsonl` to `audit.jsonl.1` (and so on) once it passes a size, under the
//! same lock; the next line chains to the last line of `audit.jsonl.1`.

pub mod chain;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::fsutil;

/// Size at which the server rotates the log.
pub const ROTATE_BYTES: u64 = 16 * 1024 * 1024;
/// Rotated files kept beside the current one.
pub const KEEP_ROTATED: u32 = 5;

/// Who made a change, as the audit log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Cli,
    Panel,
    Checklist,
    /// The server itself, ending an exposure whose time is up.
    Deadline,
}

impl Actor {
    pub fn name(self) -> &'static str {
        match self {
            Actor::Cli => "cli",
            Actor::Panel => "panel",
            Actor::Checklist => "checklist",
            Actor::Deadline => "deadline",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn new(path: PathBuf) -> AuditLog {
        AuditLog { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::io::Result<std::fs::File> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fsutil::ensure_private_dir(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(fsutil::PRIVATE_FILE_MODE)
            .open(dir.join(".lock"))?;
        lock.lock()?;
        Ok(lock)
    }

    /// Appends complete lines (each a JSON object ending with `\n`) in one write, each given
    /// its place in the chain.
    pub fn append(&self, lines: &[u8]) -> std::io::Result<()> {
        let _lock = self.lock()?;
        let (mut head, torn) = chain::current_head(&self.path, KEEP_ROTATED)?;
        let mut out = Vec::with_capacity(lines.len() + lines.len() / 2);
        if torn {
            out.push(b'\n');
        }
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            chain::seal(line, &mut head, &mut out);
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(fsutil::PRIVATE_FILE_MODE)
            .open(&self.path)?;
        file.write_all(&out)
    }

    /// Where the chain stands (`seq` 0 and all zeros before the first line).
    pub fn head(&self) -> std::io::Result<chain::Head> {
        Ok(chain::current_head(&self.path, KEEP_ROTATED)?.0)
    }

    /// Checks the whole chain, across the rotated files.
    pub fn verify(&self) -> std::io::Result<chain::Verdict> {
        chain::verify(&self.path, KEEP_ROTATED)
    }

    /// Appends one event as a JSON line with the current time.
    pub fn record(&self, mut event: serde_json::Map<String, serde_json::Value>) -> std::io::Result<()> {
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        event.insert("time".into(), time.into());
        let mut line = serde_json::to_vec(&event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.append(&line)
    }

    /// Records a change to a key (never its text): event, id, name, scopes and who made it.
    pub fn key_change(&self, event: &str, key: &crate::keys::KeyRecord, actor: Actor) -> std::io::Result<()> {
        let mut line = serde_json::Map::new();
        line.insert("event".into(), event.into());
        line.insert("key_id".into(), key.id.clone().into());
        line.insert("name".into(), key.name.clone().into());
        line.insert(
            "scopes".into(),
            key.scopes
                .iter()
                .map(|s| serde_json::Value::from(s.name()))
                .collect(),
        );
        line.insert("actor".into(), actor.name().into());
        self.record(line)
    }

    /// Records a certificate issued or imported: event, file, names and who did it.
    pub fn certificate_change(
        &self,
        event: &str,
        cert: &crate::certs::CertInfo,
        actor: Actor,
    ) -> std::io::Result<()> {
        let mut line = serde_json::Map::new();
        line.insert("event".into(), event.into());
        line.insert("certificate".into(), cert.path.display().to_string().into());
        line.insert(
            "names".into(),
            cert.names
                .iter()
                .map(|n| serde_json::Value::from(n.as_str()))
                .collect(),
        );
        line.insert("actor".into(), actor.name().into());
        self.record(line)
    }

    /// Rotates when the file has grown past `limit` bytes.
    pub fn rotate_if_larger(&self, limit: u64) -> std::io::Result<bool> {
        let _lock = self.lock()?;
        let size = match std::fs::metadata(&self.path) {
            Ok(meta) => meta.len(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error),
        };
        if size < limit {
            return Ok(false);
        }
        let numbered = |n: u32| {
            let mut name = self
                .path
                .file_name()
                .map(|f| f.to_os_string())
                .unwrap_or_default();
            name.push(format!(".{n}"));
            self.path.with_file_name(name)
        };
        let _ = std::fs::remove_file(numbered(KEEP_ROTATED));
        for n in (1..KEEP_ROTATED).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn lines_are_appended_private_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit/audit.jsonl"));
        let mut event = serde_json::Map::new();
        event.insert("event".into(), "key_created".into());
        log.record(event.clone()).unwrap();
        log.record(event).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 2);
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(value["time"].is_string());
        }
        assert_eq!(
            std::fs::metadata(log.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(log.rotate_if_larger(10).unwrap());
        assert!(!log.path().exists());
        assert!(dir.path().join("audit/audit.jsonl.1").exists());
        assert!(!log.rotate_if_larger(10).unwrap(), "nothing to rotate");
    }
}
