"""KServe's own gRPC client, InferenceGRPCClient, against Gatehouse's gRPC port as a KServe user
would call it: python kserve_grpc.py HOST:PORT KEY. Runs sigmoid on a fixed input with the key in
`authorization` metadata, then without it; prints the outputs and the refusal as JSON.
"""
import asyncio
import json
import sys

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest


async def main(address: str, key: str) -> dict:
    client = InferenceGRPCClient(url=address, use_ssl=False)
    x = InferInput(name="x", shape=[3, 4, 5], datatype="FP32")
    x.set_data_from_numpy((np.arange(60, dtype=np.float32).reshape(3, 4, 5) - 30.0) / 7.0)
    request = InferRequest(model_name="sigmoid", infer_inputs=[x], request_id="kserve-1")
    answer = await client.infer(request, headers=[("authorization", f"Bearer {key}")])
    report = {"id": answer.id, "y": answer.outputs[0].as_numpy().ravel().tolist()}
    try:
        await client.infer(request)
        report["anonymous"] = "answered"
    except grpc.aio.AioRpcError as error:
        report["anonymous"] = {"status": error.code().name, "message": error.details()}
    await client.close()
    return report


print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
