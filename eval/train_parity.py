"""Does our trainer learn as fast as CompressAI's? Same model, same data, same steps, side by side.

Answers "is the trainer or the model wrong?" without a GPU: both frameworks train the same
architecture from scratch on the *identical* sequence of batches (drawn once by
`train/input_pipeline.py` and saved as uint8), with the same loss (lmbda * 255^2 * MSE + bpp),
Adam settings, global-norm clipping, constant learning rate, aux optimizer and quantisation
(additive noise everywhere, unless `--train-quant mixed`), and are then
evaluated on the same Kodak images (rounded latents, estimated bpp, PSNR of the clipped output).
jaxlic trains through `train.trainer`'s own jitted step; CompressAI runs in the reference
interpreter (`eval/train_parity_compressai.py`, its examples/train.py step). Only the weight
initialisation's random numbers differ.

  python -m eval.train_parity --compressai-python .venv-ref/bin/python --json results/train_parity.json
  python -m eval.train_parity --steps 50 --num-eval 1 --json /tmp/p.json   # jaxlic only, quick

JSON: per framework, the training loss curve (means over `--log-every` steps), the seconds of
steps 2..N and the Kodak metrics; `kodak_loss_gap` = jaxlic minus CompressAI RD loss (negative: ours lower).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


def draw_batches(args) -> np.ndarray:
    """`steps` training batches as uint8 [steps, B, S, S, 3], from the trainer's own pipeline."""
    from train import input_pipeline  # pylint: disable=g-import-not-at-top
    from train.configs import common  # pylint: disable=g-import-not-at-top

    data = common.get_config().data
    data.source, data.crop_size, data.prefetch = args.data, args.size, 2
    it = input_pipeline.create_train_iterator(
        data, local_batch_size=args.batch, seed=args.seed, process_index=0, process_count=1
    )
    out = np.empty((args.steps, args.batch, args.size, args.size, 3), np.uint8)
    for i in range(args.steps):
        out[i] = np.clip(np.round(next(it) * 255.0), 0, 255)
    return out


def load_kodak(folder: str, n: int) -> list[np.ndarray]:
    from PIL import Image  # pylint: disable=g-import-not-at-top

    files = sorted(p for p in pathlib.Path(folder).iterdir() if p.suffix.lower() == ".png")[:n]
    if not files:
        raise SystemExit(f"no PNG images in {folder}")
    out = []
    for p in files:
        with Image.open(p) as im:
            img = np.asarray(im.convert("RGB"))
        h, w = img.shape[0] // 64 * 64, img.shape[1] // 64 * 64
        out.append(np.ascontiguousarray(img[:h, :w]))
    return out


def train_jaxlic(batches: np.ndarray, kodak: list[np.ndarray], args) -> dict:
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    from train import trainer  # pylint: disable=g-import-not-at-top
    from train.configs import cheng2020  # pylint: disable=g-import-not-at-top

    config = cheng2020.get_config()
    config.model, config.N, config.M, config.lmbda = args.model, args.N, args.M, args.lmbda
    config.num_steps = args.steps
    config.optim.learning_rate, config.optim.schedule, config.optim.warmup_steps = args.lr, "constant", 0
    config.optim.clip_norm, config.optim.aux_learning_rate = 1.0, 1e-3
    config.model_kwargs.train_quant = args.train_quant
    config.seed = args.seed
    spec, state, step, key = trainer.setup_train_step(config, jax.devices()[:1])
    losses, t0 = [], time.perf_counter()
    for i in range(args.steps):
        state, metrics = step(state, jnp.asarray(batches[i], jnp.float32) / 255.0, key)
        losses.append(float(metrics["loss"]))
        if i == 0:
            t0 = time.perf_counter()  # steps 2..N: compilation excluded
        if (i + 1) % args.log_every == 0:
            print(f"  jaxlic step {i + 1}: loss {np.mean(losses[-args.log_every :]):.4f}", flush=True)
    seconds = time.perf_counter() - t0

    def eval_one(params, x):
        out = spec.module.apply({"params": params}, x, method="forward_eval")
        bits = sum(jnp.sum(-jnp.log2(l)) for l in out["likelihoods"].values())
        mse = jnp.mean(jnp.square(jnp.clip(out["x_hat"], 0.0, 1.0) - x))
        return bits, mse

    eval_one = jax.jit(eval_one)
    per_image = []
    for img in kodak:
        bits, mse = eval_one(state.params, jnp.asarray(img[None], jnp.float32) / 255.0)
        per_image.append((float(bits) / (img.shape[0] * img.shape[1]), float(mse)))
    return {"losses": losses, "seconds": seconds, **summarize(per_image, args.lmbda)}


def summarize(per_image, lmbda) -> dict:
    bpp = float(np.mean([b for b, _ in per_image]))
    mse = float(np.mean([m for _, m in per_image]))
    psnr = float(np.mean([10 * np.log10(1.0 / m) for _, m in per_image]))
    return {"kodak_bpp": bpp, "kodak_psnr": psnr, "kodak_loss": lmbda * 255.0**2 * mse + bpp}


def train_compressai(python: str, batches_file: str, kodak_file: str, args) -> dict:
    cmd = [
        python,
        str(HERE / "train_parity_compressai.py"),
        "--batches",
        batches_file,
        "--kodak",
        kodak_file,
        "--model",
        args.model,
        "--N",
        str(args.N),
        "--M",
        str(args.M),
        "--lmbda",
        str(args.lmbda),
        "--lr",
        str(args.lr),
        "--seed",
        str(args.seed),
        "--log-every",
        str(args.log_every),
    ]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.splitlines()
    for line in lines:
        if line.startswith("  "):
            print(line)
    result = [l for l in lines if l.startswith("RESULT ")]
    if proc.returncode or not result:
        raise SystemExit(f"CompressAI worker failed (exit {proc.returncode})")
    out = json.loads(result[-1][len("RESULT ") :])
    out.update(summarize(out.pop("per_image"), args.lmbda))
    return out


def curve(losses: list[float], every: int) -> list[float]:
    return [float(np.mean(losses[i : i + every])) for i in range(0, len(losses), every)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True, help="output file")
    ap.add_argument(
        "--compressai-python", default=None, help="interpreter of an environment with torch + CompressAI"
    )
    ap.add_argument(
        "--model",
        default="bmshj2018-hyperprior",
        choices=["bmshj2018-hyperprior", "mbt2018-mean", "cheng2020-anchor"],
    )
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--M", type=int, default=96)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--lmbda", type=float, default=0.0035)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--train-quant",
        default="noise",
        choices=["noise", "mixed"],
        help="jaxlic's training quantisation; CompressAI's examples/train.py is 'noise'",
    )
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--data", default="../shared/data/train")
    ap.add_argument("--kodak", default="../shared/data/kodak")
    ap.add_argument("--num-eval", type=int, default=8, help="Kodak images to evaluate on")
    args = ap.parse_args(argv)
    if args.model == "cheng2020-anchor":
        args.M = args.N

    print(f"drawing {args.steps} batches of {args.batch} x {args.size}^2 from {args.data}", flush=True)
    batches = draw_batches(args)
    kodak = load_kodak(args.kodak, args.num_eval)
    result = {"settings": vars(args)}
    print("jaxlic:", flush=True)
    result["jaxlic"] = train_jaxlic(batches, kodak, args)
    if args.compressai_python:
        with tempfile.TemporaryDirectory() as tmp:
            np.save(f"{tmp}/batches.npy", batches)
            np.savez(f"{tmp}/kodak.npz", *kodak)
            print("CompressAI:", flush=True)
            result["compressai"] = train_compressai(
                args.compressai_python, f"{tmp}/batches.npy", f"{tmp}/kodak.npz", args
            )
    for name in ("jaxlic", "compressai"):
        if name in result:
            r = result[name]
            r["loss_curve"] = curve(r.pop("losses"), args.log_every)
            print(
                f"{name:10s}: final train loss {r['loss_curve'][-1]:.4f}; Kodak ({len(kodak)} images) "
                f"{r['kodak_bpp']:.4f} bpp, {r['kodak_psnr']:.2f} dB, RD loss {r['kodak_loss']:.4f}; "
                f"{r['seconds']:.0f} s of training"
            )
    if "compressai" in result:
        result["kodak_loss_gap"] = result["jaxlic"]["kodak_loss"] - result["compressai"]["kodak_loss"]
        print(f"Kodak RD loss, jaxlic - CompressAI: {result['kodak_loss_gap']:+.4f}")
    path = pathlib.Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
