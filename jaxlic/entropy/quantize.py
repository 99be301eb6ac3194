"""Quantization proxies and a gradient-friendly lower bound (pure jax, jit-able).

Additive uniform noise as a differentiable stand-in for rounding during training follows
Ballé et al. 2018, "Variational image compression with a scale hyperprior"; rounding around an
offset (the median, or the predicted mean) follows Minnen et al. 2018, "Joint autoregressive and
hierarchical priors for learned image compression".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["quantize", "lower_bound"]


def quantize(x: jax.Array, mode: str, *, offset=0.0, rng: jax.Array | None = None) -> jax.Array:
    """Quantizes ``x`` (or simulates it).

    Args:
      x: array, any shape.
      mode: ``"noise"``: ``x + U(-0.5, 0.5)`` (needs ``rng``); ``"round"``:
        ``round(x - offset) + offset`` (round half to even, like numpy's ``rint`` on the host);
        ``"ste"``: the value of ``"round"`` with the gradient of the identity (straight-through).
      offset: array broadcastable to ``x`` (e.g. medians or means); ignored by ``"noise"``.
      rng: a ``jax.random`` key, required for ``"noise"``.

    Returns:
      Array shaped like ``x``.
    """
    if mode == "noise":
        if rng is None:
            raise ValueError('quantize(mode="noise") needs a PRNG key `rng`')
        return x + jax.random.uniform(rng, jnp.shape(x), dtype=jnp.result_type(x), minval=-0.5, maxval=0.5)
    rounded = jnp.round(x - offset) + offset
    if mode == "round":
        return rounded
    if mode == "ste":
        return x + jax.lax.stop_gradient(rounded - x)
    raise ValueError(f"unknown quantization mode {mode!r} (expected 'noise', 'round' or 'ste')")


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
