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
    /// `{port}` in the command and the environment becomes the upstream's port, and each of
    /// `placeholders` its value.
    pub fn new(
        command: &[String],
        env: Vec<(String, String)>,
        port: u16,
        placeholders: &[(&str, &str)],
    ) -> Launch {
        let fill = |text: &str| {
            placeholders.iter().fold(
                text.replace("{port}", &port.to_string()),
                |text, (name, value)| text.replace(name, value),
            )
        };
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
        state.watch();
        pass_output(&mut child, &state);
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
fn pass_output(child: &mut tokio::process::Child, state: &Arc<UpstreamState>) {
    fn follow(
        stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
        name: &'static str,
        state: Arc<UpstreamState>,
    ) {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                state.watch_output(&line);
                let line = redact(&line);
                tracing::info!(target: "upstream", event = "upstream_output", stream = name, "{line}");
            }
        });
    }
    if let Some(stdout) = child.stdout.take() {
        follow(stdout, "stdout", state.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        follow(stderr, "stderr", state.clone());
    }
}

/// Query and form parameters whose values are credentials: a server's access log prints request
/// lines whole, and Roboflow's `api_key` is the person's Roboflow account key.
const SECRET_PARAMETERS: [&str; 6] = ["api_key", "apikey", "key", "token", "access_token", "password"];

/// `line` with the values of credential parameters (`api_key=…`) and anything that looks like a
/// Gatehouse key replaced by `[redacted]`, before it reaches Gatehouse's log.
fn redact(line: &str) -> std::borrow::Cow<'_, str> {
    let is_value_char = |c: char| !matches!(c, '&' | ' ' | '"' | '\'' | ';' | ',' | ')' | ']' | '}');
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    let mut changed = false;
    while let Some(at) = rest.find('=') {
        let (before, after) = rest.split_at(at);
        let name_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let name = &before[name_start..];
        out.push_str(before);
        out.push('=');
        let value = &after[1..];
        let end = value.find(|c: char| !is_value_char(c)).unwrap_or(value.len());
        if end > 0 && SECRET_PARAMETERS.iter().any(|p| p.eq_ignore_ascii_case(name)) {
            out.push_str("[redacted]");
            changed = true;
            rest = &value[end..];
        } else {
            rest = value;
        }
    }
    out.push_str(rest);
    if let Some(at) = out.find("gth_") {
        let end = out[at..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .map_or(out.len(), |i| at + i);
        out.replace_range(at..end, "[redacted]");
        return std::borrow::Cow::Owned(redact(&out).into_owned());
    }
    if changed {
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(line)
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_in_an_upstream_s_output_are_redacted() {
        assert_eq!(
            redact(
                r#"INFO: 127.0.0.1:5 - "POST /infer/object_detection?api_key=rf_SECRET&confidence=0.5 HTTP/1.1" 200"#
            ),
            r#"INFO: 127.0.0.1:5 - "POST /infer/object_detection?api_key=[redacted]&confidence=0.5 HTTP/1.1" 200"#
        );
        assert_eq!(redact("GET /x?token=abc"), "GET /x?token=[redacted]");
        assert_eq!(redact("key=v1 and KEY=v2"), "key=[redacted] and KEY=[redacted]");
        assert_eq!(
            redact("Authorization: Bearer gth_abc123XYZ_9 and gth_other"),
            "Authorization: Bearer [redacted] and [redacted]"
        );
        let plain = "model loaded in 1.2 s, batch=4";
        assert!(matches!(redact(plain), std::borrow::Cow::Borrowed(_)));
        assert_eq!(redact("a=b=c"), "a=b=c");
        assert_eq!(redact("monkey=1"), "monkey=1");
    }
}
