"""Gain units: one model for a continuum of rates (Cui et al. 2021).

Cui, Wang, Gao, Bai, Jiang, "Asymmetric Gained Deep Image Compression With Continuous Rate
Adaptation", CVPR 2021. A gain unit scales each latent channel by a learned gain vector, one per
trained rate point; the inverse gain unit rescales the decoded latents before synthesis. Larger
gains make the quantisation relatively finer (more rate, less distortion). Between two trained
points ``i`` and ``i + 1`` a continuous rate parameter ``q = i + t`` uses the log-linear
interpolation ``g = g_i^(1 - t) * g_(i+1)^t`` of both vectors, so the rate varies smoothly.

The gains are stored as logarithms (initialised to 0, i.e. gain 1, so a model starts as its
fixed-rate self) and exponentiated in float32. Encoder and decoder compute the same interpolated
gains from the same ``q`` taken from the stream header, so the decoded latents are identical.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


def interpolation_weights(rate, num_rates: int):
    """Index of the lower trained point and the fraction towards the next one.

    Args:
        rate: continuous rate parameter(s) in ``[0, num_rates - 1]``, any shape.
        num_rates: number of trained rate points.

    Returns:
        ``(lower, frac)``: int32 indices in ``[0, num_rates - 2]`` (0 when ``num_rates == 1``) and
        float32 fractions in ``[0, 1]``, both shaped like ``rate``.
    """
    rate = jnp.clip(jnp.asarray(rate, jnp.float32), 0.0, float(num_rates - 1))
    if num_rates == 1:
        return jnp.zeros(rate.shape, jnp.int32), jnp.zeros(rate.shape, jnp.float32)
    lower = jnp.minimum(jnp.floor(rate), num_rates - 2).astype(jnp.int32)
    return lower, rate - lower.astype(jnp.float32)


class GainUnit(nn.Module):
    """Per-channel gains for ``num_rates`` rate points, interpolated log-linearly in between.

    Attributes:
        num_rates: number of trained rate points (rows of the gain matrix).
        channels: number of latent channels.
    """

    num_rates: int
    channels: int

    @nn.compact
    def __call__(self, x, rate):
        """Scales ``x [B, H, W, C]`` by the gains at ``rate`` (a scalar or ``[B]``)."""
        log_gain = self.param("log_gain", nn.initializers.zeros, (self.num_rates, self.channels), jnp.float32)
        return x * gains_at(log_gain, rate, x.shape[0]).astype(x.dtype)


def gains_at(log_gain, rate, batch: int):
    """``[B, 1, 1, C]`` gains at a scalar or per-example ``rate`` from ``log_gain [R, C]``."""
    rate = jnp.broadcast_to(jnp.asarray(rate, jnp.float32), (batch,))
    lower, frac = interpolation_weights(rate, log_gain.shape[0])
    upper = jnp.minimum(lower + 1, log_gain.shape[0] - 1)
    log_g = log_gain[lower] * (1.0 - frac)[:, None] + log_gain[upper] * frac[:, None]
    return jnp.exp(log_g)[:, None, None, :]
