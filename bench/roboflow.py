"""The guard in front of Roboflow Inference, the server of the seeds' first guide: what a
request costs through `gatehouse guard --preset roboflow` against the same server reached
directly, in the same run, and what Gatehouse's own process weighs beside it.

Gatehouse launches Roboflow Inference itself (the preset's own command, from the environment
scripts/setup.sh installs), so the two sides are one server: direct is its loopback port, guarded
is Gatehouse's port with a key. Requests, at one connection (latency is what a person feels):

  - `GET /info` (a status page: open on loopback, a metrics key beyond it),
  - `POST /workflows/run` with a workflow of built-in blocks only (a string template), with a
    `workflows` key through the guard; custom Python is off, so the guard reads the workflow
    to be sure it carries no code before passing it on.

Part of bench/run.py; runs alone too, after a release build and ./scripts/test.sh's setup:

    GATEHOUSE_DATA=~/.local/share/gatehouse python3 bench/roboflow.py

Everything listens on 127.0.0.1; every load run is bounded by BENCH_SECONDS. Turns alternate.
"""

import contextlib
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

import run

WORKFLOW = {
    "specification": {
        "version": "1.0",
        "inputs": [{"type": "WorkflowParameter", "name": "who"}],
        "steps": [{"type": "roboflow_core/string_template@v1", "name": "greeting",
                   "template": "hello {who}", "data": {"who": "$inputs.who"}}],
        "outputs": [{"type": "JsonField", "name": "greeting", "selector": "$steps.greeting.output"}],
    },
    "inputs": {"who": "bench"},
}


def pss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no Pss line for pid {pid}")


def children(pid: int) -> list:
    """Every process under `pid` (its children hang off whichever thread spawned them)."""
    found = []
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            direct = [int(p) for p in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
        for child in direct:
            found += [child, *children(child)]
    return found


@contextlib.contextmanager
def guarded_roboflow():
    venv = pathlib.Path(os.environ.get("GATEHOUSE_ROBOFLOW_VENV", run.DATA / "roboflow-venv"))
    if not (venv / "bin" / "inference").exists():
        raise SystemExit(f"Roboflow Inference is not installed in {venv}; run ./scripts/test.sh, which installs it")
    port = run.free_port()
    binary = str(run.ROOT / "target" / "release" / "gatehouse")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "GATEHOUSE_HOME": home, "GATEHOUSE_LOG": "warn", "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
               "GATEHOUSE_KEY_RPS": "100000000", "GATEHOUSE_ADDRESS_RPS": "100000000"}
        created = subprocess.run([binary, "keys", "create", "--no-keychain", "--json", "--name", "bench", "--scope", "workflows"],
                                 env=env, capture_output=True, text=True, check=True).stdout
        key = json.loads(created)["key"]
        server = subprocess.Popen([binary, "guard", "--preset", "roboflow", "--launch", "--port", str(port)],
                                  env=env, stdout=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            started = time.monotonic()
            run.wait_http(f"{base}/_gatehouse/readiness", timeout=180)
            ready = time.monotonic() - started
            with urllib.request.urlopen(f"{base}/_gatehouse/info") as response:
                upstream = json.load(response)["guarding"]["upstream"]
            yield base, f"Bearer {key}", f"http://{upstream}", server.pid, ready
        finally:
            server.terminate()
            server.wait(timeout=30)


def wrk_get(url: str, connections: int) -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{run.SECONDS}s", "--latency", url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"the run against {url} had errors:\n{output}")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_us": run.to_us(re.search(r"^\s+50%\s+(\S+)$", output, re.MULTILINE).group(1)),
    }


def turns(sides: dict, request) -> dict:
    names = list(sides)
    results = {name: [] for name in names}
    for pair in range(run.PAIRS):
        for name in names if pair % 2 == 0 else list(reversed(names)):
            result = request(*sides[name])
            results[name].append(result)
            print(f"  {name:7} c=1 {result['rps']:>7.0f} req/s  p50 {result['p50_us']:>7.0f} µs", flush=True)
    return {name: {"rps": sum(r["rps"] for r in rs) / len(rs), "p50_us": sum(r["p50_us"] for r in rs) / len(rs)}
            for name, rs in results.items()}


def measure() -> dict:
    with tempfile.TemporaryDirectory() as directory, guarded_roboflow() as (base, authorization, direct, pid, ready):
        body = pathlib.Path(directory) / "workflow.json"
        body.write_text(json.dumps(WORKFLOW))
        print(f"guard mode: Roboflow Inference direct vs through `gatehouse guard --preset roboflow` (ready after {ready:.1f} s)", flush=True)
        # Idle: after readiness, before any load.
        time.sleep(2)
        memory = {"gatehouse_mb": pss_mb(pid), "upstream_mb": sum(pss_mb(p) for p in children(pid))}
        print(f"  idle PSS: Gatehouse {memory['gatehouse_mb']:.0f} MB beside Roboflow Inference {memory['upstream_mb']:.0f} MB", flush=True)
        print("  GET /info", flush=True)
        for url in (f"{direct}/info", f"{base}/info"):
            subprocess.run(["wrk", "-t1", "-c1", "-d1s", url], capture_output=True, check=True)
        info = turns({"direct": (f"{direct}/info",), "guard": (f"{base}/info",)}, lambda url: wrk_get(url, 1))
        print("  POST /workflows/run (built-in blocks, a workflows key through the guard)", flush=True)
        for url, auth in ((f"{direct}/workflows/run", ""), (f"{base}/workflows/run", authorization)):
            run.warm_up(url, body, "", auth)
        workflow = turns({"direct": (f"{direct}/workflows/run", ""), "guard": (f"{base}/workflows/run", authorization)},
                         lambda url, auth: run.wrk(url, body, 1, "", auth))
    return {"info": info, "workflow": workflow, "memory": memory, "ready_s": ready}


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
    sys.exit(0)
