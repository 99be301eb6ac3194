#!/usr/bin/env bash
# Build the CompressAI reference environment (.venv-ref/) used ONLY to regenerate
# tests/fixtures/compressai/*.  jaxlic itself never imports CompressAI.
#
# Why a separate env: compressai 1.2.8 pins numpy<2 (and needs torchvision), while
# jax 0.10 needs numpy>=2, so the two cannot share one interpreter.
#
# Usage (from the repo root):
#     bash tools/make_reference_env.sh            # creates .venv-ref/ (git-ignored)
#     .venv-ref/bin/python tools/make_compressai_fixtures.py
#
# torch/torchvision are CPU builds; pip picks them up from the local wheel mirror when
# one is configured, otherwise from PyPI (~5.5 GB download).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-ref}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install --upgrade pip >/dev/null || true
"$VENV/bin/pip" install "torch==2.14.1" "torchvision==0.29.1" "compressai==1.2.8" scikit-image  # skimage: test image
"$VENV/bin/python" -c "import compressai, torch, numpy; print('compressai', compressai.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__)"
