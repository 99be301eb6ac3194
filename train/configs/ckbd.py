"""Checkerboard-context models (He et al., 2021, "Checkerboard Context Model for Efficient
Learned Image Compression") and their jaxlic extensions.

Run (quality 3, folder data):
  python -m train.main --config train/configs/ckbd.py --workdir runs/ckbd-full-q3
Variants via the model name or overrides:
  python -m train.main --config train/configs/ckbd.py --workdir runs/x \
      --config.model=ckbd-gmm --config.quality=6 --config.lmbda=0.0483
Smoke test (tiny widths, 64 px crops, 4 steps):
  python -m train.main --config train/configs/ckbd.py:smoke --workdir /tmp/smoke
Args after ':' pick a model too, e.g. `ckbd.py:ckbd-attn` or `ckbd.py:smoke,ckbd-pp`.
"""

import ml_collections

from train.configs import common

MODELS = ("ckbd", "ckbd-attn", "ckbd-gmm", "ckbd-pp", "ckbd-full")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Args: comma-separated `smoke` and/or one of MODELS (default ckbd-full)."""
  c = common.get_config()
  c.model = "ckbd-full"
  c.optim.learning_rate = 1e-4
  for part in filter(None, (arg or "").split(",")):
    if part == "smoke":
      common.smoke(c)
    elif part in MODELS:
      c.model = part
    else:
      raise ValueError(f"unknown config arg {part!r}; expected 'smoke' or one of {MODELS}")
  return c
