"""Type stubs for effc's Python module."""

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

__version__: str

class EffcError(Exception):
    """effc's one-line error: file, node, op and opset where known."""

class SessionOptions:
    """Options for an InferenceSession."""

    intra_op_num_threads: int
    """Threads one run is split over; 0 (the default) means one, the caller's."""
    kernels: str
    """"auto", "avx512", "avx2", "portable" or "jit"."""
    max_memory: Optional[int]
    """Bytes the session may hold (weights, compiled shapes, arenas); None: 4 GiB."""
    shape_cache: int
    """Input shapes kept compiled at once (least recently used out first); default 4."""
    def __init__(self) -> None: ...

class NodeArg:
    """A model input or output: name, shape (symbolic dims by name) and type."""

    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> List[Union[int, str, None]]: ...
    @property
    def type(self) -> str:
        """onnxruntime's type string, e.g. "tensor(float)"."""

class InferenceSession:
    """A compiled model with onnxruntime's InferenceSession API."""

    def __init__(
        self,
        path_or_bytes: Union[str, bytes, os.PathLike],
        sess_options: Optional[SessionOptions] = None,
        providers: Optional[Sequence[Any]] = None,
        provider_options: Optional[Sequence[Any]] = None,
        **kwargs: Any,
    ) -> None:
        """Loads and compiles the model; providers are accepted and ignored."""
    def get_inputs(self) -> List[NodeArg]: ...
    def get_outputs(self) -> List[NodeArg]: ...
    def get_providers(self) -> List[str]: ...
    def run(
        self,
        output_names: Optional[Sequence[str]],
        input_feed: Dict[str, np.ndarray],
        run_options: Any = None,
    ) -> List[np.ndarray]:
        """Runs on {input name: array}; returns the named outputs (all for None).

        Any shapes that fit the model's declared dims are accepted; the GIL is released
        while the model compiles a new shape and while it runs.
        """
    def profile(self, input_feed: Dict[str, np.ndarray], runs: int = 10) -> List[Tuple[str, float]]:
        """Milliseconds per run spent in each fused op, slowest first."""

def compile_report(path: Union[str, os.PathLike], kernels: str = "auto") -> Dict[str, Any]:
    """What `effc compile --json` prints: ops before and after fusion, MACs, arena, kernels."""
