"""Times onnxruntime (CPU EP) on one model: prints one JSON object with min/p10/median/p90
in ms, the thread count and the onnxruntime version. Called by bench/run.sh.

Usage: ort_bench.py MODEL THREADS RUNS WARMUP [BATCH]; symbolic dims take BATCH (default 1)."""
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    model, threads, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    t = time.perf_counter()
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t) * 1e3
    rng = np.random.default_rng(0)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else batch for d in i.shape]
        feeds[i.name] = rng.standard_normal(shape, dtype=np.float32)
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(max(runs, 1)):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    at = lambda q: times[round((len(times) - 1) * q)]
    print(json.dumps({
        "version": ort.__version__, "threads": threads, "load_ms": load_ms,
        "min_ms": times[0], "p10_ms": at(0.1), "median_ms": at(0.5), "p90_ms": at(0.9),
    }))


if __name__ == "__main__":
    main()
