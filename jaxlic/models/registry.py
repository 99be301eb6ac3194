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

import math

from jaxlic.errors import ModelError
from jaxlic.models.config import ModelConfig

LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}

_BALLE = dict(transform="balle", train_quant="noise")
_CHENG = dict(transform="cheng", hyper="cheng", context="serial", entropy="gaussian", train_quant="noise")
_CKBD = dict(transform="cheng", hyper="cheng", context="checkerboard", entropy="gaussian")

_ARCHS: dict[str, dict] = {
    "bmshj2018-hyperprior": dict(_BALLE, hyper="balle-scale", context="none", entropy="scale"),
    "mbt2018-mean": dict(_BALLE, hyper="balle-mean", context="none", entropy="gaussian"),
    "mbt2018": dict(_BALLE, hyper="balle-mean", context="serial", entropy="gaussian"),
    "cheng2020-anchor": dict(_CHENG),
    "cheng2020-attn": dict(_CHENG, attention="cheng"),
    "ckbd": dict(_CKBD),
    "ckbd-attn": dict(_CKBD, attention="fdram"),
    "ckbd-gmm": dict(_CKBD, entropy="gmm"),
    "ckbd-pp": dict(_CKBD, postprocess=True),
    "ckbd-full": dict(_CKBD, attention="fdram", entropy="gmm", postprocess=True),
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


#: Variable-rate variants of the checkerboard family.
_VR_ARCHS: dict[str, dict] = {
    f"{name}-vr": dict(_ARCHS[name], num_rates=len(VR_LAMBDAS))
    for name in ("ckbd", "ckbd-attn", "ckbd-gmm", "ckbd-pp", "ckbd-full")
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


def _arch(name: str) -> dict:
    return _ARCHS[name] if name in _ARCHS else _VR_ARCHS[name]


def default_widths(name: str, quality: int) -> tuple[int, int]:
    """(N, M) that CompressAI uses for this architecture and quality."""
    if name in _VR_ARCHS:
        return 192, 192  # wide enough for the highest rate point
    if _ARCHS[name]["transform"] == "balle":
        if name == "bmshj2018-hyperprior":
            return (128, 192) if quality <= 5 else (192, 320)
        if name == "mbt2018":
            return (192, 192) if quality <= 4 else (192, 320)
        return (128, 192) if quality <= 4 else (192, 320)
    n = 128 if quality <= 3 else 192
    return n, n


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
    kw = dict(_arch(name), N=n, M=m)
    if kw["transform"] == "cheng" and "N" in overrides and "M" not in overrides:
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
