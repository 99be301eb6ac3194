"""The rate-distortion training loop for jaxlic models: `train_and_evaluate(config, workdir)`.

Layout follows Flax's examples; the parts live in modules named for them:

* `train.spec`: the model a config names and its RD hyper-parameters (`build_model`);
* `train.optim`: Adam on the RD loss with its schedule, Adam on the aux loss for the quantiles;
* `train.state`: the `TrainState`, its initialisation or warm start, the ('data',) mesh, and
  `build_train_setup` (everything the loop drives);
* `train.step`: `train_step` (one RD + aux update) and its jitted, sharded form;
* `train.validation`: `eval_step`, validation metrics, real bits and the hyperprior's health;
* `train.export`: the weights file written at the end (and, with `export_every_steps`, at milestones);
* `train.run_control`: checkpoints and resume, the wall-clock budget, SIGTERM/SIGINT, and the
  errors that end a run.

A run resumed from a checkpoint reproduces an uninterrupted run bit for bit (see
`train.run_control`).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from train import input_pipeline, metric_writers, run_control, validation
from train.export import export_weights
from train.run_control import NonFiniteLossError, TrainingInterrupted
from train.spec import ModelSpec
from train.state import TrainSetup, TrainState, build_train_setup, setup_train_step, to_host

# `train.trainer.setup_train_step` is what eval/step_time.py calls in any commit it measures.
__all__ = ["train_and_evaluate", "setup_train_step"]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains `config.model` in `workdir`, resuming from its latest checkpoint if any.

    Args:
      config: a training config (see `train/configs/`).
      workdir: checkpoints, TensorBoard events and exported weights go here.

    Returns:
      The final TrainState.

    Raises:
      NonFiniteLossError: `config.max_nonfinite_steps` consecutive non-finite steps; the
        checkpoints on disk hold the last good parameters.
      TrainingInterrupted: SIGTERM or SIGINT arrived; the step it arrived in was finished and
        checkpointed (see `train.run_control.StopRequest`).
    """
    t_begin = time.time()
    workdir = pathlib.Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() != 0)
    if jax.process_index() == 0:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))

    if config.batch_size % jax.device_count():
        raise ValueError(f"batch_size {config.batch_size} not divisible by {jax.device_count()} devices")
    ckpt = run_control.create_checkpoint_manager(config, workdir)
    setup = build_train_setup(config, warm_start=ckpt.latest_step() is None)
    # The setup must not hold the initial state, which a restore replaces.
    state, setup = setup.state, dataclasses.replace(setup, state=None)
    _log_model(config, setup.spec, state)
    state = run_control.restore_latest(ckpt, state, setup.state_shardings)

    loop = _Loop(config, workdir, writer, ckpt, setup, int(state.step), t_begin)
    return loop.finish(loop.run(state))


def _log_model(config: ml_collections.ConfigDict, spec: ModelSpec, state: TrainState) -> None:
    rate = (
        f"lambdas {min(spec.lambdas):g}..{max(spec.lambdas):g} ({len(spec.lambdas)} rate points)"
        if spec.variable_rate
        else f"q{spec.quality} (lmbda={spec.lmbda:g})"
    )
    logging.info(
        "Model %s %s, N=%d, M=%d; batch %d = %d processes x %d; %d devices",
        spec.name,
        rate,
        spec.N,
        spec.M,
        config.batch_size,
        jax.process_count(),
        config.batch_size // jax.process_count(),
        jax.device_count(),
    )
    logging.info("%d parameters", sum(x.size for x in jax.tree.leaves(state.params)))


def _mean_metrics(history: list[dict]) -> dict[str, float]:
    history = to_host(history)
    out = {k: float(np.mean([h[k] for h in history])) for k in history[0] if k != "nonfinite"}
    out["nonfinite_steps"] = float(sum(1.0 - h["finite"] for h in history))
    del out["finite"]
    return out


class _Loop:
    """One invocation's loop from `start_step`: what it builds once, and what it carries from step
    to step (the metrics since the last log, the last train and validation summaries)."""

    def __init__(self, config, workdir, writer, ckpt, setup: TrainSetup, start_step: int, t_begin: float):
        self.config, self.workdir, self.writer, self.ckpt = config, workdir, writer, ckpt
        self.spec, self.train_step, self.step_key = setup.spec, setup.step, setup.key
        self.start_step, self.t_begin = start_step, t_begin
        self.is_main = jax.process_index() == 0
        self.replicated = NamedSharding(setup.mesh, P())
        self.batch_sharding = NamedSharding(setup.mesh, P("data"))
        self.eval_step = validation.jit_eval_step(self.spec, setup.mesh, setup.xla_options)

        self.train_iter = input_pipeline.create_train_iterator(
            config.data,
            local_batch_size=config.batch_size // jax.process_count(),
            seed=config.seed,
            start_step=start_step,
        )
        self.eval_images = input_pipeline.load_eval_images(config.data)
        self.real_bpp = validation._RealBpp(self.spec, config.real_bpp)  # pylint: disable=protected-access
        self.progress = metric_writers.ReportProgress(
            num_train_steps=config.num_steps, writer=writer, every_steps=config.log_every_steps
        )
        self.hooks = [self.progress] if self.is_main else []

        self.history: list[dict] = []
        self.last_eval: dict[str, float] = {}
        self.last_train: dict[str, float] = {}
        self.prev_nonfinite = None
        self.t_log, self.step_log = time.time(), start_step
        multi_process = jax.process_count() > 1
        self.wall_clock = run_control.WallClock(config.get("max_wall_s", 0), t_begin, multi_process)
        self.stopped_early = self.interrupted = False
        self.stop_request = run_control.StopRequest(multi_process=multi_process)

    def run(self, state: TrainState) -> TrainState:
        c = self.config
        with metric_writers.ensure_flushes(self.writer), self.stop_request:
            for step in range(self.start_step + 1, c.num_steps + 1):
                batch = jax.make_array_from_process_local_data(self.batch_sharding, next(self.train_iter))
                with jax.profiler.StepTraceAnnotation("train", step_num=step):
                    state, metrics = self.train_step(state, batch, self.step_key)
                self.history.append(metrics)
                final = self._stops_after(step)
                self._check_nonfinite(step)
                self.prev_nonfinite = metrics["nonfinite"]

                for hook in self.hooks:
                    hook(step)
                if step % c.log_every_steps == 0 or final:
                    self._log_train(step)
                eval_metrics = None
                if self.eval_images and (step % c.eval_every_steps == 0 or final) and not self.interrupted:
                    eval_metrics = self._validate(step, state.params)
                if step % c.checkpoint_every_steps == 0 or final:
                    with self.progress.timed("checkpoint"):
                        run_control.save_checkpoint(self.ckpt, step, state, eval_metrics)
                if c.get("export_every_steps", 0) and step % c.export_every_steps == 0:
                    self._export(state, self.workdir / "milestones" / str(step))

                if c.halt_after_steps and step >= c.halt_after_steps:
                    logging.info("Halting after step %d (config.halt_after_steps)", step)
                    break
                if self.stopped_early or self.interrupted:
                    break
        return state

    def _stops_after(self, step: int) -> bool:
        """Whether `step` is the last of this invocation: the run's last, the last of the wall-clock
        budget (log, validate, checkpoint), or one a stop request arrived in (checkpoint it, skip its
        validation)."""
        c = self.config
        self.stopped_early = step < c.num_steps and self.wall_clock.expired(step, c.log_every_steps)
        self.interrupted = step < c.num_steps and self.stop_request.requested(step, c.log_every_steps)
        if self.stopped_early:
            logging.info(
                "Stopping after step %d: wall-clock budget config.max_wall_s=%gs reached", step, c.max_wall_s
            )
        return step == c.num_steps or self.stopped_early or self.interrupted

    def _check_nonfinite(self, step: int) -> None:
        """Reads the previous step's counter (a one-step lag keeps dispatch asynchronous)."""
        if self.prev_nonfinite is None:
            return
        count = int(self.prev_nonfinite)
        if count:
            logging.warning(
                "Step %d: non-finite loss or gradient, update skipped (%d in a row)", step - 1, count
            )
        if count >= self.config.max_nonfinite_steps:
            run_control.close(self.ckpt)
            raise NonFiniteLossError(
                f"{count} consecutive non-finite steps up to step {step - 1}; the last good "
                f"checkpoint is step {self.ckpt.latest_step()} in {self.workdir / 'checkpoints'}"
            )

    def _log_train(self, step: int) -> None:
        summary = _mean_metrics(self.history)
        self.history = []
        now = time.time()
        steps_per_sec = (step - self.step_log) / (now - self.t_log)
        summary.update(steps_per_sec=steps_per_sec, images_per_sec=steps_per_sec * self.config.batch_size)
        self.t_log, self.step_log = now, step
        self.writer.write_scalars(step, {f"train/{k}": v for k, v in summary.items()})
        self.last_train = summary
        logging.info(
            "step %d: loss %.4f psnr %.2f bpp %.4f | %.2f steps/s, %.1f images/s",
            step,
            summary["loss"],
            summary["psnr"],
            summary["bpp"],
            steps_per_sec,
            summary["images_per_sec"],
        )

    def _validate(self, step: int, params) -> dict[str, float]:
        with self.progress.timed("eval"):
            metrics = validation.evaluate(
                params, self.eval_images, self.eval_step, self.replicated, self.real_bpp
            )
        self.writer.write_scalars(step, {f"val/{k}": v for k, v in metrics.items()})
        validation.log_validation(step, metrics)
        self.last_eval = metrics
        return metrics

    def finish(self, state: TrainState) -> TrainState:
        """After the loop: close the checkpoints, raise if the run was interrupted or went
        non-finite, export the weights at the end of the run (or of the wall-clock budget)."""
        c = self.config
        if self.prev_nonfinite is not None and int(self.prev_nonfinite) >= c.max_nonfinite_steps:
            run_control.close(self.ckpt)
            raise NonFiniteLossError(f"the last {int(self.prev_nonfinite)} steps were non-finite")
        run_control.close(self.ckpt)
        if self.interrupted:
            self.writer.close()
            raise TrainingInterrupted(int(state.step), self.stop_request.signum, self.workdir / "checkpoints")
        done = int(state.step) == c.num_steps or self.stopped_early
        if c.export and done:
            self._export(state, self.workdir)
        self.writer.close()
        return state

    def _export(self, state: TrainState, workdir: pathlib.Path) -> None:
        """The weights with the last validation and training metrics, into `workdir`/export/."""
        if not self.is_main:
            return
        metrics = dict(self.last_eval, step=int(state.step), wall_s=time.time() - self.t_begin)
        if self.last_train:
            metrics.update({f"train_{k}": v for k, v in self.last_train.items()})
        export_weights(self.config, self.spec, state.params, metrics, workdir)
