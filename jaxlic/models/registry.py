"""Registry of model names -> configurations, and the quality ladder.

Qualities follow CompressAI's MSE ladder: quality q is trained with lambda LAMBDAS[q] and
loss = lambda * 255^2 * MSE + bpp. Widths follow CompressAI's choices per architecture.

Variable-rate variants (``<name>-vr``, gain units of Cui et al. 2021, "Asymmetric Gained Deep
Image Compression With Continuous Rate Adaptation") are separate names: one model is trained on
all of :data:`VR_LAMBDAS` (rate point ``i`` at ``VR_LAMBDAS[i]``) and codes at any continuous
rate parameter ``q`` in ``[0, len(VR_LAMBDAS) - 1]``. Separate names (rather than a ``num_rates``
override of the fixed-rate names) keep the stream header self-describing: the model name alone
tells a decoder which weights to load and that the header carries a rate parameter, and results
and weight files of the two kinds never share a name. :func:`list_models` lists the fixed-rate
names only (what every existing fixed-rate test and tool iterates);
``list_models(variable_rate=True)`` adds the variable-rate ones.
"""

from __future__ import annotations

import dataclasses
import math

from jaxlic.errors import ModelError
from jaxlic.models import components
from jaxlic.models.config import ModelConfig

LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}


@dataclasses.dataclass(frozen=True)
class CompressAIModel:
    """The CompressAI model a registered name imports from (`jaxlic.convert`).

    Attributes:
      name: its zoo name.
      qualities: the qualities CompressAI publishes weights for (empty: none).
      context_first: its entropy-parameter network takes [context, hyper] (jaxlic: [hyper,
        context]), so the input channels of its first 1x1 convolution are swapped on import.
    """

    name: str
    qualities: tuple[int, ...] = ()
    context_first: bool = False


@dataclasses.dataclass(frozen=True)
class Model:
    """A registered model name.

    Attributes:
      config: its `ModelConfig` fields (components and options; not the widths).
      widths: ``((max_quality, (N, M)), ...)``: the widths of every quality up to `max_quality`
        (CompressAI's per-architecture choices), in increasing order.
      compressai: the CompressAI model it imports from, if any.
    """

    config: dict
    widths: tuple[tuple[float, tuple[int, int]], ...]
    compressai: CompressAIModel | None = None

    def widths_at(self, quality: int) -> tuple[int, int]:
        return next(nm for top, nm in self.widths if quality <= top)


def _ladder(split: int, low: tuple[int, int], high: tuple[int, int]):
    return ((split, low), (math.inf, high))


_BALLE = dict(transform="balle", train_quant="noise")
_CHENG = dict(transform="cheng", hyper="cheng", context="serial", entropy="gaussian", train_quant="noise")
_CKBD = dict(transform="cheng", hyper="cheng", context="checkerboard", entropy="gaussian")
_CHENG_WIDTHS = _ladder(3, (128, 128), (192, 192))
_Q1_8, _Q1_6 = tuple(range(1, 9)), tuple(range(1, 7))

_ARCHS: dict[str, Model] = {
    "bmshj2018-hyperprior": Model(
        dict(_BALLE, hyper="balle-scale", context="none", entropy="scale"),
        _ladder(5, (128, 192), (192, 320)),
        CompressAIModel("bmshj2018-hyperprior", _Q1_8),
    ),
    "mbt2018-mean": Model(
        dict(_BALLE, hyper="balle-mean", context="none", entropy="gaussian"),
        _ladder(4, (128, 192), (192, 320)),
        CompressAIModel("mbt2018-mean", _Q1_8),
    ),
    "mbt2018": Model(
        dict(_BALLE, hyper="balle-mean", context="serial", entropy="gaussian"),
        _ladder(4, (192, 192), (192, 320)),
        CompressAIModel("mbt2018", _Q1_8),
    ),
    "cheng2020-anchor": Model(dict(_CHENG), _CHENG_WIDTHS, CompressAIModel("cheng2020-anchor", _Q1_6)),
    "cheng2020-attn": Model(
        dict(_CHENG, attention="cheng"), _CHENG_WIDTHS, CompressAIModel("cheng2020-attn", _Q1_6)
    ),
    "ckbd": Model(
        dict(_CKBD), _CHENG_WIDTHS, CompressAIModel("cheng2020-anchor-checkerboard", context_first=True)
    ),
    "ckbd-attn": Model(dict(_CKBD, attention="fdram"), _CHENG_WIDTHS),
    "ckbd-gmm": Model(dict(_CKBD, entropy="gmm"), _CHENG_WIDTHS),
    "ckbd-pp": Model(dict(_CKBD, postprocess=True), _CHENG_WIDTHS),
    "ckbd-full": Model(dict(_CKBD, attention="fdram", entropy="gmm", postprocess=True), _CHENG_WIDTHS),
}

#: Lambdas of the rate points of variable-rate models, rate parameter q = i at point i: eight
#: log-spaced points from 1e-4 to CompressAI's q6 (0.0483), so that the N = M = 64 checkerboard
#: models span about 0.05 to 0.55 bpp on Kodak and a detailed image such as kodim05 still reaches
#: 0.10 bpp. (CompressAI's q1..q6, 0.0018 to 0.0483, the first set, stopped at 0.155 bpp on Kodak
#: and 0.266 on kodim05 for a ckbd-full warm-started from the q2 weights: results/vr_cost/.)
VR_LAMBDAS = tuple(round(1e-4 * (0.0483 / 1e-4) ** (i / 7), 7) for i in range(8))
#: The lambda of the default rate of variable-rate models: CompressAI's q2, that of the shipped
#: fixed-rate default (ckbd-full-q2).
VR_DEFAULT_LAMBDA = LAMBDAS[2]


def default_rate(lambdas) -> int:
    """The default rate parameter of a variable-rate model trained on ``lambdas``: the index of
    the point nearest `VR_DEFAULT_LAMBDA` (in log lambda)."""
    return min(range(len(lambdas)), key=lambda i: abs(math.log(lambdas[i] / VR_DEFAULT_LAMBDA)))


#: Variable-rate variants of the checkerboard family, wide enough for the highest rate point.
_VR_OF = {name: f"{name}-vr" for name in ("ckbd", "ckbd-attn", "ckbd-gmm", "ckbd-pp", "ckbd-full")}
_VR_ARCHS: dict[str, Model] = {
    vr: Model(dict(_ARCHS[name].config, num_rates=len(VR_LAMBDAS)), ((math.inf, (192, 192)),))
    for name, vr in _VR_OF.items()
}

#: The model `jaxlic compress`, `demo` and `zoo.load()` use: one variable-rate model for every
#: rate (shipped as jaxlic/pretrained/ckbd-full-vr-q0.msgpack). The fixed-rate `ckbd-full` q2
#: weights stay shipped (`--model ckbd-full`).
DEFAULT_MODEL = "ckbd-full-vr"


def list_models(variable_rate: bool = False) -> list[str]:
    """Registered fixed-rate model names; with ``variable_rate`` the ``-vr`` variants too."""
    return list(_ARCHS) + (list(_VR_ARCHS) if variable_rate else [])


def is_variable_rate(name: str) -> bool:
    """Whether a registered name is a variable-rate model (raises ModelError if unknown)."""
    _check(name)
    return name in _VR_ARCHS


def variable_rate_name(name: str) -> str | None:
    """The name of the variable-rate variant of a fixed-rate model, or None if it has none."""
    _check(name)
    return _VR_OF.get(name)


def _arch(name: str) -> Model:
    return _ARCHS[name] if name in _ARCHS else _VR_ARCHS[name]


def default_widths(name: str, quality: int) -> tuple[int, int]:
    """(N, M) of a registered model at a quality (CompressAI's choices per architecture;
    variable-rate models have one width for every rate)."""
    _check(name)
    return _arch(name).widths_at(quality)


def compressai_models() -> dict[str, str]:
    """{CompressAI zoo name: registered name} of the models `jaxlic.convert` imports."""
    return {m.compressai.name: name for name, m in _ARCHS.items() if m.compressai}


def compressai_model(name: str) -> CompressAIModel:
    """The CompressAI model a registered name imports from (ModelError if none)."""
    _check(name)
    found = _arch(name).compressai
    if found is None:
        raise ModelError(
            f"{name} has no CompressAI counterpart; those that do: {', '.join(compressai_models())}"
        )
    return found


def qualities(name: str) -> dict[int, tuple[float, int, int]]:
    """{quality: (lambda, N, M)} for a fixed-rate model name (see `VR_LAMBDAS` for the others)."""
    _check(name)
    if name in _VR_ARCHS:
        raise ModelError(f"{name} is a variable-rate model: its rate points are VR_LAMBDAS, not qualities")
    return {q: (lam, *default_widths(name, q)) for q, lam in LAMBDAS.items()}


def _check(name: str):
    if name not in _ARCHS and name not in _VR_ARCHS:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(list_models(True))}")


def get_config(name: str, quality: int | None = None, **overrides) -> ModelConfig:
    """The ModelConfig of a registered model, at a quality's default widths unless overridden."""
    _check(name)
    if quality is not None and quality not in LAMBDAS:
        raise ModelError(f"unknown quality {quality}; available: {sorted(LAMBDAS)}")
    n, m = default_widths(name, quality or 3)
    kw = dict(_arch(name).config, N=n, M=m)
    if components.TRANSFORMS[kw["transform"]].tied_widths and "N" in overrides and "M" not in overrides:
        overrides = dict(overrides, M=overrides["N"])
    kw.update(overrides)
    try:
        return ModelConfig(name=name, **kw)
    except (TypeError, ValueError) as e:
        raise ModelError(f"bad configuration for {name}: {e}") from None


def get_model(name: str, quality: int | None = None, **overrides):
    """A Flax `Compressor` module for a registered model name (see `get_config`)."""
    from jaxlic.models.compressor import Compressor

    return Compressor(get_config(name, quality, **overrides))
