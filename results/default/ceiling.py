"""The ceiling of a model's curve: its reconstruction without quantisation, and the linear bound.

  python -m results.default.ceiling --weights W [W ...] --json results/default/ceiling.json

For each weights file and rate parameter, every Kodak image goes through the analysis and the
synthesis with the latent y left continuous (no rounding, no entropy model): no rate can buy a
better reconstruction than this PSNR. Beside it, the bound of the best linear transform that
keeps as many numbers per 16x16x3 block as the model's latent has channels: the principal
components of Kodak's own blocks (fitted on the images they are measured on, so optimistic),
for M = 64, 128, 192 and 320. Both are mean PSNRs over the images (dB, pixels in [0, 1]).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

KODAK = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "kodak"


def _images(folder: pathlib.Path) -> list[tuple[str, np.ndarray]]:
    from PIL import Image  # pylint: disable=g-import-not-at-top

    return [
        (p.name, np.asarray(Image.open(p).convert("RGB"), np.float32) / 255)
        for p in sorted(folder.glob("*.png"))
    ]


def _psnr(a, b) -> float:
    """PSNR of `a` (clipped to [0, 1], as a decoded image is) against `b`, both in [0, 1]."""
    from jaxlic.metrics import psnr  # pylint: disable=g-import-not-at-top

    return float(psnr(b, np.clip(np.asarray(a, np.float64), 0, 1), max_val=1.0))


def mean_psnr(reconstruct, images) -> float:
    """Mean PSNR over `images` ([(name, image)]) of `reconstruct` ([1,H,W,3] -> [1,H,W,3])."""
    return float(np.mean([_psnr(reconstruct(x[None])[0], x) for _, x in images]))


def linear_bound(images, widths=(64, 128, 192, 320), block: int = 16) -> dict:
    """Mean PSNR of keeping the top-`k` principal components of every `block`^2 x 3 block."""
    blocks = []
    for _, x in images:
        h, w = (x.shape[0] // block) * block, (x.shape[1] // block) * block
        b = x[:h, :w].reshape(h // block, block, w // block, block, 3).transpose(0, 2, 1, 3, 4)
        blocks.append(b.reshape(-1, block * block * 3).astype(np.float64))
    mean = np.concatenate(blocks).mean(0)
    _, vecs = np.linalg.eigh(np.cov((np.concatenate(blocks) - mean).T))
    vecs = vecs[:, ::-1]
    out = {}
    for k in widths:
        p = vecs[:, :k]
        out[str(k)] = float(np.mean([_psnr((b - mean) @ p @ p.T + mean, b) for b in blocks]))
    return out


def continuous(weights: str, images, rates) -> dict:
    """Mean PSNR of analysis -> synthesis without quantisation, per rate parameter."""
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    from jaxlic import zoo  # pylint: disable=g-import-not-at-top
    from jaxlic.models.compressor import Compressor  # pylint: disable=g-import-not-at-top

    codec = zoo.load(weights=weights)
    model, variables = codec.model, codec.variables
    ana = jax.jit(lambda v, x, r: model.apply(v, x, r, method=Compressor.analysis)[0])
    syn = jax.jit(lambda v, y, r: model.apply(v, y, r, method=Compressor.synthesis))
    out = {}
    for rate in rates:
        r = jnp.asarray([float(rate)])
        out[str(rate)] = mean_psnr(lambda x, r=r: syn(variables, ana(variables, x, r), r), images)
    return {"weights": weights, "M": int(codec.cfg.M), "psnr_without_quantisation": out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", nargs="+", required=True)
    ap.add_argument("--rates", default="0,4,7")
    ap.add_argument("--images", default=str(KODAK))
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    images = _images(pathlib.Path(args.images))
    rates = [float(r) for r in args.rates.split(",")]
    result = {"images": len(images), "linear_bound": linear_bound(images)}
    print(f"linear bound (principal components of 16x16x3 blocks): {result['linear_bound']}", flush=True)
    result["models"] = []
    for w in args.weights:
        row = continuous(w, images, rates)
        print(f"{w} (M={row['M']}): {row['psnr_without_quantisation']}", flush=True)
        result["models"].append(row)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
