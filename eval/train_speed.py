"""Training-step speed of jaxlic, optionally against CompressAI on the same architecture.

Times one full training step (forward, RD loss, backward, clipped Adam update, aux update of the
quantiles) of cheng2020-anchor (Cheng et al., 2020) at N=128 on a batch of 8 x 256 x 256, as
in `train/trainer.py`: median over several steps after warm-up (compilation excluded). Given
`--compressai-python` (the interpreter of an environment with torch + CompressAI, e.g.
`.venv-ref/bin/python`), the same step of CompressAI's model runs in that interpreter
(`eval/train_speed_compressai.py`, driven by eval/worker.py), interleaved round by round with the
jaxlic runs in a rotated order so both see the same machine load; the ratio is the median over
rounds of the two frameworks' median step times in the same round.

  python -m eval.train_speed --json runs/train_speed.json
  python -m eval.train_speed --json runs/train_speed.json --compressai-python .venv-ref/bin/python
  python -m eval.train_speed --json /tmp/s.json --batch 2 --size 64 --N 32   # quick CPU check

JSON keys: jaxlic_step_s, compressai_step_s (null without a reference env),
ratio_compressai_over_jaxlic (null likewise), plus the settings and every timing.
"""

from __future__ import annotations

import argparse
import pathlib

from eval import harness

HERE = pathlib.Path(__file__).resolve().parent


class CompressAIStep:
    """The CompressAI training step in the reference interpreter (eval/train_speed_compressai.py),
    driven by an eval.worker.Worker."""

    def __init__(self, python: str, args):
        from eval.worker import Worker

        cmd = [python, str(HERE / "train_speed_compressai.py")]
        for flag in ("model", "N", "M", "batch", "size", "lmbda", "warmup"):
            cmd += [f"--{flag}", str(getattr(args, flag))]
        self.worker = Worker(cmd, what="CompressAI training-step worker")
        self.info = self.worker.about

    def time_steps(self, n: int) -> list[float]:
        return self.worker.ask(f"steps {n}")["times"]

    def close(self):
        self.worker.close()


class JaxlicStep:
    """The trainer's own jitted `train_step` on one device, with a fixed random batch."""

    def __init__(self, args):
        import jax  # pylint: disable=g-import-not-at-top
        import numpy as np  # pylint: disable=g-import-not-at-top

        from train import trainer  # pylint: disable=g-import-not-at-top
        from train.configs import cheng2020  # pylint: disable=g-import-not-at-top

        config = cheng2020.get_config()
        config.model, config.N, config.M, config.lmbda = args.model, args.N, args.M, args.lmbda
        config.num_steps, config.seed = 1000, 0
        _, self.state, self.step, self.key = trainer.setup_train_step(config, jax.devices()[:1])
        batch = np.random.default_rng(0).uniform(size=(args.batch, args.size, args.size, 3))
        self.batch = jax.device_put(batch.astype(np.float32), jax.devices()[0])
        self.device = str(jax.devices()[0].device_kind)
        self.jax = jax
        _, warmup = harness.repeat(self._one, args.warmup)
        self.warmup_s = sum(warmup)

    def _one(self) -> None:
        self.state, metrics = self.step(self.state, self.batch, self.key)
        self.jax.block_until_ready((self.state, metrics))

    def time_steps(self, n: int) -> list[float]:
        return harness.repeat(self._one, n)[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True, help="output file")
    ap.add_argument(
        "--compressai-python", default=None, help="interpreter of an environment with torch + CompressAI"
    )
    ap.add_argument("--model", default="cheng2020-anchor")
    ap.add_argument("--N", type=int, default=128)
    ap.add_argument("--M", type=int, default=None, help="default: N (Cheng2020 uses M = N)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--lmbda", type=float, default=0.0067)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per round and framework")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    args.M = args.M or args.N
    run = harness.Run("eval.train_speed", argv)

    steppers = {}
    try:
        if args.compressai_python:
            steppers["compressai"] = CompressAIStep(args.compressai_python, args)
        jx = steppers["jaxlic"] = JaxlicStep(args)
        names = sorted(steppers, key=lambda n: n != "jaxlic")  # jaxlic first in round 1

        def progress(r, got):
            print(
                f"round {r + 1}/{args.rounds}: "
                + ", ".join(f"{n} {harness.median(got[n]):.4f} s" for n in names),
                flush=True,
            )

        # each round: every framework's steps, each framework taking each place in turn
        per_round = harness.interleave(
            {n: (lambda n=n: steppers[n].time_steps(args.steps)) for n in names},
            args.rounds,
            after_round=progress,
        )
    finally:
        if "compressai" in steppers:
            steppers["compressai"].close()
    worker = steppers.get("compressai")
    times = {n: [t for ts in per_round[n] for t in ts] for n in names}
    rounds = {n: [harness.median(ts) for ts in per_round[n]] for n in names}  # each round's median step

    jaxlic_s = harness.median(times["jaxlic"])
    compressai_s = harness.median(times["compressai"]) if worker else None
    # side by side: the median over rounds of the two frameworks' times in the same round
    ratio = harness.median_ratio(rounds["compressai"], rounds["jaxlic"]) if worker else None
    result = {
        **run.provenance(),
        "jaxlic_step_s": jaxlic_s,
        "compressai_step_s": compressai_s,
        "ratio_compressai_over_jaxlic": ratio,
        "jaxlic_images_per_s": args.batch / jaxlic_s,
        "model": args.model,
        "N": args.N,
        "M": args.M,
        "batch": args.batch,
        "size": args.size,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "jaxlic_device": jx.device,
        "jaxlic_warmup_s": jx.warmup_s,
        "compressai_env": worker.info if worker else None,
        "times": times,
        "round_medians": rounds,
    }
    harness.write_json(args.json, result)
    print(f"jaxlic: {jaxlic_s:.4f} s/step ({args.batch / jaxlic_s:.1f} images/s) on {jx.device}")
    if worker:
        print(
            f"CompressAI: {compressai_s:.4f} s/step on {worker.info['device']}; "
            f"ratio CompressAI / jaxlic = {ratio:.2f} (median of per-round ratios)"
        )
    return result


if __name__ == "__main__":
    main()
