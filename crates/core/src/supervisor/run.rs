//! Supervising the child, one start at a time: the phases between two children (idle, starting,
//! judging an exit, waiting out a backoff) and a child's life from spawn to exit.

use super::*;

/// Why a running child stopped being supervised.
pub(super) enum Outcome {
    Exited(std::process::ExitStatus, bool),
    Stop(Option<oneshot::Sender<()>>),
    Restart(&'static str),
}

/// Where the supervisor is between two children; each phase's step says which comes next.
enum Phase {
    /// Nothing runs: waiting for a start.
    Idle,
    /// A child is to be started and supervised until it ends or is told to.
    Launch,
    /// Waiting this long before restarting after a crash, unless told otherwise.
    Backoff(Duration),
    /// The handle is gone: supervision is over.
    Done,
}

/// The crashes within the window and how the last start failed, which decide whether to retry.
#[derive(Default)]
struct History {
    crashes: VecDeque<Instant>,
    last_start_failure: Option<String>,
}

/// No child: no pid, no address.
fn gone(status: &mut Status) {
    status.pid = None;
    status.url = None;
    status.grpc_address = None;
}

fn reply(done: Option<oneshot::Sender<()>>) {
    if let Some(done) = done {
        let _ = done.send(());
    }
}

pub(super) async fn run(config: Config, shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut history = History::default();
    let mut phase = Phase::Idle;
    loop {
        phase = match phase {
            Phase::Idle => idle(&shared, &mut history, &mut commands).await,
            Phase::Launch => match Box::pin(supervise_once(&config, &shared, &mut commands)).await {
                Outcome::Stop(done) => {
                    shared.set(State::Stopped, Some("stopped on request".into()), gone);
                    reply(done);
                    Phase::Idle
                }
                Outcome::Restart(why) => {
                    shared.set(State::Starting, Some(why.into()), gone);
                    Phase::Launch
                }
                Outcome::Exited(status, was_ready) => {
                    judge_exit(&config, &shared, &mut history, status, was_ready)
                }
            },
            Phase::Backoff(delay) => wait_out_backoff(&shared, delay, &mut commands).await,
            Phase::Done => return,
        }
    }
}

/// Nothing runs: a start (or restart) begins afresh, with the crash count cleared.
async fn idle(
    shared: &Shared,
    history: &mut History,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Phase {
    loop {
        match commands.recv().await {
            None => return Phase::Done,
            Some(Command::Start | Command::Restart) => {
                *history = History::default();
                shared.set(State::Starting, None, |s| s.restarts = 0);
                return Phase::Launch;
            }
            Some(Command::Stop(done)) => reply(done),
        }
    }
}

/// The child ended on its own: a start that failed the same way twice, or too many crashes in the
/// window, end the restarts; any other exit is restarted after the backoff.
fn judge_exit(
    config: &Config,
    shared: &Shared,
    history: &mut History,
    status: std::process::ExitStatus,
    was_ready: bool,
) -> Phase {
    let now = Instant::now();
    history.crashes.push_back(now);
    while history
        .crashes
        .front()
        .is_some_and(|t| now.duration_since(*t) > config.crash_window)
    {
        history.crashes.pop_front();
    }
    let last = shared.last_lines(5);
    let how = describe_exit(status);
    let start_error = (!was_ready)
        .then(|| {
            shared
                .last_lines(20)
                .into_iter()
                .rev()
                .find(|l| l.starts_with("gatehouse: "))
        })
        .flatten();
    match start_error {
        Some(error) => {
            let repeated = history.last_start_failure.as_deref() == Some(error.as_str());
            if repeated {
                let why = format!(
                    "the server failed to start twice in a row with the same error, so it is not retried: {}",
                    error.trim_start_matches("gatehouse: ")
                );
                shared.set(State::Crashed, Some(why), gone);
                return Phase::Idle;
            }
            history.last_start_failure = Some(error);
        }
        None => history.last_start_failure = None,
    }
    if history.crashes.len() >= config.crash_limit {
        let why = format!(
            "the server crashed {} times within {} s, so restarts have stopped; last crash: {how}; its last lines:\n{}",
            history.crashes.len(),
            config.crash_window.as_secs(),
            last.join("\n")
        );
        shared.set(State::CrashLooping, Some(why), gone);
        return Phase::Idle;
    }
    let delay = backoff(config, history.crashes.len());
    shared.set(
        State::Crashed,
        Some(format!("the server {how}; its last lines:\n{}", last.join("\n"))),
        |s| {
            gone(s);
            s.next_restart_ms = Some(delay.as_millis() as u64);
        },
    );
    Phase::Backoff(delay)
}

/// Between a crash and its restart: a stop ends the wait without a restart, a start cuts it short.
async fn wait_out_backoff(
    shared: &Shared,
    delay: Duration,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Phase {
    tokio::select! {
        () = tokio::time::sleep(delay) => {
            shared.set(State::Starting, Some("restarting after a crash".into()), |s| s.restarts += 1);
            Phase::Launch
        }
        command = commands.recv() => match command {
            None => Phase::Done,
            Some(Command::Stop(done)) => {
                shared.set(State::Stopped, Some("stopped on request".into()), |_| {});
                reply(done);
                Phase::Idle
            }
            Some(Command::Start | Command::Restart) => {
                shared.set(State::Starting, None, |s| s.restarts += 1);
                Phase::Launch
            }
        },
    }
}

/// The delay before the restart after `crashes` crashes within the window. The first crash is
/// restarted at once (a one-off crash should cost no more than a start); after that the delay
/// doubles from `backoff_initial`, capped at `backoff_max`, with ±20 % jitter so that several
/// supervisors do not restart in lockstep.
pub(super) fn backoff(config: &Config, crashes: usize) -> Duration {
    if crashes <= 1 {
        return Duration::ZERO;
    }
    let exponent = crashes.saturating_sub(2).min(16) as u32;
    let base = config
        .backoff_initial
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(config.backoff_max);
    let mut random = [0u8; 2];
    let _ = getrandom::fill(&mut random);
    let jitter = 0.8 + 0.4 * (u16::from_le_bytes(random) as f64 / u16::MAX as f64);
    base.mul_f64(jitter)
}

pub(super) fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal} ({})", process::signal_name(signal)),
        _ => "ended".to_string(),
    }
}

/// Runs the child from spawn to exit (or until told to stop or restart).
pub(super) async fn supervise_once(
    config: &Config,
    shared: &Arc<Shared>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Outcome {
    let mut child = match process::spawn(config) {
        Ok(child) => child,
        Err(error) => {
            // Not a crash of the server: the program itself could not be run.
            shared.set(
                State::Crashed,
                Some(format!(
                    "cannot run {}: {error}; fix: check that the gatehouse binary exists and is executable",
                    config.program.display()
                )),
                |s| s.pid = None,
            );
            return Outcome::Stop(None);
        }
    };
    let pid = child.id();
    // Read before `set`: a `watch` borrow held across `send_replace` would deadlock.
    let reason = shared.status.borrow().reason.clone();
    shared.set(State::Starting, reason, |s| {
        s.pid = pid;
        s.url = None;
        s.grpc_address = None;
    });
    let (url_sender, url_receiver) = oneshot::channel::<Listening>();
    let url_sender = Arc::new(Mutex::new(Some(url_sender)));
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(tokio::spawn(read_lines(
            stdout,
            "stdout",
            shared.clone(),
            Some(url_sender),
        )));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(tokio::spawn(read_lines(stderr, "stderr", shared.clone(), None)));
    }
    let finish = |readers: Vec<tokio::task::JoinHandle<()>>| async move {
        // The readers end at EOF, once the whole group has closed its ends of the pipes.
        for reader in readers {
            let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
        }
    };

    // Starting: wait for the URL, then for /readiness.
    let deadline = tokio::time::Instant::now() + config.ready_timeout;
    let ready = async {
        let Listening { url, grpc } = url_receiver.await.ok()?;
        let endpoint = Endpoint::parse(&url).ok()?;
        let prober = Prober::new(endpoint, (config.identity)(), Duration::from_secs(2));
        loop {
            if let Ok(response) = prober
                .request("GET", crate::wire::routes::READINESS, &[], &[])
                .await
                && response.status == 200
            {
                return Some((url, grpc, prober));
            }
            // Loopback and a tiny answer: polling often costs little and shortens every start.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let prober = tokio::select! {
        result = tokio::time::timeout_at(deadline, ready) => match result {
            Ok(Some((url, grpc, prober))) => {
                let failing = shared.checklist_failing.lock().ok().and_then(|f| f.clone());
                let (state, reason) = match failing {
                    Some(reason) => (State::Degraded, Some(reason)),
                    None => (State::Ready, None),
                };
                shared.set(state, reason, |s| {
                    s.url = Some(url);
                    s.grpc_address = grpc;
                });
                prober
            }
            _ => {
                let why = format!(
                    "the server was not ready within {} s; stopping it",
                    config.ready_timeout.as_secs()
                );
                shared.set(State::Starting, Some(why), |_| {});
                let status = process::stop(&mut child, config.stop_timeout).await;
                finish(readers).await;
                return Outcome::Exited(status, false);
            }
        },
        status = child.wait() => {
            finish(readers).await;
            return match status {
                Ok(status) => Outcome::Exited(status, false),
                Err(_) => Outcome::Stop(None),
            };
        }
        command = next_command(commands) => {
            let status_after = process::stop(&mut child, config.stop_timeout).await;
            let _ = status_after;
            finish(readers).await;
            return command_outcome(command);
        }
    };

    // Running: watch the child, the commands, the settings file and the clock.
    let mut sampler = Sampler::new(pid);
    let mut ticker = tokio::time::interval(config.sample_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut settings_check = tokio::time::interval(Duration::from_secs(1));
    let mut settings_stamp = config.settings_file.as_deref().map(modified);
    loop {
        tokio::select! {
            status = child.wait() => {
                finish(readers).await;
                return match status {
                    Ok(status) => Outcome::Exited(status, true),
                    Err(_) => Outcome::Stop(None),
                };
            }
            command = next_command(commands) => {
                let _ = process::stop(&mut child, config.stop_timeout).await;
                finish(readers).await;
                return command_outcome(command);
            }
            _ = ticker.tick() => {
                if let Some(sample) = sampler.sample(&prober, shared).await {
                    shared.push_sample(sample);
                }
            }
            _ = settings_check.tick() => {
                if let (Some(file), Some(stamp)) = (&config.settings_file, &settings_stamp)
                    && modified(file) != *stamp
                {
                    // Restarting on a file that cannot be used would stop a working server for one
                    // that cannot start: the running one stays, and the log says why, until the
                    // file changes again.
                    if let Err(error) = usable_settings(file) {
                        settings_stamp = Some(modified(file));
                        shared.push_log(LogLine {
                            at: OffsetDateTime::now_utc(),
                            stream: "supervisor".into(),
                            level: "ERROR".into(),
                            message: format!(
                                "settings.toml changed but cannot be used, so the server keeps running with the settings it started with: {error}"
                            ),
                            fields: Some(serde_json::json!({"event": "settings_rejected", "error": error})),
                        });
                        continue;
                    }
                    let _ = process::stop(&mut child, config.stop_timeout).await;
                    finish(readers).await;
                    return Outcome::Restart("the settings changed; restarting");
                }
            }
        }
    }
}

pub(super) async fn next_command(commands: &mut mpsc::UnboundedReceiver<Command>) -> Option<Command> {
    loop {
        match commands.recv().await {
            // Already running: a second start is a no-op.
            Some(Command::Start) => continue,
            other => return other,
        }
    }
}

pub(super) fn command_outcome(command: Option<Command>) -> Outcome {
    match command {
        Some(Command::Restart) => Outcome::Restart("restarting on request"),
        Some(Command::Stop(done)) => Outcome::Stop(done),
        Some(Command::Start) | None => Outcome::Stop(None),
    }
}

/// Why the settings in `file` cannot start a server, if they cannot: what a start would refuse.
pub(super) fn usable_settings(file: &std::path::Path) -> Result<(), String> {
    let settings = crate::Settings::effective(file).map_err(|e| e.to_string())?;
    settings.validate().map_err(|e| e.to_string())
}

pub(super) fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

pub(super) async fn read_lines<R>(
    stream: R,
    name: &'static str,
    shared: Arc<Shared>,
    url: Option<Arc<Mutex<Option<oneshot::Sender<Listening>>>>>,
) where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(text)) = lines.next_line().await {
        let fields: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        let (level, message) = match &fields {
            Some(value) => (
                value["level"].as_str().unwrap_or("INFO").to_string(),
                value["fields"]["message"]
                    .as_str()
                    .or(value["message"].as_str())
                    .unwrap_or(&text)
                    .to_string(),
            ),
            None => (
                if name == "stderr" { "ERROR" } else { "INFO" }.to_string(),
                text.clone(),
            ),
        };
        if let (Some(url), Some(value)) = (&url, &fields)
            && let Some(listening) = listening(value)
            && let Some(sender) = url.lock().ok().and_then(|mut slot| slot.take())
        {
            let _ = sender.send(listening);
        }
        shared.push_log(LogLine {
            at: OffsetDateTime::now_utc(),
            stream: name.to_string(),
            level,
            message,
            fields,
        });
    }
}

/// What the server's `listening` log line says: its URL, and its gRPC address when it opened one.
#[derive(Debug, PartialEq)]
pub(super) struct Listening {
    pub(super) url: String,
    pub(super) grpc: Option<String>,
}

pub(super) fn listening(line: &serde_json::Value) -> Option<Listening> {
    let fields = line.get("fields").unwrap_or(line);
    if fields["event"] != "listening" {
        return None;
    }
    Some(Listening {
        url: fields["url"].as_str()?.to_string(),
        grpc: fields["grpc_addr"]
            .as_str()
            .filter(|a| !a.is_empty())
            .map(str::to_string),
    })
}
