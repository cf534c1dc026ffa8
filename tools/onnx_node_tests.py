#!/usr/bin/env python3
"""Writes ONNX's own node tests for the ops effc imports into tests/onnx-node/.

The cases come from the case definitions of the `onnx` package (onnx.backend.test.case.node),
at the version pinned in tools/requirements.txt, exactly as ONNX's `backend-test-tools
generate-data` writes them: model.onnx plus test_data_set_N/{input,output}_K.pb. They are
checked in, so CI needs no Python; run this again (through tools/gen.sh) only to take a new
onnx version or to add ops. tests/onnx_node.rs runs them and tests/onnx-node/must-pass.txt
lists the ones that must pass.
"""
import os
import shutil
import dataclasses
import numpy
import sys
import warnings

import onnx
from onnx import numpy_helper
from onnx.backend.test.case import node

# The ONNX ops effc's importer reads (crates/effc-onnx/src/import/ops/mod.rs).
EFFC_OPS = set("""
Conv MaxPool AveragePool GlobalAveragePool GlobalMaxPool BatchNormalization
Gemm MatMul Softmax LogSoftmax ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd
Add Sub Mul Div Pow PRelu Mod Equal Less Greater And Or Sum Max Min Mean Clip Cast Where
Sigmoid Relu Tanh Exp Log Sqrt Neg Abs Ceil Floor Round Reciprocal Softplus Softsign Erf Not
Elu Selu LeakyRelu HardSigmoid HardSwish Gelu
Identity Dropout Constant Shape Size ConstantOfShape Reshape Flatten Squeeze Unsqueeze
Transpose Concat Split Slice Gather Tile Expand Pad Range
QuantizeLinear DequantizeLinear QLinearConv QLinearMatMul ConvInteger MatMulInteger
""".split())

# Cases larger than this (model plus data) are left out to keep the repository small.
MAX_BYTES = 64 * 1024


def case_ops(model):
    return {(n.domain, n.op_type) for n in model.graph.node}


def write_case(case, root):
    out = os.path.join(root, case.name)
    os.makedirs(out)
    with open(os.path.join(out, "model.onnx"), "wb") as f:
        f.write(case.model.SerializeToString())
    for i, (inputs, outputs) in enumerate(case.data_sets):
        d = os.path.join(out, f"test_data_set_{i}")
        os.makedirs(d)
        for kind, values, infos in (("input", inputs, case.model.graph.input),
                                    ("output", outputs, case.model.graph.output)):
            for k, v in enumerate(values):
                t = numpy_helper.from_array(v, infos[k].name)
                with open(os.path.join(d, f"{kind}_{k}.pb"), "wb") as f:
                    f.write(t.SerializeToString())


# Inputs that are parameters in a real model: ONNX's node tests feed them as graph inputs,
# effc needs them constant (it specialises code to the weights). Each case that feeds one
# at run time is also written with them as initializers, from its first data set.
PARAMETERS = {
    "Conv": (1, 2),
    "BatchNormalization": (1, 2, 3, 4),
    "QuantizeLinear": (1, 2),
    "DequantizeLinear": (1, 2),
    "QLinearConv": (1, 2, 3, 4, 5, 6, 7, 8),
    "QLinearMatMul": (1, 2, 4, 5, 6, 7),
    "ConvInteger": (1, 2, 3),
    "MatMulInteger": (2, 3),
}


def parameters(model):
    names = set()
    for n in model.graph.node:
        for i in PARAMETERS.get(n.op_type, ()):
            if i < len(n.input) and n.input[i]:
                names.add(n.input[i])
    return names


def with_initializers(case):
    """The case with its parameter inputs as initializers, or None if it has none."""
    names = parameters(case.model)
    inputs = case.model.graph.input
    if not names & {i.name for i in inputs} or not case.data_sets:
        return None
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    values, outputs = case.data_sets[0]
    kept = []
    for info, value in zip(inputs, values):
        if info.name in names:
            model.graph.initializer.append(numpy_helper.from_array(value, info.name))
        else:
            kept.append((info, value))
    del model.graph.input[:]
    model.graph.input.extend(info for info, _ in kept)
    return dataclasses.replace(
        case,
        name=case.name + "_weights_as_initializers",
        model=model,
        data_sets=[([v for _, v in kept], outputs)],
    )


def size_of(case):
    n = len(case.model.SerializeToString())
    for inputs, outputs in case.data_sets:
        n += sum(v.nbytes for v in list(inputs) + list(outputs))
    return n


def main():
    root = sys.argv[1]
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node.collect_testcases(None)
    kept = []
    for case in cases:
        ops = case_ops(case.model)
        if any(d not in ("", "ai.onnx") or op not in EFFC_OPS for d, op in ops):
            continue
        # numpy scalars (a few cases' scales and zero points) are 0-d tensors.
        case = dataclasses.replace(case, data_sets=[
            tuple([numpy.asarray(v) if isinstance(v, numpy.generic) else v for v in part] for part in ds)
            for ds in case.data_sets
        ])
        if any(not isinstance(v, numpy.ndarray) for ds in case.data_sets for v in ds[0] + ds[1]):
            continue  # sequences and optionals: effc has neither
        if size_of(case) > MAX_BYTES:
            continue
        write_case(case, root)
        kept.append(case.name)
        constant = with_initializers(case)
        if constant is not None:
            write_case(constant, root)
            kept.append(constant.name)
    print(f"onnx {onnx.__version__}: {len(kept)} of {len(cases)} node tests written to {root}")


if __name__ == "__main__":
    main()
