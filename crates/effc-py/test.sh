#!/usr/bin/env bash
# Builds the Python module as a user would install it (pip install ./crates/effc-py, a
# release build through maturin) into a fresh venv, and runs its pytest suite. Part of the
# README's test command; it reuses target/debug/examples/write_efficientnet, which
# `cargo test --workspace` builds, to write a model with a symbolic batch.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/target/py-venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$root/crates/effc-py/requirements-test.txt"
"$venv/bin/pip" install -q --disable-pip-version-check "$root/crates/effc-py"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
writer="$root/target/debug/examples/write_efficientnet"
[ -x "$writer" ] || cargo build -q --example write_efficientnet --manifest-path "$root/Cargo.toml"
"$writer" b0 "$work/b0_dynamic.onnx" 64 3 --dynamic-batch >/dev/null
cd "$work"
EFFC_DYNAMIC_MODEL="$work/b0_dynamic.onnx" "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/crates/effc-py/tests"
