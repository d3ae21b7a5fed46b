//! The supervisor: runs `gatehouse serve` as a child and keeps it running, for the desktop app and
//! for `gatehouse supervise`.
//!
//! Guarantees:
//! - the child runs in its own process group with a parent-death signal, so it never outlives
//!   the supervisor, even one killed with SIGKILL; stopping signals the whole group;
//! - the child is always reaped (no zombies), whichever way it ends;
//! - a crash is restarted after an exponential, jittered backoff; five crashes in a minute stop
//!   the restarts (`crash-looping`), and a start that fails the same way twice in a row (bad
//!   settings, a port in use) is reported and not retried — both quote the child's last lines;
//! - every state change, log line and metrics sample is published as an [`Event`].

pub mod process;
pub mod scrape;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::probe::{Endpoint, Prober, TlsIdentity};

/// How the supervisor runs the server.
#[derive(Clone)]
pub struct Config {
    /// The `gatehouse` binary.
    pub program: PathBuf,
    /// Its arguments, `serve` first.
    pub args: Vec<OsString>,
    /// Extra environment for the child (the supervisor's own is inherited).
    pub env: Vec<(OsString, OsString)>,
    /// Restart the server when this file changes.
    pub settings_file: Option<PathBuf>,
    /// The certificates the readiness and metrics probes trust and present, read again at every
    /// start: certificates made while the supervisor runs (the panel's wizard, a client
    /// certificate for mutual TLS) are in force from the next start on.
    pub identity: Arc<dyn Fn() -> TlsIdentity + Send + Sync>,
    /// How long a start may take, from spawn to `/readiness` answering 200.
    pub ready_timeout: Duration,
    /// How long a stop waits after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// This many crashes within `crash_window` stop the restarts.
    pub crash_limit: usize,
    pub crash_window: Duration,
    /// How many log lines are kept.
    pub log_capacity: usize,
    /// How often CPU, memory and `/metrics` are sampled; how many samples are kept.
    pub sample_interval: Duration,
    pub sample_capacity: usize,
}

impl Config {
    pub fn new(program: PathBuf, args: Vec<OsString>) -> Config {
        Config {
            program,
            args,
            env: Vec::new(),
            settings_file: None,
            identity: Arc::new(TlsIdentity::default),
            ready_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            crash_limit: 5,
            crash_window: Duration::from_secs(60),
            log_capacity: 1000,
            sample_interval: Duration::from_secs(1),
            sample_capacity: 300,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Stopped,
    Starting,
    Ready,
    /// Ready, but the checklist has a failing item.
    Degraded,
    /// Ended unexpectedly; restarting unless `next_restart_ms` is empty.
    Crashed,
    /// Crashed too often; restarts have stopped.
    CrashLooping,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Starting => "starting",
            State::Ready => "ready",
            State::Degraded => "degraded",
            State::Crashed => "crashed",
            State::CrashLooping => "crash-looping",
        }
    }
}

/// Where the server stands, as of `since`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct Status {
    pub state: State,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "bindings", ts(type = "string"))]
    pub since: OffsetDateTime,
    /// Why it is in this state, for people (crash and failure reasons quote the child's log).
    pub reason: Option<String>,
    /// The server's URL once it announced it.
    pub url: Option<String>,
    /// Its gRPC port's address, when it has one open.
    pub grpc_address: Option<String>,
    pub pid: Option<u32>,
    /// Restarts after crashes since the last deliberate start.
    pub restarts: u32,
    /// When crashed and restarting: in how many milliseconds.
    pub next_restart_ms: Option<u64>,
}

/// One line the server printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct LogLine {
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "bindings", ts(type = "string"))]
    pub at: OffsetDateTime,
    /// `stdout` (JSON log) or `stderr` (start errors).
    pub stream: String,
    /// `INFO`, `WARN`, `ERROR`…; stderr lines are `ERROR`.
    pub level: String,
    pub message: String,
    /// The whole line, parsed, when it was JSON.
    #[cfg_attr(feature = "bindings", ts(type = "unknown"))]
    pub fields: Option<serde_json::Value>,
}

/// One point of the charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub struct Sample {
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "bindings", ts(type = "string"))]
    pub at: OffsetDateTime,
    pub cpu_percent: f32,
    pub memory_bytes: u64,
    pub requests_per_second: f64,
    pub errors_per_second: f64,
    pub auth_failures_per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// What the supervisor publishes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    State(Status),
    Log(LogLine),
    Sample(Sample),
}

enum Command {
    Start,
    Stop(Option<oneshot::Sender<()>>),
    Restart,
}

struct Shared {
    status: watch::Sender<Status>,
    events: broadcast::Sender<Event>,
    logs: Mutex<VecDeque<LogLine>>,
    samples: Mutex<VecDeque<Sample>>,
    checklist_failing: Mutex<Option<String>>,
    /// What the checklist's probes added to the server's counters since it started (by pid):
    /// left out of the charts, so they show the callers' traffic, not Gatehouse's own.
    own_traffic: Mutex<(Option<u32>, scrape::Scrape)>,
    /// Held by a checklist run from its first scrape until its probes are added to `own_traffic`,
    /// and by each sample's scrape: a sample taken halfway through a run would chart the probes
    /// sent so far, and the next would then subtract them from a caller's requests.
    probing: tokio::sync::Mutex<()>,
    log_capacity: usize,
    sample_capacity: usize,
}

impl Shared {
    fn set(&self, state: State, reason: Option<String>, change: impl FnOnce(&mut Status)) {
        let mut next = self.status.borrow().clone();
        next.state = state;
        next.reason = reason;
        next.since = OffsetDateTime::now_utc();
        next.next_restart_ms = None;
        change(&mut next);
        self.status.send_replace(next.clone());
        let _ = self.events.send(Event::State(next));
    }

    fn push_log(&self, line: LogLine) {
        if let Ok(mut logs) = self.logs.lock() {
            if logs.len() == self.log_capacity {
                logs.pop_front();
            }
            logs.push_back(line.clone());
        }
        let _ = self.events.send(Event::Log(line));
    }

    fn push_sample(&self, sample: Sample) {
        if let Ok(mut samples) = self.samples.lock() {
            if samples.len() == self.sample_capacity {
                samples.pop_front();
            }
            samples.push_back(sample.clone());
        }
        let _ = self.events.send(Event::Sample(sample));
    }

    fn last_lines(&self, count: usize) -> Vec<String> {
        self.logs
            .lock()
            .map(|logs| {
                logs.iter()
                    .rev()
                    .take(count)
                    .rev()
                    .map(|l| l.message.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A handle on the supervisor task; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl Supervisor {
    /// Starts the supervisor task on the current tokio runtime, in state `stopped`.
    pub fn spawn(config: Config) -> Supervisor {
        let (events, _) = broadcast::channel(1024);
        let (status, _) = watch::channel(Status {
            state: State::Stopped,
            since: OffsetDateTime::now_utc(),
            reason: None,
            url: None,
            grpc_address: None,
            pid: None,
            restarts: 0,
            next_restart_ms: None,
        });
        let shared = Arc::new(Shared {
            status,
            events,
            logs: Mutex::new(VecDeque::new()),
            samples: Mutex::new(VecDeque::new()),
            checklist_failing: Mutex::new(None),
            own_traffic: Mutex::new((None, scrape::Scrape::default())),
            probing: tokio::sync::Mutex::new(()),
            log_capacity: config.log_capacity.max(1),
            sample_capacity: config.sample_capacity.max(1),
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(config, shared.clone(), receiver));
        Supervisor { commands, shared }
    }

    pub fn start(&self) {
        let _ = self.commands.send(Command::Start);
    }

    pub fn restart(&self) {
        let _ = self.commands.send(Command::Restart);
    }

    /// Stops the server gracefully and returns once it has exited and been reaped.
    pub async fn stop(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Stop(Some(done))).is_ok() {
            let _ = wait.await;
        }
    }

    pub fn status(&self) -> Status {
        self.shared.status.borrow().clone()
    }

    /// Status changes as they happen.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// The most recent log lines, oldest first.
    pub fn logs(&self) -> Vec<LogLine> {
        self.shared
            .logs
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The kept metrics samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.shared
            .samples
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Tells the supervisor what the latest checklist found: `Some(reason)` when an item fails,
    /// which turns `ready` into `degraded` (and back with `None`).
    pub fn set_checklist_failing(&self, failing: Option<String>) {
        if let Ok(mut slot) = self.shared.checklist_failing.lock() {
            *slot = failing.clone();
        }
        let state = self.shared.status.borrow().state;
        match (state, failing) {
            (State::Ready, Some(reason)) => self.shared.set(State::Degraded, Some(reason), |_| {}),
            (State::Degraded, None) => self.shared.set(State::Ready, None, |_| {}),
            (State::Degraded, Some(reason)) if self.status().reason.as_deref() != Some(&reason) => {
                self.shared.set(State::Degraded, Some(reason), |_| {})
            }
            _ => {}
        }
    }
}

/// Why a running child stopped being supervised.
enum Outcome {
    Exited(std::process::ExitStatus, bool),
    Stop(Option<oneshot::Sender<()>>),
    Restart(&'static str),
}

async fn run(config: Config, shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut crashes: VecDeque<Instant> = VecDeque::new();
    let mut last_start_failure: Option<String> = None;
    let mut launch = false;
    loop {
        if !launch {
            match commands.recv().await {
                None => return,
                Some(Command::Start | Command::Restart) => {
                    crashes.clear();
                    last_start_failure = None;
                    shared.set(State::Starting, None, |s| s.restarts = 0);
                }
                Some(Command::Stop(done)) => {
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    continue;
                }
            }
        }
        launch = false;
        let outcome = Box::pin(supervise_once(&config, &shared, &mut commands)).await;
        match outcome {
            Outcome::Stop(done) => {
                shared.set(State::Stopped, Some("stopped on request".into()), |s| {
                    s.pid = None;
                    s.url = None;
                    s.grpc_address = None;
                });
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Outcome::Restart(why) => {
                shared.set(State::Starting, Some(why.into()), |s| {
                    s.pid = None;
                    s.url = None;
                    s.grpc_address = None;
                });
                launch = true;
            }
            Outcome::Exited(status, was_ready) => {
                let now = Instant::now();
                crashes.push_back(now);
                while crashes
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > config.crash_window)
                {
                    crashes.pop_front();
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
                if let Some(error) = start_error {
                    let repeated = last_start_failure.as_deref() == Some(error.as_str());
                    last_start_failure = Some(error.clone());
                    if repeated {
                        shared.set(
                            State::Crashed,
                            Some(format!(
                                "the server failed to start twice in a row with the same error, so it is not retried: {}",
                                error.trim_start_matches("gatehouse: ")
                            )),
                            |s| {
                                s.pid = None;
                                s.url = None;
                    s.grpc_address = None;
                            },
                        );
                        continue;
                    }
                } else {
                    last_start_failure = None;
                }
                if crashes.len() >= config.crash_limit {
                    shared.set(
                        State::CrashLooping,
                        Some(format!(
                            "the server crashed {} times within {} s, so restarts have stopped; last crash: {how}; its last lines:\n{}",
                            crashes.len(),
                            config.crash_window.as_secs(),
                            last.join("\n")
                        )),
                        |s| {
                            s.pid = None;
                            s.url = None;
                    s.grpc_address = None;
                        },
                    );
                    continue;
                }
                let delay = backoff(&config, crashes.len());
                shared.set(
                    State::Crashed,
                    Some(format!("the server {how}; its last lines:\n{}", last.join("\n"))),
                    |s| {
                        s.pid = None;
                        s.url = None;
                        s.grpc_address = None;
                        s.next_restart_ms = Some(delay.as_millis() as u64);
                    },
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {
                        shared.set(State::Starting, Some("restarting after a crash".into()), |s| s.restarts += 1);
                        launch = true;
                    }
                    command = commands.recv() => match command {
                        None => return,
                        Some(Command::Stop(done)) => {
                            shared.set(State::Stopped, Some("stopped on request".into()), |_| {});
                            if let Some(done) = done {
                                let _ = done.send(());
                            }
                        }
                        Some(Command::Start | Command::Restart) => {
                            shared.set(State::Starting, None, |s| s.restarts += 1);
                            launch = true;
                        }
                    },
                }
            }
        }
    }
}

/// The delay before the restart after `crashes` crashes within the window. The first crash is
/// restarted at once (a one-off crash should cost no more than a start); after that the delay
/// doubles from `backoff_initial`, capped at `backoff_max`, with ±20 % jitter so that several
/// supervisors do not restart in lockstep.
fn backoff(config: &Config, crashes: usize) -> Duration {
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

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal} ({})", process::signal_name(signal)),
        _ => "ended".to_string(),
    }
}

/// Runs the child from spawn to exit (or until told to stop or restart).
async fn supervise_once(
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

async fn next_command(commands: &mut mpsc::UnboundedReceiver<Command>) -> Option<Command> {
    loop {
        match commands.recv().await {
            // Already running: a second start is a no-op.
            Some(Command::Start) => continue,
            other => return other,
        }
    }
}

fn command_outcome(command: Option<Command>) -> Outcome {
    match command {
        Some(Command::Restart) => Outcome::Restart("restarting on request"),
        Some(Command::Stop(done)) => Outcome::Stop(done),
        Some(Command::Start) | None => Outcome::Stop(None),
    }
}

/// Why the settings in `file` cannot start a server, if they cannot: what a start would refuse.
fn usable_settings(file: &std::path::Path) -> Result<(), String> {
    let settings = crate::Settings::effective(file).map_err(|e| e.to_string())?;
    settings.validate().map_err(|e| e.to_string())
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn read_lines<R>(
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
struct Listening {
    url: String,
    grpc: Option<String>,
}

fn listening(line: &serde_json::Value) -> Option<Listening> {
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

/// Turns the child's CPU and memory and two successive `/metrics` scrapes into chart points.
struct Sampler {
    pid: Option<sysinfo::Pid>,
    /// `None` where the OS gives no process information; the charts then lack CPU and memory.
    system: Option<sysinfo::System>,
    previous: Option<(Instant, scrape::Scrape)>,
}

impl Sampler {
    fn new(pid: Option<u32>) -> Sampler {
        Sampler {
            pid: pid.map(sysinfo::Pid::from_u32),
            system: sysinfo::System::new().ok(),
            previous: None,
        }
    }

    async fn sample(&mut self, prober: &Prober, shared: &Shared) -> Option<Sample> {
        let pid = self.pid?;
        let (cpu_percent, memory_bytes) = match &mut self.system {
            Some(system) => {
                system.refresh_processes_specifics(
                    sysinfo::ProcessesToUpdate::Some(&[pid]),
                    true,
                    sysinfo::ProcessRefreshKind::nothing().with_cpu().with_memory(),
                );
                system
                    .process(pid)
                    .map(|p| (p.cpu_usage(), p.memory()))
                    .unwrap_or_default()
            }
            None => (0.0, 0),
        };
        let _between_checklist_runs = shared.probing.lock().await;
        let now = Instant::now();
        // Beyond loopback `/metrics` needs a key; the charts then show CPU and memory only.
        let current = scrape_metrics(prober).await.map(|scraped| {
            let own = shared
                .own_traffic
                .lock()
                .ok()
                .and_then(|own| (own.0 == Some(pid.as_u32())).then(|| own.1.clone()));
            match own {
                Some(own) => scraped.minus(&own),
                None => scraped,
            }
        });
        let mut sample = Sample {
            at: OffsetDateTime::now_utc(),
            cpu_percent,
            memory_bytes,
            requests_per_second: 0.0,
            errors_per_second: 0.0,
            auth_failures_per_second: 0.0,
            p50_ms: None,
            p99_ms: None,
        };
        if let (Some(current), Some((then, before))) = (&current, &self.previous) {
            let seconds = now.duration_since(*then).as_secs_f64().max(1e-3);
            // The scrape itself is one request; leave it out of the rate.
            sample.requests_per_second = ((current.requests - before.requests - 1.0).max(0.0)) / seconds;
            sample.errors_per_second = (current.server_errors - before.server_errors).max(0.0) / seconds;
            sample.auth_failures_per_second =
                (current.auth_failures - before.auth_failures).max(0.0) / seconds;
            // With no caller, the only request in the histogram is the previous scrape: no latency
            // to chart.
            if sample.requests_per_second > 0.0 {
                sample.p50_ms = scrape::latency_quantile(before, current, 0.5);
                sample.p99_ms = scrape::latency_quantile(before, current, 0.99);
            }
        }
        if let Some(current) = current {
            self.previous = Some((now, current));
        }
        Some(sample)
    }
}

/// Runs the checklist once against the supervised server (settings as the file and the
/// environment give them) and marks the server degraded while an item fails.
pub async fn check_once(
    supervisor: &Supervisor,
    paths: &crate::paths::Paths,
) -> Option<crate::checklist::Report> {
    use crate::checklist::{self, Status as CheckStatus};
    let url = supervisor.status().url?;
    let mut settings = crate::Settings::load(&paths.settings_file()).unwrap_or_default();
    // A bad variable is the server's start error to report; the checklist judges the rest.
    let _ = settings.apply_environment(|name| std::env::var(name).ok());
    // The probes' own requests are counted before and after, and kept out of the charts (a
    // caller's request that lands in those few milliseconds is left out with them).
    let metrics = Prober::new(
        Endpoint::parse(&url).ok()?,
        checklist::local_identity(paths),
        Duration::from_secs(2),
    );
    let probing = supervisor.shared.probing.lock().await;
    let before = scrape_metrics(&metrics).await;
    // Boxed: the joined probes make a future too large for a debug build's worker stack.
    let report = Box::pin(checklist::check_gatehouse(
        &url,
        paths,
        &settings,
        checklist::Options::default(),
    ))
    .await;
    if let (Some(before), Some(mut after)) = (before, scrape_metrics(&metrics).await) {
        // The second scrape is counted once it has answered.
        after.requests += 1.0;
        let pid = supervisor.status().pid;
        if let Ok(mut own) = supervisor.shared.own_traffic.lock() {
            if own.0 != pid {
                *own = (pid, scrape::Scrape::default());
            }
            own.1.add(&after.minus(&before));
        }
    }
    drop(probing);
    let failing: Vec<&str> = report
        .items
        .iter()
        .filter(|i| i.status == CheckStatus::Fail)
        .map(|i| i.id.as_str())
        .collect();
    supervisor.set_checklist_failing(
        (!failing.is_empty()).then(|| format!("checklist items failing: {}", failing.join(", "))),
    );
    Some(report)
}

/// The server's counters from `/metrics`, when it answers them.
async fn scrape_metrics(prober: &Prober) -> Option<scrape::Scrape> {
    match prober
        .request("GET", crate::wire::routes::METRICS, &[], &[])
        .await
    {
        Ok(response) if response.status == 200 => Some(scrape::parse(&response.text())),
        _ => None,
    }
}

/// Runs [`check_once`] whenever the server becomes ready and every `interval` after, handing
/// each report to `publish`; ends when the supervisor does.
pub async fn keep_checked(
    supervisor: Supervisor,
    paths: crate::paths::Paths,
    interval: Duration,
    mut publish: impl FnMut(crate::checklist::Report) + Send,
) {
    let mut status = supervisor.watch();
    loop {
        let current = status.borrow_and_update().clone();
        if matches!(current.state, State::Ready | State::Degraded) && current.url.is_some() {
            if let Some(report) = check_once(&supervisor, &paths).await {
                publish(report);
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                changed = status.changed() => if changed.is_err() { return },
            }
        } else if status.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let config = Config::new("gatehouse".into(), vec![]);
        assert_eq!(
            backoff(&config, 1),
            Duration::ZERO,
            "a one-off crash restarts at once"
        );
        for (crashes, base_ms) in [(2, 100.0), (3, 200.0), (4, 400.0), (10, 10_000.0), (40, 10_000.0)] {
            let delay = backoff(&config, crashes).as_secs_f64() * 1000.0;
            assert!(
                delay >= base_ms * 0.8 - 1.0 && delay <= base_ms * 1.2 + 1.0,
                "crash {crashes}: {delay} ms"
            );
        }
    }

    #[test]
    fn the_listening_line_gives_the_url_and_the_grpc_address() {
        let line = serde_json::json!({"level": "INFO", "fields": {"event": "listening", "url": "https://127.0.0.1:9001", "grpc_addr": "127.0.0.1:9002"}});
        assert_eq!(
            listening(&line),
            Some(Listening {
                url: "https://127.0.0.1:9001".into(),
                grpc: Some("127.0.0.1:9002".into())
            })
        );
        // gRPC off (and a guard, which opens none): an empty address.
        let line = serde_json::json!({"fields": {"event": "listening", "url": "http://127.0.0.1:9001", "grpc_addr": ""}});
        assert_eq!(listening(&line).unwrap().grpc, None);
        let other = serde_json::json!({"fields": {"event": "ready"}});
        assert_eq!(listening(&other), None);
    }
}
