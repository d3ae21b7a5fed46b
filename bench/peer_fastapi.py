"""The benchmark's peer: FastAPI + uvicorn + onnxruntime serving the same models through the same
Open Inference Protocol JSON, written the way a FastAPI user would write it.

    python peer_fastapi.py MODELS_DIR PORT plain|tuned

plain: what `pip install fastapi uvicorn` and `uvicorn app:app` run: one process, h11, asyncio.
tuned: uvicorn[standard]'s httptools and uvloop, one worker process per CPU core.
"""

import os
import pathlib
import sys

import numpy as np
import onnxruntime
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TYPES = {"FP32": np.float32, "FP64": np.float64, "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "BOOL": np.bool_}
NAMES = {np.dtype(v).name: k for k, v in TYPES.items()}

app = FastAPI()
sessions = {}


def load(models: pathlib.Path) -> None:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    for model_file in models.glob("*/1/model.onnx"):
        name = model_file.parent.parent.name
        sessions[name] = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])


@app.post("/v2/models/{model}/infer")
async def infer(model: str, request: Request):
    session = sessions.get(model)
    if session is None:
        return JSONResponse({"error": "unknown model"}, status_code=404)
    body = await request.json()
    feeds = {t["name"]: np.asarray(t["data"], dtype=TYPES[t["datatype"]]).reshape(t["shape"]) for t in body["inputs"]}
    names = [o.name for o in session.get_outputs()]
    results = session.run(names, feeds)
    outputs = [
        {"name": n, "datatype": NAMES[v.dtype.name], "shape": list(v.shape), "data": v.ravel().tolist()}
        for n, v in zip(names, results)
    ]
    return {"model_name": model, "model_version": "1", "outputs": outputs}


if __name__ == "__main__":
    os.environ["PEER_MODELS"] = sys.argv[1]
    load(pathlib.Path(sys.argv[1]))
    port = int(sys.argv[2])
    common = {"host": "127.0.0.1", "port": port, "log_level": "warning", "access_log": False}
    if sys.argv[3] == "plain":
        uvicorn.run(app, http="h11", loop="asyncio", **common)
    else:
        uvicorn.run("peer_fastapi:app", http="httptools", loop="uvloop", workers=os.cpu_count() or 1, **common)
elif os.environ.get("PEER_MODELS"):
    # Each uvicorn worker process imports this module and loads its own sessions.
    load(pathlib.Path(os.environ["PEER_MODELS"]))
