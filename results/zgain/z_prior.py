"""What would z cost with a prior per rate point? A variable-rate model's z, three priors.

A record of the finished study in this folder (README.md), run from the repository's root:

    python -m results.zgain.z_prior --weights results/ablation/weights/ckbd-full-s0.msgpack \
        --train ../shared/data/train/sun_hays80 --num-train 60 --images ../shared/data/kodak \
        --json results/zgain/z_prior_ckbd-full-s0.json

A variable-rate model learns one factorized prior for z over all its rate points. This measures
how much of z's rate that sharing costs, without training: at every rate parameter the model's
quantised z (``Codec.forward_eval``) is counted on training photos (centre crops), and the
evaluation images' z is charged, per channel, under

- ``learned``: the model's own prior (the bits its range coder spends, up to the header);
- ``pooled``: the empirical distribution of the training photos' z over all the rate points
  together: one table for all rates, like the learned prior, but fitted after training;
- ``per_rate``: the empirical distribution at that rate point alone: a table per rate point.

``learned − pooled`` is what the learned prior loses to a good shared table; ``pooled −
per_rate`` is what sharing one table over the rates costs. The tables are additive-smoothed
counts (``--alpha``) over each channel's symbols seen in training plus a margin; a symbol
outside it pays the smallest probability plus an Elias-gamma escape. Since the analysis and the
hyper-synthesis stay as trained, this bounds what a per-rate prior gives a trained model from
below: trained with one, z's encoder could also adapt to it.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from eval import harness

MARGIN = 2  # symbols beyond the training range that each table also covers


class CountPrior:
    """Per-channel discrete distribution of integer symbols from counts, additive-smoothed."""

    def __init__(self, symbols: list[np.ndarray], alpha: float = 0.5):
        """``symbols``: arrays [..., C] of integers (one per image); ``alpha``: count added to
        every symbol of each channel's range."""
        flat = np.concatenate([s.reshape(-1, s.shape[-1]) for s in symbols])
        self.lo = flat.min(0) - MARGIN
        self.hi = flat.max(0) + MARGIN
        self.log2p = []
        for c in range(flat.shape[1]):
            counts = np.bincount(flat[:, c] - self.lo[c], minlength=self.hi[c] - self.lo[c] + 1) + alpha
            self.log2p.append(np.log2(counts / counts.sum()))

    def bits(self, symbols: np.ndarray) -> float:
        """Total bits of ``symbols`` [..., C] under the tables."""
        flat = symbols.reshape(-1, symbols.shape[-1])
        total = 0.0
        for c, log2p in enumerate(self.log2p):
            s = flat[:, c] - self.lo[c]
            inside = (s >= 0) & (s < log2p.size)
            total -= log2p[s[inside]].sum()
            beyond = np.where(s < 0, -s, s - log2p.size + 1)[~inside]
            # the escape: the rarest symbol's probability, then |distance| in Elias gamma
            total += (-log2p.min() + 2 * np.floor(np.log2(beyond)) + 1).sum()
        return float(total)


def z_symbols(codec, img: np.ndarray, quality: float) -> tuple[np.ndarray, dict]:
    """The quantised z of ``img`` at ``quality`` as integers [h, w, C], and the bits of y and of z
    under the model's own priors (``{"y": ..., "z": ...}``), from one forward pass."""
    out = codec.forward_eval(img, quality)
    z = np.asarray(out["z_hat"], np.float64)[0]
    bits = {k: float(-np.log2(np.asarray(out["likelihoods"][k], np.float64)).sum()) for k in ("y", "z")}
    # z_hat is an integer plus a per-channel offset; rounding keeps the symbols apart
    return np.round(z).astype(np.int64), bits


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    if h < size or w < size:
        return img[: h - h % 64, : w - w % 64]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def z_prior(codec, train_images, images, qualities, alpha: float = 0.5, progress=None) -> dict:
    """z's bits per pixel on ``images`` under the three priors, per rate parameter (see the
    module docstring)."""
    train, test = {}, {}
    for q in qualities:
        train[q] = [z_symbols(codec, img, q)[0] for img in train_images]
        test[q] = [z_symbols(codec, img, q) for img in images]
        if progress:
            progress(q)
    pooled = CountPrior([s for q in qualities for s in train[q]], alpha)
    pixels = [img.shape[0] * img.shape[1] for img in images]
    rows = {}
    for q in qualities:
        per_rate = CountPrior(train[q], alpha)
        bpp = {"learned": [], "pooled": [], "per_rate": []}
        for (sym, bits), px in zip(test[q], pixels):
            bpp["learned"].append(bits["z"] / px)
            bpp["pooled"].append(pooled.bits(sym) / px)
            bpp["per_rate"].append(per_rate.bits(sym) / px)
        live = np.mean([int(np.sum(np.ptp(s.reshape(-1, s.shape[-1]), axis=0) > 0)) for s, _ in test[q]])
        y_bpp = np.mean([bits["y"] / px for (_, bits), px in zip(test[q], pixels)])
        rows[f"{q:g}"] = {
            **{f"bpp_z_{k}": float(np.mean(v)) for k, v in bpp.items()},
            "bpp_y": float(y_bpp),
            "z_live_channels": float(live),
        }
    return {
        "qualities": [float(q) for q in qualities],
        "train_images": len(train_images),
        "images": len(images),
        "alpha": alpha,
        "by_rate": rows,
    }


def _read(folder: str, num: int | None, crop: int | None) -> list[np.ndarray]:
    from jaxlic import image_io

    files = image_io.list_images(folder, num)
    if not files:
        raise SystemExit(f"error: no images in {folder}")
    images = [image_io.read_image(f)[0] for f in files]
    return [centre_crop(img, crop) for img in images] if crop else images


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="a variable-rate model's weights file")
    ap.add_argument("--train", required=True, help="folder of photos to count z on")
    ap.add_argument("--num-train", type=int, default=60)
    ap.add_argument("--crop", type=int, default=512, help="centre crop of the training photos")
    ap.add_argument("--images", required=True, help="folder of evaluation images")
    ap.add_argument("--num", type=int, default=None, help="at most this many evaluation images")
    ap.add_argument("--qualities", default="0,1,2,3,4,5,6,7", help="rate parameters")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args(argv)
    run = harness.Run("results.zgain.z_prior", argv)

    from jaxlic import zoo
    from jaxlic.errors import JaxlicError

    try:
        codec = zoo.load(weights=args.weights)
        if not codec.variable_rate:
            raise JaxlicError(f"{args.weights} is not a variable-rate model")
        qualities = [float(q) for q in args.qualities.split(",")]
    except (JaxlicError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    train = _read(args.train, args.num_train, args.crop)
    images = _read(args.images, args.num, None)
    r = z_prior(
        codec, train, images, qualities, args.alpha, progress=lambda q: print(f"q={q:g} done", flush=True)
    )
    print(f"{codec.name}: z's bpp on {r['images']} images, priors from {r['train_images']} training crops")
    print("q     y bpp   z learned  pooled  per-rate  (live z)")
    for q, row in r["by_rate"].items():
        print(
            f"{q:<5} {row['bpp_y']:.4f}  {row['bpp_z_learned']:.4f}     {row['bpp_z_pooled']:.4f}  "
            f"{row['bpp_z_per_rate']:.4f}    ({row['z_live_channels']:.1f})"
        )
    if args.json:
        harness.write_json(args.json, {"weights": args.weights, **run.provenance(), **r})
    return r


if __name__ == "__main__":
    main()
