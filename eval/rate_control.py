"""Rate control to a target bpp, checked with real streams: each image at each target, decoded.

For a variable-rate weights file, every (image, target) pair is compressed with
`Codec.compress(img, target_bpp=B)` (a search on the rate parameter with real range coding,
`jaxlic.ratecontrol`), decoded again, and recorded: the rate parameter found, the stream's bpp
and its distance to the target, whether it is within the ±3% tolerance, the search's note when
the target is out of the model's reach, the PSNR of the decoded image and the encode time.

  python -m eval.rate_control --weights runs/vrcost/vr/export/ckbd-full-vr-q0.msgpack \\
      --images ../shared/data/kodak/kodim05.png ../shared/data/kodak/kodim23.png \\
      --targets 0.10 0.15 0.25 0.40 --json results/vr_cost/rate_control.json
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from eval import harness


def check(codec, img: np.ndarray, target_bpp: float) -> dict:
    """One image at one target: the stream found, decoded again."""
    from jaxlic import metrics

    h, w = img.shape[:2]
    data, encode_s = harness.timed(codec.compress, img, target_bpp=target_bpp)
    search = codec.last_rate_search
    out = codec.decompress(data)
    bpp = len(data) * 8 / (h * w)
    return {
        "target_bpp": target_bpp,
        "rate": codec.last_rate,
        "bpp": bpp,
        "off_pct": 100 * (bpp / target_bpp - 1),
        "within_tolerance": bool(search.within_tolerance),
        "note": search.note,
        "psnr": float(metrics.psnr(img, out)),
        "encode_s": encode_s,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, type=pathlib.Path, help="variable-rate weights file")
    p.add_argument("--images", required=True, nargs="+", type=pathlib.Path)
    p.add_argument("--targets", nargs="+", type=float, default=[0.10, 0.15, 0.25, 0.40])
    p.add_argument("--json", type=pathlib.Path)
    args = p.parse_args(argv)
    run = harness.Run("eval.rate_control", argv)

    from jaxlic import zoo
    from jaxlic.errors import JaxlicError
    from jaxlic.image_io import read_image

    try:
        codec = zoo.load(weights=args.weights)
        if not codec.variable_rate:
            raise JaxlicError(f"{args.weights} holds a fixed-rate model: it has no rate to control")
        images = {path.name: read_image(path)[0] for path in args.images}
    except JaxlicError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = []
    for name, img in images.items():
        for target in args.targets:
            r = {"image": name, **check(codec, img, target)}
            rows.append(r)
            flag = "ok" if r["within_tolerance"] else "OUT"
            print(
                f"{name} target {target:.3f} bpp: q {r['rate']:.3f}, {r['bpp']:.4f} bpp "
                f"({r['off_pct']:+.1f}%, {flag}), {r['psnr']:.2f} dB, {r['encode_s']:.1f} s"
                + (f" | {r['note']}" if r["note"] else ""),
                flush=True,
            )
    if args.json:
        meta = {"weights": str(args.weights), "model": codec.name, "rate_range": list(codec.rate_range)}
        harness.write_json(args.json, {**meta, "results": rows, "provenance": run.provenance()})
    return 0 if all(r["within_tolerance"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
