"""ONNX Runtime's own answer for one inference, the reference the server's results must equal.

stdin:  {"model": PATH, "inputs": {NAME: {"datatype": ..., "shape": [...], "data": [...]}}}
stdout: {NAME: {"shape": [...], "data": [...]}} for every output
"""

import json
import sys

import numpy as np
import onnxruntime

TYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP32": np.float32, "FP64": np.float64,
    "BYTES": np.object_,
}

request = json.load(sys.stdin)
options = onnxruntime.SessionOptions()
options.intra_op_num_threads = 1
session = onnxruntime.InferenceSession(request["model"], options, providers=["CPUExecutionProvider"])
feeds = {
    name: np.array(tensor["data"], dtype=TYPES[tensor["datatype"]]).reshape(tensor["shape"])
    for name, tensor in request["inputs"].items()
}
names = [output.name for output in session.get_outputs()]
results = session.run(names, feeds)
json.dump({name: {"shape": list(value.shape), "data": value.ravel().tolist()} for name, value in zip(names, results)}, sys.stdout)
