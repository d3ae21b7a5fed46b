//! The audit log's hash chain. Every line carries `seq`, one more than the line before, and
//! `prev`, the SHA-256 of the whole line before it (the first ever line: all zeros); rotation
//! carries both across files. A line changed afterwards no longer matches the `prev` of the line
//! after it, a line removed leaves a gap in `seq`, a line inserted repeats a `seq` or has none.
//!
//! Without a key, someone who can write the file can still rewrite every line after the one they
//! changed; the chain makes a quiet edit impossible, not a thorough one. `gatehouse audit verify`
//! prints the head hash, so a copy of it kept elsewhere pins the past.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

pub fn hash(line: &[u8]) -> String {
    let digest = Sha256::digest(line);
    let mut text = String::with_capacity(71);
    text.push_str("sha256:");
    for byte in digest {
        text.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        text.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    text
}

/// Where the chain stands: the last line's `seq` and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    fn start() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.into(),
        }
    }
}

/// Appends `body` (one JSON object, no newline) to `out` with the chain's fields, and a newline;
/// moves `head` on to it.
pub fn seal(body: &[u8], head: &mut Head, out: &mut Vec<u8>) {
    let start = out.len();
    let seq = head.seq + 1;
    match body.strip_suffix(b"}") {
        Some(inner) if body.starts_with(b"{") => {
            out.extend_from_slice(inner);
            if inner != b"{" {
                out.push(b',');
            }
        }
        // Not an object (no writer makes one): kept whole, as a string, inside one.
        _ => {
            out.extend_from_slice(b"{\"line\":");
            out.extend_from_slice(
                serde_json::to_string(&String::from_utf8_lossy(body))
                    .unwrap_or_default()
                    .as_bytes(),
            );
            out.push(b',');
        }
    }
    out.extend_from_slice(format!("\"seq\":{seq},\"prev\":\"{}\"}}", head.hash).as_bytes());
    head.hash = hash(&out[start..]);
    head.seq = seq;
    out.push(b'\n');
}

/// The `seq` of a line, when it is a chained audit line.
fn seq_of(line: &[u8]) -> Option<(u64, String)> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    Some((
        value.get("seq")?.as_u64()?,
        value.get("prev")?.as_str()?.to_string(),
    ))
}

/// The head after `path`'s last complete line, reading only the end of the file. `None` when
/// the file is missing or empty. A last line without its newline (a write cut short) is hashed
/// as it is; the caller ends it before appending.
pub fn head_of(path: &Path) -> std::io::Result<Option<(Head, bool)>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let size = file.metadata()?.len();
    if size == 0 {
        return Ok(None);
    }
    let mut window = 4096u64;
    loop {
        let from = size.saturating_sub(window);
        file.seek(SeekFrom::Start(from))?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail)?;
        let torn = !tail.ends_with(b"\n");
        let text = tail.strip_suffix(b"\n").unwrap_or(&tail);
        // Lines from the end until one has a `seq` (or the window's start is the file's).
        let lines: Vec<&[u8]> = text.rsplit(|b| *b == b'\n').collect();
        let whole = |i: usize| i + 1 < lines.len() || from == 0;
        let last = lines[0];
        let mut unsequenced = 0;
        for (i, line) in lines.iter().enumerate() {
            if !whole(i) {
                break;
            }
            if let Some((seq, _)) = seq_of(line) {
                return Ok(Some((
                    Head {
                        seq: seq + unsequenced,
                        hash: hash(last),
                    },
                    torn,
                )));
            }
            // A damaged line (not JSON) keeps its place in the numbering, as `verify` counts it.
            if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_err() {
                unsequenced += 1;
            }
        }
        if from == 0 {
            // Lines written before the chain existed: the chain starts from the last of them.
            return Ok(Some((
                Head {
                    seq: 0,
                    hash: hash(last),
                },
                torn,
            )));
        }
        window *= 4;
    }
}

/// The files of the log, oldest first: `audit.jsonl.5` … `audit.jsonl.1`, `audit.jsonl`.
pub fn files(path: &Path, keep: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=keep)
        .rev()
        .map(|n| {
            let mut name = path.file_name().map(|f| f.to_os_string()).unwrap_or_default();
            name.push(format!(".{n}"));
            path.with_file_name(name)
        })
        .filter(|p| p.exists())
        .collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// The head to chain the next line to: the current file's, else the newest rotated file's.
pub fn current_head(path: &Path, keep: u32) -> std::io::Result<(Head, bool)> {
    for file in files(path, keep).iter().rev() {
        if let Some(found) = head_of(file)? {
            // Only the current file can still be appended to; a rotated one's torn end stays.
            return Ok((found.0, found.1 && file == path));
        }
    }
    Ok((Head::start(), false))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Tamper {
    /// The line no longer matches the hash the next line recorded of it.
    Changed,
    /// Lines are missing here: `seq` jumps.
    Removed,
    /// A line that does not belong: no chain fields, or a `seq` already seen.
    Inserted,
    /// Not JSON at all: cut short (a full disk) or overwritten.
    Damaged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct Finding {
    pub tamper: Tamper,
    pub file: String,
    /// 1-based line number in that file.
    pub line: usize,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct Verdict {
    pub whole: bool,
    pub files: Vec<String>,
    pub lines: u64,
    /// Lines written before the chain existed, at the start.
    pub unchained: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub head: String,
    pub findings: Vec<Finding>,
}

struct Seen {
    hash: String,
    seq: u64,
    file: usize,
    line: usize,
}

/// Walks the whole log, oldest line first, and says where the chain breaks.
pub fn verify(path: &Path, keep: u32) -> std::io::Result<Verdict> {
    let files = files(path, keep);
    let names: Vec<String> = files.iter().map(|f| crate::paths::display(f)).collect();
    let mut verdict = Verdict {
        whole: true,
        files: names.clone(),
        lines: 0,
        unchained: 0,
        first_seq: None,
        last_seq: None,
        head: GENESIS.into(),
        findings: Vec::new(),
    };
    // The lines seen so far, for telling an inserted line from a changed one.
    let mut history: Vec<Seen> = Vec::new();
    let finding = |verdict: &mut Verdict, tamper, file: usize, line: usize, detail: String| {
        verdict.findings.push(Finding {
            tamper,
            file: names[file].clone(),
            line,
            detail,
        });
    };
    for (f, file) in files.iter().enumerate() {
        let text = std::fs::read(file)?;
        for (l, line) in text.split(|b| *b == b'\n').enumerate() {
            let number = l + 1;
            if line.is_empty() {
                continue;
            }
            verdict.lines += 1;
            let line_hash = hash(line);
            let parsed: Option<serde_json::Value> = serde_json::from_slice(line).ok();
            let fields = parsed
                .as_ref()
                .and_then(|v| Some((v.get("seq")?.as_u64()?, v.get("prev")?.as_str()?)));
            let Some((seq, prev)) = fields else {
                if parsed.is_none() {
                    finding(
                        &mut verdict,
                        Tamper::Damaged,
                        f,
                        number,
                        "the line is not JSON".into(),
                    );
                    if history.is_empty() {
                        verdict.head = line_hash;
                        continue;
                    }
                } else if history.is_empty() {
                    verdict.unchained += 1;
                    verdict.head = line_hash;
                    continue;
                } else {
                    finding(
                        &mut verdict,
                        Tamper::Inserted,
                        f,
                        number,
                        "the line has no `seq`/`prev`: it was not written by Gatehouse's chain".into(),
                    );
                    continue;
                }
                // A damaged line still takes its place, so what follows it can be checked.
                let seq = history.last().map_or(0, |s| s.seq) + 1;
                history.push(Seen {
                    hash: line_hash,
                    seq,
                    file: f,
                    line: number,
                });
                continue;
            };
            let Some(last) = history.last() else {
                // The oldest line kept: its predecessor may have been rotated away.
                let chained_to_legacy = verdict.unchained > 0 && prev == verdict.head;
                if verdict.unchained > 0 && !chained_to_legacy {
                    finding(
                        &mut verdict,
                        Tamper::Changed,
                        f,
                        number.saturating_sub(1).max(1),
                        "the line before the chain's first line changed".into(),
                    );
                }
                verdict.first_seq = Some(seq);
                history.push(Seen {
                    hash: line_hash,
                    seq,
                    file: f,
                    line: number,
                });
                continue;
            };
            if seq == last.seq + 1 && prev == last.hash {
                // Whole.
            } else if seq == last.seq + 1 {
                let (file, line) = (last.file, last.line);
                finding(
                    &mut verdict,
                    Tamper::Changed,
                    file,
                    line,
                    format!("line {seq} records another text for the line before it"),
                );
            } else if seq > last.seq + 1 {
                let missing = if seq == last.seq + 2 {
                    format!("line {} is missing before this one", last.seq + 1)
                } else {
                    format!("lines {}–{} are missing before this one", last.seq + 1, seq - 1)
                };
                finding(&mut verdict, Tamper::Removed, f, number, missing);
            } else if let Some(at) = history.iter().rposition(|s| s.hash == prev && s.seq + 1 == seq) {
                // This line follows an earlier one: everything after that one was inserted.
                let inserted: Vec<(usize, usize)> =
                    history[at + 1..].iter().map(|s| (s.file, s.line)).collect();
                for (file, line) in inserted {
                    finding(
                        &mut verdict,
                        Tamper::Inserted,
                        file,
                        line,
                        format!("the chain goes from line {} straight to line {seq}", seq - 1),
                    );
                }
                history.truncate(at + 1);
            } else {
                finding(
                    &mut verdict,
                    Tamper::Inserted,
                    f,
                    number,
                    format!("line number {seq} comes after {}", last.seq),
                );
                continue;
            }
            history.push(Seen {
                hash: line_hash,
                seq,
                file: f,
                line: number,
            });
            // Only the recent past is needed to place an insertion.
            if history.len() > 4096 {
                history.drain(..2048);
            }
        }
    }
    if let Some(last) = history.last() {
        verdict.last_seq = Some(last.seq);
        verdict.head = last.hash.clone();
    }
    verdict.findings.sort_by(|a, b| {
        let position = |x: &Finding| (names.iter().position(|n| *n == x.file), x.line);
        position(a).cmp(&position(b))
    });
    verdict.findings.dedup();
    verdict.whole = verdict.findings.is_empty();
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditLog;

    fn log() -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit/audit.jsonl"));
        (dir, log)
    }

    fn event(n: usize) -> Vec<u8> {
        format!("{{\"event\":\"request\",\"n\":{n}}}\n").into_bytes()
    }

    fn lines(log: &AuditLog) -> Vec<String> {
        std::fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn rewrite(log: &AuditLog, lines: &[String]) {
        std::fs::write(
            log.path(),
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
    }

    #[test]
    fn lines_from_several_writers_chain_across_rotation() {
        let (_dir, log) = log();
        let other = AuditLog::new(log.path().to_path_buf());
        log.append(&[event(1), event(2)].concat()).unwrap();
        other.append(&event(3)).unwrap();
        log.append(b"{}\n").unwrap();
        assert!(log.rotate_if_larger(1).unwrap());
        log.append(&event(5)).unwrap();
        let verdict = log.verify().unwrap();
        assert!(verdict.whole, "{verdict:#?}");
        assert_eq!(
            (verdict.lines, verdict.first_seq, verdict.last_seq),
            (5, Some(1), Some(5))
        );
        assert_eq!(verdict.files.len(), 2);
        assert_eq!(verdict.head, log.head().unwrap().hash);
        assert!(lines(&log)[0].starts_with("{\"event\":\"request\",\"n\":5,\"seq\":5,\"prev\":\"sha256:"));
    }

    #[test]
    fn a_changed_a_removed_and_an_inserted_line_are_each_named() {
        let (_dir, log) = log();
        for n in 1..=6 {
            log.append(&event(n)).unwrap();
        }
        let original = lines(&log);
        let findings = |lines: &[String]| {
            rewrite(&log, lines);
            let verdict = log.verify().unwrap();
            assert!(!verdict.whole);
            verdict
                .findings
                .iter()
                .map(|f| (f.tamper, f.line))
                .collect::<Vec<_>>()
        };

        let mut changed = original.clone();
        changed[2] = changed[2].replace("\"n\":3", "\"n\":30");
        assert_eq!(findings(&changed), [(Tamper::Changed, 3)]);

        let mut removed = original.clone();
        removed.remove(3);
        assert_eq!(findings(&removed), [(Tamper::Removed, 4)]);

        // A forged line that copies the chain's fields correctly still breaks the next link.
        let mut forged = original.clone();
        let mut head = Head {
            seq: 2,
            hash: hash(original[1].as_bytes()),
        };
        let mut line = Vec::new();
        seal(b"{\"event\":\"key_created\"}", &mut head, &mut line);
        forged.insert(2, String::from_utf8(line).unwrap().trim_end().to_string());
        assert_eq!(findings(&forged), [(Tamper::Inserted, 3)]);

        let mut naive = original.clone();
        naive.insert(4, "{\"event\":\"request\"}".into());
        assert_eq!(findings(&naive), [(Tamper::Inserted, 5)]);

        let mut torn = original.clone();
        torn[5] = torn[5][..10].to_string();
        assert_eq!(findings(&torn), [(Tamper::Damaged, 6)]);
    }

    #[test]
    fn a_log_from_before_the_chain_is_continued_and_a_cut_line_ended() {
        let (_dir, log) = log();
        std::fs::create_dir_all(log.path().parent().unwrap()).unwrap();
        std::fs::write(
            log.path(),
            "{\"event\":\"old\"}\n{\"event\":\"old\"}\n{\"event\":\"cut",
        )
        .unwrap();
        log.append(&event(1)).unwrap();
        let verdict = log.verify().unwrap();
        assert_eq!(verdict.unchained, 2);
        assert_eq!(
            verdict
                .findings
                .iter()
                .map(|f| (f.tamper, f.line))
                .collect::<Vec<_>>(),
            [(Tamper::Damaged, 3)]
        );
        log.append(&event(2)).unwrap();
        assert_eq!(log.verify().unwrap().last_seq, Some(2));
    }
}
