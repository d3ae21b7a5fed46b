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
mod run;
mod sampler;
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
use run::*;
pub use sampler::*;

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
