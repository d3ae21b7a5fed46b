"""Builds the small ONNX models the end-to-end tests need and no package ships.

    python make_models.py DIR
writes DIR/identity/1/model.onnx: one Identity per datatype the server serves, input `in_<TYPE>`
and output `out_<TYPE>`, shape [-1, 2] so both a dynamic and a fixed dimension are exercised;
DIR/sequence/1/model.onnx, whose output is a sequence (not a tensor) and so must be refused; and
DIR/upper/1/model.onnx, which upper-cases a list of strings (StringNormalizer): BYTES in and out;
and DIR/image/1/model.onnx, an image-sized model (one [batch, 3, 224, 224] FP32 input, 150,528
numbers an image, answered with each channel's mean and the image at half brightness) so the big
tensor path is exercised and measured.
"""

import pathlib
import sys

import onnx
from onnx import TensorProto, helper

TYPES = {
    "BOOL": TensorProto.BOOL, "UINT8": TensorProto.UINT8, "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32, "UINT64": TensorProto.UINT64, "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16, "INT32": TensorProto.INT32, "INT64": TensorProto.INT64,
    "FP32": TensorProto.FLOAT, "FP64": TensorProto.DOUBLE, "BYTES": TensorProto.STRING,
}
OPSET = [helper.make_opsetid("", 17)]


def save(model, path: pathlib.Path) -> None:
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def identity() -> onnx.ModelProto:
    inputs, outputs, nodes = [], [], []
    for name, element in TYPES.items():
        inputs.append(helper.make_tensor_value_info("in_" + name, element, ["batch", 2]))
        outputs.append(helper.make_tensor_value_info("out_" + name, element, ["batch", 2]))
        nodes.append(helper.make_node("Identity", ["in_" + name], ["out_" + name]))
    graph = helper.make_graph(nodes, "identity", inputs, outputs)
    return helper.make_model(graph, opset_imports=OPSET, ir_version=8)


def sequence() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    out = helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None)
    node = helper.make_node("SequenceConstruct", ["x"], ["seq"])
    graph = helper.make_graph([node], "sequence", [x], [out])
    return helper.make_model(graph, opset_imports=OPSET, ir_version=8)


def upper() -> onnx.ModelProto:
    text = helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])
    out = helper.make_tensor_value_info("upper", TensorProto.STRING, ["n"])
    node = helper.make_node("StringNormalizer", ["text"], ["upper"], case_change_action="UPPER", locale="C")
    graph = helper.make_graph([node], "upper", [text], [out])
    return helper.make_model(graph, opset_imports=OPSET, ir_version=8)


def image() -> onnx.ModelProto:
    pixels = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 224, 224])
    means = helper.make_tensor_value_info("channel_mean", TensorProto.FLOAT, ["batch", 3])
    half = helper.make_tensor_value_info("half", TensorProto.FLOAT, ["batch", 3, 224, 224])
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.5])
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["channel_mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Mul", ["image", "scale"], ["half"]),
    ]
    graph = helper.make_graph(nodes, "image", [pixels], [means, half], initializer=[scale])
    return helper.make_model(graph, opset_imports=OPSET, ir_version=8)


root = pathlib.Path(sys.argv[1])
save(identity(), root / "identity" / "1" / "model.onnx")
save(sequence(), root / "sequence" / "1" / "model.onnx")
save(upper(), root / "upper" / "1" / "model.onnx")
save(image(), root / "image" / "1" / "model.onnx")
