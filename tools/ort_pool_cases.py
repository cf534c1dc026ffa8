#!/usr/bin/env python3
"""Writes pooling cases whose expected outputs come from onnxruntime into tests/ort-cases/.

Each case is one AveragePool or MaxPool over a random input, in the layout ONNX's node tests
use (model.onnx, test_data_set_0/{input,output}_0.pb), so tests/onnx_node.rs runs them the
same way. The geometries are the corners of ONNX's output-size formula: windows larger than
the input (a pooler with kernel = stride = 2560 over 7x7, as one model library writes its
EfficientNet head), ceil mode with a last window on the padding, dilations, asymmetric pads,
count_include_pad both ways. Run through tools/gen.sh (onnx and onnxruntime pinned in
tools/requirements.txt).
"""
import os
import shutil
import sys

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

# (name, op, input H x W, kernel, strides, pads, dilations, ceil_mode, count_include_pad)
CASES = [
    ("avg_k2560_s2560_7x7_ceil_include_pad", "AveragePool", (7, 7), (2560, 2560), (2560, 2560), (0, 0, 0, 0), None, 1, 1),
    ("avg_k2560_s2560_7x7_ceil", "AveragePool", (7, 7), (2560, 2560), (2560, 2560), (0, 0, 0, 0), None, 1, 0),
    ("max_k2560_s2560_7x7_ceil", "MaxPool", (7, 7), (2560, 2560), (2560, 2560), (0, 0, 0, 0), None, 1, 0),
    ("avg_k9_s9_7x5_ceil_include_pad", "AveragePool", (7, 5), (9, 9), (9, 9), (0, 0, 0, 0), None, 1, 1),
    ("avg_k8_s16_7x7_ceil_pads_include_pad", "AveragePool", (7, 7), (8, 8), (16, 16), (1, 2, 3, 1), None, 1, 1),
    ("avg_k3_s2_6x6_ceil_pad1_include_pad", "AveragePool", (6, 6), (3, 3), (2, 2), (1, 1, 1, 1), None, 1, 1),
    ("avg_k3_s2_6x6_ceil_pad1", "AveragePool", (6, 6), (3, 3), (2, 2), (1, 1, 1, 1), None, 1, 0),
    ("avg_k5_s3_7x7_ceil_pad2_include_pad", "AveragePool", (7, 7), (5, 5), (3, 3), (2, 2, 2, 2), None, 1, 1),
    ("max_k5_s3_7x7_ceil_pad2", "MaxPool", (7, 7), (5, 5), (3, 3), (2, 2, 2, 2), None, 1, 0),
    ("avg_k3_s2_d2_8x9_ceil_include_pad", "AveragePool", (8, 9), (3, 3), (2, 2), (1, 0, 1, 2), (2, 2), 1, 1),
    ("avg_k3_s2_d2_8x9_ceil", "AveragePool", (8, 9), (3, 3), (2, 2), (1, 0, 1, 2), (2, 2), 1, 0),
    ("max_k3_s2_d2_8x9_ceil", "MaxPool", (8, 9), (3, 3), (2, 2), (1, 0, 1, 2), (2, 2), 1, 0),
    ("avg_k4_s3_9x10_floor_asym_include_pad", "AveragePool", (9, 10), (4, 4), (3, 3), (0, 3, 2, 1), None, 0, 1),
    ("avg_k7_s1_7x7_floor", "AveragePool", (7, 7), (7, 7), (1, 1), (0, 0, 0, 0), None, 0, 0),
    ("max_k2_s2_5x7_ceil", "MaxPool", (5, 7), (2, 2), (2, 2), (0, 0, 0, 0), None, 1, 0),
]

CHANNELS = 3


def write(root, name, op, hw, kernel, strides, pads, dilations, ceil_mode, include_pad):
    attrs = dict(kernel_shape=list(kernel), strides=list(strides), pads=list(pads), ceil_mode=ceil_mode)
    if op == "AveragePool":
        attrs["count_include_pad"] = include_pad
    if dilations:
        attrs["dilations"] = list(dilations)
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, *hw])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([node], name, [x_info], [y_info])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal((1, CHANNELS, *hw)).astype(np.float32)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x})
    out = os.path.join(root, f"test_ort_{name}")
    os.makedirs(os.path.join(out, "test_data_set_0"))
    with open(os.path.join(out, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    for kind, value, vname in (("input", x, "x"), ("output", y, "y")):
        with open(os.path.join(out, "test_data_set_0", f"{kind}_0.pb"), "wb") as f:
            f.write(numpy_helper.from_array(value, vname).SerializeToString())
    return y.shape


def main():
    root = sys.argv[1]
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    for case in CASES:
        shape = write(root, *case)
        print(f"{case[0]}: output {shape}")
    print(f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}: {len(CASES)} cases in {root}")


if __name__ == "__main__":
    main()
