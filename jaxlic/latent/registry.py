"""Registry of entropy families and context schedules: config values -> latent-codec classes.

`ModelConfig.entropy` names a family and `ModelConfig.context` a schedule. Entries name their class
as "module:Class" and are imported on first use, so that checking a configuration (and importing
`jaxlic.models.config`, e.g. from the command line's error paths) does not import JAX.

New variants register here (`register_family`, `register_schedule`) instead of adding branches to
the model or the codec.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib

__all__ = [
    "FAMILIES",
    "SCHEDULES",
    "register_family",
    "register_schedule",
    "check",
    "check_exact",
    "family",
    "schedule",
    "build_latent_codec",
]


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered class.

    Attributes:
      target: "package.module:Class" (imported on first use) or the class itself.
      context: for a schedule, whether it has a context network (its class's `mask_type` is not
        None); for a family, whether a context schedule may feed it (the scale-only family has
        no means to condition, so context models need mean-scale or mixture parameters). Kept
        here so that `check` needs no import.
      exact: for a schedule, whether the exact (integer) entropy path (`jaxlic.latent.exact`)
        codes it.
      stepwise: for a family, whether it codes one position at a time into a shared stream (its
        class's `stepwise`), which a serial schedule needs; for a schedule, whether it needs that.
    """

    target: str | type
    context: bool = True
    exact: bool = True
    stepwise: bool = False

    def load(self) -> type:
        return load_target(self.target)


def load_target(target):
    """``target`` itself, or the object a ``"package.module:name"`` string names (imported now)."""
    if not isinstance(target, str):
        return target
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


FAMILIES: dict[str, Entry] = {
    "scale": Entry("jaxlic.latent.families:ScaleGaussian", context=False, stepwise=True),
    "gaussian": Entry("jaxlic.latent.families:MeanScaleGaussian", stepwise=True),
    "gmm": Entry("jaxlic.latent.families:GaussianMixture"),
}
SCHEDULES: dict[str, Entry] = {
    "none": Entry("jaxlic.latent.schedules:NoContext", context=False),
    "serial": Entry("jaxlic.latent.schedules:Serial", exact=False, stepwise=True),
    "checkerboard": Entry("jaxlic.latent.schedules:Checkerboard"),
}


def register_family(name: str, target: str | type, *, context: bool = True, stepwise: bool = False) -> None:
    """Registers an `EntropyFamily` subclass under the config value `name` (`stepwise`: it codes
    one position at a time, as the serial schedule needs).

    Its constructor is called as `cls()` or, if it has a field `K`, `cls(K=cfg.K)`.
    """
    FAMILIES[name] = Entry(target, context, stepwise=stepwise)
    build_latent_codec.cache_clear()


def register_schedule(name: str, target: str | type, *, context: bool = True) -> None:
    """Registers a `ContextSchedule` subclass under the config value `name` (`context`: whether
    it has a context network)."""
    SCHEDULES[name] = Entry(target, context)
    build_latent_codec.cache_clear()


def check(context: str, entropy: str) -> None:
    """Raises ValueError unless `context` and `entropy` are registered and compatible."""
    if context not in SCHEDULES:
        raise ValueError(f"context={context!r}; expected one of {tuple(SCHEDULES)}")
    if entropy not in FAMILIES:
        raise ValueError(f"entropy={entropy!r}; expected one of {tuple(FAMILIES)}")
    if SCHEDULES[context].context and not FAMILIES[entropy].context:
        raise ValueError("context models need mean-scale or mixture entropy parameters")
    if SCHEDULES[context].stepwise and not FAMILIES[entropy].stepwise:
        raise ValueError(f"the {context} schedule codes one position at a time, which {entropy!r} cannot")


def check_exact(context: str) -> None:
    """Raises ValueError unless the exact entropy path codes schedule `context`."""
    check_schedule = SCHEDULES.get(context)
    if check_schedule is None or not check_schedule.exact:
        exact = tuple(k for k, e in SCHEDULES.items() if e.exact)
        raise ValueError(f"the exact entropy path codes the schedules {exact}, not {context!r}")


def family(entropy: str, K: int = 3):
    """The `EntropyFamily` instance of a config's `entropy` (and `K`)."""
    cls = FAMILIES[entropy].load()
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(K=K) if "K" in fields else cls()


def schedule(context: str):
    """The `ContextSchedule` instance of a config's `context`."""
    return SCHEDULES[context].load()()


@functools.lru_cache(maxsize=64)
def build_latent_codec(context: str, entropy: str, K: int = 3):
    """The `LatentCodec` of a configuration's (context, entropy, K)."""
    from jaxlic.latent.codec import LatentCodec

    check(context, entropy)
    return LatentCodec(family(entropy, K), schedule(context))
