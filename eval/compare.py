"""Classical codecs at the rate of each model point: ``python -m eval.compare``.

Reads CompressAI-format RD curves (``jaxlic eval`` writes them) and prints, for every point of
every model curve, each codec's PSNR at the same bpp (pchip in log-rate, never extrapolated) and
the difference to the model. ``--json`` writes the same numbers::

    python -m eval.compare --models results/kodak/ckbd-full.json results/kodak/ckbd-full+refine40.json \
        --codecs results/kodak/{jpeg,webp,jpeg2000,avif,heif}.json --json results/kodak/summary.json
"""

from __future__ import annotations

import argparse
import json
import math
import os

from eval import bdrate


def compare(models: list[dict], codecs: list[dict], metric: str = "psnr-rgb") -> dict:
    """`{model name: [{bpp, quality, <codec>: quality at that bpp or None, ...} per point]}`."""
    out = {}
    for model in models:
        rates, values = bdrate.curve_points(model, metric)
        points = []
        for bpp, value in zip(rates.tolist(), values.tolist()):
            point = {"bpp": bpp, metric: value}
            for codec in codecs:
                other = bdrate.psnr_at_bpp(codec, bpp, metric)
                point[codec["name"]] = None if math.isnan(other) else other
            points.append(point)
        out[model["name"]] = points
    return out


def table(result: dict, metric: str = "psnr-rgb") -> str:
    lines = []
    for name, points in result.items():
        for p in points:
            lines.append(f"{name} at {p['bpp']:.4f} bpp: {p[metric]:.2f}")
            for codec, value in p.items():
                if codec in ("bpp", metric):
                    continue
                shown = (
                    "outside its curve" if value is None else f"{value:.2f} (model {p[metric] - value:+.2f})"
                )
                lines.append(f"  {codec:<10} {shown}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="model RD JSONs")
    parser.add_argument("--codecs", nargs="+", required=True, help="codec RD JSONs")
    parser.add_argument("--metric", default="psnr-rgb")
    parser.add_argument("--json", default=None, help="write the comparison here")
    args = parser.parse_args(argv)
    result = compare(
        [bdrate.load_rd_json(p) for p in args.models],
        [bdrate.load_rd_json(p) for p in args.codecs],
        args.metric,
    )
    print(table(result, args.metric))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
