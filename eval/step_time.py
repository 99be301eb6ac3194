"""Training-step time of two checkouts side by side: is the step of this commit faster than an older one's?

Each measurement is a fresh process started in a checkout (`PYTHONPATH` = that checkout) that
builds the train step of a training config with `train.trainer.setup_train_step`, which every
commit since the trainer's first builder has, runs two warm-up steps on a fixed random batch and
prints the median of `--steps` timed steps. One process per core (`OMP_NUM_THREADS=1`,
`taskset`); with two cores the two checkouts run at the same time on different cores and swap
cores every round, so neither gets the better core or the quieter minute. The result is the
median step time of each side and the median of the per-round ratios old / new (> 1: the new
step is faster). The first three losses are printed too: equal losses mean the two steps compute
the same thing; different ones must be explained by the commits in between.

  git worktree add --detach ../jaxlic-old bb87c57
  python -m eval.step_time --old ../jaxlic-old --config train/configs/ckbd.py:cpu --json runs/step_time.json

Stop training runs meanwhile (their cores are the measured ones).

`--here` times this checkout's step alone, on the default device with its threads (what
`tools/gpu_run.sh` records on an accelerator): `python -m eval.step_time --here --config
train/configs/ckbd.py:gpu --steps 20 --json step_time.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys

from eval import harness

REPO = pathlib.Path(__file__).resolve().parents[1]

# Runs in the measured checkout: only names that every commit's trainer has (and this checkout's
# harness, by path).
WORKER = (
    harness.CHILD_IMPORT
    + """
import json
import jax, numpy as np
from absl import flags
from ml_collections import config_flags
config, steps = sys.argv[1], int(sys.argv[2])
config_flag = config_flags.DEFINE_config_file("config", config)
flags.FLAGS(["step_time", *sys.argv[3:]])
c = config_flag.value
from train import trainer
_, state, step, key = trainer.setup_train_step(c)
batch = np.random.default_rng(0).random((c.batch_size, c.data.crop_size, c.data.crop_size, 3), np.float32)
batch = jax.device_put(batch)
losses = []
def one():
    global state
    state, m = step(state, batch, key)
    jax.block_until_ready(m)
    losses.append(float(m["loss"]))
_, warm = harness.repeat(one, 2)
del losses[:]
_, times = harness.repeat(one, steps)
median = harness.median(times)
print("STEP_TIME " + json.dumps(dict(model=c.model, N=c.get("N"), batch=c.batch_size, crop=c.data.crop_size,
      device=str(jax.devices()[0]), step_s=median, images_per_s=c.batch_size / median, times=times,
      first_step_s=warm[0], warmup_s=sum(warm), losses=losses[:3])))
"""
)


def measure(
    checkout: pathlib.Path, config: str, steps: int, overrides: list[str], core: int | None, pin: bool = True
) -> subprocess.Popen:
    """Starts one measuring process in `checkout`; `result_of` reads its `{"step_s", "times", ...}`.

    `pin`: one thread (`OMP_NUM_THREADS=1`) on `core`; without it the process keeps the
    environment's threads and `PYTHONPATH` after the checkout's (an accelerator run's wheels).
    """
    path = str(checkout)
    if not pin and os.environ.get("PYTHONPATH"):
        path += os.pathsep + os.environ["PYTHONPATH"]
    env = dict(os.environ, PYTHONPATH=path)
    if pin:
        env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-c", WORKER, config, str(steps), *overrides]
    if pin and core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core), *cmd]
    return subprocess.Popen(
        cmd, cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def result_of(proc: subprocess.Popen, label: str) -> dict:
    out, err = proc.communicate()
    for line in out.splitlines():
        if line.startswith("STEP_TIME "):
            return json.loads(line[len("STEP_TIME ") :])
    tail = err.strip().splitlines()[-1:] or ["no output"]
    sys.exit(f"error: the {label} step did not run (exit {proc.returncode}): {tail[0]}")


def commit_of(checkout: pathlib.Path) -> str | None:
    """The checkout's commit (with `+dirty` for uncommitted changes), or None outside git."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(checkout), "status", "--porcelain", "-uno"], capture_output=True, text=True
        )
    except OSError:
        return None
    if rev.returncode:
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def summarise(rounds: list[dict]) -> dict:
    """`rounds`: `[{"old": measurement, "new": measurement}, ...]` -> medians and the ratio old / new."""
    old = [r["old"]["step_s"] for r in rounds]
    new = [r["new"]["step_s"] for r in rounds]
    return {
        "old_step_s": harness.median(old),
        "new_step_s": harness.median(new),
        "speedup": harness.median_ratio(old, new),
        "same_losses": all(r["old"]["losses"] == r["new"]["losses"] for r in rounds),
    }


def time_here(args, overrides: list[str], run: harness.Run) -> dict:
    """One process in `--new` (this checkout), its threads and device as they are."""
    new = pathlib.Path(args.new).resolve()
    result = result_of(measure(new, args.config, args.steps, overrides, None, pin=False), "this checkout's")
    result.update(config=args.config, commit=commit_of(new), provenance=run.provenance())
    print(
        f"train step {result['step_s'] * 1e3:.1f} ms median of {args.steps} "
        f"({result['images_per_s']:.1f} images/s) on {result['device']}, first step {result['first_step_s']:.1f} s"
    )
    if args.json:
        harness.write_json(args.json, result)
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", help="checkout of the older commit (a git worktree)")
    ap.add_argument(
        "--here",
        action="store_true",
        help="time this checkout's step alone, unpinned, on the default device (an accelerator run)",
    )
    ap.add_argument("--new", default=str(REPO), help="checkout of the newer commit (default: this one)")
    ap.add_argument("--config", default="train/configs/ckbd.py:cpu", help="training config, path.py[:args]")
    ap.add_argument("--old-config", help="the old checkout's config, if it is spelled differently")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per process")
    ap.add_argument("--rounds", type=int, default=3, help="processes per side")
    ap.add_argument("--cores", default="0,1", help="two cores: the sides run at once; one core: in turn")
    ap.add_argument("--json", help="write the result here")
    args, overrides = ap.parse_known_args(argv)
    run = harness.Run("eval.step_time", argv)
    if args.here:
        return time_here(args, overrides, run)
    if not args.old:
        sys.exit("error: --old CHECKOUT is required (or --here to time this checkout alone)")
    old, new = pathlib.Path(args.old).resolve(), pathlib.Path(args.new).resolve()
    for path in (old, new):
        if not (path / "train" / "trainer.py").exists():
            sys.exit(f"error: {path} is not a jaxlic checkout (no train/trainer.py)")
    cores = [int(c) for c in args.cores.split(",") if c.strip()] if args.cores else []
    side = {"old": (old, args.old_config or args.config), "new": (new, args.config)}
    rounds = []
    for r in range(args.rounds):
        order = harness.rotated(["old", "new"], r)
        measured = {}
        if len(cores) >= 2:  # both at once, on two cores that swap every round
            procs = {
                name: measure(*side[name], args.steps, overrides, cores[i]) for i, name in enumerate(order)
            }
            measured = {name: result_of(p, name) for name, p in procs.items()}
        else:
            for name in order:
                core = cores[0] if cores else None
                measured[name] = result_of(measure(*side[name], args.steps, overrides, core), name)
        rounds.append(measured)
        print(
            f"round {r + 1}/{args.rounds}: old {measured['old']['step_s']:.3f} s, new "
            f"{measured['new']['step_s']:.3f} s per step",
            flush=True,
        )
    result = summarise(rounds)

    result.update(
        old=str(old),
        new=str(new),
        old_commit=commit_of(old),
        new_commit=commit_of(new),
        config=args.config,
        old_config=side["old"][1],
        model=rounds[0]["new"]["model"],
        rounds=rounds,
        provenance=run.provenance(),
    )
    print(
        f"old {result['old_step_s']:.3f} s, new {result['new_step_s']:.3f} s per step (medians): "
        f"new is {result['speedup']:.2f}x the old steps/s; losses "
        + ("equal" if result["same_losses"] else "differ: the commits in between change the numerics")
    )
    if args.json:
        harness.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
