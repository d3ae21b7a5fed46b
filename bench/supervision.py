"""The supervisor and checklist benchmarks: crash → ready again against a cold start, and one full
checklist run against a local server. Part of bench/run.py; runs alone too, after a release build:

    GATEHOUSE_DATA=~/.local/share/gatehouse python3 bench/supervision.py

Everything listens on 127.0.0.1; the checklist's probes of other addresses are kept on loopback.
"""

import json
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = str(ROOT / "target" / "release" / "gatehouse")
MODELS = pathlib.Path(os.environ["GATEHOUSE_DATA"]) / "models"
SAMPLES = 7


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: str) -> dict:
    return {**os.environ, "GATEHOUSE_HOME": home, "GATEHOUSE_LOG": "warn", "GATEHOUSE_PROBE_ADDRESSES": "127.0.0.2"}


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readiness", timeout=1) as response:
            return response.status == 200
    except Exception:
        return False


def cold_start_ms() -> float:
    """Spawn `gatehouse serve` → `/readiness` answers 200: process start, runtime and model load,
    bind. Polled every 2 ms, the way the supervisor's own readiness poll would see it."""
    with tempfile.TemporaryDirectory() as home:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        server = subprocess.Popen([BINARY, "serve", "--port", str(port), "--models", str(MODELS)],
                                  env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = started + 60
            while not _ready(url):
                if time.perf_counter() > deadline:
                    raise SystemExit("gatehouse serve did not become ready within 60 s")
                time.sleep(0.002)
            return (time.perf_counter() - started) * 1000
        finally:
            server.terminate()
            server.wait(timeout=20)


def _next_state(lines, wanted: str) -> dict:
    for line in lines:
        event = json.loads(line)
        if event.get("type") == "state" and event.get("state") == wanted:
            return event
    raise SystemExit(f"gatehouse supervise ended before reaching {wanted}")


def crash_to_ready_ms() -> float:
    """A fresh `gatehouse supervise`; once ready, SIGKILL the server and time until the supervisor
    reports it ready again (its event is printed the moment `/readiness` answers 200)."""
    with tempfile.TemporaryDirectory() as home:
        supervise = subprocess.Popen([BINARY, "supervise", "--json", "--port", "0", "--models", str(MODELS)],
                                     env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            lines = iter(supervise.stdout.readline, "")
            ready = _next_state(lines, "ready")
            killed = time.perf_counter()
            os.kill(ready["pid"], signal.SIGKILL)
            _next_state(lines, "ready")
            return (time.perf_counter() - killed) * 1000
        finally:
            supervise.terminate()
            supervise.wait(timeout=30)


def checklist_ms() -> tuple:
    """One full `gatehouse check` against a ready local server: the report's own duration (the
    probes) and the whole command's wall time (process start included)."""
    with tempfile.TemporaryDirectory() as home:
        env = _env(home)
        subprocess.run([BINARY, "keys", "create", "--no-keychain", "--json", "--name", "bench", "--expires", "30d"],
                       env=env, capture_output=True, check=True)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([BINARY, "serve", "--port", str(port), "--models", str(MODELS)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not _ready(url):
                time.sleep(0.01)
            probes, walls = [], []
            for _ in range(SAMPLES):
                started = time.perf_counter()
                out = subprocess.run([BINARY, "check", "--url", url, "--json"], env=env,
                                     capture_output=True, text=True).stdout
                walls.append((time.perf_counter() - started) * 1000)
                probes.append(json.loads(out)["duration_ms"])
            return statistics.median(probes), statistics.median(walls)
        finally:
            server.terminate()
            server.wait(timeout=20)


def measure() -> dict:
    # Alternate the two sides so that drift in the machine's speed lands on both.
    cold, crash = [], []
    for _ in range(SAMPLES):
        cold.append(cold_start_ms())
        crash.append(crash_to_ready_ms())
    probes, wall = checklist_ms()
    result = {"cold_ms": statistics.median(cold), "crash_ms": statistics.median(crash),
              "cold_all": cold, "crash_all": crash, "checklist_ms": probes, "checklist_wall_ms": wall}
    print(f"  cold start → ready: median {result['cold_ms']:.0f} ms of {[round(c) for c in cold]}", flush=True)
    print(f"  crash → ready again: median {result['crash_ms']:.0f} ms of {[round(c) for c in crash]}", flush=True)
    print(f"  checklist: {probes:.0f} ms of probes, {wall:.0f} ms for the whole command (median of {SAMPLES})", flush=True)
    return result


if __name__ == "__main__":
    r = measure()
    print(f"crash → ready ÷ cold start: {r['crash_ms'] / r['cold_ms']:.2f} (target ≤ 1.5); "
          f"checklist {r['checklist_ms']:.0f} ms (target < 200)")
