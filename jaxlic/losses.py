"""Rate-distortion loss: loss = lambda * 255^2 * MSE + bpp (CompressAI's MSE objective).

With one lambda per example (variable-rate training, Cui et al. 2021) the loss is the mean over
the batch of each example's own ``lambda_b * 255^2 * MSE_b + bpp_b``; with one lambda for all it
is the usual batch loss.
"""

from __future__ import annotations

import jax.numpy as jnp


def bits(likelihoods) -> jnp.ndarray:
    """Total information content -sum log2(p) of one likelihood array."""
    return -jnp.sum(jnp.log2(likelihoods))


def bits_per_example(likelihoods) -> jnp.ndarray:
    """Information content of each example of a ``[B, ...]`` likelihood array, ``[B]``."""
    return -jnp.sum(jnp.log2(likelihoods).reshape(likelihoods.shape[0], -1), axis=1)


def rd_loss(out: dict, x: jnp.ndarray, lmbda, z_weight=None) -> dict:
    """Rate-distortion terms of a forward pass.

    Args:
      out: a model's forward output, `{"x_hat", "likelihoods": {"y", "z"}}`.
      x: the input batch [B, H, W, 3] in [0, 1].
      lmbda: the rate-distortion trade-off: a number, or one per example `[B]`.
      z_weight: if given, the weight of z's rate in `loss` (a warm-up of the side information,
        see the trainer's `z_rate_warmup_steps`); `bpp` and `bpp_z` stay unweighted.
    Returns:
      dict with `loss`, `mse` (on the [0,1] scale), `bpp`, `bpp_y`, `bpp_z`, `psnr`: batch means.
    """
    pixels = x.shape[1] * x.shape[2]
    bpp_y = bits_per_example(out["likelihoods"]["y"]) / pixels
    bpp_z = bits_per_example(out["likelihoods"]["z"]) / pixels
    mse = jnp.mean(jnp.square(out["x_hat"] - x).reshape(x.shape[0], -1), axis=1)
    lmbda = jnp.broadcast_to(jnp.asarray(lmbda, jnp.float32), mse.shape)
    mean_mse = jnp.mean(mse)
    rate = bpp_y + bpp_z if z_weight is None else bpp_y + z_weight * bpp_z
    return {
        "loss": jnp.mean(lmbda * 255.0**2 * mse + rate),
        "mse": mean_mse,
        "bpp": jnp.mean(bpp_y + bpp_z),
        "bpp_y": jnp.mean(bpp_y),
        "bpp_z": jnp.mean(bpp_z),
        "psnr": -10.0 * jnp.log10(jnp.maximum(mean_mse, 1e-10)),
    }
