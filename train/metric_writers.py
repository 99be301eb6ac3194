"""Metric writers without TensorFlow: TensorBoard event files through tensorboardX, and logs.

`clu.metric_writers` imports TensorFlow when it is imported (its `SummaryWriter`), so the trainer
uses these instead; the interface is clu's (`write_scalars`, `write_hparams`, `flush`, `close`)
and `create_default_writer` mirrors clu's. View the events with `tensorboard --logdir WORKDIR`
(TensorBoard is a separate install, e.g. `pip install tensorboard`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging


class MetricWriter:
    """clu's MetricWriter interface, the subset the trainer uses."""

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.flush()


class LoggingWriter(MetricWriter):
    """Writes scalars to the absl log, one line per call."""

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        values = ", ".join(f"{k}={float(np.asarray(v)):.6g}" for k, v in sorted(scalars.items()))
        logging.info("[%d] %s", step, values)

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        logging.info("[hparams] %s", ", ".join(f"{k}={v}" for k, v in sorted(hparams.items())))


class TensorBoardWriter(MetricWriter):
    """TensorBoard event files in `logdir`, written by tensorboardX (no TensorFlow)."""

    def __init__(self, logdir: str):
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(logdir=str(logdir))

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        for key, value in scalars.items():
            self._writer.add_scalar(key, float(np.asarray(value)), global_step=int(step))

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        text = "\n".join(f"    {k}: {v}" for k, v in sorted(hparams.items()))
        self._writer.add_text("hparams", text, global_step=0)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class MultiWriter(MetricWriter):
    def __init__(self, writers: Sequence[MetricWriter]):
        self._writers = list(writers)

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        for w in self._writers:
            w.write_scalars(step, scalars)

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        for w in self._writers:
            w.write_hparams(hparams)

    def flush(self) -> None:
        for w in self._writers:
            w.flush()

    def close(self) -> None:
        for w in self._writers:
            w.close()


def create_default_writer(logdir: str, *, just_logging: bool = False) -> MetricWriter:
    """Logging plus TensorBoard events in `logdir` (logging only with `just_logging`)."""
    if just_logging:
        return LoggingWriter()
    return MultiWriter([LoggingWriter(), TensorBoardWriter(logdir)])


@contextlib.contextmanager
def ensure_flushes(*writers: MetricWriter) -> Iterator[None]:
    """Flushes the writers on leaving the block, also on an exception."""
    try:
        yield
    finally:
        for w in writers:
            w.flush()


class ReportProgress:
    """Logs progress (steps/s, ETA) every `every_steps` steps and times named sections.

    A TF-free stand-in for `clu.periodic_actions.ReportProgress`: `hook(step)` after each step,
    `with hook.timed("eval"): ...` around occasional work, whose share of the wall time since
    the previous report is written as `timing/NAME_percent`.
    """

    def __init__(self, *, num_train_steps: int, writer: MetricWriter, every_steps: int):
        self.num_train_steps, self.writer, self.every_steps = num_train_steps, writer, max(1, every_steps)
        self._t0, self._step0 = None, None
        self._timed: dict[str, float] = {}

    def __call__(self, step: int) -> None:
        now = time.monotonic()
        if self._t0 is None:  # the first step includes compilation: start the clock after it
            self._t0, self._step0, self._timed = now, step, {}
            return
        if step % self.every_steps and step != self.num_train_steps:
            return
        dt = now - self._t0
        if dt <= 0 or step == self._step0:
            return
        rate = (step - self._step0) / dt
        eta = (self.num_train_steps - step) / rate if rate > 0 else float("inf")
        scalars = {"steps_per_sec": rate}
        scalars.update({f"timing/{k}_percent": 100 * v / dt for k, v in self._timed.items()})
        self.writer.write_scalars(step, scalars)
        logging.info(
            "Step %d of %d (%.1f%%): %.3g steps/s, ETA %.0f min",
            step,
            self.num_train_steps,
            100 * step / self.num_train_steps,
            rate,
            eta / 60,
        )
        self._t0, self._step0, self._timed = now, step, {}

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t = time.monotonic()
        try:
            yield
        finally:
            self._timed[name] = self._timed.get(name, 0.0) + time.monotonic() - t
