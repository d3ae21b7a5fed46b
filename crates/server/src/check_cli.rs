//! `gatehouse check`: runs the live security checklist against the local server (or any URL) and
//! prints it as text, JSON or Markdown; `--fix ID` applies an item's fix. The exit status is 1
//! when an item fails, so the command works as a CI gate.

use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use gatehouse_core::checklist::{self, Options, Status};
use gatehouse_core::paths::Paths;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Md,
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The server to audit (default: the local Gatehouse server as settings.toml places it).
    /// A Gatehouse server on this computer also gets the configuration checks; any other server
    /// gets the probes that make sense from outside.
    #[arg(long)]
    url: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Same as `--format json`.
    #[arg(long)]
    json: bool,
    /// Apply the fix of the item with this id (e.g. `auth.required`) instead of only reporting.
    #[arg(long, value_name = "ID")]
    fix: Option<checklist::ItemId>,
    /// The most one probe may take, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

pub fn run(args: CheckArgs, paths: &Paths) -> ExitCode {
    match check(args, paths) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("gatehouse: {message}");
            ExitCode::from(2)
        }
    }
}

fn check(args: CheckArgs, paths: &Paths) -> Result<ExitCode, String> {
    let settings = crate::effective_settings(paths)?;
    let options = Options {
        timeout: Duration::from_millis(args.timeout_ms.clamp(50, 60_000)),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = runtime.block_on(async {
        match &args.url {
            None => {
                checklist::check_gatehouse(&checklist::local_url(&settings), paths, &settings, options).await
            }
            Some(url) => {
                let local = gatehouse_core::probe::Endpoint::parse(url).is_ok_and(|e| e.is_this_computer());
                if local
                    && checklist::is_gatehouse(url, checklist::local_identity(paths), options.timeout).await
                {
                    checklist::check_gatehouse(url, paths, &settings, options).await
                } else {
                    checklist::check_external(url, options).await
                }
            }
        }
    });
    if let Some(id) = args.fix {
        let item = report
            .item(id)
            .ok_or_else(|| format!("`{id}` is not in this report; `gatehouse check` lists the ids it ran"))?;
        let fix = item.fix.as_ref().ok_or_else(|| {
            format!(
                "`{id}` has no automatic fix (status: {}); {}",
                item.status.name(),
                item.summary
            )
        })?;
        let applied = checklist::apply(fix, paths).map_err(|e| e.to_string())?;
        eprintln!("{}", applied.message);
        if let Some(key) = &applied.key {
            eprintln!("The key is shown once here and kept in your keychain (`gatehouse keys reveal`):");
            println!("{}", key.expose());
        }
        if applied.restart_needed {
            eprintln!(
                "Restart the server to apply it (`gatehouse supervise` and the app restart it by themselves)."
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Text => print!("{}", report.to_text()),
        Format::Md => print!("{}", report.to_markdown()),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        ),
    }
    Ok(if report.worst() == Status::Fail {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
