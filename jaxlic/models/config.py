"""Model configuration: one frozen dataclass describes every architecture jaxlic builds.

The CompressAI baselines and the seed checkerboard family differ only in these fields, so a single
Flax module (`jaxlic.models.compressor.Compressor`) implements them all.
"""

from __future__ import annotations

import dataclasses

TRANSFORMS = ("balle", "cheng")
HYPERS = ("balle-scale", "balle-mean", "cheng")
CONTEXTS = ("none", "serial", "checkerboard")
ENTROPIES = ("scale", "gaussian", "gmm")
ATTENTIONS = ("none", "cheng", "fdram")
TRAIN_QUANT = ("noise", "mixed")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a model.

    Attributes:
      name: registry name, e.g. "ckbd-full".
      N: channels of the transforms and the hyper-latent z.
      M: channels of the latent y (Cheng-style models use M = N).
      transform: "balle" (GDN convs, Ballé 2018) or "cheng" (residual blocks, Cheng 2020).
      hyper: "balle-scale" (scale-only hyperprior), "balle-mean" (mean-scale, Minnen 2018) or "cheng".
      context: "none", "serial" (5x5 masked conv) or "checkerboard" (He et al. 2021).
      entropy: "scale" (zero-mean Gaussian), "gaussian" (mean-scale) or "gmm" (K-mixture).
      K: mixture components when entropy == "gmm".
      attention: "none", "cheng" (Cheng 2020 attention block) or "fdram".
      postprocess: add the decoder-side enhancement network after g_s.
      pp_features: width of the post-processing network.
      train_quant: "noise" (additive uniform noise everywhere, CompressAI's training) or "mixed"
        (noise for the rate term, straight-through rounding for the decoder and context inputs).
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

    def __post_init__(self):
        for field, allowed in (
            ("transform", TRANSFORMS),
            ("hyper", HYPERS),
            ("context", CONTEXTS),
            ("entropy", ENTROPIES),
            ("attention", ATTENTIONS),
            ("train_quant", TRAIN_QUANT),
        ):
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field}={getattr(self, field)!r}; expected one of {allowed}")
        if self.context != "none" and self.entropy == "scale":
            raise ValueError("context models need mean-scale or mixture entropy parameters")

    @property
    def params_per_channel(self) -> int:
        """Entropy parameters predicted per latent channel."""
        return {"scale": 1, "gaussian": 2, "gmm": 3 * self.K}[self.entropy]

    def replace(self, **kw) -> ModelConfig:
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
