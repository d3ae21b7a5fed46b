#!/usr/bin/env bash
# Gatehouse's benchmarks, in one run: builds release binaries, measures Gatehouse and the FastAPI
# peer with wrk on loopback (bounded: a few seconds per case), measures ONNX Runtime in-process,
# TLS handshakes against nginx (bench/src/handshakes.rs), TLS against plaintext, the Host check's cost
# (bench/src/host_check.rs) and a client's latency under a connection flood (bench/connections.py), and prints the
# ratios.
# See bench/RESULTS.md for the targets and the last recorded run.
#   BENCH_SECONDS   length of each load run (default 10)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
had_nginx=0
dpkg-query -W -f='${Status}' nginx 2>/dev/null | grep -q 'install ok installed' && had_nginx=1
setup_all wrk nginx nghttp2-client openssl xvfb
# Debian starts nginx on port 80 when it installs it. The benchmark runs its own instance on a
# loopback port, so a service it brought along is stopped and disabled; one that was already
# there is left as it was.
if [ "$had_nginx" = 0 ] && command -v systemctl >/dev/null && systemctl is-enabled nginx >/dev/null 2>&1; then
    say "stopping and disabling the nginx service that was just installed (the benchmark starts its own)"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true
fi
# Triton's perf_analyzer drives the gRPC part (bench/grpc.py); it comes with the KServe environment's pip.
# h2load (nghttp2-client) drives gRPC against MLServer and KServe (bench/oip_peers.py), which perf_analyzer cannot.
install_venv "$GATEHOUSE_KSERVE_VENV" scripts/upstreams-kserve.txt "KServe and Triton's clients"
install_perf_analyzer
export GATEHOUSE_PERF_ANALYZER
# Roboflow Inference, for the guard in front of the seeds' server (bench/roboflow.py).
install_roboflow
# Servers the benchmark starts beside each other take free gRPC ports, not all 9002.
export GATEHOUSE_GRPC_PORT=0
cargo build --release --locked -p gatehouse-server -p gatehouse-app -p gatehouse-bench
exec "$GATEHOUSE_VENV/bin/python" bench/run.py "$@"
