"""Writes a compact copy of a jaxlic weights file: its large arrays as float16 (about half the size).

  python tools/compact_weights.py runs/x/export/ckbd-full-vr-q0.msgpack jaxlic/pretrained/ckbd-full-vr-q0.msgpack

The JSON beside the input (config and metrics) is copied beside the output, with
`"stored": "float16"`. The compact file is a (slightly) different model: measure it, not the
original, before quoting numbers for it (`jaxlic eval IMAGES --weights OUT ...`), or show that
it codes like the original: `--check IMG [IMG ...]` codes each image with both files (a
variable-rate model at its lowest, middle and highest rate parameter), prints the differences
in bytes and PSNR and keeps them in the output's JSON as `"compact_check"`.
"""

import argparse
import json
import pathlib
import sys

import jax
import numpy as np

from jaxlic import weights


def check(original: pathlib.Path, compact: pathlib.Path, images: list[str]) -> list[dict]:
    """Codes each image with both weights files: bytes and PSNR of each, per rate point."""
    from PIL import Image  # pylint: disable=g-import-not-at-top

    from jaxlic import zoo  # pylint: disable=g-import-not-at-top
    from jaxlic.metrics import psnr  # pylint: disable=g-import-not-at-top

    a, b = zoo.load(weights=original), zoo.load(weights=compact)
    if a.variable_rate:
        lo, hi = a.rate_range
        rates = [lo, (lo + hi) / 2, hi]
    else:  # a fixed-rate model has no rate range
        rates = [None]
    rows = []
    for path in images:
        img = np.asarray(Image.open(path).convert("RGB"))
        for q in rates:
            row = {"image": pathlib.Path(path).name, "rate": q}
            for label, codec in (("float32", a), ("float16", b)):
                data = codec.compress(img) if q is None else codec.compress(img, quality=q)
                row[label] = {"bytes": len(data), "psnr": psnr(img, codec.decompress(data))}
            row["d_psnr"] = row["float16"]["psnr"] - row["float32"]["psnr"]
            row["d_bytes_pct"] = 100.0 * (row["float16"]["bytes"] / row["float32"]["bytes"] - 1.0)
            print(
                f"{row['image']} rate {q}: {row['float32']['bytes']} -> {row['float16']['bytes']} bytes "
                f"({row['d_bytes_pct']:+.2f}%), {row['d_psnr']:+.4f} dB"
            )
            rows.append(row)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", type=pathlib.Path)
    p.add_argument("output", type=pathlib.Path)
    p.add_argument("--check", nargs="+", metavar="IMAGE", help="code these images with both files")
    args = p.parse_args(argv)
    params, meta = weights.load(args.input)
    weights.save(args.output, params, {**meta, "stored": "float16"}, half=True)
    back, _ = weights.load(args.output)
    rel = max(
        float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) or 1.0))
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back))
    )
    side = args.input.with_suffix(".json")
    info = json.loads(side.read_text()) if side.is_file() else {}
    if args.check:
        info["compact_check"] = check(args.input, args.output, args.check)
    if info:
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
