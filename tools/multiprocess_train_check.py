"""Checks that data-parallel training gives the same parameters however it is spread.

Three modes, all training `--steps` steps of one config on the same global batches:

* `worker --process-id I --num-processes P --port PORT`: one process of a real multi-process
  run on localhost (`jax.distributed.initialize` + gloo CPU collectives), running
  `trainer.train_and_evaluate`; each process reads its own shard of the file list and writes its
  final parameters to `OUT/params-I.npz`.
* `reference --num-processes P [--devices 1,4]`: a single process that rebuilds the same
  global batches by concatenating the P per-process pipelines and applies the trainer's own
  `train_step`, on all its devices (`OUT/params-ref.npz`) or on the first K of them for each K
  in `--devices` (`OUT/params-ref-dK.npz`; use XLA_FLAGS=--xla_force_host_platform_device_count
  for fake CPU devices). The files also hold the per-step `losses`.
* `check` (default): runs P workers and the reference as subprocesses on a free port, then
  compares: workers bit-identical to each other, and equal to the reference within tolerance.

  python tools/multiprocess_train_check.py --data-dir DIR --out /tmp/mp [--model ckbd]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def make_config(args):
    from train.configs import cheng2020, ckbd  # pylint: disable=g-import-not-at-top

    family = ckbd if args.model.startswith("ckbd") else cheng2020
    c = family.get_config("smoke")
    c.model = args.model
    c.N, c.M = args.N, args.M
    c.num_steps = args.steps
    c.batch_size = args.batch
    c.data.source = args.data_dir
    c.data.crop_size = args.crop
    c.data.num_eval_images = 0
    c.checkpoint_every_steps = args.steps
    c.log_every_steps = args.steps
    c.export = False
    c.optim.learning_rate = 1e-3  # large enough that a data mismatch shows in the parameters
    return c


def _save(path, params, **extra):
    import jax  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top

    from train.state import to_host  # pylint: disable=g-import-not-at-top

    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(to_host(params))}
    np.savez(path, **flat, **extra)


def worker(args):
    import jax  # pylint: disable=g-import-not-at-top

    from train import trainer  # pylint: disable=g-import-not-at-top
    from train.state import initialize_distributed  # pylint: disable=g-import-not-at-top

    c = make_config(args)
    c.distributed = True
    c.coordinator_address = f"127.0.0.1:{args.port}"
    c.num_processes = args.num_processes
    c.process_id = args.process_id
    initialize_distributed(c)
    assert jax.process_count() == args.num_processes
    state = trainer.train_and_evaluate(c, os.path.join(args.out, "workdir"))
    _save(os.path.join(args.out, f"params-{args.process_id}.npz"), state.params)
    jax.distributed.shutdown()


def reference(args):
    import jax  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top

    # pylint: disable=g-import-not-at-top
    from train import input_pipeline
    from train.optim import create_learning_rate_schedule, create_optimizer
    from train.spec import build_model
    from train.state import compiler_options, create_mesh, create_train_state, make_keys
    from train.step import jit_train_step

    c = make_config(args)
    spec = build_model(c)
    tx = create_optimizer(c)
    init_key, train_key = make_keys(c.seed)
    options = compiler_options(c)
    local = c.batch_size // args.num_processes
    device_counts = [int(d) for d in args.devices.split(",")] if args.devices else [None]
    for count in device_counts:
        mesh = create_mesh(None if count is None else jax.devices()[:count])
        state, shardings = create_train_state(spec, tx, init_key, mesh, options)
        step = jit_train_step(spec, tx, create_learning_rate_schedule(c), shardings, mesh, options)
        iters = [
            input_pipeline.create_train_iterator(
                c.data, local_batch_size=local, seed=c.seed, process_index=i, process_count=args.num_processes
            )
            for i in range(args.num_processes)
        ]
        losses = []
        for _ in range(c.num_steps):
            batch = np.concatenate([next(it) for it in iters])
            state, metrics = step(state, batch, train_key)
            losses.append(float(metrics["loss"]))
        print("devices", mesh.size, "losses", losses)
        tag = "" if count is None else f"-d{count}"
        _save(os.path.join(args.out, f"params-ref{tag}.npz"), state.params, losses=np.array(losses))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(args) -> None:
    import numpy as np  # pylint: disable=g-import-not-at-top

    os.makedirs(args.out, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    common = [
        sys.executable,
        __file__,
        "--out",
        args.out,
        "--data-dir",
        args.data_dir,
        "--model",
        args.model,
        "--N",
        str(args.N),
        "--M",
        str(args.M),
        "--steps",
        str(args.steps),
        "--batch",
        str(args.batch),
        "--crop",
        str(args.crop),
        "--num-processes",
        str(args.num_processes),
    ]
    port = free_port()
    procs = [
        subprocess.Popen(
            common + ["worker", "--process-id", str(i), "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(args.num_processes)
    ]
    ref = subprocess.run(
        common + ["reference"], env=env, capture_output=True, text=True, timeout=args.timeout
    )
    if ref.returncode:
        raise RuntimeError(f"reference failed:\n{ref.stdout[-3000:]}{ref.stderr[-3000:]}")
    for i, p in enumerate(procs):
        try:
            out, _ = p.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        if p.returncode:
            raise RuntimeError(f"worker {i} failed:\n{out.decode()[-5000:]}")
    loaded = [np.load(os.path.join(args.out, f"params-{i}.npz")) for i in range(args.num_processes)]
    ref_params = np.load(os.path.join(args.out, "params-ref.npz"))
    for name in [f for f in ref_params.files if f != "losses"]:
        for i, p in enumerate(loaded[1:], 1):
            if not np.array_equal(p[name], loaded[0][name]):
                raise AssertionError(f"{name}: process {i} differs from process 0")
        np.testing.assert_allclose(
            loaded[0][name], ref_params[name], rtol=args.rtol, atol=args.atol, err_msg=name
        )
    print(
        f"OK: {args.num_processes} processes agree bit for bit and match the single-process "
        f"reference on {len(ref_params.files)} arrays"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", default="check", choices=["check", "worker", "reference"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", default="bmshj2018-hyperprior")
    parser.add_argument("--N", type=int, default=8)
    parser.add_argument("--M", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-5)
    parser.add_argument(
        "--devices",
        default="",
        help="reference: comma-separated device counts to run on, each saved to "
        "params-ref-d{COUNT}.npz (default: all devices, params-ref.npz)",
    )
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    {"check": check, "worker": worker, "reference": reference}[args.mode](args)


if __name__ == "__main__":
    main()
