#!/usr/bin/env bash
# Gatehouse's benchmarks, in one run: builds release binaries, measures Gatehouse and the FastAPI
# peer with wrk on loopback (bounded: a few seconds per case), measures ONNX Runtime in-process,
# TLS handshakes against nginx (openssl s_time) and TLS against plaintext, and prints the ratios.
# See bench/RESULTS.md for the targets and the last recorded run.
#   BENCH_SECONDS   length of each load run (default 10)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
setup_all wrk nginx openssl
cargo build --release --locked -p gatehouse-server -p gatehouse-bench
exec "$GATEHOUSE_VENV/bin/python" bench/run.py "$@"
