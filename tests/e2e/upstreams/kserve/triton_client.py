"""NVIDIA's Triton HTTP client with its defaults (binary tensor data both ways), as a user would
call a server: python triton_client.py HOST:PORT [KEY]. Prints the first outputs as JSON, or the
client's error and exits 1."""
import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url = sys.argv[1]
headers = {"Authorization": f"Bearer {sys.argv[2]}"} if len(sys.argv) > 2 else None
client = httpclient.InferenceServerClient(url=url)
x = (np.arange(60, dtype=np.float32) / 10 - 3).reshape(3, 4, 5)
request = httpclient.InferInput("x", [3, 4, 5], "FP32")
request.set_data_from_numpy(x)
try:
    result = client.infer("sigmoid", [request], outputs=[httpclient.InferRequestedOutput("y")], headers=headers)
except InferenceServerException as error:
    print(str(error), file=sys.stderr)
    sys.exit(1)
print(json.dumps(result.as_numpy("y").ravel().tolist()))
