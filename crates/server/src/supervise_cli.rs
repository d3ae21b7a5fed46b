//! `gatehouse supervise`: the desktop app's supervisor in the foreground, for headless machines.
//! It runs `gatehouse serve` with the same options, restarts it after crashes, restarts it when
//! settings.toml changes, runs the checklist once the server is ready and every 30 s after, and
//! prints each state change. Ctrl-C or SIGTERM stops the server gracefully, then the supervisor.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use gatehouse_core::checklist;
use gatehouse_core::paths::Paths;
use gatehouse_core::supervisor::{Config, Event, State, Supervisor};

use crate::ServeArgs;

#[derive(clap::Args)]
pub struct SuperviseArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// Print every event (state, log line, metrics sample, checklist report) as a JSON line on
    /// stdout.
    #[arg(long)]
    json: bool,
    /// Seconds between checklist runs while the server is up (it also runs after every start).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    check_every: u64,
    /// Milliseconds between samples of CPU, memory and /metrics (the `sample` events).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(20..=60_000))]
    sample_every_ms: u64,
    /// Stop restarting after this many crashes within a minute (a server that keeps crashing is
    /// reported as crash-looping instead of being restarted forever).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    crash_limit: u64,
}

pub fn run(args: SuperviseArgs, paths: &Paths) -> ExitCode {
    match supervise(args, paths) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("gatehouse: {message}");
            ExitCode::FAILURE
        }
    }
}

fn supervise(args: SuperviseArgs, paths: &Paths) -> Result<ExitCode, String> {
    let program = std::env::current_exe().map_err(|e| format!("cannot find the gatehouse binary: {e}"))?;
    let mut child_args: Vec<OsString> = vec!["serve".into()];
    if let Some(host) = &args.serve.host {
        child_args.extend(["--host".into(), host.into()]);
    }
    if let Some(port) = args.serve.port {
        child_args.extend(["--port".into(), port.to_string().into()]);
    }
    if let Some(models) = &args.serve.models {
        let models = std::env::current_dir().map_err(|e| e.to_string())?.join(models);
        child_args.extend(["--models".into(), models.into_os_string()]);
    }
    let mut config = Config::new(program, child_args);
    config.settings_file = Some(paths.settings_file());
    config.identity = checklist::local_identity_reader(paths);
    config.sample_interval = Duration::from_millis(args.sample_every_ms);
    config.crash_limit = usize::try_from(args.crash_limit).unwrap_or(usize::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let every = Duration::from_secs(args.check_every);
    Ok(runtime.block_on(foreground(config, paths.clone(), args.json, every)))
}

async fn foreground(config: Config, paths: Paths, json: bool, check_every: Duration) -> ExitCode {
    let supervisor = Supervisor::spawn(config);
    let mut events = supervisor.subscribe();
    supervisor.start();
    let checker = tokio::spawn(gatehouse_core::supervisor::keep_checked(
        supervisor.clone(),
        paths,
        check_every,
        move |report| {
            if json
                && let Ok(line) =
                    serde_json::to_string(&serde_json::json!({"type": "checklist", "report": report}))
            {
                println!("{line}");
            }
        },
    ));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let code = loop {
        let terminated = async {
            match terminate.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if json {
                        print_json(&event);
                    }
                    if let Event::State(status) = event {
                        if !json {
                            let mut line = format!("gatehouse supervise: {}", status.state.name());
                            if let Some(url) = &status.url {
                                line.push_str(&format!(" at {url}"));
                            }
                            if let Some(pid) = status.pid {
                                line.push_str(&format!(" (pid {pid})"));
                            }
                            if let Some(reason) = &status.reason {
                                line.push_str(&format!(": {reason}"));
                            }
                            eprintln!("{line}");
                        }
                        let gave_up = status.state == State::CrashLooping
                            || (status.state == State::Crashed && status.next_restart_ms.is_none());
                        if gave_up {
                            break ExitCode::FAILURE;
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break ExitCode::FAILURE,
            },
            _ = tokio::signal::ctrl_c() => break ExitCode::SUCCESS,
            () = terminated => break ExitCode::SUCCESS,
        }
    };
    checker.abort();
    supervisor.stop().await;
    // What happened during the stop is part of the record too.
    while let Ok(event) = events.try_recv() {
        if json {
            print_json(&event);
        }
    }
    if !json {
        eprintln!("gatehouse supervise: stopped");
    }
    code
}

fn print_json(event: &Event) {
    if let Ok(line) = serde_json::to_string(event) {
        println!("{line}");
    }
}
