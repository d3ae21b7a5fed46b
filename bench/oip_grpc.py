"""gRPC: the Open Inference Protocol on Gatehouse's gRPC port, driven by Triton's own load tool,
perf_analyzer, at its defaults (random input data, synchronous calls), with a key in
`authorization` metadata and the audit log on. The tiny model (sigmoid) at 1 and 16 concurrent
requests over gRPC and over HTTP (perf_analyzer's binary tensors) in alternating turns, so both
protocols are measured by the same client; the image-sized model (1×3×224×224 FP32) over gRPC one at
a time, against ONNX Runtime called in-process on the same image in turns between them. Part of bench/run.py; runs alone too, after a
release build:

    GATEHOUSE_DATA=~/.local/share/gatehouse python3 bench/oip_grpc.py

perf_analyzer comes from the registries (scripts/setup.sh, install_perf_analyzer): the last
tritonclient wheel that carries it (2.41.1) and the CUDA runtime library it links against.
"""

import csv
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import run
import tensors

def perf_analyzer() -> tuple:
    """The perf_analyzer binary scripts/setup.sh unpacked, and the environment it runs with."""
    tools = pathlib.Path(os.environ.get("GATEHOUSE_PERF_ANALYZER", run.DATA / "perf-analyzer"))
    binary = tools / "perf_analyzer"
    if not binary.exists():
        raise SystemExit(f"{binary} is missing: run bench/run.sh, which installs it")
    return binary, {**os.environ, "LD_LIBRARY_PATH": str(tools)}


def load(tool: tuple, address: str, key: str, model: str, concurrency: int, protocol: str = "grpc") -> dict:
    """One perf_analyzer run at `concurrency` over `protocol` (grpc, or http with binary tensors,
    its default): its throughput and p50."""
    binary, env = tool
    with tempfile.TemporaryDirectory() as scratch:
        report = pathlib.Path(scratch) / "report.csv"
        command = [str(binary), "-m", model, "-u", address, "-i", protocol, "-H", f"authorization: Bearer {key}",
                   "--concurrency-range", str(concurrency), "--measurement-interval", str(max(2, run.SECONDS // 3) * 1000),
                   "--percentile", "50", "-f", str(report)]
        output = subprocess.run(command, env=env, capture_output=True, text=True)
        if output.returncode != 0:
            raise RuntimeError(f"perf_analyzer failed: {output.stdout[-2000:]}{output.stderr[-2000:]}")
        row = next(csv.DictReader(report.open()))
        errors = re.findall(r"had error: (.*)", output.stdout)
        if errors:
            raise RuntimeError(f"perf_analyzer saw errors: {errors[:3]}")
        return {"rps": float(row["Inferences/Second"]), "p50_us": float(row["p50 latency"])}


def measure() -> dict:
    tool = perf_analyzer()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        directory = pathlib.Path(scratch)
        models = directory / "models"
        image = tensors.make_model(models)
        shutil.copytree(run.MODELS / "sigmoid", models / "sigmoid")
        as_json, _, _ = tensors.bodies(directory)
        grpc_port = run.free_port()
        large = {"GATEHOUSE_MAX_BODY_BYTES": str(16 << 20)}
        with run.serving(True, large, models, ("--grpc-port", str(grpc_port))) as (base, key, _):
            address = f"127.0.0.1:{grpc_port}"
            where = {"grpc": address, "http": base.removeprefix("http://")}
            for concurrency in (1, 16):
                turns = {"grpc": [], "http": []}
                for protocol in run.balanced("grpc", "http"):
                    turns[protocol].append(load(tool, where[protocol], key, "sigmoid", concurrency, protocol))
                    last = turns[protocol][-1]
                    print(f"  {protocol:4} sigmoid c={concurrency:<3} {last['rps']:>8.0f} inferences/s  p50 {last['p50_us']:>6.0f} µs", flush=True)
                for protocol, values in turns.items():
                    results[f"sigmoid {protocol} c={concurrency}"] = {
                        "rps": sum(v["rps"] for v in values) / len(values),
                        "p50_us": sum(v["p50_us"] for v in values) / len(values),
                    }
            floors, servers = [], []
            for kind in run.balanced("floor", "server"):
                if kind == "floor":
                    floor = subprocess.run([str(run.ROOT / "target" / "release" / "inprocess-floor"), str(run.LIBRARY),
                                            str(image), str(as_json), str(max(100, run.SECONDS * 100))],
                                           capture_output=True, text=True, check=True).stdout
                    floors.append(json.loads(floor)["p50_us"])
                    print(f"  image in-process p50 {floors[-1]:>6.0f} µs", flush=True)
                else:
                    servers.append(load(tool, address, key, "image", 1))
                    print(f"  gRPC image c=1   {servers[-1]['rps']:>8.0f} inferences/s  p50 {servers[-1]['p50_us']:>6.0f} µs", flush=True)
            results["image c=1"] = {
                "rps": sum(s["rps"] for s in servers) / len(servers),
                "p50_us": sum(s["p50_us"] for s in servers) / len(servers),
            }
            results["image floor_p50_us"] = sum(floors) / len(floors)
    return results


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
