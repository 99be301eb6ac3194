"""What padding images to larger size buckets would cost in rate (the question behind bucketed shapes).

A codec pads each image to a multiple of 64 (g_a and h_a down-sample by 2^6), so every new size
class needs its own compiled networks. Padding further, to multiples of 128 or 256, would let more
sizes share executables, but the padding is coded too: its latents cost bits. This benchmark
measures that cost with the default model: each landscape Kodak image is cropped to 700x450
(padded to 704x512 as today; to 768x512 in a 128- or 256-bucket), and coded once as the crop and
once edge-padded to 768x512 (what a bucketed encoder would code). Reported: the stream size of the
bucketed form over today's, per image, with the mean and a 95% bootstrap CI.

Run (about 5 minutes on 2 shared cores)::

    python -m eval.pad_buckets [--json results/pad_buckets.json]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from eval import harness

KODAK = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
CROP = (450, 700)  # H, W: 64-padded 512x704, 128/256-bucketed 512x768
BUCKET = (512, 768)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.pad_buckets", description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--json", help="write the measurements to this file")
    args = ap.parse_args(argv)
    run = harness.Run("eval.pad_buckets", argv)
    from jaxlic import zoo
    from jaxlic.evaluation.matched import bootstrap_ci
    from jaxlic.image_io import read_image

    codec = zoo.load()
    rows = []
    for path in sorted(pathlib.Path(args.kodak).glob("*.png")):
        img = read_image(path)[0]
        if img.shape[:2] != BUCKET:
            continue  # portrait images: another shape, another compile
        crop = img[: CROP[0], : CROP[1]]
        today = len(codec.compress(crop))
        padded = np.pad(crop, ((0, BUCKET[0] - CROP[0]), (0, BUCKET[1] - CROP[1]), (0, 0)), mode="edge")
        bucketed = len(codec.compress(padded))
        rows.append(
            {"image": path.name, "bytes_64": today, "bytes_bucket": bucketed, "ratio": bucketed / today}
        )
        print(f"{path.name}: {today} -> {bucketed} bytes ({bucketed / today - 1:+.2%})")
    ratios = np.array([r["ratio"] for r in rows])
    lo, hi = bootstrap_ci(ratios - 1.0)
    result = {
        "what": f"stream bytes of {CROP[1]}x{CROP[0]} crops padded to a {BUCKET[1]}x{BUCKET[0]} bucket over "
        "today's 64-multiple padding, default model at its default rate",
        "rows": rows,
        "mean_extra": float(ratios.mean() - 1.0),
        "ci95": [float(lo), float(hi)],
        "extra_pixels": BUCKET[0] * BUCKET[1] / (512 * 704) - 1.0,
        "provenance": run.provenance(),
    }
    print(
        f"bucketed / today: {result['mean_extra']:+.2%} [{lo:+.2%}, {hi:+.2%}] over {len(rows)} images "
        f"(padded area +{result['extra_pixels']:.1%})"
    )
    if args.json:
        harness.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
