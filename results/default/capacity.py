"""How far a model's transforms can rise above their ceiling when nothing but distortion counts.

  python -m results.default.capacity --weights W [W ...] --steps 300 --json results/default/capacity.json

The ceiling (`results/default/ceiling.py`) is what a trained model reconstructs with its latent
left continuous. This probe asks what its transforms *could* reconstruct: starting from each
weights file it trains the analysis and the synthesis for `--steps` Adam steps on the training
photos (random crops, the same crops in the same order for every file) with the latent left
continuous and the loss the MSE alone, at one rate parameter, then measures the ceiling on Kodak
again. Two models trained the same number of steps from their own weights show whether a wider
latent lets these transforms reconstruct better, and how fast, before any rate is paid for it.
It is a probe of capacity, not a codec: no weights are written.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from results.default.ceiling import KODAK, _images, mean_psnr

TRAIN = KODAK.parent / "train"


def _crops(steps: int, batch: int, crop: int, seed: int):
    """`steps` batches of `crop`^2 random crops of the training photos, in [0, 1], fixed by `seed`
    (the trainer's own sampler)."""
    from train.data_sources import FileSource, list_image_files  # pylint: disable=g-import-not-at-top
    from train.input_pipeline import BatchSampler, Sampler  # pylint: disable=g-import-not-at-top

    batches = BatchSampler(Sampler(FileSource(list_image_files(TRAIN)), seed, 0, crop), batch)
    return (batches(i) for i in range(steps))


def probe(weights: str, rate: float, batches, kodak, lr: float, every: int = 100) -> dict:
    """Trains `weights`' transforms on `batches` (MSE, latent continuous) and measures the ceiling
    on `kodak` ([(name, image)]) before and every `every` steps."""
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    import optax  # pylint: disable=g-import-not-at-top

    from jaxlic import zoo  # pylint: disable=g-import-not-at-top
    from jaxlic.models.compressor import Compressor  # pylint: disable=g-import-not-at-top

    codec = zoo.load(weights=weights)
    model, variables = codec.model, codec.variables
    params = variables["params"]
    rest = {k: v for k, v in variables.items() if k != "params"}

    def recon(p, x, r):
        v = {"params": p, **rest}
        y = model.apply(v, x, r, method=Compressor.analysis)[0]
        return model.apply(v, y, r, method=Compressor.synthesis)

    opt = optax.adam(lr)

    @jax.jit
    def step(p, s, x):
        r = jnp.full((x.shape[0],), rate)
        loss, g = jax.value_and_grad(lambda p: jnp.mean((recon(p, x, r) - x) ** 2))(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    evaluate = jax.jit(lambda p, x: recon(p, x, jnp.asarray([rate])))

    def ceiling(p):
        return mean_psnr(lambda x: evaluate(p, x), kodak)

    row = {"weights": weights, "M": int(codec.cfg.M), "rate": rate, "kodak_psnr": {0: ceiling(params)}}
    print(f"{weights} (M={row['M']}): step 0 {row['kodak_psnr'][0]:.3f} dB", flush=True)
    state, losses = opt.init(params), []
    for i, x in enumerate(batches, 1):
        params, state, loss = step(params, state, jnp.asarray(x))
        losses.append(float(loss))
        if i % every == 0:
            row["kodak_psnr"][i] = ceiling(params)
            print(
                f"  step {i}: train MSE {np.mean(losses[-every:]):.5f}, Kodak {row['kodak_psnr'][i]:.3f} dB",
                flush=True,
            )
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", nargs="+", required=True)
    ap.add_argument("--rate", type=float, default=7.0)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    kodak = _images(KODAK)
    rows = [
        probe(w, args.rate, _crops(args.steps, args.batch, args.crop, args.seed), kodak, args.lr)
        for w in args.weights
    ]
    if args.json:
        out = {k: v for k, v in vars(args).items() if k not in ("weights", "json")}
        out["models"] = rows
        pathlib.Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
