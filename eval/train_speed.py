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
import json
import pathlib
import statistics
import sys
import time

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
        t = time.perf_counter()
        for _ in range(args.warmup):
            self._one()
        self.warmup_s = time.perf_counter() - t

    def _one(self) -> float:
        t = time.perf_counter()
        self.state, metrics = self.step(self.state, self.batch, self.key)
        self.jax.block_until_ready((self.state, metrics))
        return time.perf_counter() - t

    def time_steps(self, n: int) -> list[float]:
        return [self._one() for _ in range(n)]


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

    from eval.speed import rotated
    from jaxlic.evaluation.rd import provenance

    steppers = {}
    try:
        if args.compressai_python:
            steppers["compressai"] = CompressAIStep(args.compressai_python, args)
        jx = steppers["jaxlic"] = JaxlicStep(args)
        names = sorted(steppers, key=lambda n: n != "jaxlic")  # jaxlic first in round 1
        times = {n: [] for n in names}
        rounds = {n: [] for n in names}  # each round's median step time
        for r in range(args.rounds):
            for name in rotated(names, r):  # each takes each place in turn
                t = steppers[name].time_steps(args.steps)
                times[name] += t
                rounds[name].append(statistics.median(t))
            print(
                f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {rounds[n][-1]:.4f} s" for n in names),
                flush=True,
            )
    finally:
        if "compressai" in steppers:
            steppers["compressai"].close()
    worker = steppers.get("compressai")

    jaxlic_s = statistics.median(times["jaxlic"])
    compressai_s = statistics.median(times["compressai"]) if worker else None
    # side by side: the median over rounds of the two frameworks' times in the same round
    ratio = (
        statistics.median(c / j for c, j in zip(rounds["compressai"], rounds["jaxlic"], strict=True))
        if worker
        else None
    )
    result = {
        **provenance("python -m eval.train_speed " + " ".join(sys.argv[1:] if argv is None else argv)),
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
    path = pathlib.Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"jaxlic: {jaxlic_s:.4f} s/step ({args.batch / jaxlic_s:.1f} images/s) on {jx.device}")
    if worker:
        print(
            f"CompressAI: {compressai_s:.4f} s/step on {worker.info['device']}; "
            f"ratio CompressAI / jaxlic = {ratio:.2f} (median of per-round ratios)"
        )
    return result


if __name__ == "__main__":
    main()
