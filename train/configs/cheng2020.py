"""Cheng et al., 2020, "Learned Image Compression with Discretized Gaussian Mixture
Likelihoods and Attention Modules" (CompressAI's cheng2020-anchor / cheng2020-attn), and the
Minnen et al. 2018 / Ballé et al. 2018 baselines (mbt2018, mbt2018-mean, bmshj2018-hyperprior).

Run:
  python -m train.main --config train/configs/cheng2020.py --workdir runs/cheng2020-anchor-q3
  python -m train.main --config train/configs/cheng2020.py:cheng2020-attn --workdir runs/attn \
      --config.quality=5
Smoke test:
  python -m train.main --config train/configs/cheng2020.py:smoke --workdir /tmp/smoke
"""

import ml_collections

from jaxlic.models import registry
from train.configs import common

#: The CompressAI baselines: the registered fixed-rate models without a variable-rate variant.
MODELS = tuple(name for name in registry.list_models() if not registry.variable_rate_name(name))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Args: comma-separated `smoke` and/or one of MODELS (default cheng2020-anchor)."""
    c = common.get_config()
    c.model = "cheng2020-anchor"
    c.optim.learning_rate = 1e-4
    for part in filter(None, (arg or "").split(",")):
        if part == "smoke":
            common.smoke(c)
        elif part in MODELS:
            c.model = part
        else:
            raise ValueError(f"unknown config arg {part!r}; expected 'smoke' or one of {MODELS}")
    return c
