"""NVIDIA's Triton gRPC client against Gatehouse's gRPC port, with its default settings, as a user
would call it: python triton_grpc.py HOST:PORT KEY [CA_PEM [CLIENT_CERT CLIENT_KEY]]. With CA_PEM
the channel is TLS and trusts that CA; with a client certificate too it presents it (mutual TLS).
Prints one JSON object: what each call answered, or the status it was refused with.
"""
import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

address, key = sys.argv[1], sys.argv[2]
ca = sys.argv[3] if len(sys.argv) > 3 else None
identity = sys.argv[4:6] if len(sys.argv) > 5 else None
if ca and identity:
    client = grpcclient.InferenceServerClient(url=address, ssl=True, root_certificates=ca,
                                              certificate_chain=identity[0], private_key=identity[1])
elif ca:
    client = grpcclient.InferenceServerClient(url=address, ssl=True, root_certificates=ca)
else:
    client = grpcclient.InferenceServerClient(url=address)
bearer = {"authorization": f"Bearer {key}"}
report = {}


def refusal(error: InferenceServerException) -> dict:
    return {"status": error.status(), "message": error.message()}


def attempt(name, call):
    try:
        report[name] = call()
    except InferenceServerException as error:
        report[name] = {"refused": refusal(error)}


def sigmoid_input() -> grpcclient.InferInput:
    x = grpcclient.InferInput("x", [3, 4, 5], "FP32")
    x.set_data_from_numpy((np.arange(60, dtype=np.float32).reshape(3, 4, 5) - 30.0) / 7.0)
    return x


def infer(model, inputs, outputs, headers):
    result = client.infer(model, inputs, outputs=[grpcclient.InferRequestedOutput(o) for o in outputs],
                          headers=headers, request_id="grpc-1")
    answer = {"id": result.get_response().id}
    for output in outputs:
        values = result.as_numpy(output)
        answer[output] = {
            "shape": list(values.shape),
            "data": [v.decode("utf-8") if isinstance(v, bytes) else v for v in values.ravel().tolist()],
        }
    return answer


# Public, like /v2/health/live and /v2/health/ready.
attempt("live", lambda: client.is_server_live())
attempt("ready", lambda: client.is_server_ready())
# Everything else needs the key.
attempt("anonymous_metadata", lambda: client.get_server_metadata(as_json=True))
attempt("anonymous_infer", lambda: infer("sigmoid", [sigmoid_input()], ["y"], None))
attempt("wrong_key", lambda: infer("sigmoid", [sigmoid_input()], ["y"], {"authorization": "Bearer gh_wrong"}))
attempt("metadata", lambda: client.get_server_metadata(headers=bearer, as_json=True))
attempt("model_metadata", lambda: client.get_model_metadata("sigmoid", headers=bearer, as_json=True))
attempt("model_ready", lambda: client.is_model_ready("sigmoid", headers=bearer))
attempt("missing_model_ready", lambda: client.is_model_ready("no-such-model", headers=bearer))
attempt("index", lambda: client.get_model_repository_index(headers=bearer, as_json=True))
attempt("sigmoid", lambda: infer("sigmoid", [sigmoid_input()], ["y"], bearer))
attempt("sigmoid_x_api_key", lambda: infer("sigmoid", [sigmoid_input()], ["y"], {"x-api-key": key}))
attempt("missing_model", lambda: infer("no-such-model", [sigmoid_input()], ["y"], bearer))

words = np.array(["hello", "ünïcödé", "", "Gatehouse ✓"], dtype=np.object_)
text = grpcclient.InferInput("text", [len(words)], "BYTES")
text.set_data_from_numpy(words)
attempt("upper", lambda: infer("upper", [text], ["upper"], bearer))

image = grpcclient.InferInput("image", [2, 3, 224, 224], "FP32")
image.set_data_from_numpy((np.arange(2 * 3 * 224 * 224) % 251 / 251).astype(np.float32).reshape(2, 3, 224, 224))
attempt("image", lambda: infer("image", [image], ["channel_mean", "half"], bearer))

wrong = grpcclient.InferInput("x", [3, 4, 6], "FP32")
wrong.set_data_from_numpy(np.zeros((3, 4, 6), dtype=np.float32))
attempt("wrong_shape", lambda: infer("sigmoid", [wrong], ["y"], bearer))
print(json.dumps(report, ensure_ascii=False))
