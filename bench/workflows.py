"""The python-step benchmark: how much latency a trivial sandboxed python step adds to a workflow.
Part of bench/run.py; runs alone too, after a release build:

    GATEHOUSE_DATA=~/.local/share/gatehouse python3 bench/workflows.py

One server with custom Python allowed, on 127.0.0.1; the same workflow with and without a python
step, alternated request by request so drift lands on both; the difference of the medians.
"""

import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = str(ROOT / "target" / "release" / "gatehouse")
MODELS = pathlib.Path(os.environ["GATEHOUSE_DATA"]) / "models"
REQUESTS = 60


def _workflow(with_python: bool) -> bytes:
    steps = [{"name": "scores", "kind": "softmax", "inputs": {"x": "$inputs.x"}},
             {"name": "best", "kind": "top_k", "k": 2, "inputs": {"x": "$steps.scores.y"}}]
    outputs = {"best": "$steps.best"}
    if with_python:
        steps.append({"name": "count", "kind": "python", "code": "def run(inputs):\n    return {'n': len(inputs['x'])}",
                      "inputs": {"x": "$steps.best.indices"}})
        outputs["n"] = "$steps.count.n"
    return json.dumps({"workflow": {"steps": steps, "outputs": outputs}, "inputs": {"x": [0.1, 2.0, 0.3, 1.5]}}).encode()


def _post(url: str, key: str, body: bytes) -> float:
    request = urllib.request.Request(url, data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        if response.status != 200:
            raise SystemExit(f"workflow answered {response.status}")
    return (time.perf_counter() - started) * 1000


def measure() -> dict:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "GATEHOUSE_HOME": home, "GATEHOUSE_LOG": "warn",
               "ALLOW_CUSTOM_PYTHON_EXECUTION_IN_WORKFLOWS": "true", "GATEHOUSE_KEY_RPS": "100000"}
        created = subprocess.run([BINARY, "keys", "create", "--no-keychain", "--json", "--scope", "workflows"],
                                 env=env, capture_output=True, text=True, check=True).stdout
        key = json.loads(created)["key"]
        server = subprocess.Popen([BINARY, "serve", "--port", "0", "--models", str(MODELS)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            base = None
            for line in server.stdout:
                event = json.loads(line)
                if event.get("event") == "listening":
                    base = event["url"]
                    break
            while True:
                try:
                    with urllib.request.urlopen(base + "/readiness", timeout=2) as response:
                        if response.status == 200:
                            break
                except Exception:
                    time.sleep(0.05)
            url = base + "/v1/workflows/run"
            plain_body, python_body = _workflow(False), _workflow(True)
            for _ in range(5):
                _post(url, key, plain_body)
                _post(url, key, python_body)
            plain, python = [], []
            for i in range(REQUESTS):
                order = [(plain, plain_body), (python, python_body)]
                for samples, body in (order if i % 2 == 0 else reversed(order)):
                    samples.append(_post(url, key, body))
        finally:
            server.terminate()
            server.wait(timeout=20)
    result = {"plain_ms": statistics.median(plain), "python_ms": statistics.median(python)}
    result["added_ms"] = result["python_ms"] - result["plain_ms"]
    print(f"  workflow p50 without python {result['plain_ms']:.1f} ms, with a trivial python step {result['python_ms']:.1f} ms "
          f"(median of {REQUESTS} each): +{result['added_ms']:.1f} ms", flush=True)
    return result


if __name__ == "__main__":
    r = measure()
    print(f"python step adds {r['added_ms']:.1f} ms at p50 (target ≤ 60)")
