#!/usr/bin/env bash
# Installs the Python module as a user does (pip install ./crates/effc-py, through maturin)
# into a fresh venv, and runs its pytest suite. Part of the README's test command, so it
# builds with the dev profile `cargo test --workspace` has just built (dependencies
# optimised, effc's crates at opt-level 1): a release build would compile every dependency
# again, the longest step of CI on a slow host. EFFC_PY_PROFILE=release tests the
# release build a user gets. It reuses target/debug/examples/write_efficientnet to write
# a model with a symbolic batch.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/target/py-venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$root/crates/effc-py/requirements-test.txt"
MATURIN_PEP517_ARGS="--profile ${EFFC_PY_PROFILE:-dev}" \
    "$venv/bin/pip" install -q --disable-pip-version-check "$root/crates/effc-py"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
writer="$root/target/debug/examples/write_efficientnet"
[ -x "$writer" ] || cargo build -q --example write_efficientnet --manifest-path "$root/Cargo.toml"
"$writer" b0 "$work/b0_dynamic.onnx" 64 3 --dynamic-batch >/dev/null
cd "$work"
EFFC_DYNAMIC_MODEL="$work/b0_dynamic.onnx" "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/crates/effc-py/tests"
