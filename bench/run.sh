#!/usr/bin/env bash
# Side-by-side latency of effc, tract and onnxruntime; writes docs/BENCHMARKS.md.
# Installs onnxruntime from PyPI into bench/.venv on first use. RUNS (default 50) timed
# runs per measurement after WARMUP (default 10); ROUNDS (default 5) measurements of each
# runtime, alternating effc and onnxruntime, so that a burst of load from another tenant
# of the machine lands in one round of one runtime, which the median over rounds drops.
# On an AVX-512 host effc also runs with --kernels avx2 (the variant AVX2-only hosts get),
# each variant in its own rounds beside onnxruntime.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-50}"
warmup="${WARMUP:-10}"
rounds="${ROUNDS:-5}"
venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "onnxruntime==1.32.0" numpy
fi
cargo build --release --quiet -p effc-cli
cargo build --release --quiet --example write_efficientnet
effc=target/release/effc
out=bench/out
mkdir -p "$out"
target/release/examples/write_efficientnet lite0 "$out/lite0.onnx" >/dev/null
target/release/examples/write_efficientnet b4 "$out/b4.onnx" >/dev/null
target/release/examples/write_efficientnet mobilenet_v3_small "$out/mobilenet_v3_small.onnx" >/dev/null
models=(../shared/models/tv_b0_legacy.onnx ../shared/models/tv_b0_bn.onnx ../shared/models/tv_b0_dynamo.onnx
    ../shared/models/keras_b0_nhwc.onnx ../shared/models/timm_tf_v2b0.onnx ../shared/models/timm_mnv4s.onnx
    "$out/lite0.onnx" "$out/b4.onnx" "$out/mobilenet_v3_small.onnx")
kernels=(auto)
grep -qw avx512f /proc/cpuinfo && kernels+=(avx2)
results="$out/results.jsonl"
: >"$results"
for model in "${models[@]}"; do
    name=$(basename "$model" .onnx)
    # Peak RSS of effc alone (no tract in the process).
    rss=$("$effc" bench "$model" --runs 5 --warmup 1 --json | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["peak_rss_mb"])')
    for variant in "${kernels[@]}"; do
    for threads in 1 2; do
        vs=()
        [ "$threads" = 1 ] && [ "$variant" = auto ] && vs=(--vs tract)
        for round in $(seq "$rounds"); do
            effc_json=$("$effc" bench "$model" --kernels "$variant" --threads "$threads" --runs "$runs" --warmup "$warmup" --json "${vs[@]}")
            ort_json=$("$venv/bin/python" bench/ort_bench.py "$model" "$threads" "$runs" "$warmup")
            printf '{"model": "%s", "threads": %s, "round": %s, "rss_mb": %s, "effc": %s, "ort": %s}\n' \
                "$name" "$threads" "$round" "$rss" "$(echo "$effc_json" | tr -d '\n')" "$ort_json" >>"$results"
            echo "$name, $variant, $threads thread(s), round $round: effc $(echo "$effc_json" | grep -m1 median_ms) | ort $ort_json" >&2
        done
    done
    done
done
"$venv/bin/python" bench/report.py "$results" docs/BENCHMARKS.md
cat docs/BENCHMARKS.md
