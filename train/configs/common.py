"""Defaults shared by every training config (see `ckbd.py`, `cheng2020.py`).

Not a runnable config on its own: model configs call `get_config()` and override fields.
Fields left as `None` (`lmbda`, `N`, `M`) are filled from `jaxlic.models.qualities(model)`
for `quality`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """Shared defaults: data, optimizer, schedule, logging, checkpointing."""
    c = ml_collections.ConfigDict()
    c.seed = 0

    # Model. lmbda/N/M default to the quality table of the model.
    c.model = "ckbd-full"
    c.quality = 3
    c.lmbda = ml_collections.FieldReference(None, field_type=float)
    c.N = ml_collections.FieldReference(None, field_type=int)
    c.M = ml_collections.FieldReference(None, field_type=int)
    c.model_kwargs = ml_collections.ConfigDict()  # extra get_model overrides
    # The exact (integer) entropy-parameter path, trained quantisation-aware (straight-through):
    # "" for the float path, else the fractional bits of its activation points, comma-separated
    # (`ModelConfig.exact`; `python tools/exact_convert.py calibrate WEIGHTS` prints them for a
    # float model, and a warm start from it is the short fine-tune that converts it).
    c.exact = ""
    # Warm start: a jaxlic weights file (e.g. jaxlic/pretrained/ckbd-full-q2.msgpack) of the same
    # model and widths whose params replace the random init; the optimizer, the step and the
    # schedule start fresh. A checkpoint in the workdir takes precedence (resume) and the file
    # is then not read.
    c.init_from = ""

    # Data (train/input_pipeline.py).
    c.data = ml_collections.ConfigDict()
    # Folder (relative to the repo) or "tfds:NAME[:SPLIT]" (tfds.data_source; needs the tfds extra).
    c.data.source = "../shared/data/train"
    c.data.crop_size = 256
    c.data.scan = "header"  # "none" | "header" | "full": up-front check of local files
    c.data.tfds_image_key = ml_collections.FieldReference(None, field_type=str)
    c.data.tfds_data_dir = ml_collections.FieldReference(None, field_type=str)
    c.data.num_threads = 0  # grain reader threads; 0: one per CPU core (at most 16)
    c.data.num_workers = 0  # grain worker processes; 0: read in the training process
    c.data.prefetch = 2  # batches read ahead
    c.data.eval_dir = "../shared/data/kodak"
    c.data.num_eval_images = 4
    c.data.eval_crop = 0  # 0: full image (cropped to a multiple of 64)

    # Optimization.
    c.batch_size = 8  # global batch, split over all devices of all processes
    c.num_steps = 500_000
    c.optim = ml_collections.ConfigDict()
    c.optim.learning_rate = 1e-4
    c.optim.warmup_steps = 1000
    c.optim.schedule = "cosine"  # "cosine" | "step" | "constant"
    c.optim.end_lr_factor = 0.01  # cosine: final lr = factor * lr
    c.optim.step_boundaries = (0.8, 0.95)  # "step": fractions of num_steps where lr *= step_factor
    c.optim.step_factor = 0.1
    c.optim.schedule_start = 0  # >0: restart the schedule (warm-up included) at this step (fine-tuning)
    c.optim.clip_norm = 1.0  # global-norm clipping of the RD gradient (0: off)
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    # >0: z's rate enters the loss with weight step / z_rate_warmup_steps (capped at 1), so that
    # h_a/h_s learn to use z before its rate is charged in full (against the hyperprior collapse).
    c.optim.z_rate_warmup_steps = 0
    # The hyperprior's (h_a, h_s, entropy bottleneck) learning rate relative to the others'.
    c.optim.hyper_lr_factor = 1.0
    c.optim.aux_learning_rate = 1e-3  # Adam on the entropy bottleneck quantiles only

    # A non-finite loss skips the update; this many in a row stop the run.
    c.max_nonfinite_steps = 20

    # Logging, validation, checkpoints.
    c.log_every_steps = 100
    c.eval_every_steps = 5000
    c.checkpoint_every_steps = 5000
    c.keep_checkpoints = 3  # latest N (plus the best one by validation RD loss)
    c.async_checkpointing = True
    c.real_bpp = True  # validation also range-codes through jaxlic.models.codec when available
    c.export = True  # write export/{model}-q{quality}.msgpack at the end
    # Also write milestones/{step}/export/... every this many steps (0: off): a long run's milestones.
    c.export_every_steps = 0
    # Wall-clock budget of one invocation in seconds (0: none): stop cleanly after the step that
    # crosses it, validate, checkpoint and export as at the end of a run.
    c.max_wall_s = 0.0
    c.halt_after_steps = 0  # debugging/tests: stop after this step as if killed (0: off)

    # XLA options for every jit, e.g. {"xla_backend_optimization_level": 0} for fast compiles.
    c.compiler_options = ml_collections.ConfigDict()

    # Multi-host: jax.distributed.initialize(coordinator, num_processes, process_id);
    # leave the three empty to let JAX detect them (SLURM, Cloud TPU, ...).
    c.distributed = False
    c.coordinator_address = ""
    c.num_processes = 0
    c.process_id = -1
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks `c` to a seconds-long CPU run for tests."""
    c.N, c.M = 8, 8
    c.lmbda = 0.01
    c.batch_size = 2
    c.num_steps = 4
    c.data.crop_size = 64
    c.data.num_eval_images = 1
    c.data.eval_crop = 64
    c.data.prefetch = 1
    c.optim.warmup_steps = 1
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = 2
    c.keep_checkpoints = 2
    c.real_bpp = False
    # Tiny models on CPU: compiling dominates, so trade step speed for compile time (~3x faster).
    c.compiler_options = ml_collections.ConfigDict(
        {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
    )
    return c
