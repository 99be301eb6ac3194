"""Registry of model names -> configurations, and the quality ladder.

Qualities follow CompressAI's MSE ladder: quality q is trained with lambda LAMBDAS[q] and
loss = lambda * 255^2 * MSE + bpp. Widths follow CompressAI's choices per architecture.
"""

from __future__ import annotations

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

DEFAULT_MODEL = "ckbd-full"


def list_models() -> list[str]:
    return list(_ARCHS)


def default_widths(name: str, quality: int) -> tuple[int, int]:
    """(N, M) that CompressAI uses for this architecture and quality."""
    if _ARCHS[name]["transform"] == "balle":
        if name == "bmshj2018-hyperprior":
            return (128, 192) if quality <= 5 else (192, 320)
        if name == "mbt2018":
            return (192, 192) if quality <= 4 else (192, 320)
        return (128, 192) if quality <= 4 else (192, 320)
    n = 128 if quality <= 3 else 192
    return n, n


def qualities(name: str) -> dict[int, tuple[float, int, int]]:
    """{quality: (lambda, N, M)} for a model name."""
    _check(name)
    return {q: (lam, *default_widths(name, q)) for q, lam in LAMBDAS.items()}


def _check(name: str):
    if name not in _ARCHS:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(_ARCHS)}")


def get_config(name: str, quality: int | None = None, **overrides) -> ModelConfig:
    """The ModelConfig of a registered model, at a quality's default widths unless overridden."""
    _check(name)
    if quality is not None and quality not in LAMBDAS:
        raise ModelError(f"unknown quality {quality}; available: {sorted(LAMBDAS)}")
    n, m = default_widths(name, quality or 3)
    kw = dict(_ARCHS[name], N=n, M=m)
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
