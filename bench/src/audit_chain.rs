//! What the audit log's hash chain costs a request: the server's writer appends batches of
//! request lines with `AuditLog::append` (lock, read where the chain stands, seal each line with
//! its `seq` and the previous line's SHA-256, one write), against the same batches appended as
//! they are, in alternating turns, to files on the same disk. Prints JSON with nanoseconds per
//! line each way and their difference; `bench/perimeter.py` sets that against the server's CPU per
//! tiny-model request measured in the same run.
//!
//! Usage: audit-chain [LINES_PER_TURN]

use std::io::Write;
use std::time::Instant;

use gatehouse_core::audit::AuditLog;

const TURNS: usize = 8;
/// About what the writer finds in its queue each 20 ms tick at 25,000 requests a second.
const BATCH: usize = 512;

fn main() {
    let lines: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("gatehouse-audit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    // A request line as the perimeter writes it.
    let line = br#"{"time":"2026-12-03T06:21:02.785215Z","event":"request","request_id":null,"key_id":"04QObl53","address":"127.0.0.1","method":"POST","route":"/v2/models/{model}/infer","model":"sigmoid","key_presented_as":"bearer","outcome":"allowed","status":200,"latency_us":143}"#;
    let mut batch = Vec::with_capacity(BATCH * (line.len() + 1));
    for _ in 0..BATCH {
        batch.extend_from_slice(line);
        batch.push(b'\n');
    }
    let batches = lines.div_ceil(BATCH);
    let chained = |turn: usize| -> f64 {
        let log = AuditLog::new(dir.join(format!("chained-{turn}/audit.jsonl")));
        let started = Instant::now();
        for _ in 0..batches {
            log.append(&batch).expect("an append");
        }
        started.elapsed().as_nanos() as f64 / (batches * BATCH) as f64
    };
    let plain = |turn: usize| -> f64 {
        let path = dir.join(format!("plain-{turn}.jsonl"));
        let started = Instant::now();
        for _ in 0..batches {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .expect("a file");
            file.write_all(&batch).expect("a write");
        }
        started.elapsed().as_nanos() as f64 / (batches * BATCH) as f64
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for turn in 0..TURNS {
        if turn % 2 == 0 {
            without.push(plain(turn));
            with.push(chained(turn));
        } else {
            with.push(chained(turn));
            without.push(plain(turn));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let (with, without) = (mean(&with), mean(&without));
    println!(
        "{{\"lines\": {}, \"turns\": {TURNS}, \"batch\": {BATCH}, \"without_ns\": {without:.1}, \
         \"with_ns\": {with:.1}, \"cost_ns\": {:.1}}}",
        batches * BATCH,
        with - without
    );
}
