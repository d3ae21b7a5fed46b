//! The reliability suite's parts beyond fuzzing (`./scripts/reliability.sh`). Each part is a test
//! that runs for seconds in the test command and at its full budget when `GATEHOUSE_RELIABILITY`
//! is `full`; with `GATEHOUSE_RELIABILITY_REPORT` set it writes its section of
//! `docs/RELIABILITY.md` there, figures included, so the report is what the run saw.

mod api;
mod faults;
mod lan;
mod load;
mod secrets;
mod tls;

use std::path::PathBuf;

/// `short` in the test command, `full` when the suite runs at its own budget.
pub fn budget<T>(short: T, full: T) -> T {
    if std::env::var("GATEHOUSE_RELIABILITY").is_ok_and(|v| v == "full") {
        full
    } else {
        short
    }
}

/// Writes `part`'s section under `## title`, headed by the run's commit and date, when the suite
/// asked for a report; prints it either way, so a short run shows its figures too.
pub fn section(part: &str, title: &str, body: &str) {
    let stamp = std::env::var("GATEHOUSE_RELIABILITY_STAMP").unwrap_or_default();
    let text = format!("## {title}\n\n{stamp}\n{body}");
    println!("{text}");
    if let Some(dir) = std::env::var_os("GATEHOUSE_RELIABILITY_REPORT") {
        let path = PathBuf::from(dir).join(format!("{part}.md"));
        std::fs::write(&path, text).expect("the report directory is writable");
    }
}

/// The tools' environment (schemathesis, sslyze), which setup installs from
/// `scripts/reliability.txt`.
pub fn tool(name: &str) -> PathBuf {
    let python = crate::util::reliability_python();
    let tool = python.with_file_name(name);
    assert!(
        tool.exists(),
        "{} is missing; run ./scripts/test.sh, which installs it",
        tool.display()
    );
    tool
}

/// The version a tool of the reliability environment reports of itself, for the report.
pub fn version_of(package: &str) -> String {
    let output = std::process::Command::new(crate::util::reliability_python())
        .args([
            "-c",
            &format!("import importlib.metadata as m; print(m.version('{package}'))"),
        ])
        .output()
        .expect("python runs");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}
