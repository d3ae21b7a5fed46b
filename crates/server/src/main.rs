//! The `gatehouse` command: `serve` runs the inference server, `supervise` keeps it running,
//! `check` proves its security controls, `keys`, `certs` and `settings` manage what it uses.
//! Human messages go to stderr, `--json` data to stdout.

use std::path::PathBuf;
use std::process::ExitCode;

mod audit_cli;
mod certs_cli;
mod check_cli;
mod export_cli;
mod keys_cli;
mod supervise_cli;

use clap::{Parser, Subcommand};
use gatehouse_core::Settings;
use gatehouse_core::paths::Paths;

// Every request allocates a few dozen small blocks (headers, JSON values, tensors, the
// response); glibc's malloc and free were a sixth of the server's CPU under load. Built without
// transparent huge pages (`no_thp`): with them an idle server held 12 MB more.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A local ONNX inference server, secure by default"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the inference server in the foreground.
    Serve(ServeArgs),
    /// Show or change settings.toml.
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Create, list, reveal, revoke and rotate API keys.
    #[command(subcommand)]
    Keys(keys_cli::KeysCommand),
    /// The local CA, the server certificate and client certificates for mutual TLS.
    #[command(subcommand)]
    Certs(certs_cli::CertsCommand),
    /// Read the audit log (`tail`) and check that none of it was changed (`verify`).
    #[command(subcommand)]
    Audit(audit_cli::AuditCommand),
    /// Security events derived from the audit log: bursts of failed keys, lockouts, a key from a
    /// new or a second address, a revoked key still tried, exposure, custom Python, certificates.
    Events(audit_cli::EventsArgs),
    /// Prove the server's security controls by probing it (exit status 1 when an item fails).
    Check(check_cli::CheckArgs),
    /// Put Gatehouse's perimeter (keys, TLS, limits, audit, checklist) in front of an inference
    /// server you already run, e.g. `gatehouse guard --preset ollama --upstream http://127.0.0.1:11434`
    /// or `gatehouse guard --preset ollama --launch -- ollama serve`.
    Guard(GuardArgs),
    /// Open the server to the network for a while (TLS and keys required); it goes back to this
    /// computer only by itself when the time is up, also across restarts.
    Expose(ExposeArgs),
    /// Write this computer's posture (models, keys, TLS, who may connect) for another platform:
    /// `gatehouse export kubernetes` makes KServe and Kubernetes manifests.
    #[command(subcommand)]
    Export(export_cli::ExportCommand),
    /// Run the server and keep it running: restart after crashes and on settings changes.
    Supervise(supervise_cli::SuperviseArgs),
    /// Print a completion script for bash, zsh or fish, e.g.
    /// `gatehouse completions bash > ~/.local/share/bash-completion/completions/gatehouse`.
    Completions { shell: clap_complete::Shell },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (default 127.0.0.1: this computer only).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on; 0 picks a free one (default 9001).
    #[arg(long)]
    port: Option<u16>,
    /// Port for the Open Inference Protocol over gRPC; 0 picks a free one (default 9002).
    /// `gatehouse settings set grpc.enabled false` turns it off.
    #[arg(long)]
    grpc_port: Option<u16>,
    /// Model repository directory (`<name>/<version>/model.onnx`).
    #[arg(long)]
    models: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ExposeArgs {
    /// How long: 15m, 1h, 8h (at most 7d). Without --for or --stop, shows the exposure.
    #[arg(long = "for", value_name = "DURATION", conflicts_with = "stop")]
    window: Option<String>,
    /// The address to listen on (default: this computer's network address).
    #[arg(long, requires = "window")]
    host: Option<String>,
    /// End the exposure now: back to 127.0.0.1.
    #[arg(long)]
    stop: bool,
}

#[derive(clap::Args)]
struct GuardArgs {
    /// The server to guard, on loopback: http://127.0.0.1:PORT (with --launch, the port it
    /// should listen on; left out, Gatehouse picks a free one).
    #[arg(long)]
    upstream: Option<String>,
    /// Its route table: ollama, openai (llama.cpp, vLLM, LM Studio), oip (Triton, KServe,
    /// MLServer), tfserving, roboflow (Roboflow Inference), prefect, or generic (every route
    /// needs an `infer` key).
    #[arg(long)]
    preset: Option<String>,
    /// Start the server given after `--` and keep it running; `{port}` in it becomes its port.
    /// Without a command: the preset's own (roboflow, prefect, ollama).
    #[arg(long)]
    launch: bool,
    /// Address Gatehouse listens on (default 127.0.0.1: this computer only).
    #[arg(long)]
    host: Option<String>,
    /// Port Gatehouse listens on; 0 picks a free one (default 9001).
    #[arg(long)]
    port: Option<u16>,
    /// List the inference servers running on this computer (what each looks like, the preset
    /// that fits, what it answers without a key) instead of guarding one.
    #[arg(long, conflicts_with_all = ["upstream", "launch", "command"])]
    detect: bool,
    /// With --detect: print JSON.
    #[arg(long, requires = "detect")]
    json: bool,
    /// The command that starts the server to guard (after `--`).
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Subcommand)]
enum SettingsCommand {
    /// Print the effective settings (file, then environment applied).
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change one setting in settings.toml, e.g. `gatehouse settings set server.port 9002`.
    Set { key: String, value: String },
    /// Print where settings.toml lives.
    Path,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let paths = Paths::from_env();
    let result = match cli.command {
        Command::Serve(args) => serve(args, paths),
        Command::Guard(args) => guard(args, paths),
        Command::Expose(args) => expose(args, &paths),
        Command::Settings(command) => settings(command, &paths),
        Command::Keys(command) => keys_cli::run(command, &paths),
        Command::Certs(command) => certs_cli::run(command, &paths),
        Command::Check(args) => return check_cli::run(args, &paths),
        Command::Audit(command) => return audit_cli::run(command, &paths),
        Command::Events(args) => return audit_cli::events(args, &paths),
        Command::Export(command) => export_cli::run(command, &paths),
        Command::Supervise(args) => return supervise_cli::run(args, &paths),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "gatehouse", &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gatehouse: {message}");
            ExitCode::FAILURE
        }
    }
}

fn effective_settings(paths: &Paths) -> Result<Settings, String> {
    Settings::effective(&paths.settings_file()).map_err(|e| e.to_string())
}

/// Applies command-line flags over the effective settings, each checked like any other source.
fn apply_flags(settings: &mut Settings, flags: &[(&str, Option<String>)]) -> Result<(), String> {
    for (key, value) in flags {
        if let Some(value) = value {
            settings.set(key, value).map_err(|mut problem| {
                problem.source = Some(format!("--{}", key.rsplit('.').next().unwrap_or(key)));
                problem.to_string()
            })?;
        }
    }
    Ok(())
}

fn expose(args: ExposeArgs, paths: &Paths) -> Result<(), String> {
    use gatehouse_core::exposure;
    let file = paths.settings_file();
    let audit = gatehouse_core::audit::AuditLog::new(paths.audit_log());
    if args.stop {
        exposure::stop(&file, &audit, gatehouse_core::audit::Actor::Cli).map_err(|e| e.to_string())?;
        eprintln!(
            "exposure ended: listening on 127.0.0.1 (this computer only) from the next start; a running supervisor restarts the server now"
        );
        return Ok(());
    }
    let Some(window) = args.window else {
        let settings = effective_settings(paths)?;
        match exposure::deadline(&settings) {
            Some(until) => println!(
                "open on {}:{} until {until}",
                settings.server.host, settings.server.port
            ),
            None => println!(
                "listening on {}:{}, with no deadline",
                settings.server.host, settings.server.port
            ),
        }
        return Ok(());
    };
    let window = exposure::parse_window(&window).map_err(|e| e.to_string())?;
    let host = args.host.unwrap_or_else(|| {
        gatehouse_core::net::network_address().map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string())
    });
    let now = time::OffsetDateTime::now_utc();
    let (_, until) = exposure::start(
        &file,
        &audit,
        &host,
        window,
        now,
        gatehouse_core::audit::Actor::Cli,
    )
    .map_err(|e| e.to_string())?;
    let settings = effective_settings(paths)?;
    println!("open on {host}:{} until {until}", settings.server.port);
    eprintln!("`gatehouse expose --stop` ends it early; a running supervisor restarts the server now");
    let certificate = settings
        .tls
        .cert
        .clone()
        .unwrap_or_else(|| gatehouse_core::certs::CertFiles::new(paths.certs_dir()).server_cert());
    if let Ok(info) = gatehouse_core::certs::inspect(gatehouse_core::certs::CertRole::Server, &certificate)
        && host != "0.0.0.0"
        && !info.names.contains(&host)
    {
        eprintln!(
            "warning: the server certificate does not name {host}, so clients there will refuse it; fix: `gatehouse certs init --host {host}`"
        );
    }
    Ok(())
}

fn detect(json: bool) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let ports = gatehouse_core::detect::ports_to_try();
    let found = runtime.block_on(gatehouse_core::detect::detect(
        &ports,
        std::time::Duration::from_secs(1),
    ));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&found).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    if found.is_empty() {
        let ports: Vec<String> = ports.iter().map(ToString::to_string).collect();
        eprintln!("no server answers on 127.0.0.1 ports {}", ports.join(", "));
    }
    for server in &found {
        println!("{}  {}", server.url, server.looks_like);
        match &server.preset {
            Some(preset) => println!(
                "    guard it:  gatehouse guard --preset {preset} --upstream {}",
                server.url
            ),
            None => println!("    a Gatehouse server: it needs no guard"),
        }
        if !server.open.is_empty() {
            println!("    answers without a key: {}", server.open.join(", "));
        }
        if !server.beyond_loopback.is_empty() {
            println!(
                "    listens beyond this computer on {}: rebind it to 127.0.0.1 first",
                server.beyond_loopback.join(", ")
            );
        }
    }
    Ok(())
}

fn guard(args: GuardArgs, paths: Paths) -> Result<(), String> {
    if args.detect {
        return detect(args.json);
    }
    let mut settings = effective_settings(&paths)?;
    apply_flags(
        &mut settings,
        &[
            ("server.host", args.host),
            ("server.port", args.port.map(|p| p.to_string())),
            ("guard.upstream", args.upstream),
            ("guard.preset", args.preset),
        ],
    )?;
    if !args.command.is_empty() {
        settings.guard.launch = args.command;
    } else if args.launch {
        settings.guard.launch = vec![gatehouse_core::guard::PRESET_LAUNCH.into()];
    }
    run_server(settings, paths, true)
}

fn serve(args: ServeArgs, paths: Paths) -> Result<(), String> {
    let mut settings = effective_settings(&paths)?;
    apply_flags(
        &mut settings,
        &[
            ("server.host", args.host),
            ("server.port", args.port.map(|p| p.to_string())),
            ("grpc.port", args.grpc_port.map(|p| p.to_string())),
            ("server.models", args.models.map(|p| p.display().to_string())),
        ],
    )?;
    if let Some(models) = settings.server.models.as_mut().filter(|p| p.is_relative()) {
        // A relative --models is relative to where the command was typed.
        *models = std::env::current_dir().map_err(|e| e.to_string())?.join(&*models);
    }
    let guarding = settings.guard.active();
    run_server(settings, paths, guarding)
}

/// Validates, starts logging and runs Gatehouse's ONNX server, or with `guard` the guard. `[guard]`
/// in the settings makes `serve` a guard, so the supervisor, the panel and the tray, which run
/// `serve`, get whichever server the settings describe.
fn run_server(settings: Settings, paths: Paths, guard: bool) -> Result<(), String> {
    settings.validate().map_err(|e| e.to_string())?;
    gatehouse_server::telemetry::init(&settings.log.level)?;
    if settings.audit.enabled {
        watch_events(paths.clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let run = async {
        if guard {
            gatehouse_server::guard::run(settings, paths).await
        } else {
            gatehouse_server::serve::run(settings, paths).await
        }
    };
    runtime.block_on(run).map_err(|e| e.to_string())
}

/// Turns what the audit log records into security events every second, and logs the warnings:
/// the feed is current while a server runs, whoever reads it.
fn watch_events(paths: Paths) {
    let spawned = std::thread::Builder::new()
        .name("gatehouse-events".into())
        .spawn(move || {
            use gatehouse_core::events;
            let mut complained = false;
            // Whoever derived an event (this server, the CLI, the panel), the log shows it.
            let mut follow = events::Follow::from_now(&paths);
            loop {
                match events::catch_up(&paths, time::OffsetDateTime::now_utc()) {
                    Ok(_) => {
                        complained = false;
                        for event in follow.recorded().iter().filter(|e| e.severity >= events::Severity::Warning) {
                            tracing::warn!(event = "security_event", kind = %event.kind, "{}", event.summary);
                        }
                    }
                    Err(error) if !complained => {
                        complained = true;
                        tracing::warn!(event = "security_events_unavailable", %error,
                            "security events could not be derived from the audit log; `gatehouse events` catches up later");
                    }
                    Err(_) => {}
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(event = "security_events_unavailable", %error, "the security event thread could not start");
    }
}

fn settings(command: SettingsCommand, paths: &Paths) -> Result<(), String> {
    match command {
        SettingsCommand::Show { json } => {
            let settings = effective_settings(paths)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&settings).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", settings.to_toml());
            }
        }
        SettingsCommand::Set { key, value } => {
            let file = paths.settings_file();
            let ctx = gatehouse_core::ops::Context::new(paths, gatehouse_core::audit::Actor::Cli);
            audited(gatehouse_core::ops::change_settings(&ctx, &[(&key, &value)]))?;
            eprintln!("set {key} = {value} in {}", file.display());
        }
        SettingsCommand::Path => println!("{}", paths.settings_file().display()),
    }
    Ok(())
}

/// An operation's result, its error as the CLI prints it, and a warning when the change is made
/// but its audit line is missing.
fn audited<T, E: std::fmt::Display>(result: Result<gatehouse_core::ops::Done<T>, E>) -> Result<T, String> {
    let done = result.map_err(|e| e.to_string())?;
    if let Some(error) = done.unaudited {
        eprintln!("gatehouse: the change was made, but the audit log could not be written: {error}");
    }
    Ok(done.value)
}
