"""Starts MLServer on a copy of the model the test names, beside a streaming model `tokens`:
python serve.py MODEL.onnx HTTP_PORT GRPC_PORT [NAME] (the model's name, sigmoid unless given).

Writes MLServer's settings.json and model-settings.json into a scratch directory next to a copy of
the model, bound to 127.0.0.1 with its metrics server off, then runs `mlserver start` there.
"""
import json
import os
import shutil
import sys
import tempfile

model, http_port, grpc_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
name = sys.argv[4] if len(sys.argv) > 4 else "sigmoid"
here = os.path.dirname(os.path.abspath(__file__))
work = tempfile.mkdtemp(prefix="gatehouse-mlserver-")
for runtime in ("onnx_runtime.py", "tokens.py"):
    shutil.copy(os.path.join(here, runtime), work)
os.makedirs(os.path.join(work, name))
shutil.copy(model, os.path.join(work, name, "model.onnx"))
with open(os.path.join(work, "settings.json"), "w") as f:
    json.dump({
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,
        "parallel_workers": 0,
        "load_models_at_startup": True,
    }, f)
with open(os.path.join(work, name, "model-settings.json"), "w") as f:
    json.dump({
        "name": name,
        "implementation": "onnx_runtime.OnnxModel",
        "parameters": {"uri": os.path.join(work, name, "model.onnx")},
    }, f)
os.makedirs(os.path.join(work, "tokens"))
with open(os.path.join(work, "tokens", "model-settings.json"), "w") as f:
    json.dump({"name": "tokens", "implementation": "tokens.Tokens"}, f)
os.chdir(work)
sys.path.insert(0, work)
mlserver = os.path.join(os.path.dirname(sys.executable), "mlserver")
os.execv(mlserver, [mlserver, "start", work])
