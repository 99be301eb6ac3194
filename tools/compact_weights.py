"""Writes a compact copy of a jaxlic weights file: its large arrays as float16 (about half the size).

  python tools/compact_weights.py runs/x/export/ckbd-full-vr-q0.msgpack jaxlic/pretrained/ckbd-full-vr-q0.msgpack

The JSON beside the input (config and metrics) is copied beside the output, with
`"stored": "float16"`. The compact file is a (slightly) different model: measure it, not the
original, before quoting numbers for it (`jaxlic eval IMAGES --weights OUT ...`).
"""

import argparse
import json
import pathlib
import sys

import jax
import numpy as np

from jaxlic import weights


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", type=pathlib.Path)
    p.add_argument("output", type=pathlib.Path)
    args = p.parse_args(argv)
    params, meta = weights.load(args.input)
    weights.save(args.output, params, {**meta, "stored": "float16"}, half=True)
    back, _ = weights.load(args.output)
    rel = max(
        float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) or 1.0))
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back))
    )
    side = args.input.with_suffix(".json")
    if side.is_file():
        info = json.loads(side.read_text())
        args.output.with_suffix(".json").write_text(
            json.dumps({**info, "stored": "float16"}, indent=2) + "\n"
        )
    print(
        f"{args.output}: {args.output.stat().st_size / 1e6:.2f} MB (from {args.input.stat().st_size / 1e6:.2f} MB), "
        f"largest change {rel:.1e} of an array's largest value"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
