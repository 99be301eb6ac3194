"""Quantization proxies and a gradient-friendly lower bound (pure jax, jit-able).

Additive uniform noise as a differentiable stand-in for rounding during training follows
Ballé et al. 2018, "Variational image compression with a scale hyperprior"; rounding around an
offset (the median, or the predicted mean) follows Minnen et al. 2018, "Joint autoregressive and
hierarchical priors for learned image compression".
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["quantize", "rounder", "round_ste", "add_noise", "lower_bound"]

#: A rounding mode: "round", "ste", or a function `r(v)` of the offset-free values.
Rounding = str | Callable


def round_ste(x: jax.Array) -> jax.Array:
    """round(x) in the forward pass, the identity's gradient in the backward pass."""
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


def rounder(rounding: Rounding) -> Callable:
    """The function of a rounding mode: "round" (half to even, like numpy's ``rint`` on the host),
    "ste" (`round_ste`), or a rounding function (returned as is)."""
    if callable(rounding):
        return rounding
    if rounding == "round":
        return jnp.round
    if rounding == "ste":
        return round_ste
    raise ValueError(
        f"unknown quantization mode {rounding!r} (expected 'noise', 'round', 'ste' or a function)"
    )


def add_noise(x: jax.Array, rng: jax.Array) -> jax.Array:
    """``x + U(-0.5, 0.5)``: the training-time stand-in for rounding (Ballé et al. 2018)."""
    return x + jax.random.uniform(rng, jnp.shape(x), dtype=jnp.result_type(x), minval=-0.5, maxval=0.5)


def quantize(x: jax.Array, mode: Rounding, *, offset=None, rng: jax.Array | None = None) -> jax.Array:
    """Quantizes ``x`` (or simulates it): the one quantisation of jaxlic, for z (around the
    factorized prior's medians) and for y (around the entropy family's means, if it has them).

    Args:
      x: array, any shape.
      mode: ``"noise"``: ``x + U(-0.5, 0.5)`` (needs ``rng``); ``"round"``: ``round(x - offset) +
        offset``; ``"ste"``: ``x + stop_gradient(round(x - offset) + offset - x)``, the values of
        ``"round"`` (up to float rounding) with the gradient of the identity (straight-through);
        a function ``r``: ``r(x - offset) + offset`` (e.g. the soft rounding of
        `jaxlic.models.refine`).
      offset: None (round x itself) or an array broadcastable to ``x`` (medians or means);
        ignored by ``"noise"``.
      rng: a ``jax.random`` key, required for ``"noise"``.

    Returns:
      Array shaped like ``x``.
    """
    if isinstance(mode, str) and mode == "noise":
        if rng is None:
            raise ValueError('quantize(mode="noise") needs a PRNG key `rng`')
        return add_noise(x, rng)
    r = rounder(mode)
    if offset is None:
        return r(x)
    if isinstance(mode, str) and mode == "ste":  # the straight-through gradient reaches x only
        return x + jax.lax.stop_gradient(jnp.round(x - offset) + offset - x)
    return r(x - offset) + offset


@jax.custom_vjp
def _lower_bound(x, bound):
    return jnp.maximum(x, bound)


def _lower_bound_fwd(x, bound):
    return jnp.maximum(x, bound), (x, bound)


def _lower_bound_bwd(res, g):
    x, bound = res
    # Let the gradient through where x is above the bound, or where it would push x upwards
    # (towards the feasible region): a plain maximum would leave values stuck below the bound.
    pass_through = (x >= bound) | (g < 0)
    return jnp.where(pass_through, g, jnp.zeros_like(g)), jnp.zeros_like(bound)


_lower_bound.defvjp(_lower_bound_fwd, _lower_bound_bwd)


def lower_bound(x: jax.Array, bound: float) -> jax.Array:
    """``max(x, bound)`` whose gradient passes when it pushes ``x`` up (TFC/CompressAI LowerBound).

    Args:
      x: array, any shape.
      bound: scalar lower bound.

    Returns:
      Array shaped like ``x``.
    """
    x = jnp.asarray(x)
    return _lower_bound(x, jnp.asarray(bound, dtype=x.dtype))
