#!/usr/bin/env bash
# Bounded fuzz smoke run: each target for FUZZ_SECONDS (default 60) on a seed corpus made
# from ONNX's conformance cases and from effc's own writer (every exporter spelling of a
# small MBConv network). Installs cargo-fuzz if needed. The long run is the same with
# FUZZ_SECONDS=1800. cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable
# toolchain accept them. Exits non-zero on the first crash (the input is left in
# fuzz/artifacts/TARGET/).
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
seconds="${FUZZ_SECONDS:-60}"
seeds="$PWD/corpus/seeds"
(cd .. && cargo run --quiet -p effc-models --example fuzz_seeds -- "$seeds")
for target in load compile_run; do
    corpus="corpus/$target"
    mkdir -p "$corpus"
    for m in ../../shared/onnx-conformance/*/*/model.onnx; do
        cp -n "$m" "$corpus/$(basename "$(dirname "$m")").onnx" 2>/dev/null || true
    done
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" "$seeds" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 -print_final_stats=1
done
