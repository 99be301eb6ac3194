"""Generalized divisive normalization (GDN) and its inverse.

Ballé, Laparra, Simoncelli 2016, "Density Modeling of Images Using a Generalized Normalization
Transformation". `y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)` (IGDN multiplies instead).

The stored parameters use CompressAI's non-negative reparametrisation
(`stored = sqrt(max(value + pedestal, pedestal))`, `value = lower_bound(stored, bound)^2 - pedestal`),
so CompressAI's `beta`/`gamma` tensors import unchanged (gamma transposed to `[in, out]`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlic.entropy.quantize import lower_bound

_PEDESTAL = (2.0**-18) ** 2


def _reparam_init(value):
    return jnp.sqrt(jnp.maximum(value + _PEDESTAL, _PEDESTAL))


def _reparam(stored, minimum=0.0):
    bound = (minimum + _PEDESTAL) ** 0.5
    return lower_bound(stored, bound) ** 2 - _PEDESTAL


class GDN(nn.Module):
    """GDN over the channel axis of an NHWC tensor.

    Params: `beta` [C], `gamma` [C_in, C_out] (the transpose of CompressAI's `[C_out, C_in]`).
    """

    inverse: bool = False
    beta_min: float = 1e-6
    gamma_init: float = 0.1

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        beta = self.param("beta", lambda k, s: _reparam_init(jnp.ones(s)), (c,))
        gamma = self.param("gamma", lambda k, s: _reparam_init(self.gamma_init * jnp.eye(s[0])), (c, c))
        beta = _reparam(beta, self.beta_min)
        gamma = _reparam(gamma)
        norm = jnp.dot(x * x, gamma, precision=jax.lax.Precision.HIGHEST) + beta
        return x * jnp.sqrt(norm) if self.inverse else x * jax.lax.rsqrt(norm)


def IGDN(**kw) -> GDN:
    return GDN(inverse=True, **kw)
