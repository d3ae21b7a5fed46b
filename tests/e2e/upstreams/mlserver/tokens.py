"""An MLServer runtime that streams, for the guard's streaming test: asked for N tokens on
MLServer's own `infer_stream` route, it answers with N server-sent events 200 ms apart, each
carrying the time it was written, so the test can tell whether the guard passed each one on as it
came or held the body back."""
import asyncio
import time

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceResponse, ResponseOutput


class Tokens(MLModel):
    async def load(self) -> bool:
        return True

    async def predict_stream(self, payloads):
        request = await payloads.__anext__()
        count = int(NumpyCodec.decode_input(request.inputs[0]).flatten()[0])
        for token in range(count):
            if token:
                await asyncio.sleep(0.2)
            yield InferenceResponse(
                model_name=self.name,
                outputs=[
                    ResponseOutput(name="token", shape=[1], datatype="INT32", data=[token]),
                    ResponseOutput(name="sent", shape=[1], datatype="FP64", data=[time.time()]),
                ],
            )
