"""The perimeter's own costs, alone (bench/run.py measures them too, with everything else):

    GATEHOUSE_DATA=~/.local/share/gatehouse BENCH_SECONDS=8 python3 bench/perimeter.py

after `cargo build --release -p gatehouse-server -p gatehouse-bench`. Three figures from one run:
the server's CPU per tiny-model request at 16 connections (four wrk turns, keys required, audit
on); the Host check's and the audit chain's cost per request in-process (bench/src/host_check.rs,
bench/src/audit_chain.rs), as shares of that;
and a keep-alive client's p99 with and without 2,000 idle plus 50 slowloris connections
(bench/connections.py).
"""

import json

import connections
import run


def main() -> None:
    files = run.bodies()
    body = files["sigmoid"]
    cpu = []
    with run.serving(auth=True) as (base, key, pid):
        url = f"{base}/v2/models/sigmoid/infer"
        run.warm_up(url, body, key)
        for _ in range(4):
            before = run.cpu_seconds(pid)
            rate = run.wrk(url, body, 16, key)["rps"]
            cpu.append((run.cpu_seconds(pid) - before) / (rate * run.SECONDS) * 1e6)
            print(f"  sigmoid c=16 {rate:>8.0f} req/s, server CPU {cpu[-1]:.1f} µs per request", flush=True)
    per_request_us = sum(cpu) / len(cpu)
    hosts = run.host_check()
    chain = run.audit_chain()
    flood = connections.measure(run.serving)
    print(json.dumps({
        "server_cpu_per_request_us": round(per_request_us, 1),
        "host_check": hosts,
        "host_check_share_percent": round(100 * hosts["cost_ns"] / 1000 / per_request_us, 2),
        "audit_chain": chain,
        "audit_chain_share_percent": round(100 * chain["cost_ns"] / 1000 / per_request_us, 2),
        "req_per_s_with_chain_over_without": round(1 / (1 + chain["cost_ns"] / 1000 / per_request_us), 4),
        "flood": flood,
    }, indent=2))


if __name__ == "__main__":
    main()
