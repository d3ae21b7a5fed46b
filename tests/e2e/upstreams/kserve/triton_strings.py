"""NVIDIA's Triton HTTP client sending and receiving BYTES tensors, as a user would: python
triton_strings.py HOST:PORT KEY. Calls the `upper` model twice, once with the client's defaults
(binary data both ways) and once as JSON, and prints both answers as JSON lists of strings."""
import json
import sys

import numpy as np
import tritonclient.http as httpclient

client = httpclient.InferenceServerClient(url=sys.argv[1])
words = np.array(["hello", "ünïcödé", "", "Gatehouse ✓"], dtype=np.object_)
answers = []
for binary in (True, False):
    text = httpclient.InferInput("text", [len(words)], "BYTES")
    text.set_data_from_numpy(words, binary_data=binary)
    upper = httpclient.InferRequestedOutput("upper", binary_data=binary)
    # A dict of its own each time: the client adds Inference-Header-Content-Length to the one given.
    headers = {"Authorization": f"Bearer {sys.argv[2]}"}
    result = client.infer("upper", [text], outputs=[upper], headers=headers)
    answers.append([
        value.decode("utf-8") if isinstance(value, bytes) else value
        for value in result.as_numpy("upper").ravel().tolist()
    ])
print(json.dumps(answers, ensure_ascii=False))
