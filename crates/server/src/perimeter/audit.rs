//! The server's audit trail: handlers hand a finished line to a bounded channel and move on; one
//! writer thread wakes on a fixed tick, drains the channel into a single append and rotates the
//! file. While lines keep coming the writer is never parked on the channel, so a request's send
//! never has to wake a thread: at tens of thousands of requests a second, those wake-ups would
//! cost more than the requests. After a tick that found nothing it parks until the next line, so
//! an idle server does not wake fifty times a second. A full disk or a stuck writer never slows or fails a request: lines that cannot be
//! queued or written are counted in `/metrics` and reported in the log at most every 30 seconds.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use gatehouse_core::audit::{AuditLog, KEEP_ROTATED, ROTATE_BYTES};

use crate::metrics::Metrics;

const QUEUE: usize = 64 * 1024;
/// How long lines wait in the queue at most before they are written.
const TICK: Duration = Duration::from_millis(20);

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    sender: SyncSender<Message>,
    metrics: Arc<Metrics>,
}

impl AuditSink {
    /// Starts the writer thread for `log`.
    pub fn start(log: AuditLog, metrics: Arc<Metrics>) -> AuditSink {
        let (sender, receiver) = sync_channel(QUEUE);
        let writer_metrics = metrics.clone();
        let spawned = std::thread::Builder::new()
            .name("gatehouse-audit".into())
            .spawn(move || write_loop(&log, &receiver, &writer_metrics));
        if let Err(error) = spawned {
            tracing::error!(event = "audit_unavailable", %error, "the audit writer could not start; audit lines will be counted as dropped");
        }
        AuditSink { sender, metrics }
    }

    /// Queues one event (a JSON object without the trailing newline).
    pub fn send(&self, mut line: Vec<u8>) {
        line.push(b'\n');
        match self.sender.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.audit_dropped.inc();
            }
        }
    }

    /// Writes everything queued so far; waits at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = sync_channel(1);
        if self.sender.send(Message::Flush(done)).is_err() {
            return false;
        }
        wait.recv_timeout(timeout).is_ok()
    }
}

fn write_loop(log: &AuditLog, receiver: &Receiver<Message>, metrics: &Metrics) {
    let mut buffer = Vec::with_capacity(256 * 1024);
    let mut flushes = Vec::new();
    let mut lines = 0usize;
    let mut last_complaint: Option<Instant> = None;
    let mut since_rotation_check = 0usize;
    loop {
        std::thread::sleep(TICK);
        let disconnected = loop {
            match receiver.try_recv() {
                Ok(message) => lines += take(message, &mut buffer, &mut flushes),
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        let idle = buffer.is_empty() && flushes.is_empty();
        if !buffer.is_empty() {
            if let Err(error) = log.append(&buffer) {
                metrics.audit_write_errors.inc_by(lines as u64);
                if last_complaint.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                    tracing::error!(event = "audit_write_failed", %error, path = %log.path().display(),
                        "audit lines could not be written (is the disk full?); requests continue and the loss is counted in /metrics");
                    last_complaint = Some(Instant::now());
                }
            }
            buffer.clear();
            since_rotation_check += lines;
            if since_rotation_check >= 4096 {
                since_rotation_check = 0;
                if let Err(error) = log.rotate_if_larger(ROTATE_BYTES) {
                    tracing::warn!(event = "audit_rotation_failed", %error, keep = KEEP_ROTATED, "the audit log could not be rotated");
                }
            }
        }
        lines = 0;
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
        if disconnected {
            return;
        }
        if idle {
            // Nothing came in a whole tick: sleep until something does. The message is written
            // with whatever follows it within the next tick.
            match receiver.recv() {
                Ok(message) => lines += take(message, &mut buffer, &mut flushes),
                Err(_) => return,
            }
        }
    }
}

/// Adds a line to the batch (returns 1) or notes a flush request (returns 0).
fn take(message: Message, buffer: &mut Vec<u8>, flushes: &mut Vec<SyncSender<()>>) -> usize {
    match message {
        Message::Line(line) => {
            buffer.extend_from_slice(&line);
            1
        }
        Message::Flush(done) => {
            flushes.push(done);
            0
        }
    }
}
