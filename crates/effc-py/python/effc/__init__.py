"""effc: an ONNX compiler for the EfficientNet family, behind onnxruntime's API.

Swap ``onnxruntime.InferenceSession`` for ``effc.InferenceSession``::

    import effc
    sess = effc.InferenceSession("efficientnet_b0.onnx")
    logits = sess.run(None, {sess.get_inputs()[0].name: batch})[0]

A session compiles the model to machine code for the shapes it is fed (each new binding of
the model's symbolic dims is compiled once and cached) and releases the GIL while it runs.
"""

from ._effc import (
    EffcError,
    InferenceSession,
    NodeArg,
    SessionOptions,
    __version__,
    compile_report,
)

__all__ = [
    "EffcError",
    "InferenceSession",
    "NodeArg",
    "SessionOptions",
    "__version__",
    "compile_report",
]
