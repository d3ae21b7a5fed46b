"""Large tensors: an image-sized input (1×3×224×224 FP32, 150,528 numbers) to a model that
averages each channel, sent as JSON and as Triton's binary extension, against ONNX Runtime called
in-process on the same input. Part of bench/run.py; runs alone too, after a release build:

    GATEHOUSE_DATA=~/.local/share/gatehouse python3 bench/tensors.py

One Gatehouse on 127.0.0.1 with keys required and the audit log on; turns alternate (JSON,
binary, binary, JSON, …) and the in-process floor is taken between them.
"""

import json
import os
import pathlib
import struct
import subprocess
import sys
import tempfile

import run

SHAPE = [1, 3, 224, 224]
COUNT = 3 * 224 * 224


def make_model(directory: pathlib.Path) -> pathlib.Path:
    """ReduceMean over height and width: a real image model's input with a tiny output, so the
    figures are about getting the input in."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)],
        "channel_means",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = directory / "image" / "1" / "model.onnx"
    path.parent.mkdir(parents=True)
    onnx.save(model, str(path))
    return path


def bodies(directory: pathlib.Path) -> tuple:
    values = [((i * 7919) % 1000) / 1000.0 for i in range(COUNT)]
    as_json = directory / "image.json"
    as_json.write_text(json.dumps({"inputs": [{"name": "x", "shape": SHAPE, "datatype": "FP32", "data": values}]}))
    header = json.dumps({"inputs": [{"name": "x", "shape": SHAPE, "datatype": "FP32",
                                     "parameters": {"binary_data_size": 4 * COUNT}}]}).encode()
    as_binary = directory / "image.bin"
    as_binary.write_bytes(header + struct.pack(f"<{COUNT}f", *values))
    return as_json, as_binary, len(header)


def measure() -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        directory = pathlib.Path(scratch)
        model = make_model(directory / "models")
        as_json, as_binary, header_length = bodies(directory)
        results = {}
        large = {"GATEHOUSE_MAX_BODY_BYTES": str(16 << 20)}
        with run.serving(True, large, directory / "models") as (base, key, _):
            url = f"{base}/v2/models/image/infer"
            for connections in (1, 16):
                sides = {"json": {}, "binary": {"BENCH_HEADER_LENGTH": str(header_length)}}
                bodies_of = {"json": as_json, "binary": as_binary}
                for kind, extra in sides.items():
                    os.environ.update(extra)
                    run.warm_up(url, bodies_of[kind], key)
                    os.environ.pop("BENCH_HEADER_LENGTH", None)
                turns = {"json": [], "binary": []}
                for kind in run.balanced("json", "binary"):
                    os.environ.update(sides[kind])
                    turns[kind].append(run.wrk(url, bodies_of[kind], connections, key))
                    os.environ.pop("BENCH_HEADER_LENGTH", None)
                    last = turns[kind][-1]
                    print(f"  image 1×3×224×224 {kind:6} c={connections:<3} {last['rps']:>7.0f} req/s  p50 {last['p50_us']:>7.0f} µs", flush=True)
                for kind, values in turns.items():
                    results[(kind, connections)] = {
                        "rps": sum(v["rps"] for v in values) / len(values),
                        "p50_us": sum(v["p50_us"] for v in values) / len(values),
                    }
        floor = subprocess.run([str(run.ROOT / "target" / "release" / "inprocess-floor"), str(run.LIBRARY), str(model),
                                str(as_json), str(max(100, run.SECONDS * 100))], capture_output=True, text=True, check=True).stdout
        results["floor_p50_us"] = json.loads(floor)["p50_us"]
        print(f"  image in-process p50 {results['floor_p50_us']:.0f} µs", flush=True)
        return results


if __name__ == "__main__":
    measured = measure()
    print(json.dumps({f"{k[0]} c={k[1]}" if isinstance(k, tuple) else k: v for k, v in measured.items()}, indent=2))
    sys.exit(0)
