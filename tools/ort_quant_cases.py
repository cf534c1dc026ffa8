#!/usr/bin/env python3
"""Writes quantized blocks of the EfficientNet family, quantized by onnxruntime, with
onnxruntime's outputs, into tests/ort-quant/.

Each case is a small float model (an MBConv block with swish and squeeze-excite and a
classifier; a Lite-style block with an explicit pad, ReLU6, a concat and a leaky ReLU),
quantized by onnxruntime's own `quantize_static` in the QOperator format (QLinearConv and
the com.microsoft QLinear* ops and QGemm) and in the QDQ format, calibrated on seeded
inputs. The expected outputs are onnxruntime's, with all its graph optimizations (its
int8 kernels). Weights are quantized to 7 bits (`reduce_range`), as onnxruntime advises
for CPUs without VNNI: with 8-bit weights its AVX2 kernel's `vpmaddubsw` saturates pair
sums at 2^15, and its outputs then differ from its own unoptimized QDQ semantics by up to
15 quanta on these cases (measured on an AVX2-only Zen 1); with 7 bits they equal them,
so the oracle does not depend on the host that wrote it. Layout as ONNX's node tests (model.onnx, test_data_set_0/{input,output}_0.pb).
Run through tools/gen.sh (onnx and onnxruntime pinned in tools/requirements.txt).
"""
import os
import shutil
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


class Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def weight(self, shape, scale):
        name = self.name("w")
        self.inits.append(numpy_helper.from_array((self.rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def node(self, op, inputs, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, k, stride=1, group=1, pads=None):
        w = self.weight((cout, cin // group, k, k), (2.0 / (cin // group * k * k)) ** 0.5)
        b = self.weight((cout,), 0.1)
        p = pads if pads is not None else [k // 2] * 4
        return self.node("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=p, group=group)

    def swish(self, x):
        return self.node("Mul", [x, self.node("Sigmoid", [x])])

    def model(self, x_shape, out):
        x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
        y_info = helper.make_tensor_value_info(out, TensorProto.FLOAT, None)
        graph = helper.make_graph(self.nodes, "block", [x_info], [y_info], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        return model


def mbconv_swish_se():
    """B0's block shape: expand, depthwise, squeeze-excite, project, residual; a head."""
    b = Builder(1)
    c, e, s = 8, 24, 4
    x = b.swish(b.conv("x", 3, c, 3))
    h = b.swish(b.conv(x, c, e, 1))
    h = b.swish(b.conv(h, e, e, 3, group=e))
    g = b.node("GlobalAveragePool", [h])
    g = b.swish(b.conv(g, e, s, 1))
    g = b.node("Sigmoid", [b.conv(g, s, e, 1)])
    h = b.node("Mul", [h, g])
    y = b.node("Add", [b.conv(h, e, c, 1), x])
    y = b.node("Flatten", [b.node("GlobalAveragePool", [y])])
    w = b.weight((10, c), 0.5)
    y = b.node("Gemm", [y, w, b.weight((10,), 0.1)], transB=1)
    return b.model([1, 3, 16, 16], y)


def lite_relu6_concat():
    """Lite's stem (explicit TF-same pad, ReLU6), two branches concatenated, a leaky ReLU."""
    b = Builder(2)
    pads = b.name("pads")
    b.inits.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64), pads))
    x = b.node("Pad", ["x", pads])
    lo, hi = b.name("lo"), b.name("hi")
    b.inits += [numpy_helper.from_array(np.array(0, np.float32), lo), numpy_helper.from_array(np.array(6, np.float32), hi)]
    x = b.node("Clip", [b.conv(x, 3, 8, 3, stride=2, pads=[0, 0, 0, 0]), lo, hi])
    left = b.node("Clip", [b.conv(x, 8, 8, 3, group=8), lo, hi])
    right = b.node("LeakyRelu", [b.conv(x, 8, 8, 1)], alpha=0.1)
    y = b.node("Concat", [left, right], axis=1)
    y = b.node("Add", [b.conv(y, 16, 8, 1), x])
    return b.model([1, 3, 17, 17], y)


CASES = [("mbconv_swish_se", mbconv_swish_se), ("lite_relu6_concat", lite_relu6_concat)]


class Reader(CalibrationDataReader):
    def __init__(self, inputs):
        self.it = iter([{"x": x} for x in inputs])

    def get_next(self):
        return next(self.it, None)


def write(root, name, model, quant_format):
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(len(name))
    calibration = [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "quant.onnx")
        onnx.save(model, src)
        quantize_static(src, dst, Reader(calibration), quant_format=quant_format, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True)
        quantized = onnx.load(dst)
    x = rng.standard_normal(shape).astype(np.float32)
    session = onnxruntime.InferenceSession(quantized.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x})
    fmt = "qoperator" if quant_format == QuantFormat.QOperator else "qdq"
    out = os.path.join(root, f"test_ort_{name}_{fmt}")
    os.makedirs(os.path.join(out, "test_data_set_0"))
    onnx.save(quantized, os.path.join(out, "model.onnx"))
    output_name = quantized.graph.output[0].name
    for kind, value, vname in (("input", x, "x"), ("output", y, output_name)):
        with open(os.path.join(out, "test_data_set_0", f"{kind}_0.pb"), "wb") as f:
            f.write(numpy_helper.from_array(value, vname).SerializeToString())
    ops = sorted({(n.domain or "ai.onnx") + "." + n.op_type for n in quantized.graph.node})
    print(f"{name} {fmt}: output {y.shape}, ops {' '.join(ops)}")


def main():
    root = sys.argv[1]
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    for name, build in CASES:
        for fmt in (QuantFormat.QOperator, QuantFormat.QDQ):
            write(root, name, build(), fmt)
    print(f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}: {2 * len(CASES)} cases in {root}")


if __name__ == "__main__":
    main()
