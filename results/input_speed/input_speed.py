"""Images/s of the grain input pipeline against the old tf.data one, same crops and batches.

A record of a finished study (README.md beside it), run from the repository's root:

    python -m results.input_speed.input_speed [--data ../shared/data/train] [--crop 256] [--batch 16] \\
        [--batches 20] [--repeats 3] [--threads 0] [--json OUT]

The old pipeline is `train/input_pipeline.py` at git commit 08eb705 (the last tf.data version),
read with `git show` into a temporary module; it runs only where TensorFlow is installed (the
`tfds` extra), else only grain is timed. Each repeat builds a fresh iterator, draws one warm-up
batch (not timed: file scan, thread start-up) and then times `--batches` batches. The repeats of
the two pipelines are interleaved in rotated rounds (`eval.harness`); the median images/s over
the repeats is reported, with the median over rounds of the ratio grain / tf.data.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import pathlib
import subprocess
import sys
import tempfile

from eval import harness

REPO = pathlib.Path(__file__).resolve().parents[2]
TF_PIPELINE_COMMIT = "08eb705"


def data_config(args):
    from train import input_pipeline
    from train.configs import common

    c = common.get_config().data
    c.source = str(input_pipeline.resolve_path(args.data))  # absolute: the old module lives in /tmp
    c.crop_size = args.crop
    c.num_threads = args.threads
    c.num_workers = args.workers
    c.prefetch = 2
    return c


def load_tf_pipeline():
    """The tf.data pipeline module of TF_PIPELINE_COMMIT, or None without TensorFlow."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    src = subprocess.run(
        ["git", "show", f"{TF_PIPELINE_COMMIT}:train/input_pipeline.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = pathlib.Path(tempfile.mkdtemp()) / "tf_input_pipeline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("tf_input_pipeline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.hide_accelerators_from_tf()
    return module


def time_once(make_iter, seed: int, args) -> float:
    """Images/s of `--batches` batches of a fresh iterator, after one untimed warm-up batch."""
    it = make_iter(seed=seed)
    batch = next(it)  # warm-up
    assert batch.shape == (args.batch, args.crop, args.crop, 3), batch.shape
    with harness.Timer() as t:
        for _ in range(args.batches):
            next(it)
    return args.batches * args.batch / t.seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/train", help="image folder (relative to the repo)")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=20, help="timed batches per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=0, help="grain threads / tf.data private pool (0: default)"
    )
    ap.add_argument("--workers", type=int, default=0, help="grain worker processes")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    run = harness.Run("results.input_speed.input_speed", argv)

    from train import input_pipeline

    cfg = data_config(args)
    results = {
        "crop": args.crop,
        "batch": args.batch,
        "batches": args.batches,
        "repeats": args.repeats,
        "grain_threads": args.threads or input_pipeline.default_num_threads(),
        "grain_workers": args.workers,
    }
    pipelines = {
        "grain": lambda seed: input_pipeline.create_train_iterator(
            cfg, local_batch_size=args.batch, seed=seed, process_index=0, process_count=1
        )
    }
    tf_pipeline = load_tf_pipeline()
    if tf_pipeline is not None:
        tf_cfg = data_config(args)
        tf_cfg.shuffle_buffer = 1024
        tf_cfg.num_parallel_calls = 0
        pipelines["tf"] = lambda seed: tf_pipeline.create_train_iterator(
            tf_cfg, local_batch_size=args.batch, seed=seed, process_index=0, process_count=1
        )
    # repeat r of either pipeline draws with seed r: the same crops and batches on both sides
    seeds = {name: itertools.count() for name in pipelines}
    runs = harness.interleave(
        {n: (lambda n=n, m=m: time_once(m, next(seeds[n]), args)) for n, m in pipelines.items()},
        args.repeats,
    )
    for name, rates in runs.items():
        results[f"{name}_images_per_s"] = harness.median(rates)
        results[f"{name}_runs"] = rates
        label = "tf.data" if name == "tf" else name
        print(
            f"{label + ':':<8} {harness.median(rates):.1f} images/s (runs: {', '.join(f'{x:.1f}' for x in rates)})"
        )
    if tf_pipeline is None:
        print("tf.data: TensorFlow is not installed; timed grain only")
    else:
        results["ratio_grain_over_tf"] = harness.median_ratio(runs["grain"], runs["tf"])
        print(f"ratio grain / tf.data: {results['ratio_grain_over_tf']:.2f}")
    if args.json:
        harness.write_json(args.json, {**results, "provenance": run.provenance()})
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
