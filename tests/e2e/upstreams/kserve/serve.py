"""KServe's Python model server on one ONNX model, for the guard's tests:
python serve.py MODEL.onnx HTTP_PORT [NAME [GRPC_PORT]] (the model's name, sigmoid unless
given; gRPC off unless a port is given).

KServe 0.21 binds its REST server to 0.0.0.0 and its gRPC server to [::] whatever it is told; a
guarded server must listen on loopback only, so both are moved to 127.0.0.1 before they start.
"""
import sys
import uuid

import onnxruntime
from grpc.aio import _server as aio_server
import kserve
from kserve import InferOutput, InferRequest, InferResponse
from kserve.protocol.rest import server as rest

_configure = rest.RESTServer.__init__


def _on_loopback(self, *args, **kwargs):
    _configure(self, *args, **kwargs)
    self.config.host = "127.0.0.1"


rest.RESTServer.__init__ = _on_loopback
_add_port = aio_server.Server.add_insecure_port


def _port_on_loopback(self, address):
    return _add_port(self, address.replace("[::]", "127.0.0.1"))


aio_server.Server.add_insecure_port = _port_on_loopback


class OnnxModel(kserve.Model):
    def __init__(self, name: str, path: str):
        super().__init__(name)
        self.session = onnxruntime.InferenceSession(path)
        self.ready = True

    async def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        feeds = {i.name: i.as_numpy() for i in payload.inputs}
        names = [o.name for o in self.session.get_outputs()]
        outputs = []
        for name, value in zip(names, self.session.run(names, feeds)):
            output = InferOutput(name=name, shape=list(value.shape), datatype="FP32")
            output.set_data_from_numpy(value, binary_data=False)
            outputs.append(output)
        return InferResponse(model_name=self.name, infer_outputs=outputs, response_id=payload.id or str(uuid.uuid4()))


if __name__ == "__main__":
    model, port = sys.argv[1], int(sys.argv[2])
    name = sys.argv[3] if len(sys.argv) > 3 else "sigmoid"
    grpc_port = int(sys.argv[4]) if len(sys.argv) > 4 else None
    server = kserve.ModelServer(http_port=port, grpc_port=grpc_port, enable_grpc=True) if grpc_port \
        else kserve.ModelServer(http_port=port, enable_grpc=False)
    server.start([OnnxModel(name, model)])
