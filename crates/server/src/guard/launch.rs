//! The upstream a guard launches: started bound to loopback on a port Gatehouse picked, its
//! output passed to Gatehouse's log, restarted when it crashes, given up on when it crashes in
//! a loop, and stopped (with every process it started) when Gatehouse stops.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::UpstreamState;

/// Crashes within [`CRASH_WINDOW`] that count as a crash loop.
const CRASH_LOOP: usize = 5;
const CRASH_WINDOW: Duration = Duration::from_secs(60);

/// How to start the upstream.
#[derive(Debug, Clone)]
pub struct Launch {
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub port: u16,
}

impl Launch {
    /// `{port}` in the command and the environment becomes the upstream's port.
    pub fn new(command: &[String], env: Vec<(String, String)>, port: u16) -> Launch {
        let fill = |text: &str| text.replace("{port}", &port.to_string());
        Launch {
            command: command.iter().map(|part| fill(part)).collect(),
            env: env.into_iter().map(|(k, v)| (k, fill(&v))).collect(),
            port,
        }
    }
}

/// A free loopback port for the upstream. The socket closes before the upstream binds it; a
/// program taking it in between makes the upstream fail to start, which is reported like any
/// other failure.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs the upstream until Gatehouse stops, restarting it after each exit.
pub async fn supervise(launch: Launch, state: Arc<UpstreamState>) {
    let mut exits: Vec<Instant> = Vec::new();
    let mut backoff = Duration::from_millis(500);
    loop {
        let started = Instant::now();
        let status = match run_once(&launch, &state).await {
            Ok(status) => status,
            Err(error) => {
                tracing::error!(event = "upstream_not_started", program = %launch.command[0], %error,
                    "the guarded server could not be started; check guard.launch (is the program installed and on PATH?)");
                state.set_phase(super::Phase::Failed);
                return;
            }
        };
        state.set_phase(super::Phase::Restarting);
        tracing::warn!(event = "upstream_exited", %status, pid_port = launch.port,
            "the guarded server exited; restarting it");
        let now = Instant::now();
        exits.retain(|at| now.duration_since(*at) < CRASH_WINDOW);
        exits.push(now);
        if exits.len() >= CRASH_LOOP {
            tracing::error!(
                event = "upstream_crash_loop",
                exits = exits.len(),
                window_seconds = CRASH_WINDOW.as_secs(),
                "the guarded server keeps exiting; not restarting it again. Its own output above says why"
            );
            state.set_phase(super::Phase::CrashLooping);
            return;
        }
        // A run that lasted a while was not a crash loop: start again quickly.
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(500);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn run_once(launch: &Launch, state: &UpstreamState) -> std::io::Result<std::process::ExitStatus> {
    let mut command = Command::new(&launch.command[0]);
    command
        .args(&launch.command[1..])
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so stopping it stops the workers it started too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let pid = child.id();
    state.set_pid(pid);
    state.set_phase(super::Phase::Starting);
    tracing::info!(event = "upstream_started", pid = pid.unwrap_or(0), port = launch.port, program = %launch.command[0],
        "started the guarded server");
    for (stream, name) in [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            "stdout",
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            "stderr",
        ),
    ] {
        if let Some(stream) = stream {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(target: "upstream", event = "upstream_output", stream = name, "{line}");
                }
            });
        }
    }
    let guard = GroupGuard(pid);
    let status = child.wait().await;
    drop(guard);
    status
}

/// Stops the upstream's whole process group when dropped: on exit, on restart, on Gatehouse's
/// own shutdown.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        stop_group(self.0);
    }
}

/// Stops the launched upstream's process group now (at Gatehouse's shutdown).
pub fn stop(state: &UpstreamState) {
    stop_group(state.pid());
}

fn stop_group(pid: Option<u32>) {
    let Some(pid) = pid
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    // The group is gone when everything in it has exited already.
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
}
