"""Integer entropy parameters from an exact network's accumulator (jax, int32 only).

The last layer of an exact entropy-parameter network (`jaxlic.latent.exact`) leaves an int32
accumulator holding ``value * 2^bits`` per channel. These functions turn it into the integer
indices the coder uses, with integer operations only (rounding shifts, comparisons against
integer thresholds, table lookups), so that every machine derives the same indices:

* a mean: ``round(value * 64)``, an integer in units of 1/64, clipped to ``|m| <= 2^23``;
* a scale: its level on the 256-level grid of `jaxlic.entropy.exact`, the number of grid
  midpoints strictly below it (thresholds ``floor(mid * 2^bits)``, exact from Q32 constants);
* mixture weights: the logits rounded to 1/16, then `jaxlic.entropy.exact.weights_from_logits`
  (a fixed integer table of exp, normalised in integers to a sum of 256; no softmax).

`scale_values`, `mean_values` give the grid's float values for the model's rate *estimate*; they
never decide a probability that the coder sees.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from jaxlic.latent.exact import rounding_shift

__all__ = [
    "entropy",
    "broadcast_bits",
    "mean_index",
    "scale_level",
    "mixture_weights",
    "mean_values",
    "scale_values",
]

MEAN_BITS = 6
MEAN_MAX = 2**23
LOGIT_BITS = 4
_MAX_BITS = 30
_INT32_MAX = 2**31 - 1


def entropy():
    """`jaxlic.entropy.exact`, imported on first use."""
    from jaxlic.entropy import exact

    return exact


def broadcast_bits(bits, acc):
    """Per-channel `bits` [C] broadcast to the accumulator's shape."""
    return jnp.broadcast_to(jnp.asarray(bits, jnp.int32), acc.shape)


def mean_index(acc, bits):
    """Means in units of 1/64: ``round(acc / 2^(bits - 6))``, clipped to ``[-2^23, 2^23]``."""
    return jnp.clip(rounding_shift(acc, bits - MEAN_BITS), -MEAN_MAX, MEAN_MAX)


@functools.lru_cache(maxsize=1)
def _thresholds() -> np.ndarray:
    """[31, 256] int32: row f holds floor(mid_g * 2^f) for the 255 midpoints, then int32 max."""
    thr = np.asarray(entropy().scale_thresholds(np.arange(_MAX_BITS + 1)), np.int64)
    thr = np.minimum(thr, _INT32_MAX)
    pad = np.full((thr.shape[0], 1), _INT32_MAX, np.int64)
    return np.concatenate([thr, pad], axis=1).astype(np.int32)


def scale_level(acc, bits):
    """Level of each scale ``acc / 2^bits``: the number of grid midpoints strictly below it.

    A binary search over the integer thresholds of each element's `bits` (8 steps for 256
    levels), integer comparisons only.
    """
    table = jnp.asarray(_thresholds())
    row = jnp.clip(bits, 0, _MAX_BITS) * table.shape[1]
    flat = table.reshape(-1)
    level = jnp.zeros(acc.shape, jnp.int32)
    for step in (128, 64, 32, 16, 8, 4, 2, 1):
        cand = level + step
        ok = (cand <= table.shape[1] - 1) & (flat[row + jnp.minimum(cand, table.shape[1] - 1) - 1] < acc)
        level = jnp.where(ok, cand, level)
    return level


def mixture_weights(acc, bits):
    """Integer mixture weights [..., K] summing to 256 from logits ``acc / 2^bits`` [..., K]."""
    logit16 = jnp.clip(rounding_shift(acc, bits - LOGIT_BITS), -(2**24), 2**24)
    return entropy().weights_from_logits(logit16, xp=jnp).astype(jnp.int32)


def mean_values(mean64):
    """Float32 means of integer means in units of 1/64 (exact)."""
    return mean64.astype(jnp.float32) * np.float32(2.0**-MEAN_BITS)


def scale_values(level):
    """Float32 grid scales of the levels (for rate estimates only)."""
    return jnp.asarray(entropy().sigma_values(), jnp.float32)[level]
