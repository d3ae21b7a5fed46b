"""Gatehouse against the Open Inference Protocol servers a user would pick instead, on the same
tiny model (sigmoid) and the same JSON requests over HTTP (wrk), in one run: Seldon MLServer
1.7.1 (one process, its fastest setting) and KServe 0.21's Python model server, both serving the
ONNX file through onnxruntime (the scripts the guard's tests start them with). Gatehouse runs as
installed (keys required, audit log on). 16 connections, turns alternating (A, B, C, C, B, A, …).

Over gRPC there is no like-for-like run: Triton's perf_analyzer, the field's load tool, first asks
a server for its model configuration (Triton's ModelConfig call), which Gatehouse answers and
MLServer does not ("Method not found"); Gatehouse's own gRPC figures are bench/oip_grpc.py's.

Part of bench/run.py; runs alone too, after a release build and ./scripts/test.sh's setup:

    GATEHOUSE_DATA=~/.local/share/gatehouse python3 bench/oip_peers.py

Everything listens on 127.0.0.1; every load run is bounded by BENCH_SECONDS.
"""

import contextlib
import json
import os
import pathlib
import subprocess
import sys

import guard
import run

CONNECTIONS = 16


@contextlib.contextmanager
def kserve():
    venv = pathlib.Path(os.environ.get("GATEHOUSE_KSERVE_VENV", run.DATA / "kserve-venv"))
    script = run.ROOT / "tests" / "e2e" / "upstreams" / "kserve" / "serve.py"
    port = run.free_port()
    server = subprocess.Popen([str(venv / "bin" / "python"), str(script), str(run.MODELS / "sigmoid" / "1" / "model.onnx"),
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        run.wait_http(f"http://127.0.0.1:{port}/v2/health/ready")
        yield f"http://127.0.0.1:{port}", "", server.pid
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=20)


def measure() -> dict:
    body = run.bodies()["sigmoid"]
    with contextlib.ExitStack() as stack:
        base, key, _ = stack.enter_context(run.serving(True))
        mlserver = stack.enter_context(guard.mlserver())
        ks = stack.enter_context(kserve())
        print(f"Open Inference Protocol servers, sigmoid, {CONNECTIONS} connections, HTTP with JSON (wrk)", flush=True)
        return guard.turns({"gatehouse": (base, f"Bearer {key}", None),
                            "mlserver": (f"http://127.0.0.1:{mlserver[0]}", "", None),
                            "kserve": ks}, body, CONNECTIONS)


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
    sys.exit(0)
