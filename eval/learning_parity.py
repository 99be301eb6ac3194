"""Does jaxlic learn as much per step as CompressAI? Paired runs, several seeds, health along training.

Each run trains one model from scratch on a fixed sequence of batches drawn by the trainer's own
pipeline (`train/input_pipeline.py`, seed `--seed`; both frameworks of a seed see the *same*
batches), with the same loss (lmbda * 255^2 * MSE + bpp), Adam, global-norm clipping at 1.0,
constant learning rate and aux optimiser (Adam 1e-3 on the quantiles). Every `--eval-every`
steps it evaluates on a fixed Kodak subset (the first `--num-eval` images, cropped to a multiple
of 64): RD loss, PSNR, estimated bpp, z's share of the rate and live z channels (channels of
z_hat that vary over an image, mean over images), so a hyperprior collapse shows when it happens.

jaxlic trains through `train.trainer`'s own jitted step with the model's default training
quantisation; CompressAI 1.2.8 runs in the reference interpreter
(`eval/learning_parity_compressai.py`, its examples/train.py step). Pairs:
`ckbd` = jaxlic `ckbd` vs `Cheng2020AnchorCheckerboard` (N = M); `bmshj2018-hyperprior` vs
`ScaleHyperprior`.

  python -m eval.learning_parity draw --seed 0     # the seed's batches, once, before runs share them
  python -m eval.learning_parity run --framework jaxlic --model ckbd --seed 0 --out runs/lp/ckbd-jaxlic-s0.json
  python -m eval.learning_parity run --framework compressai --compressai-python .venv-ref/bin/python \\
      --model ckbd --seed 0 --out runs/lp/ckbd-compressai-s0.json
  python -m eval.learning_parity merge runs/lp/*.json --json results/learning_parity.json

A run writes its JSON and a checkpoint (`<out>.ckpt`: the training state, optimisers included)
after every evaluation and marks the JSON `"complete": true` at the end; repeating the command
of a killed run resumes it from its last evaluation (`"resumed_at"` lists where), and `run`
skips a complete output. `--label` names a jaxlic variant
(e.g. "before" for a run of an older checkout: run this file from that checkout's root).
`merge` writes `{"runs": [...], "settings": {...}, "summary": {...}, "unfinished": [...]}`; the
summary compares the mean final Kodak RD loss and z share of each jaxlic label with CompressAI's
per model, over complete runs only (an unfinished run keeps its curve in `runs`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess

import numpy as np

from eval import harness

HERE = pathlib.Path(__file__).resolve().parent

#: The campaign's lambda (CompressAI's quality 2) and constant learning rate.
DEFAULT_LMBDA = 0.0035
DEFAULT_LR = 5e-4
#: model -> (N, M, default steps)
MODELS = {"ckbd": (64, 64, 3000), "bmshj2018-hyperprior": (64, 96, 2000)}


# ---------------------------------------------------------------------------------- data
def cached_batches(args) -> pathlib.Path | None:
    """The cache file holding at least the seed's first `steps` batches, if one was drawn."""
    for f in sorted(pathlib.Path(args.cache).glob(f"batches-s{args.seed}-b{args.batch}-{args.size}px-*.npy")):
        if np.load(f, mmap_mode="r").shape[0] >= args.steps:
            return f
    return None


def batches_for(args) -> np.ndarray:
    """The seed's batches, uint8 [steps, B, S, S, 3], drawn once and cached under `--cache`."""
    cached = cached_batches(args)
    if cached is not None:
        return np.load(cached, mmap_mode="r")[: args.steps]
    cache = pathlib.Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    from train import input_pipeline  # pylint: disable=g-import-not-at-top
    from train.configs import common  # pylint: disable=g-import-not-at-top

    data = common.get_config().data
    data.source, data.crop_size, data.prefetch = args.data, args.size, 2
    it = input_pipeline.create_train_iterator(
        data, local_batch_size=args.batch, seed=args.seed, process_index=0, process_count=1
    )
    path = cache / f"batches-s{args.seed}-b{args.batch}-{args.size}px-{args.steps}.npy"
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, "w+", np.uint8, (args.steps, args.batch, args.size, args.size, 3))
    drawing = harness.Timer()
    for i in range(args.steps):
        out[i] = np.clip(np.round(next(it) * 255.0), 0, 255)
        if (i + 1) % 500 == 0:
            print(f"  drew {i + 1}/{args.steps} batches ({drawing.elapsed():.0f} s)", flush=True)
    out.flush()
    del out
    tmp.rename(path)
    return np.load(path, mmap_mode="r")


def load_kodak(folder: str, n: int) -> list[np.ndarray]:
    from PIL import Image  # pylint: disable=g-import-not-at-top

    files = sorted(p for p in pathlib.Path(folder).iterdir() if p.suffix.lower() == ".png")[:n]
    if len(files) < n:
        raise SystemExit(f"need {n} PNG images in {folder}, found {len(files)}")
    out = []
    for p in files:
        with Image.open(p) as im:
            img = np.asarray(im.convert("RGB"))
        h, w = img.shape[0] // 64 * 64, img.shape[1] // 64 * 64
        out.append(np.ascontiguousarray(img[:h, :w]))
    return out


def kodak_metrics(per_image: list[dict], lmbda: float) -> dict:
    """Means over images of per-image {bits_y, bits_z, pixels, mse, live_z}."""
    bpp = [(r["bits_y"] + r["bits_z"]) / r["pixels"] for r in per_image]
    bpp_z = [r["bits_z"] / r["pixels"] for r in per_image]
    mse = [r["mse"] for r in per_image]
    return {
        "rd_loss": float(lmbda * 255.0**2 * np.mean(mse) + np.mean(bpp)),
        "psnr": float(np.mean([10 * np.log10(1.0 / m) for m in mse])),
        "bpp": float(np.mean(bpp)),
        "z_share": float(np.mean(bpp_z) / np.mean(bpp)),
        "live_z_channels": float(np.mean([r["live_z"] for r in per_image])),
    }


# ---------------------------------------------------------------------------------- jaxlic
def jaxlic_config(args):
    from train.configs import ckbd, common  # pylint: disable=g-import-not-at-top

    config = ckbd.get_config("ckbd") if args.model == "ckbd" else common.get_config()
    config.model, config.N, config.M, config.lmbda = args.model, args.N, args.M, args.lmbda
    config.num_steps = args.steps
    config.batch_size = args.batch
    config.optim.learning_rate, config.optim.schedule, config.optim.warmup_steps = args.lr, "constant", 0
    config.optim.clip_norm, config.optim.aux_learning_rate = 1.0, 1e-3
    config.optim.z_rate_warmup_steps = args.z_warmup
    config.optim.hyper_lr_factor = args.hyper_lr_factor
    config.seed = args.seed
    return config


def run_jaxlic(batches, kodak, args, record) -> None:
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    from train import trainer  # pylint: disable=g-import-not-at-top

    spec, state, step, key = trainer.setup_train_step(jaxlic_config(args), jax.devices()[:1])
    record["train_quant"] = spec.module.cfg.train_quant

    @jax.jit
    def eval_one(params, x):
        out = spec.module.apply({"params": params}, x, method="forward_eval")
        z_hat = out["z_hat"]
        return {
            "bits_y": jnp.sum(-jnp.log2(out["likelihoods"]["y"])),
            "bits_z": jnp.sum(-jnp.log2(out["likelihoods"]["z"])),
            "mse": jnp.mean(jnp.square(jnp.clip(out["x_hat"], 0.0, 1.0) - x)),
            "live_z": jnp.sum(z_hat.max(axis=(0, 1, 2)) > z_hat.min(axis=(0, 1, 2))),
        }

    def evaluate(params):
        rows = []
        for img in kodak:
            r = {
                k: float(v) for k, v in eval_one(params, jnp.asarray(img[None], jnp.float32) / 255.0).items()
            }
            rows.append({**r, "pixels": img.shape[0] * img.shape[1]})
        return kodak_metrics(rows, args.lmbda)

    import flax.serialization  # pylint: disable=g-import-not-at-top

    ckpt = checkpoint_path(args)
    t_train, start = 0.0, 0
    if ckpt.exists() and pathlib.Path(args.out).exists():  # resume from the last evaluation
        saved = flax.serialization.msgpack_restore(ckpt.read_bytes())
        restored = flax.serialization.from_state_dict(jax.device_get(state), saved["state"])
        state = jax.tree.map(lambda t, v: jax.device_put(v, t.sharding), state, restored)
        start, t_train = int(state.step), float(saved["t_train"])
        resume_record(record, start, args)

    def one(state, batch):
        state, metrics = step(state, jnp.asarray(batch, jnp.float32) / 255.0, key)
        return state, float(metrics["loss"])  # float() waits for the step to finish

    for i in range(start, args.steps):
        (state, loss), seconds = harness.timed(one, state, batches[i])
        if i > start:  # a process's first step compiles
            t_train += seconds
        if record_step(record, i + 1, loss, args, lambda p=state.params: evaluate(p), t_train):
            blob = {"state": flax.serialization.to_state_dict(jax.device_get(state)), "t_train": t_train}
            write_atomic(ckpt, flax.serialization.msgpack_serialize(blob))
    ckpt.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------- CompressAI
def run_compressai(batches_file: str, kodak, args, record) -> None:
    import tempfile  # pylint: disable=g-import-not-at-top

    with tempfile.TemporaryDirectory() as tmp:
        np.savez(f"{tmp}/kodak.npz", *kodak)
        cmd = [
            args.compressai_python,
            str(HERE / "learning_parity_compressai.py"),
            "--batches",
            batches_file,
            "--steps",
            str(args.steps),
            "--kodak",
            f"{tmp}/kodak.npz",
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
            "--eval-every",
            str(args.eval_every),
            "--ckpt",
            str(checkpoint_path(args)),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        pending = None
        for line in proc.stdout:
            if line.startswith("INFO "):
                record.update(json.loads(line[5:]))
            elif line.startswith("RESUMED "):
                resume_record(record, int(line.split()[1]), args)
            elif line.startswith("STEP "):
                s, loss, t_train = line.split()[1:]
                pending = (int(s), float(loss), float(t_train))
                if int(s) % args.eval_every and int(s) != args.steps:
                    record_step(record, *pending[:2], args, None, pending[2])
            elif line.startswith("EVAL "):
                rows = json.loads(line[5:])
                record_step(
                    record, *pending[:2], args, lambda r=rows: kodak_metrics(r, args.lmbda), pending[2]
                )
        if proc.wait():
            raise SystemExit(f"CompressAI worker failed (exit {proc.returncode})")
        checkpoint_path(args).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------- records
def record_step(record, step, loss, args, evaluate, t_train) -> bool:
    """Logs the loss; every `eval_every` steps (and at the end) evaluates and writes the JSON.

    Returns whether it evaluated (the caller then checkpoints)."""
    record["_losses"].append(loss)
    if step % args.log_every == 0:
        record["loss_curve"].append(float(np.mean(record["_losses"][-args.log_every :])))
    if step % args.eval_every and step != args.steps:
        return False
    k = evaluate() if evaluate else None
    if k is None:
        return False
    record["curve"].append(
        {"step": step, "train_loss": float(np.mean(record["_losses"][-args.log_every :])), **k}
    )
    record["steps"], record["kodak"] = step, k
    record["train_seconds"] = t_train
    timed = step - 1 - len(record.get("resumed_at", []))  # each process's first step compiles
    record["steps_per_s"] = timed / t_train if t_train else None
    record["complete"] = step == args.steps
    print(
        f"  {record['framework']} s{args.seed} step {step}: loss {record['curve'][-1]['train_loss']:.4f}; "
        f"Kodak RD {k['rd_loss']:.4f}, {k['psnr']:.2f} dB, {k['bpp']:.4f} bpp, z share "
        f"{100 * k['z_share']:.2f}%, live z {k['live_z_channels']:.1f}",
        flush=True,
    )
    out = {k2: v for k2, v in record.items() if not k2.startswith("_")}
    write_atomic(pathlib.Path(args.out), json.dumps(out, indent=1).encode())
    return True


def write_atomic(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def checkpoint_path(args) -> pathlib.Path:
    """Where a run keeps its training state at every evaluation (removed when it completes)."""
    return pathlib.Path(args.out).with_suffix(".ckpt")


def resume_record(record: dict, step: int, args) -> None:
    """Continues the record of an interrupted run from its checkpoint at `step`."""
    old = json.loads(pathlib.Path(args.out).read_text())
    record["curve"] = [c for c in old["curve"] if c["step"] <= step]
    record["loss_curve"] = old["loss_curve"][: step // args.log_every]
    record["resumed_at"] = old.get("resumed_at", []) + [step]
    print(f"  resumed at step {step}", flush=True)


def default_label(args) -> str:
    """The framework, plus the jaxlic trainer options that differ from CompressAI's training, so
    that `merge` never averages such a run with the plain ones of its group."""
    label = args.framework
    if args.z_warmup:
        label += f"-zwarm{args.z_warmup}"
    if args.hyper_lr_factor != 1.0:
        label += f"-hyperlr{args.hyper_lr_factor:g}"
    return label


def cmd_run(args, run: harness.Run) -> None:
    N, M, steps = MODELS[args.model]
    args.N, args.M = args.N or N, args.M or M
    if args.model == "ckbd":
        args.M = args.N
    args.steps = args.steps or steps
    out = pathlib.Path(args.out)
    if out.exists() and json.loads(out.read_text()).get("complete"):
        print(f"{out} is complete; skipped")
        return
    batches = batches_for(args)
    kodak = load_kodak(args.kodak, args.num_eval)
    record = {
        "framework": args.framework,
        "label": args.label or default_label(args),
        "model": args.model,
        "seed": args.seed,
        "provenance": run.provenance(),
        "settings": {
            k: getattr(args, k)
            for k in (
                "N",
                "M",
                "steps",
                "batch",
                "size",
                "lmbda",
                "lr",
                "z_warmup",
                "hyper_lr_factor",
                "eval_every",
                "log_every",
                "num_eval",
            )
        },
        "loss_curve": [],
        "curve": [],
        "complete": False,
        "_losses": [],
    }
    print(f"{record['label']} {args.model} seed {args.seed}: {args.steps} steps", flush=True)
    if args.framework == "jaxlic":
        run_jaxlic(batches, kodak, args, record)
    else:
        if not args.compressai_python:
            raise SystemExit("--framework compressai needs --compressai-python")
        if args.z_warmup or args.hyper_lr_factor != 1.0:
            raise SystemExit("--z-warmup and --hyper-lr-factor are jaxlic trainer options")
        run_compressai(str(cached_batches(args)), kodak, args, record)


# ---------------------------------------------------------------------------------- merge
def _means(runs: list[dict], at: int | None = None) -> dict:
    """Final Kodak metrics averaged over runs; with a constant learning rate the last evaluation
    is noisy, so also the mean of each run's last three evaluations (`<key>_last3`). With `at`,
    each run is read as if it had stopped at step `at` (its evaluations up to there)."""
    curves = [[c for c in r["curve"] if at is None or c["step"] <= at] for r in runs]
    finals = [r["kodak"] if at is None else c[-1] for r, c in zip(runs, curves, strict=True)]
    out = {
        key: float(np.mean([f[key] for f in finals]))
        for key in ("rd_loss", "psnr", "bpp", "z_share", "live_z_channels")
    }
    out["steps_per_s"] = float(np.mean([r["steps_per_s"] for r in runs]))
    for key in ("rd_loss", "z_share"):
        out[f"{key}_last3"] = float(np.mean([np.mean([c[key] for c in curve[-3:]]) for curve in curves]))
    return out


def cmd_merge(args) -> None:
    runs = [json.loads(pathlib.Path(f).read_text()) for f in args.files]
    summary = {}

    def setting(r):  # runs compare only with CompressAI runs of the same model, batch, crops,
        # lambda and learning rate; the group's name shows lambda and lr where not the defaults
        s = r["settings"]
        name = f"{r['model']}/{s['batch']}x{s['size']}px"
        if s["lmbda"] != DEFAULT_LMBDA:
            name += f"/lambda{s['lmbda']:g}"
        if s["lr"] != DEFAULT_LR:
            name += f"/lr{s['lr']:g}"
        return name

    for group in sorted({setting(r) for r in runs}):
        same = [r for r in runs if setting(r) == group]
        ref = [r for r in same if r["framework"] == "compressai" and r["complete"]]
        for label in sorted({r["label"] for r in same}):
            rs = [r for r in same if r["label"] == label and r["complete"]]
            if not rs:
                continue
            steps = rs[0]["steps"]
            entry = {"seeds": [r["seed"] for r in rs], "steps": steps, **_means(rs)}
            # a shorter run is compared with CompressAI's evaluations up to its own last step
            same_step = all(any(c["step"] == steps for c in r["curve"]) for r in ref)
            if ref and same_step and rs[0]["framework"] != "compressai":
                base = _means(ref, at=steps)
                for key in ("rd_loss", "z_share", "rd_loss_last3", "z_share_last3"):
                    entry[f"{key}_ratio_to_compressai"] = entry[key] / base[key]
            summary[f"{group}/{label}"] = entry
    settings = {setting(r): r["settings"] for r in runs}
    unfinished = [
        {
            "model": r["model"],
            "label": r["label"],
            "seed": r["seed"],
            "steps": r.get("steps"),
            "of": r["settings"]["steps"],
        }
        for r in runs
        if not r["complete"]
    ]
    result = {"runs": runs, "settings": settings, "summary": summary, "unfinished": unfinished}
    path = pathlib.Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    for k, v in summary.items():
        ratio = v.get("rd_loss_ratio_to_compressai")
        print(
            f"{k:48s} seeds {v['seeds']}: RD {v['rd_loss']:.4f}"
            + (f" ({ratio:.3f}x CompressAI)" if ratio else "")
            + f", last 3 evaluations {v['rd_loss_last3']:.4f}"
            + (f" ({v['rd_loss_last3_ratio_to_compressai']:.3f}x)" if ratio else "")
            + f", {v['psnr']:.2f} dB, {v['bpp']:.4f} bpp, z share {100 * v['z_share']:.2f}%, "
            f"live z {v['live_z_channels']:.1f}, {v['steps_per_s']:.2f} steps/s"
        )
    for u in unfinished:
        print(f"unfinished: {u['model']}/{u['label']} seed {u['seed']} at step {u['steps']} of {u['of']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="one run (one framework, one seed)")
    r.add_argument("--framework", choices=["jaxlic", "compressai"], required=True)
    r.add_argument("--model", choices=sorted(MODELS), default="ckbd")
    r.add_argument(
        "--label",
        default=None,
        help="name of a jaxlic variant (default: the framework and its non-default trainer options)",
    )
    r.add_argument("--out", required=True)
    r.add_argument("--compressai-python", default=None)
    r.add_argument("--N", type=int, default=0)
    r.add_argument("--M", type=int, default=0)
    r.add_argument("--lmbda", type=float, default=DEFAULT_LMBDA)
    r.add_argument("--lr", type=float, default=DEFAULT_LR)
    r.add_argument(
        "--z-warmup",
        type=int,
        default=0,
        help="jaxlic: weigh z's rate by min(1, step / Z) (the trainer's optim.z_rate_warmup_steps)",
    )
    r.add_argument(
        "--hyper-lr-factor",
        type=float,
        default=1.0,
        help="jaxlic: the hyperprior's learning rate relative to --lr (the trainer's optim.hyper_lr_factor)",
    )
    r.add_argument("--eval-every", type=int, default=250)
    r.add_argument("--log-every", type=int, default=50)
    r.add_argument("--num-eval", type=int, default=8, help="the first N Kodak images")
    r.add_argument("--kodak", default="../shared/data/kodak")
    d = sub.add_parser("draw", help="only draw and cache a seed's batches (before runs that share them)")
    for a in (r, d):
        a.add_argument("--seed", type=int, default=0)
        a.add_argument(
            "--steps", type=int, default=0, help="default: 3000 (ckbd), 2000 (bmshj2018-hyperprior)"
        )
        a.add_argument("--batch", type=int, default=8)
        a.add_argument("--size", type=int, default=128)
        a.add_argument("--data", default="../shared/data/train")
        a.add_argument("--cache", default="runs/lp", help="where the drawn batches are kept")
    m = sub.add_parser("merge", help="runs -> one JSON with a summary")
    m.add_argument("files", nargs="+")
    m.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    run = harness.Run("eval.learning_parity", argv)
    if args.cmd == "draw":
        args.steps = args.steps or 3000
        batches_for(args)
    else:
        cmd_run(args, run) if args.cmd == "run" else cmd_merge(args)


if __name__ == "__main__":
    main()
