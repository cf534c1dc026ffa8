"""effc's Python module against onnxruntime's stored outputs, its API, threads and bad inputs."""

import os
import pathlib
import threading

import numpy as np
import pytest

import effc

SHARED = pathlib.Path(__file__).resolve().parents[4] / "shared" / "models"
B0 = SHARED / "tv_b0_legacy.onnx"
KERAS = SHARED / "keras_b0_nhwc.onnx"
DYNAMIC = os.environ.get("EFFC_DYNAMIC_MODEL")


def max_rel(got, want):
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def cat():
    return np.load(SHARED / "inputs" / "cat_1x3x224x224.npy")


@pytest.fixture(scope="module")
def b0():
    return effc.InferenceSession(str(B0), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "model, image, reference",
    [
        (B0, "cat_1x3x224x224", "tv_b0_legacy.cat"),
        (B0, "noise_1x3x224x224", "tv_b0_legacy.noise"),
        (KERAS, "keras_cat_1x224x224x3", "keras_b0_nhwc.cat"),
    ],
)
def test_outputs_match_onnxruntime(model, image, reference):
    sess = effc.InferenceSession(model)
    x = np.load(SHARED / "inputs" / f"{image}.npy")
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x})
    want = np.load(SHARED / "ref" / f"{reference}.ort.npy")
    assert y.dtype == np.float32 and y.shape == want.shape
    assert max_rel(y, want) < 1e-4
    assert np.argmax(y) == np.argmax(want)


def test_inputs_outputs_and_options(b0):
    (i,) = b0.get_inputs()
    assert (i.name, i.shape, i.type) == ("input", [1, 3, 224, 224], "tensor(float)")
    (o,) = b0.get_outputs()
    assert o.type == "tensor(float)" and o.shape[-1] == 1000
    assert "NodeArg" in repr(i)
    so = effc.SessionOptions()
    assert (so.intra_op_num_threads, so.kernels, so.max_memory, so.shape_cache) == (0, "auto", None, 4)
    so.intra_op_num_threads = 2
    so.kernels = "portable"
    sess = effc.InferenceSession(B0, sess_options=so)
    (y,) = sess.run(["logits"], {"input": cat()})
    assert max_rel(y, np.load(SHARED / "ref" / "tv_b0_legacy.cat.ort.npy")) < 1e-4
    so.kernels = "sse9"
    with pytest.raises(effc.EffcError):
        effc.InferenceSession(B0, sess_options=so)


def test_bytes_and_pathlike_load_the_same_model(b0):
    x = cat()
    want = b0.run(None, {"input": x})[0]
    from_bytes = effc.InferenceSession(B0.read_bytes())
    assert np.array_equal(from_bytes.run(None, {"input": x})[0], want)


def test_non_contiguous_inputs_are_copied(b0):
    x = cat()
    strided = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert not strided.flags["C_CONTIGUOUS"]
    assert np.array_equal(b0.run(None, {"input": strided})[0], b0.run(None, {"input": x})[0])


def test_eight_threads_share_one_session_bit_identically(b0):
    rng = np.random.default_rng(5)
    inputs = [rng.standard_normal((1, 3, 224, 224), dtype=np.float32) for _ in range(8)]
    want = [b0.run(None, {"input": x})[0] for x in inputs]
    got = [None] * 8
    errors = []

    def work(k):
        try:
            for _ in range(3):
                (y,) = b0.run(None, {"input": inputs[k]})
                assert np.array_equal(y, want[k])
            got[k] = y
        except Exception as e:  # reported below: pytest does not see a thread's failure
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(np.array_equal(g, w) for g, w in zip(got, want))


@pytest.mark.skipif(DYNAMIC is None, reason="EFFC_DYNAMIC_MODEL not set (test.sh writes it)")
def test_a_symbolic_batch_takes_any_batch():
    sess = effc.InferenceSession(DYNAMIC)
    (i,) = sess.get_inputs()
    assert i.shape == ["N", 3, 64, 64]
    rng = np.random.default_rng(7)
    batch = rng.standard_normal((5, 3, 64, 64), dtype=np.float32)
    (ys,) = sess.run(None, {i.name: batch})
    assert ys.shape == (5, 1000)
    # Each image of the batch gets what it gets alone.
    for k in range(5):
        (y,) = sess.run(None, {i.name: batch[k : k + 1]})
        assert max_rel(ys[k], y[0]) < 1e-5
    with pytest.raises(effc.EffcError, match=r"declared dims \[N, 3, 64, 64\]"):
        sess.run(None, {i.name: np.zeros((2, 3, 32, 32), np.float32)})


def test_bad_inputs_raise_effc_errors(b0):
    x = cat()
    cases = [
        ({"input": x[:, :, :100]}, "declared dims"),
        ({"input": x.astype(np.float64)}, "expected tensor(float) data"),
        ({"input": x, "image": x}, "'image' is not an input of the model"),
        ({}, "input 'input' is missing"),
        ({"input": x.tolist()}, "expected a numpy array, got list"),
    ]
    for feed, message in cases:
        with pytest.raises(effc.EffcError, match=message.replace("(", r"\(").replace(")", r"\)")):
            b0.run(None, feed)
    with pytest.raises(effc.EffcError, match="'probs' is not an output"):
        b0.run(["probs"], {"input": x})
    with pytest.raises(effc.EffcError, match="/nonexistent/m.onnx"):
        effc.InferenceSession("/nonexistent/m.onnx")
    assert issubclass(effc.EffcError, Exception)


def test_compile_report_and_profile(b0):
    report = effc.compile_report(B0)
    assert report["ops_after"]["MBConv"] == 16
    assert abs(report["macs"] / 385.8e6 - 1) < 1e-3
    profile = b0.profile({"input": cat()}, runs=3)
    assert len(profile) > 16 and all(ms >= 0 for _, ms in profile)
    assert profile == sorted(profile, key=lambda p: -p[1])
    assert any("MBConv" in name or "features" in name for name, _ in profile)


def tensor_proto(path):
    """A TensorProto's raw_data as a numpy array (the few fields ONNX's test cases use)."""
    buf, pos, dims, dtype, raw = pathlib.Path(path).read_bytes(), 0, [], None, None

    def varint():
        nonlocal pos
        value, shift = 0, 0
        while True:
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while pos < len(buf):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            value = varint()
            if field == 1:
                dims.append(value)
            elif field == 2:
                dtype = value
        elif wire == 2:
            n = varint()
            chunk, pos = buf[pos : pos + n], pos + n
            if field == 9:
                raw = chunk
        else:
            raise ValueError(f"{path}: wire type {wire}")
    numpy_types = {1: np.float32, 2: np.uint8, 3: np.int8}
    return np.frombuffer(raw, numpy_types[dtype]).reshape(dims)


def test_uint8_in_uint8_out():
    """ONNX's QLinearConv case: a quantized model's uint8 input and output, exactly."""
    case = pathlib.Path(__file__).resolve().parents[3] / "tests/onnx-node/cases/test_qlinearconv_weights_as_initializers"
    x = tensor_proto(case / "test_data_set_0/input_0.pb")
    want = tensor_proto(case / "test_data_set_0/output_0.pb")
    sess = effc.InferenceSession(str(case / "model.onnx"))
    assert sess.get_inputs()[0].type == "tensor(uint8)" and sess.get_outputs()[0].type == "tensor(uint8)"
    (y,) = sess.run(None, {"x": x})
    assert y.dtype == np.uint8 and np.array_equal(y, want)
    with pytest.raises(effc.EffcError, match=r"expected tensor\(uint8\) data"):
        sess.run(None, {"x": x.astype(np.float32)})
