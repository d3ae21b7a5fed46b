"""Gatehouse against the Open Inference Protocol servers a user would pick instead, on the same
tiny model (sigmoid) and magika, with the same JSON requests over HTTP (wrk), in one run: Seldon MLServer
1.7.1 (one process, its fastest setting) and KServe 0.21's Python model server, both serving the
ONNX file through onnxruntime (the scripts the guard's tests start them with). Gatehouse runs as
installed (keys required, audit log on). 16 connections, turns alternating (A, B, C, C, B, A, …).

Over gRPC the same three serve the tiny model to h2load (nghttp2's HTTP/2 load generator): Triton's
perf_analyzer first asks a server for its model configuration (Triton's ModelConfig call), which
MLServer does not have ("Method not found"), so it cannot drive the peers. h2load sends one
ModelInfer message, the one a Triton gRPC client sends at its defaults (the tensor as raw bytes),
over 16 connections; each server's answer to that message is checked with a real gRPC client
before and after its turns, since h2load counts HTTP statuses, not gRPC's.

Part of bench/run.py; runs alone too, after a release build and ./scripts/test.sh's setup:

    GATEHOUSE_DATA=~/.local/share/gatehouse python3 bench/oip_peers.py

Everything listens on 127.0.0.1; every load run is bounded by BENCH_SECONDS.
"""

import contextlib
import json
import os
import pathlib
import re
import struct
import subprocess
import sys
import tempfile

import guard
import run

CONNECTIONS = 16


@contextlib.contextmanager
def kserve(model: str = "sigmoid"):
    venv = pathlib.Path(os.environ.get("GATEHOUSE_KSERVE_VENV", run.DATA / "kserve-venv"))
    script = run.ROOT / "tests" / "e2e" / "upstreams" / "kserve" / "serve.py"
    port, grpc = run.free_port(), run.free_port()
    server = subprocess.Popen([str(venv / "bin" / "python"), str(script), str(run.MODELS / model / "1" / "model.onnx"),
                               str(port), model, str(grpc)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        run.wait_http(f"http://127.0.0.1:{port}/v2/health/ready")
        run.wait_tcp(grpc)
        yield f"http://127.0.0.1:{port}", "", server.pid, grpc
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=20)


METHOD = "/inference.GRPCInferenceService/ModelInfer"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def grpc_frame(model: str, body: pathlib.Path) -> bytes:
    """The JSON request in `body` as a gRPC ModelInfer message with the tensors in
    raw_input_contents, in gRPC's framing (a flag byte and a 4-byte length)."""
    formats = {"FP32": "f", "INT32": "i", "INT64": "q", "FP64": "d"}
    message = _field(1, model.encode())
    raw = b""
    for tensor in json.loads(body.read_text())["inputs"]:
        shape = b"".join(_varint(d) for d in tensor["shape"])
        message += _field(5, _field(1, tensor["name"].encode()) + _field(2, tensor["datatype"].encode()) + _field(3, shape))
        data = tensor["data"]
        raw += _field(7, struct.pack(f"<{len(data)}{formats[tensor['datatype']]}", *data))
    message += raw
    return b"\x00" + struct.pack(">I", len(message)) + message


# Run with KServe's environment, which has grpcio and Triton's messages: one call, the reply's
# outputs printed, a gRPC error raised as it is.
CHECK = """
import sys, grpc
from tritonclient.grpc import service_pb2
address, key, path = sys.argv[1:4]
message = open(path, "rb").read()[5:]
call = grpc.insecure_channel(address).unary_unary(sys.argv[4])
metadata = [("authorization", "Bearer " + key)] if key else []
reply = service_pb2.ModelInferResponse.FromString(call(message, metadata=metadata, timeout=10))
print(sorted((o.name, list(o.shape)) for o in reply.outputs), sum(len(r) for r in reply.raw_output_contents) or len(reply.outputs[0].contents.fp32_contents))
"""


def grpc_answers(address: str, key: str, frame: pathlib.Path) -> str:
    """What the server answers the benchmark's message with, through a real gRPC client."""
    venv = pathlib.Path(os.environ.get("GATEHOUSE_KSERVE_VENV", run.DATA / "kserve-venv"))
    done = subprocess.run([str(venv / "bin" / "python"), "-c", CHECK, address, key, str(frame), METHOD],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"the gRPC server on {address} did not answer the benchmark's ModelInfer:\n{done.stderr}")
    return done.stdout.strip()


def h2load(address: str, key: str, frame: pathlib.Path, connections: int) -> dict:
    command = ["h2load", "-t1", f"-c{connections}", "-m1", f"-D{run.SECONDS}", "--warm-up-time=1",
               "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(frame)]
    if key:
        command += ["-H", f"authorization: Bearer {key}"]
    output = subprocess.run([*command, f"http://{address}{METHOD}"], capture_output=True, text=True, check=True).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", output)
    if not done or int(done.group(3)) or int(done.group(1)) == 0:
        raise SystemExit(f"h2load against {address} had failures:\n{output}")
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", output).group(1)
    return {"rps": float(re.search(r"finished in \S+, ([\d.]+) req/s", output).group(1)), "mean_us": run.to_us(mean)}


def grpc_turns(sides: dict, frame: pathlib.Path, connections: int) -> dict:
    """sides: name → (host:port, key). Mean req/s and mean latency over alternating turns."""
    answers = {name: grpc_answers(address, key, frame) for name, (address, key) in sides.items()}
    results = {name: [] for name in sides}
    for name in run.balanced(*sides):
        address, key = sides[name]
        result = h2load(address, key, frame, connections)
        results[name].append(result)
        print(f"  {name:18} sigmoid gRPC c={connections:<3} {result['rps']:>8.0f} req/s  mean {result['mean_us']:>7.0f} µs", flush=True)
    for name, (address, key) in sides.items():
        after = grpc_answers(address, key, frame)
        if after != answers[name]:
            raise SystemExit(f"{name} answered differently after its turns: {answers[name]} then {after}")
    return {name: {"rps": sum(r["rps"] for r in rs) / len(rs), "mean_us": sum(r["mean_us"] for r in rs) / len(rs),
                   "answer": answers[name]} for name, rs in results.items()}


def measure() -> dict:
    """Per model (sigmoid, magika): each server's mean req/s and p50. One model's peers at a time,
    so the idle ones do not share the machine with the measured."""
    bodies = run.bodies()
    results = {}
    grpc_port = run.free_port()
    with run.serving(True, args=("--grpc-port", str(grpc_port))) as (base, key, _), \
            tempfile.TemporaryDirectory() as scratch:
        for model in ("sigmoid", "magika"):
            with guard.mlserver(model) as mlserver, kserve(model) as ks:
                print(f"Open Inference Protocol servers, {model}, {CONNECTIONS} connections, HTTP with JSON (wrk)", flush=True)
                results[model] = guard.turns({"gatehouse": (base, f"Bearer {key}", None),
                                              "mlserver": (f"http://127.0.0.1:{mlserver[0]}", "", None),
                                              "kserve": ks[:3]}, bodies[model], CONNECTIONS, model)
                if model == "sigmoid":
                    frame = pathlib.Path(scratch) / "sigmoid.grpc"
                    frame.write_bytes(grpc_frame(model, bodies[model]))
                    print(f"the same over gRPC, {CONNECTIONS} connections (h2load, raw tensor contents)", flush=True)
                    results["sigmoid grpc"] = grpc_turns({"gatehouse": (f"127.0.0.1:{grpc_port}", key),
                                                          "mlserver": (f"127.0.0.1:{mlserver[2]}", ""),
                                                          "kserve": (f"127.0.0.1:{ks[3]}", "")}, frame, CONNECTIONS)
    return results


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
    sys.exit(0)
