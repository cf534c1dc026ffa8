#!/usr/bin/env bash
# Bounded fuzz smoke run: each target for FUZZ_SECONDS (default 60) on a seed corpus made
# from ONNX's conformance cases. Installs cargo-fuzz if needed. The long run is the same
# with FUZZ_SECONDS=1800. cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable
# toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seconds="${FUZZ_SECONDS:-60}"
for target in load compile_run; do
    corpus="corpus/$target"
    mkdir -p "$corpus"
    for m in ../../shared/onnx-conformance/*/*/model.onnx; do
        cp -n "$m" "$corpus/$(basename "$(dirname "$m")").onnx" 2>/dev/null || true
    done
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 -print_final_stats=1
done
