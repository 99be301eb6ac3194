"""The model a training config names, and the rate-distortion hyper-parameters it trains with."""

from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import Any

import ml_collections

PyTree = Any


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model and the rate-distortion hyper-parameters it is trained with."""

    module: Any  # flax.linen.Module
    name: str
    quality: int
    lmbda: float
    N: int
    M: int
    #: A variable-rate model's lambda per rate point (Cui et al. 2021 gain units); () when fixed.
    lambdas: tuple[float, ...] = ()

    @property
    def variable_rate(self) -> bool:
        return bool(self.lambdas)


def model_overrides(config: ml_collections.ConfigDict) -> dict:
    """`get_model` overrides of a config: `model_kwargs`, plus `exact` (the exact entropy path's
    fractional bits, "8,10,..." -> a tuple) when set."""
    kwargs = dict(config.get("model_kwargs", {}))
    if config.get("exact"):
        try:
            kwargs["exact"] = tuple(int(v) for v in str(config.exact).split(","))
        except ValueError:
            raise ValueError(f"config.exact={config.exact!r}: expected comma-separated integers") from None
    return kwargs


def build_model(config: ml_collections.ConfigDict) -> ModelSpec:
    """The model of `config.model`; lmbda/N/M default to the model's quality table.

    `config.model` is a registry name (`jaxlic.models.list_models()`), or `package.module:factory`
    for a custom module built as `factory(N=..., M=...)` (then lmbda, N and M must be set).
    """
    name = config.model
    if ":" in name:
        module_name, attr = name.split(":")
        factory = getattr(importlib.import_module(module_name), attr)
        if config.lmbda is None or config.N is None or config.M is None:
            raise ValueError(f"custom model {name} needs config.lmbda, config.N and config.M")
        lmbda, n, m = config.lmbda, config.N, config.M
    else:
        from jaxlic.models import get_model, qualities, registry  # pylint: disable=g-import-not-at-top

        factory = functools.partial(get_model, name)
        if registry.is_variable_rate(name):
            # One model for every rate: point i trains at lambdas[i]; exported as quality 0.
            lambdas = tuple(float(v) for v in (config.get("lambdas") or registry.VR_LAMBDAS))
            n, m = registry.default_widths(name, 0)
            n = n if config.N is None else config.N
            m = m if config.M is None else config.M
            kwargs = dict(model_overrides(config), num_rates=len(lambdas))
            module = factory(N=n, M=m, **kwargs)
            mid = lambdas[registry.default_rate(lambdas)]
            return ModelSpec(module, name, 0, float(mid), int(n), int(m), lambdas)
        lmbda, n, m = qualities(name)[config.quality]
        lmbda = lmbda if config.lmbda is None else config.lmbda
        n = n if config.N is None else config.N
        m = m if config.M is None else config.M
    module = factory(N=n, M=m, **model_overrides(config))
    return ModelSpec(module, name, int(config.quality), float(lmbda), int(n), int(m))
