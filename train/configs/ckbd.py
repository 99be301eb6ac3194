"""Checkerboard-context models (He et al., 2021, "Checkerboard Context Model for Efficient
Learned Image Compression") and their jaxlic extensions.

Run (quality 3, folder data):
  python -m train.main --config train/configs/ckbd.py --workdir runs/ckbd-full-q3
Variants via the model name or overrides:
  python -m train.main --config train/configs/ckbd.py --workdir runs/x \
      --config.model=ckbd-gmm --config.quality=6 --config.lmbda=0.0483
Smoke test (tiny widths, 64 px crops, 4 steps):
  python -m train.main --config train/configs/ckbd.py:smoke --workdir /tmp/smoke
One accelerator (a single GPU; `tools/gpu_run.sh` runs it under a wall-clock budget):
  python -m train.main --config train/configs/ckbd.py:gpu --workdir runs/ckbd-full-gpu \
      --config.max_wall_s=3600
Args after ':' pick a model too, e.g. `ckbd.py:ckbd-attn` or `ckbd.py:smoke,ckbd-pp`.
Variable-rate (one model for every rate, gain units of Cui et al. 2021, "Asymmetric Gained Deep
Image Compression With Continuous Rate Adaptation"): `vr` trains the `-vr` variant of the chosen
model on all rate points of `jaxlic.models.registry.VR_LAMBDAS` (each example draws one), e.g.
  python -m train.main --config train/configs/ckbd.py:cpu,vr --workdir runs/ckbd-full-vr
  python -m train.main --config train/configs/ckbd.py:smoke,vr --workdir /tmp/smoke-vr
`vr,zgain` gives z gain units of its own too (`ModelConfig.z_gains`), so z's rate follows the
rate point instead of one z serving every rate.
How the shipped weights were trained (commands, steps, times): jaxlic/pretrained/README.md.
"""

import ml_collections

from jaxlic.models import registry
from train.configs import common

#: The checkerboard family: the registered models that have a variable-rate variant.
MODELS = tuple(name for name in registry.list_models() if registry.variable_rate_name(name))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Args: comma-separated `smoke`, `cpu`, `gpu`, `vr`, `zgain` and/or one of MODELS (default ckbd-full)."""
    c = common.get_config()
    c.model = "ckbd-full"
    c.optim.learning_rate = 1e-4
    variable_rate = z_gains = False
    for part in filter(None, (arg or "").split(",")):
        if part == "smoke":
            common.smoke(c)
        elif part == "cpu":
            cpu(c)
        elif part == "gpu":
            gpu(c)
        elif part == "vr":
            variable_rate = True
        elif part == "zgain":
            z_gains = True
        elif part in MODELS:
            c.model = part
        else:
            raise ValueError(
                f"unknown config arg {part!r}; expected 'smoke', 'cpu', 'gpu', 'vr', 'zgain' or one of {MODELS}"
            )
    if z_gains and not variable_rate:
        raise ValueError("config arg 'zgain' needs 'vr' (z gains belong to variable-rate models)")
    if variable_rate:
        c.model = registry.variable_rate_name(c.model)
    if z_gains:
        c.model_kwargs.z_gains = True
    return c


def cpu(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A short run that fits a 2-core CPU: N=M=64, 128 px crops, 3000 steps, higher learning rate."""
    c.quality = 2
    c.N, c.M = 64, 64
    c.data.crop_size = 128
    c.batch_size = 8
    c.num_steps = 3000
    c.optim.learning_rate = 5e-4
    # The hyperprior (h_a, h_s, entropy bottleneck) at 1e-4, CompressAI's usual rate: at 5e-4 it
    # collapses (z's share of the rate ~1%, 4-9 of 64 z channels live by step 3000, in CompressAI's
    # trainer as in ours); see results/learning_parity/README.md.
    c.optim.hyper_lr_factor = 0.2
    c.optim.warmup_steps = 150
    c.log_every_steps = 50
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 250
    c.data.num_eval_images = 2
    return c


def gpu(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """ckbd-full at N=M=128 (quality 3), batch 16 of 256 px crops, for one GPU.

    Meant to run under a wall-clock budget (`config.max_wall_s`): the schedule spans
    `num_steps`, the run stops cleanly when the budget is spent and exports what it has.
    """
    c.model = "ckbd-full"
    c.quality = 3
    c.N = 128
    c.data.crop_size = 256
    c.batch_size = 16
    c.num_steps = 100_000
    c.optim.learning_rate = 1e-4
    c.optim.warmup_steps = 500
    c.log_every_steps = 100
    c.eval_every_steps = 2000
    c.checkpoint_every_steps = 1000
    c.data.num_eval_images = 4
    c.data.eval_crop = 512
    return c
