"""Run control: checkpoints and resume, the wall-clock budget, stop signals, and the errors that end
a run (`NonFiniteLossError`, `TrainingInterrupted`).

Determinism: the noise of step s comes from `fold_in(training key, s)` (`train.step`) and the data
of step s is a function of (seed, s) (see `train.input_pipeline`), so a run resumed from a
checkpoint reproduces an uninterrupted run bit for bit.
"""

from __future__ import annotations

import pathlib
import signal
import threading
import time
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from train.state import TrainState


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


class TrainingInterrupted(Exception):
    """SIGTERM or SIGINT stopped the run after ``step``, which is checkpointed: the same command
    resumes it."""

    def __init__(self, step: int, signum: int, checkpoints: pathlib.Path):
        self.step, self.signum = step, signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name} after step {step}, checkpointed in {checkpoints}; "
            "the same command resumes the run"
        )


def create_checkpoint_manager(
    config: ml_collections.ConfigDict, workdir: pathlib.Path
) -> ocp.CheckpointManager:
    """Keeps the latest `keep_checkpoints` and the best one by validation RD loss."""
    policy = ocp.checkpoint_managers.AnyPreservationPolicy(
        [
            ocp.checkpoint_managers.LatestN(n=config.keep_checkpoints),
            # BestN keeps the n *largest* metric values, hence the minus sign.
            ocp.checkpoint_managers.BestN(
                get_metric_fn=lambda m: -m["val_loss"], n=1, keep_checkpoints_without_metrics=False
            ),
        ]
    )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy, enable_async_checkpointing=config.async_checkpointing
    )
    return ocp.CheckpointManager(workdir / "checkpoints", options=options)


def restore_latest(ckpt: ocp.CheckpointManager, state: TrainState, shardings: TrainState) -> TrainState:
    """The latest checkpoint of `ckpt`, placed as `shardings` say, or `state` if there is none."""
    if ckpt.latest_step() is None:
        return state
    abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)
    state = ckpt.restore(ckpt.latest_step(), args=ocp.args.StandardRestore(abstract))
    logging.info("Resumed from step %d", int(state.step))
    return state


def save_checkpoint(ckpt: ocp.CheckpointManager, step: int, state: TrainState, eval_metrics: dict | None):
    """Checkpoints `state` as `step`, with its validation loss (the best one is kept) if validated."""
    ckpt.save(
        step,
        args=ocp.args.StandardSave(state),
        metrics={"val_loss": eval_metrics["loss"]} if eval_metrics else None,
    )


def close(ckpt: ocp.CheckpointManager) -> None:
    """Waits for an asynchronous checkpoint write, then closes the manager."""
    ckpt.wait_until_finished()
    ckpt.close()


class WallClock:
    """`config.max_wall_s`: a wall-clock budget for one invocation of the trainer (0: none).

    Counted from the start of `train_and_evaluate` (compilation and a restore included). With
    several processes, process 0's clock decides, at log steps only (one broadcast each), so
    that all processes stop after the same step.
    """

    def __init__(self, max_wall_s: float, t_begin: float, multi_process: bool):
        self.max_wall_s, self.t_begin, self.multi_process = float(max_wall_s or 0), t_begin, multi_process

    def expired(self, step: int, every_steps: int) -> bool:
        if self.max_wall_s <= 0:
            return False
        over = time.time() - self.t_begin >= self.max_wall_s
        if not self.multi_process:
            return over
        if step % every_steps:
            return False
        from jax.experimental import multihost_utils

        return bool(multihost_utils.broadcast_one_to_all(np.int32(over)))


class StopRequest:
    """SIGTERM (a scheduler's preemption, the end of a session) or SIGINT (Ctrl-C) while training:
    the trainer finishes the step, checkpoints it and raises `TrainingInterrupted`, so that no
    step is lost. A second signal interrupts at once (KeyboardInterrupt / the default action).

    Used as a context manager around the training loop; it installs its handlers only in the
    main thread. With several processes, process 0's request decides, at log steps only (one
    broadcast each), so that all processes stop after the same step.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, multi_process: bool = False):
        self.multi_process = multi_process
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.signum is not None:  # the second one: do what it would have done without us
            self._restore()
            signal.raise_signal(signum)
            return
        self.signum = signum
        logging.warning(
            "%s received: checkpointing after this step, then stopping (send it again to stop at once)",
            signal.Signals(signum).name,
        )

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc):
        self._restore()

    def requested(self, step: int, every_steps: int) -> bool:
        if not self.multi_process:
            return self.signum is not None
        if step % every_steps:
            return False
        from jax.experimental import multihost_utils

        signum = multihost_utils.broadcast_one_to_all(np.int32(self.signum or 0))
        self.signum = int(signum) or None
        return self.signum is not None
