"""Do the per-image codec curves read right? A check against rate-targeted encodes.

For each image and each target rate, the codec is driven to that rate directly (JPEG 2000: its own
rate control; WebP: bisection on its continuous quality parameter), and the PSNR it reaches is
compared with the image's swept curve (``per_image_codecs.csv``, Pareto front, pchip in log-rate)
read at the rate the direct encode actually spent. The mean over images of both numbers, and of
their difference, tell whether the matched-rate comparisons (``jaxlic compare``) read the codecs
as they are. Run from the checkout::

    python -m eval.codec_check ../shared/data/kodak results/kodak/per_image_codecs.csv \
        --codecs webp,jpeg2000 --bpp 0.15,0.2,0.25 --json results/kodak/codec_check.json
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from eval import harness
from jaxlic.evaluation import codecs, matched
from jaxlic.image_io import list_images, read_image


def rate_targeted(name: str, img: np.ndarray, bpp: float, iters: int = 14) -> dict:
    """The codec's encode of ``img`` at (about) ``bpp``: by its own rate control or by bisection."""
    if name == "jpeg2000":
        return codecs.run_codec(name, img, bpp)
    lo, hi = 0.0, 100.0
    best = None
    for _ in range(iters):
        q = 0.5 * (lo + hi)
        r = codecs.run_codec(name, img, q)
        if best is None or abs(r["bpp"] - bpp) < abs(best["bpp"] - bpp):
            best = r
        lo, hi = (q, hi) if r["bpp"] < bpp else (lo, q)
    return best


def check(images: list[str], rows: list[dict], names: list[str], targets: list[float]) -> dict:
    out = {}
    for name in names:
        crow = [r for r in rows if r["name"] == name]
        for target in targets:
            direct, curve, spent = [], [], []
            for path in images:
                img, _ = read_image(path)
                image = os.path.basename(path)
                r = rate_targeted(name, img, target)
                pts = [p for p in crow if p["image"] == image]
                value = matched.value_at_rate([p["bpp"] for p in pts], [p["psnr"] for p in pts], r["bpp"])
                if value is None:
                    continue
                direct.append(r["psnr"])
                curve.append(value)
                spent.append(r["bpp"])
            diff = np.asarray(curve) - np.asarray(direct)
            out[f"{name}@{target}"] = {
                "n": len(direct),
                "mean_bpp": float(np.mean(spent)),
                "direct_psnr": float(np.mean(direct)),
                "curve_psnr": float(np.mean(curve)),
                "mean_diff_db": float(diff.mean()),
                "mean_abs_diff_db": float(np.abs(diff).mean()),
                "max_abs_diff_db": float(np.abs(diff).max()),
            }
            s = out[f"{name}@{target}"]
            print(
                f"{name:<10} target {target:.2f}: spent {s['mean_bpp']:.4f} bpp, direct {s['direct_psnr']:.2f} dB,"
                f" curve {s['curve_psnr']:.2f} dB, curve-direct {s['mean_diff_db']:+.3f} dB"
                f" (mean |.| {s['mean_abs_diff_db']:.3f}, max {s['max_abs_diff_db']:.3f}), n={s['n']}"
            )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images")
    parser.add_argument("codec_csv", help="per_image_codecs.csv from jaxlic eval")
    parser.add_argument("--codecs", default="webp,jpeg2000")
    parser.add_argument("--bpp", default="0.15,0.2,0.25")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    run = harness.Run("eval.codec_check", argv)
    result = check(
        list_images(args.images, args.max_images),
        matched.read_rows([args.codec_csv]),
        args.codecs.split(","),
        [float(b) for b in args.bpp.split(",")],
    )
    if args.json:
        harness.write_json(args.json, {**run.provenance(), "checks": result}, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
