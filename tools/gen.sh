#!/usr/bin/env bash
# Regenerates the checked-in ONNX test cases: ONNX's own node tests for the ops effc reads
# (tests/onnx-node), the pooling cases with onnxruntime's outputs (tests/ort-cases) and
# blocks quantized by onnxruntime with its outputs (tests/ort-quant).
# CI does not run this: the cases are checked in. Installs its pinned packages
# (tools/requirements.txt) into tools/.venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x tools/.venv/bin/python ]; then
    python3 -m venv tools/.venv
    tools/.venv/bin/pip install --quiet -r tools/requirements.txt
fi
tools/.venv/bin/python tools/onnx_node_tests.py tests/onnx-node/cases
tools/.venv/bin/python tools/ort_pool_cases.py tests/ort-cases
tools/.venv/bin/python tools/ort_quant_cases.py tests/ort-quant
tools/.venv/bin/python tools/onnx_versions.py
