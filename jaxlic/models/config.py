"""Model configuration: one frozen dataclass describes every architecture jaxlic builds.

The CompressAI baselines and the seed checkerboard family differ only in these fields, so a single
Flax module (`jaxlic.models.compressor.Compressor`) implements them all. The component fields
(`transform`, `hyper`, `attention`, `train_quant`, `context`, `entropy`) name entries of the
component registry (`jaxlic.models.components`), which also decides which combinations can be
coded: a configuration that cannot is refused when it is made. This module imports no JAX.
"""

from __future__ import annotations

import dataclasses

from jaxlic.latent import registry as latent_registry
from jaxlic.models import components


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a model.

    Attributes:
      name: registry name, e.g. "ckbd-full".
      N: channels of the transforms and the hyper-latent z.
      M: channels of the latent y (Cheng-style models use M = N).
      transform, hyper, attention, train_quant: keys of the component registry's `TRANSFORMS`,
        `HYPERPRIORS`, `ATTENTIONS` and `TRAIN_QUANT` (`jaxlic.models.components`, where each
        entry is described).
      context, entropy: a context schedule and an entropy family of the latent-codec registry
        (`jaxlic.latent.registry.SCHEDULES`, `FAMILIES`).
      K: mixture components of a mixture family.
      postprocess: add the decoder-side enhancement network after g_s.
      pp_features: width of the post-processing network.
      num_rates: 0 for a fixed-rate model; > 0 for a variable-rate model with this many trained
        rate points (gain units of Cui et al. 2021, "Asymmetric Gained Deep Image Compression
        With Continuous Rate Adaptation"), coding at any rate parameter q in [0, num_rates - 1].
      z_gains: a variable-rate model also scales the hyper-latent z by gains at the rate
        parameter (and h_s's input by their inverse), Cui et al.'s hyper gain units: without
        them one z serves every rate, at the size the highest needs.
      exact: empty for the float entropy-parameter path; for the exact (integer) path of
        `jaxlic.latent.exact`, the fractional bits of its activation points (`exact.Spec`),
        fixed when a float model is converted (`jaxlic.latent.exact.calibrate`).
    """

    name: str
    N: int = 128
    M: int = 128
    transform: str = "cheng"
    hyper: str = "cheng"
    context: str = "checkerboard"
    entropy: str = "gaussian"
    K: int = 3
    attention: str = "none"
    postprocess: bool = False
    pp_features: int = 48
    train_quant: str = "mixed"
    num_rates: int = 0
    z_gains: bool = False
    exact: tuple[int, ...] = ()

    def __post_init__(self):
        if not isinstance(self.num_rates, int) or isinstance(self.num_rates, bool) or self.num_rates < 0:
            raise ValueError(f"num_rates={self.num_rates!r}; expected an integer >= 0")
        if self.z_gains and not self.num_rates:
            raise ValueError("z_gains needs a variable-rate model (num_rates > 0)")
        object.__setattr__(self, "exact", tuple(self.exact))
        if not all(isinstance(f, int) and not isinstance(f, bool) and 0 <= f <= 24 for f in self.exact):
            raise ValueError(f"exact={self.exact!r}; expected fractional bits in [0, 24]")
        components.check(self)

    @property
    def is_exact(self) -> bool:
        """Whether the entropy parameters come from the exact (integer) path."""
        return bool(self.exact)

    @property
    def variable_rate(self) -> bool:
        """Whether the model codes at a continuous rate parameter (``num_rates > 0``)."""
        return self.num_rates > 0

    @property
    def params_per_channel(self) -> int:
        """Entropy parameters predicted per latent channel (the entropy family's)."""
        return latent_registry.family(self.entropy, self.K).params_per_channel

    def replace(self, **kw) -> ModelConfig:
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        """The fields as a dict; ``num_rates`` only for variable-rate models and ``z_gains`` only
        when set, so the metadata of earlier weights files stays as it was."""
        d = dataclasses.asdict(self)
        if not self.num_rates:
            del d["num_rates"]
        if not self.z_gains:
            del d["z_gains"]
        if self.exact:
            d["exact"] = list(self.exact)
        else:
            del d["exact"]
        return d
