"""What the exact entropy path costs in rate: an exact model against its float original, per image.

  python -m eval.exact_cost ../shared/data/kodak --float jaxlic/pretrained/ckbd-full-vr-q0.msgpack \\
      --exact runs/exact/ckbd-full-vr-ptq.msgpack --out results/exact

Codes every image at every rate point with both weights files (real streams, interleaved in one
process), decodes each exact stream (its symbol check must pass), and writes the per-image rows
of both (`per_image_float.csv`, `per_image_exact.csv`, the format of `jaxlic eval`) and
`exact_cost.json`: the per-image BD-rate of exact against float with its 95% bootstrap CI
(`jaxlic.evaluation.matched.bd_rate_per_image`), the mean byte ratio per rate point, and the
provenance (command, machine, versions).
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import sys

import numpy as np

from eval import harness


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", type=pathlib.Path)
    p.add_argument("--float", dest="float_weights", required=True)
    p.add_argument("--exact", dest="exact_weights", required=True)
    p.add_argument("--qualities", default="", help="rate points (default: every trained one)")
    p.add_argument("--limit", type=int, default=0, help="first N images only")
    p.add_argument("--out", type=pathlib.Path, required=True)
    args = p.parse_args(argv)
    run = harness.Run("eval.exact_cost", argv)

    from PIL import Image

    from jaxlic import zoo
    from jaxlic.evaluation import matched
    from jaxlic.metrics import psnr

    codecs = {"float": zoo.load(weights=args.float_weights), "exact": zoo.load(weights=args.exact_weights)}
    if not codecs["exact"].exact or codecs["float"].exact:
        raise SystemExit("--float must be a float model and --exact an exact one")
    c = codecs["float"]
    if args.qualities:
        rates = [float(q) for q in args.qualities.split(",")]
    else:
        rates = [float(q) for q in range(c.num_rates)] if c.variable_rate else [None]
    paths = sorted(args.images.glob("*.png"))[: args.limit or None]
    rows = {k: [] for k in codecs}
    for path in paths:
        img = np.asarray(Image.open(path).convert("RGB"))
        h, w = img.shape[:2]
        for q in rates:
            kw = {} if q is None else {"quality": q}
            for kind, codec in codecs.items():
                data, encoding_time = harness.timed(codec.compress, img, **kw)
                out, decoding_time = harness.timed(codec.decompress, data)  # exact: checks its symbols
                rows[kind].append(
                    {
                        "image": path.name,
                        "kind": "model",
                        "name": f"{codec.name}-{kind}",
                        "quality": 0 if q is None else q,
                        "height": h,
                        "width": w,
                        "size_bytes": len(data),
                        "bpp": 8 * len(data) / (h * w),
                        "psnr": psnr(img, out),
                        "encoding_time": encoding_time,
                        "decoding_time": decoding_time,
                    }
                )
            f, e = rows["float"][-1], rows["exact"][-1]
            print(
                f"{path.name} q={q}: float {f['size_bytes']} B {f['psnr']:.3f} dB, exact {e['size_bytes']} B "
                f"{e['psnr']:.3f} dB ({100 * (e['size_bytes'] / f['size_bytes'] - 1):+.2f}%)",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    for kind, rs in rows.items():
        with open(args.out / f"per_image_{kind}.csv", "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(rs[0]))
            wr.writeheader()
            wr.writerows(rs)
    # per image: the mean byte ratio over its rate points (a fixed-rate model has one), with a CI
    ratios = {}
    for f, e in zip(rows["float"], rows["exact"]):
        ratios.setdefault(f["image"], []).append(e["size_bytes"] / f["size_bytes"] - 1)
    per_image = [100 * float(np.mean(v)) for v in ratios.values()]
    lo, hi = matched.bootstrap_ci(per_image)
    bytes_pct = {"mean_pct": float(np.mean(per_image)), "ci95": [float(lo), float(hi)], "n": len(per_image)}
    bd = matched.bd_rate_per_image(rows["exact"], rows["float"]) if len(rates) > 1 else None
    by_rate = {}
    for q in rates:
        ratio = [
            e["size_bytes"] / f["size_bytes"]
            for f, e in zip(rows["float"], rows["exact"])
            if (f["quality"] == (0 if q is None else q))
        ]
        by_rate[str(q)] = {"mean_bytes_pct": 100 * (float(np.mean(ratio)) - 1), "n": len(ratio)}
    result = {
        "float_weights": args.float_weights,
        "exact_weights": args.exact_weights,
        "images": len(paths),
        "rates": rates,
        "bd_rate_exact_vs_float": bd,
        "bytes_exact_vs_float_per_image": bytes_pct,
        "bytes_by_rate": by_rate,
        "psnr_max_abs_diff": max(abs(f["psnr"] - e["psnr"]) for f, e in zip(rows["float"], rows["exact"])),
        "provenance": run.provenance(),
    }
    harness.write_json(args.out / "exact_cost.json", result, indent=1)
    b = bytes_pct
    print(
        f"bytes exact vs float, per image: {b['mean_pct']:+.3f}% [{b['ci95'][0]:+.3f}, {b['ci95'][1]:+.3f}]"
    )
    if bd is not None:
        print(f"BD-rate exact vs float: {bd['mean_pct']:+.3f}% [{bd['ci95'][0]:+.3f}, {bd['ci95'][1]:+.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
