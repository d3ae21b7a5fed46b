//! The upstream a guard launches: started bound to loopback on a port Gatehouse picked, its
//! output passed to Gatehouse's log, restarted when it crashes, given up on when it crashes in
//! a loop, and stopped (with every process it started) when Gatehouse stops — also when
//! Gatehouse is killed, through the parent-death signal `supervisor::process` sets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_core::supervisor::process;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{Phase, UpstreamState};

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

/// How long the upstream has to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the upstream until `state.stop()`, restarting it after each exit; on stop, the whole
/// process group gets SIGTERM, then SIGKILL.
pub async fn supervise(launch: Launch, state: Arc<UpstreamState>) {
    let mut exits: Vec<Instant> = Vec::new();
    let mut backoff = Duration::from_millis(500);
    loop {
        let started = Instant::now();
        let mut child = match process::spawn_program(&launch.command[0], &launch.command[1..], &launch.env) {
            Ok(child) => child,
            Err(error) => {
                tracing::error!(event = "upstream_not_started", program = %launch.command[0], %error,
                    "the guarded server could not be started; check guard.launch (is the program installed and on PATH?)");
                state.set_phase(Phase::Failed);
                return;
            }
        };
        state.set_pid(child.id());
        state.set_phase(Phase::Starting);
        tracing::info!(event = "upstream_started", pid = child.id().unwrap_or(0), port = launch.port,
            program = %launch.command[0], "started the guarded server");
        pass_output(&mut child);
        let status = tokio::select! {
            status = child.wait() => status,
            () = state.stopping() => {
                let status = process::stop(&mut child, STOP_TIMEOUT).await;
                tracing::info!(event = "upstream_stopped", %status, "stopped the guarded server");
                return;
            }
        };
        state.set_pid(None);
        state.set_phase(Phase::Restarting);
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        tracing::warn!(event = "upstream_exited", %status, "the guarded server exited; restarting it");
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
            state.set_phase(Phase::CrashLooping);
            return;
        }
        // A run that lasted a while was not part of a crash loop: start again quickly.
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(500);
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {},
            () = state.stopping() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// The upstream's stdout and stderr, line by line, into Gatehouse's log.
fn pass_output(child: &mut tokio::process::Child) {
    fn follow(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static, name: &'static str) {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "upstream", event = "upstream_output", stream = name, "{line}");
            }
        });
    }
    if let Some(stdout) = child.stdout.take() {
        follow(stdout, "stdout");
    }
    if let Some(stderr) = child.stderr.take() {
        follow(stderr, "stderr");
    }
}
