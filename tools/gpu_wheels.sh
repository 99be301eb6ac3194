#!/usr/bin/env bash
# Fills .whl/ (git-ignored) with the wheels tools/gpu_run.sh installs on an accelerator machine
# that has jax (CUDA), flax, optax and orbax but not jaxlic's other needs.
#
#   tools/gpu_wheels.sh [PYTHON_VERSION]      # default 3.12 (the device image's CPython)
#
# Downloads exactly the missing packages, without their dependencies (--no-deps; the machine
# has numpy, scipy, pillow, absl, etils, protobuf, cloudpickle, pyyaml, ...), as CPython
# manylinux x86_64 wheels. Total about 20 MiB. Pin versions with e.g. GRAIN=grain==0.2.18.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYV=${1:-3.12}
DEST=${DEST:-$REPO/.whl}
PY=${PYTHON:-python3}
PACKAGES=(
    "${CONSTRICTION:-constriction>=0.4}"
    "${ML_COLLECTIONS:-ml-collections>=1.0}"
    "${GRAIN:-grain>=0.2.12}"
    "${TENSORBOARDX:-tensorboardX>=2.6}"
    "${SCIKIT_IMAGE:-scikit-image>=0.24}"
    "${MSGPACK:-msgpack>=1.0}"
    # grain's own needs that the machine lacks
    "${ARRAY_RECORD:-array-record>=0.8.1}"
    "${PORTPICKER:-portpicker}"
)
PLATFORMS=()
for p in manylinux_2_39 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 \
    manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
    PLATFORMS+=(--platform "${p}_x86_64")
done

# .whl/ is in .gitignore.
rm -rf "$DEST"
mkdir -p "$DEST"
for pkg in "${PACKAGES[@]}"; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version "$PYV" \
        "${PLATFORMS[@]}" --platform any -d "$DEST" "$pkg"
done
ls -la "$DEST"
du -sh "$DEST"
