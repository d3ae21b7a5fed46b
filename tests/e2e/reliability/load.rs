//! Load and slow clients: a slowloris attack (connections that send their headers a byte at a
//! time, reopened as soon as the server drops them) and thousands of idle keep-alive connections,
//! while a legitimate client keeps asking for inferences on fresh connections. Every legitimate
//! request is served; its latency, the server's memory and the refusals the limits counted are
//! reported.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{budget, section};
use crate::util::TestServer;

/// The descriptors this process may open: the attack must fit in them with room to spare.
fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(1024)
}

enum Kind {
    /// Still sending its headers.
    Slow,
    /// Asked once, now holds the connection open.
    Idle,
}

struct Attacker {
    socket: TcpStream,
    kind: Kind,
}

impl Attacker {
    /// Connects and starts; also says how long the connect took.
    fn open(addr: &str, kind: Kind, slowest: &mut Duration) -> Option<Attacker> {
        let started = Instant::now();
        let mut socket = TcpStream::connect(addr).ok()?;
        *slowest = (*slowest).max(started.elapsed());
        let first: &[u8] = match kind {
            Kind::Slow => b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",
            Kind::Idle => b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        };
        socket.write_all(first).ok()?;
        socket.set_nonblocking(true).ok()?;
        Some(Attacker { socket, kind })
    }

    /// One tick: a slow client sends another byte; both notice when the server has closed them.
    fn tick(&mut self) -> bool {
        let mut buffer = [0u8; 4096];
        loop {
            match self.socket.read(&mut buffer) {
                Ok(0) => return false,
                // A slow client that is answered before its headers end was refused (408, say).
                Ok(_) if matches!(self.kind, Kind::Slow) => return false,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        match self.kind {
            Kind::Slow => self.socket.write_all(b"X").is_ok(),
            Kind::Idle => true,
        }
    }
}

#[test]
fn slowloris_and_idle_connections_do_not_keep_a_legitimate_client_out() {
    let (slow, idle, seconds, header_timeout) = budget((100, 500, 5, 1), (1000, 3000, 60, 10));
    assert!(
        slow + idle + 200 < open_file_limit(),
        "{} open files allowed: too few for {slow} + {idle} connections",
        open_file_limit()
    );
    let server = TestServer::with_env(&[("GATEHOUSE_HEADER_READ_TIMEOUT", &header_timeout.to_string())]);
    let body = serde_json::json!({"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32", "data": vec![0.5f32; 60]}]}).to_string();
    let request = format!(
        "POST /v2/models/sigmoid/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.key,
        body.len()
    );
    let legitimate = |latencies: &mut Vec<Duration>, failures: &mut Vec<String>| {
        let started = Instant::now();
        let result = (|| -> Result<(), String> {
            let mut socket = TcpStream::connect(&server.addr).map_err(|e| e.to_string())?;
            socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            socket.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
            let mut answer = String::new();
            socket.read_to_string(&mut answer).map_err(|e| e.to_string())?;
            if answer.starts_with("HTTP/1.1 200") && answer.contains("\"outputs\"") {
                Ok(())
            } else {
                Err(answer.lines().next().unwrap_or("no answer").to_string())
            }
        })();
        match result {
            Ok(()) => latencies.push(started.elapsed()),
            Err(why) => failures.push(why),
        }
    };
    // Before the attack: the latency and memory to compare with.
    let mut before = Vec::new();
    let mut failures = Vec::new();
    for _ in 0..50 {
        legitimate(&mut before, &mut failures);
    }
    let memory_before = server.memory("VmRSS");

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let addr = server.addr.clone();
    let attack = std::thread::spawn(move || {
        let mut slowest = Duration::ZERO;
        let mut attackers: Vec<Attacker> = Vec::new();
        for _ in 0..slow {
            attackers.extend(Attacker::open(&addr, Kind::Slow, &mut slowest));
        }
        for _ in 0..idle {
            attackers.extend(Attacker::open(&addr, Kind::Idle, &mut slowest));
        }
        let burst = slowest;
        let opened = attackers.len();
        let (mut dropped_slow, mut dropped_idle, mut bytes) = (0u64, 0u64, 0u64);
        while Instant::now() < deadline {
            for attacker in attackers.iter_mut() {
                if attacker.tick() {
                    bytes += u64::from(matches!(attacker.kind, Kind::Slow));
                    continue;
                }
                // Dropped by the server: the attacker comes straight back.
                let kind = match attacker.kind {
                    Kind::Slow => {
                        dropped_slow += 1;
                        Kind::Slow
                    }
                    Kind::Idle => {
                        dropped_idle += 1;
                        Kind::Idle
                    }
                };
                if let Some(again) = Attacker::open(&addr, kind, &mut slowest) {
                    *attacker = again;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        (opened, dropped_slow, dropped_idle, bytes, burst)
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut during = Vec::new();
    let mut peak_memory = memory_before;
    while Instant::now() < deadline {
        legitimate(&mut during, &mut failures);
        peak_memory = peak_memory.max(server.memory("VmRSS"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (opened, dropped_slow, dropped_idle, bytes, burst) = attack.join().unwrap();
    let timeouts = server.metric("gatehouse_rate_limited_total", "limit=\"header_timeout\"");
    let refused = server.metric("gatehouse_rate_limited_total", "limit=\"connections\"");
    assert_eq!(
        opened,
        slow + idle,
        "every attacking connection was accepted: the limit is above them"
    );
    assert!(
        failures.is_empty(),
        "legitimate requests failed during the attack: {failures:?}"
    );
    assert!(
        during.len() >= 20,
        "only {} legitimate requests in {seconds} s",
        during.len()
    );
    assert!(
        dropped_slow > 0 && timeouts > 0,
        "the header timeout never dropped a slow client"
    );
    let percentile = |latencies: &mut Vec<Duration>, p: f64| {
        latencies.sort();
        let at = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[at].as_secs_f64() * 1000.0
    };
    let (p50_before, p99_before) = (percentile(&mut before, 0.5), percentile(&mut before, 0.99));
    let (p50, p99, max) = (
        percentile(&mut during, 0.5),
        percentile(&mut during, 0.99),
        percentile(&mut during, 1.0),
    );
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    // Bounded: a few KiB per held connection, nowhere near a buffer per byte sent.
    assert!(
        peak_memory < memory_before + 256 * 1024 * 1024,
        "memory grew from {:.0} MiB to {:.0} MiB",
        mib(memory_before),
        mib(peak_memory)
    );
    section(
        "load",
        "Load and slow clients",
        &format!(
            "Command: `./scripts/reliability.sh load` (`tests/e2e/reliability/load.rs`), default limits \
             (`max_connections` 4096) with `header_read_timeout_seconds = {header_timeout}`.\n\n\
             For {seconds} s: {slow} slowloris connections (a request line, then one header byte every \
             250 ms; {bytes} bytes sent in all) and {idle} idle keep-alive connections (one request, then \
             silence), opened in one burst (the slowest connect took {burst_ms:.2} ms) and each reopened as \
             soon as the server dropped it, while a legitimate client sent \
             sigmoid inferences on fresh connections, 20 ms apart.\n\n\
             | | legitimate requests | failed | p50 | p99 | max | server memory (RSS) |\n\
             |---|---|---|---|---|---|---|\n\
             | before the attack | {n_before} | 0 | {p50_before:.2} ms | {p99_before:.2} ms | — | {before_mib:.0} MiB |\n\
             | during the attack | {n_during} | {failed} | {p50:.2} ms | {p99:.2} ms | {max:.2} ms | {peak_mib:.0} MiB at most |\n\n\
             The server dropped slow clients {dropped_slow} times and idle ones {dropped_idle} times; \
             `gatehouse_rate_limited_total{{limit=\"header_timeout\"}}` counted {timeouts}, \
             `{{limit=\"connections\"}}` {refused} (the attack stayed under the connection limit; past it, \
             new sockets are closed and counted, which `hardening.rs` tests).\n\n\
             Found and fixed: the server listened with the usual backlog of 128, so in a burst of \
             connections (this attack's first second) a connect that found it full waited a whole second for its \
             SYN to be sent again — legitimate clients among them. It now asks for 4096 (`listen.rs`), and \
             this part fails if any connect of the burst takes 0.9 s or more.\n",
            burst_ms = burst.as_secs_f64() * 1000.0,
            n_before = before.len(),
            n_during = during.len(),
            failed = failures.len(),
            before_mib = mib(memory_before),
            peak_mib = mib(peak_memory),
        ),
    );
}
