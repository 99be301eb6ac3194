"""The component registry: every building block a model configuration can name, and which
combinations can be coded.

A `ModelConfig` names one entry of each table: a transform pair (`TRANSFORMS`), a hyperprior
(`HYPERPRIORS`), attention blocks (`ATTENTIONS`), a training quantisation (`TRAIN_QUANT`), an
entropy family (`FAMILIES`) and a context schedule (`SCHEDULES`; these two are the latent-codec
registry's tables, `jaxlic.latent.registry`, the same dict objects). `check` refuses a combination
that cannot be built or coded when the configuration is made, not when coding starts.

Entries name their builder as "module:function" and import it on first use, so this module (and
`jaxlic.models.config`, `jaxlic.models.registry`) import no JAX. Code outside `jaxlic/latent` and
this module reads the entries' attributes instead of comparing component names; a new variant is
one builder and one entry here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from jaxlic.latent import registry as latent_registry

__all__ = [
    "Component",
    "Transform",
    "Hyperprior",
    "Attention",
    "TrainQuant",
    "TRANSFORMS",
    "HYPERPRIORS",
    "ATTENTIONS",
    "TRAIN_QUANT",
    "FAMILIES",
    "SCHEDULES",
    "check",
]


@dataclasses.dataclass(frozen=True)
class Component:
    """A registered builder.

    Attributes:
      target: "package.module:function" (imported on first use) or the function itself.
    """

    target: str | Callable

    def load(self) -> Callable:
        return latent_registry.load_target(self.target)


@dataclasses.dataclass(frozen=True)
class Transform(Component):
    """Analysis/synthesis transforms: `builder(cfg) -> (g_a layers, g_s layers)`.

    Attributes:
      tied_widths: the latent has as many channels as the transforms (M = N): an override of N
        sets M too.
      attention: whether the transforms have attention points (`cfg.attention` other than
        "none" needs them).
      width_keys: the CompressAI state-dict keys whose output channels are N and M
        (`jaxlic.convert.infer_widths`).
    """

    tied_widths: bool = False
    attention: bool = False
    width_keys: tuple[str, str] = ("", "")


@dataclasses.dataclass(frozen=True)
class Hyperprior(Component):
    """`builder(N, M, out) -> (h_a layers, h_s layers, h_a takes |y|)`.

    Attributes:
      exact: whether the exact (integer) entropy path runs its h_s (`jaxlic.latent.exact.program`:
        stride-1 and sub-pixel convolutions; transposed convolutions are not covered).
    """

    exact: bool = False


@dataclasses.dataclass(frozen=True)
class Attention(Component):
    """`builder(channels) -> list of blocks` placed at the transforms' attention points."""


@dataclasses.dataclass(frozen=True)
class TrainQuant:
    """How training stands in for rounding.

    Attributes:
      straight_through: what the decoder sees (y into g_s and the context, z into the
        hyper-synthesis) is rounded with a straight-through gradient, the rate terms see
        additive uniform noise; False: noise everywhere.
    """

    straight_through: bool


_MODELS = "jaxlic.models.compressor"
_BALLE_KEYS = ("g_a.0.weight", "g_a.6.weight")
_CHENG_KEYS = ("g_a.0.conv1.weight", "g_a.0.conv1.weight")

#: cfg.transform: "balle" (GDN convolutions, Ballé et al. 2018) or "cheng" (residual blocks with
#: attention points, Cheng et al. 2020).
TRANSFORMS: dict[str, Transform] = {
    "balle": Transform(f"{_MODELS}:balle_transforms", width_keys=_BALLE_KEYS),
    "cheng": Transform(
        f"{_MODELS}:cheng_transforms", tied_widths=True, attention=True, width_keys=_CHENG_KEYS
    ),
}
#: cfg.hyper: "balle-scale" (scale only, Ballé et al. 2018), "balle-mean" (mean-scale, Minnen et
#: al. 2018) or "cheng" (3x3 convolutions and sub-pixel up-sampling, Cheng et al. 2020).
HYPERPRIORS: dict[str, Hyperprior] = {
    "balle-scale": Hyperprior(f"{_MODELS}:balle_scale_hyperprior"),
    "balle-mean": Hyperprior(f"{_MODELS}:balle_mean_hyperprior"),
    "cheng": Hyperprior(f"{_MODELS}:cheng_hyperprior", exact=True),
}
#: cfg.attention: "none", "cheng" (Cheng et al. 2020's attention block) or "fdram".
ATTENTIONS: dict[str, Attention] = {
    "none": Attention(f"{_MODELS}:no_attention"),
    "cheng": Attention(f"{_MODELS}:cheng_attention"),
    "fdram": Attention(f"{_MODELS}:fdram_attention"),
}
#: cfg.train_quant: "noise" (CompressAI's training of its older models) or "mixed" (as
#: CompressAI's latent codecs with ``quantizer="ste"`` train its checkerboard model).
TRAIN_QUANT: dict[str, TrainQuant] = {
    "noise": TrainQuant(straight_through=False),
    "mixed": TrainQuant(straight_through=True),
}
#: cfg.entropy and cfg.context: the latent-codec registry's tables.
FAMILIES = latent_registry.FAMILIES
SCHEDULES = latent_registry.SCHEDULES


def _one_of(field: str, value, table: dict) -> None:
    if value not in table:
        raise ValueError(f"{field}={value!r}; expected one of {tuple(table)}")


def check(cfg) -> None:
    """Raises ValueError (one line) unless the components `cfg` names are registered and can be
    built and coded together.

    Args:
      cfg: a `ModelConfig` (or anything with its fields).
    """
    _one_of("transform", cfg.transform, TRANSFORMS)
    _one_of("hyper", cfg.hyper, HYPERPRIORS)
    _one_of("attention", cfg.attention, ATTENTIONS)
    _one_of("train_quant", cfg.train_quant, TRAIN_QUANT)
    latent_registry.check(cfg.context, cfg.entropy)
    if cfg.attention != "none" and not TRANSFORMS[cfg.transform].attention:
        raise ValueError(
            f"the {cfg.transform!r} transforms have no attention points (attention={cfg.attention!r})"
        )
    if cfg.exact:
        if not HYPERPRIORS[cfg.hyper].exact:
            exact = tuple(k for k, h in HYPERPRIORS.items() if h.exact)
            raise ValueError(f"the exact entropy path needs hyper in {exact}, not {cfg.hyper!r}")
        latent_registry.check_exact(cfg.context)
        if cfg.z_gains:
            raise ValueError("the exact entropy path does not support z gains yet")
