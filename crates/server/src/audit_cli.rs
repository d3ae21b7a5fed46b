//! `gatehouse audit`: read the audit log and check its hash chain.

use std::io::{BufRead, Seek};
use std::process::ExitCode;

use gatehouse_core::audit::AuditLog;
use gatehouse_core::audit::chain::Tamper;
use gatehouse_core::paths::{self, Paths};
use serde_json::Value;

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check that no line of the audit log was changed, removed or inserted (exit status 1 when
    /// one was), across the rotated files.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Print the last lines of the audit log.
    Tail {
        /// How many lines.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Keep printing lines as they are written.
        #[arg(short, long)]
        follow: bool,
        /// Print the lines as they are stored (JSON), not as text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: AuditCommand, paths: &Paths) -> ExitCode {
    let log = AuditLog::new(paths.audit_log());
    let result = match command {
        AuditCommand::Verify { json } => verify(&log, json),
        AuditCommand::Tail { lines, follow, json } => tail(&log, lines, follow, json).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("gatehouse: {message}");
            ExitCode::from(2)
        }
    }
}

fn verify(log: &AuditLog, json: bool) -> Result<bool, String> {
    let verdict = log.verify().map_err(|e| {
        format!(
            "could not read the audit log {}: {e}; fix: check that the files are readable",
            paths::display(log.path())
        )
    })?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&verdict).map_err(|e| e.to_string())?
        );
        return Ok(verdict.whole);
    }
    if verdict.files.is_empty() {
        println!("no audit log yet at {}", paths::display(log.path()));
        return Ok(true);
    }
    let span = match (verdict.first_seq, verdict.last_seq) {
        (Some(first), Some(last)) => format!("lines {first}–{last} of the chain"),
        _ => "no chained line".into(),
    };
    if verdict.whole {
        println!(
            "the audit chain is whole: {} line(s) in {} file(s), {span}",
            verdict.lines,
            verdict.files.len()
        );
    } else {
        println!(
            "the audit chain is broken: {} finding(s) in {} line(s) ({span})",
            verdict.findings.len(),
            verdict.lines
        );
        for finding in &verdict.findings {
            let what = match finding.tamper {
                Tamper::Changed => "changed",
                Tamper::Removed => "removed",
                Tamper::Inserted => "inserted",
                Tamper::Damaged => "damaged",
            };
            println!("  {}:{}: {what}: {}", finding.file, finding.line, finding.detail);
        }
    }
    if verdict.unchained > 0 {
        println!(
            "{} line(s) at the start were written before the chain existed and cannot be checked",
            verdict.unchained
        );
    }
    println!(
        "head: {}  (keep it elsewhere to pin what has been written so far)",
        verdict.head
    );
    Ok(verdict.whole)
}

/// One line as a person reads it: time, event, who, what, outcome.
fn describe(line: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(line) else {
        return format!("(not JSON) {line}");
    };
    let text = |field: &str| value.get(field).and_then(Value::as_str).unwrap_or("");
    let mut parts = vec![text("time").to_string(), text("event").to_string()];
    match text("event") {
        "request" => {
            parts.push(format!("key={}", value["key_id"].as_str().unwrap_or("-")));
            parts.push(value["address"].as_str().unwrap_or("-").to_string());
            let route = value
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or_else(|| text("route"));
            parts.push(format!("{} {route}", text("method")));
            if let Some(model) = value.get("model").and_then(Value::as_str) {
                parts.push(format!("model={model}"));
            }
            parts.push(value["status"].to_string());
            if let Some(reason) = value.get("reason").and_then(Value::as_str) {
                parts.push(reason.to_string());
            }
            if let Some(us) = value.get("latency_us").and_then(Value::as_u64) {
                parts.push(format!("{:.1} ms", us as f64 / 1000.0));
            }
        }
        _ => {
            for field in ["key_id", "name", "key", "value", "actor", "certificate"] {
                if let Some(v) = value.get(field).filter(|v| !v.is_null()) {
                    let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    parts.push(format!("{field}={shown}"));
                }
            }
        }
    }
    parts.retain(|p| !p.is_empty());
    parts.join("  ")
}

fn tail(log: &AuditLog, count: usize, follow: bool, json: bool) -> Result<(), String> {
    let print = |line: &str| {
        if json {
            println!("{line}");
        } else {
            println!("{}", describe(line));
        }
    };
    let unreadable = |e: std::io::Error| {
        format!(
            "could not read the audit log {}: {e}; fix: check that the file is readable",
            paths::display(log.path())
        )
    };
    let text = match std::fs::read_to_string(log.path()) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => {
            eprintln!("no audit log yet at {}", paths::display(log.path()));
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(unreadable(e)),
    };
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(count)..] {
        print(line);
    }
    if !follow {
        return Ok(());
    }
    // Follow the file by name: after a rotation the new audit.jsonl is read from its start.
    let mut offset = text.len() as u64;
    let mut identity = file_identity(log);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let now = file_identity(log);
        if now != identity {
            offset = 0;
            identity = now;
        }
        let Ok(mut file) = std::fs::File::open(log.path()) else {
            continue;
        };
        file.seek(std::io::SeekFrom::Start(offset)).map_err(unreadable)?;
        let mut reader = std::io::BufReader::new(file);
        let mut line = String::new();
        while reader.read_line(&mut line).map_err(unreadable)? > 0 {
            if !line.ends_with('\n') {
                break;
            }
            offset += line.len() as u64;
            print(line.trim_end());
            line.clear();
        }
    }
}

fn file_identity(log: &AuditLog) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(log.path()).ok().map(|m| m.ino())
}

#[derive(clap::Args)]
pub struct EventsArgs {
    /// How many of the latest events.
    #[arg(short = 'n', long, default_value_t = 20)]
    lines: usize,
    /// Keep printing events as they happen.
    #[arg(short, long)]
    follow: bool,
    /// One JSON object per event.
    #[arg(long)]
    json: bool,
}

/// `gatehouse events`: catches up on the audit log first, so the feed is current even when no
/// server has run since.
pub fn events(args: EventsArgs, paths: &Paths) -> ExitCode {
    use gatehouse_core::events;
    let print = |event: &events::Event| {
        if args.json {
            println!("{}", serde_json::to_string(event).unwrap_or_default());
        } else {
            let severity = match event.severity {
                events::Severity::Info => "info",
                events::Severity::Warning => "WARNING",
                events::Severity::Critical => "CRITICAL",
            };
            println!("{}  {severity:<8}  {}", event.time, event.summary);
        }
    };
    let failed = |error: std::io::Error| {
        eprintln!(
            "gatehouse: could not read the security events under {}: {error}; fix: check that the directory is readable and writable",
            paths::display(&paths.config_dir)
        );
        ExitCode::from(2)
    };
    let now = time::OffsetDateTime::now_utc;
    if let Err(error) = events::catch_up(paths, now()) {
        return failed(error);
    }
    match events::recent(paths, args.lines) {
        Ok(list) if list.is_empty() && !args.follow && !args.json => {
            eprintln!("no security events (from {})", paths::display(&paths.audit_log()));
        }
        Ok(list) => list.iter().for_each(print),
        Err(error) => return failed(error),
    }
    if !args.follow {
        return ExitCode::SUCCESS;
    }
    // A running server records events too, so follow the file, not what this process finds.
    let mut follow = events::Follow::from_now(paths);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if let Err(error) = events::catch_up(paths, now()) {
            return failed(error);
        }
        follow.recorded().iter().for_each(print);
    }
}
